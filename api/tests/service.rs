//! Health, readiness, and the OpenAPI document against the routes it describes.

mod common;

use common::{json_of, start, start_with};
use serde_json::json;

#[tokio::test]
async fn health_and_readiness() {
    let rig = start().await;
    let (status, body) = json_of(rig.get("/healthz").await).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));

    rig.stored_task();
    let (status, body) = json_of(rig.get("/readyz").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["backend"]["model"], "fake-model");
    assert_eq!(body["storage"]["ok"], true);
    assert_eq!(body["storage"]["tasks"]["queued"], 1);
    assert_eq!(body["queue"]["bound"], 100);
}

/// Every operation in the document reaches a route (no 404 "route_not_found", no 405).
#[tokio::test]
async fn openapi_documents_every_route() {
    let rig = start_with(Some(api::metrics::install_recorder().unwrap())).await;
    rig.stored_task();
    let (status, doc) = json_of(rig.get("/openapi.json").await).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["schemas"]["CreateTask"]["properties"]["num_scenes"]["maximum"],
        8
    );
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 11);
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path.replace("{id}", "1").replace("{n}", "0");
        for method in ["get", "post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let req = match method {
                "get" => rig.http.get(rig.url(&concrete)),
                "post" => rig
                    .http
                    .post(rig.url(&concrete))
                    .json(&json!({"prompt": "a cyan diamond"})),
                _ => rig.http.delete(rig.url(&concrete)),
            };
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            // Live streams of an unfinished task do not end: read only JSON bodies.
            let json = res
                .headers()
                .get("content-type")
                .is_some_and(|v| v == "application/json");
            let text = if json {
                res.text().await.unwrap()
            } else {
                String::new()
            };
            assert!(
                status != 405 && !text.contains("route_not_found"),
                "{method} {path}: {status} {text}"
            );
        }
    }
    assert_eq!(operations, 13);
}
