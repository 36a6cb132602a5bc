//! Health, readiness, the OpenAPI document against the routes it describes, and a server
//! that cannot take work (engine down, disk below its floor).

mod common;

use common::{assert_error, json_of, retry_after, start, start_opts, start_with, Options};
use serde_json::json;

#[tokio::test]
async fn health_and_readiness() {
    let rig = start().await;
    let (status, body) = json_of(rig.get("/healthz").await).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));

    rig.stored_task();
    let res = rig.get("/readyz").await;
    assert!(res.headers().get("retry-after").is_none());
    let (status, body) = json_of(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["reasons"], json!([]));
    assert_eq!(body["backend"]["model"], "fake-model");
    assert_eq!(body["storage"]["ok"], true);
    assert_eq!(body["storage"]["tasks"]["queued"], 1);
    assert_eq!(body["engine"]["ok"], true);
    assert_eq!(body["queue"]["bound"], 100);
    assert_eq!(body["auth"], "open");
    assert_eq!(body["live_tasks"], 1);
    assert!(body["disk"]["free_bytes"].as_u64().unwrap() > 0, "{body}");
    assert_eq!(body["disk"]["floor_bytes"], 0);

    // The first key closes the server; readiness says so.
    rig.create_key(None, "root", true).await;
    let (status, body) = json_of(rig.get("/readyz").await).await;
    assert_eq!((status, &body["auth"]), (200, &json!("keys")), "{body}");
}

/// Every operation in the document reaches a route (no 404 "route_not_found", no 405).
#[tokio::test]
async fn openapi_documents_every_route() {
    let rig = start_with(Some(api::metrics::install_recorder().unwrap())).await;
    rig.stored_task();
    // As an admin, so that every route is served rather than refused.
    let (_, root) = rig.create_key(None, "root", true).await;
    let (status, doc) = json_of(rig.get("/openapi.json").await).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        doc["components"]["schemas"]["CreateTask"]["properties"]["num_scenes"]["maximum"],
        8
    );
    let paths = doc["paths"].as_object().unwrap();
    let distinct: std::collections::BTreeSet<&str> =
        api::routes::ROUTES.iter().map(|r| r.path).collect();
    assert_eq!(paths.len(), distinct.len());
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "1")
            .replace("{n}", "0")
            .replace("{key}", "key_000000000000");
        for method in ["get", "post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let req = match method {
                "get" => rig.http.get(rig.url(&concrete)),
                "post" if path == "/api/keys" => rig
                    .http
                    .post(rig.url(&concrete))
                    .json(&json!({"name": "k"})),
                "post" => rig
                    .http
                    .post(rig.url(&concrete))
                    .json(&json!({"prompt": "a cyan diamond"})),
                _ => rig.http.delete(rig.url(&concrete)),
            };
            let res = req.bearer_auth(&root).send().await.unwrap();
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
                ![401, 403, 405].contains(&status) && !text.contains("route_not_found"),
                "{method} {path}: {status} {text}"
            );
        }
    }
    assert_eq!(operations, api::routes::ROUTES.len());
}

/// An engine that is down (a worker died; it is recovering): nothing is accepted or stored,
/// the client is told to come back, and readiness says why.
#[tokio::test]
async fn an_unavailable_engine_refuses_tasks_and_fails_readiness() {
    let rig = start_opts(Options {
        unhealthy: Some("worker 0 died; restarting".into()),
        ..Options::default()
    })
    .await;
    let res = rig.post(json!({"prompt": "a red circle"})).await;
    assert!(retry_after(&res) > 0);
    let body = assert_error(res, 503, "engine_unavailable").await;
    assert!(
        body["message"].as_str().unwrap().contains("worker 0 died"),
        "{body}"
    );
    assert!(rig.all_tasks().is_empty());
    assert!(rig.backend.submitted.lock().unwrap().is_empty());
    assert_eq!(rig.tasks.live_count(), 0);

    let res = rig.get("/readyz").await;
    assert!(retry_after(&res) > 0);
    let (status, body) = json_of(res).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["engine"]["ok"], false);
    let reasons = body["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{body}");
    let reason = reasons[0].as_str().unwrap();
    assert!(
        reason.starts_with("engine:") && reason.contains("worker 0 died"),
        "{body}"
    );
    // Liveness is not readiness.
    assert_eq!(rig.get("/healthz").await.status(), 200);

    // Recovered: accepted again, ready again.
    *rig.backend.unhealthy.lock().unwrap() = None;
    let (status, body) = json_of(rig.post(json!({"prompt": "a red circle"})).await).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(rig.get("/readyz").await.status(), 200);
}

/// Below the free-space floor: 507 for new tasks, nothing stored, and `/readyz` says why.
#[tokio::test]
async fn a_disk_below_its_floor_refuses_tasks_and_fails_readiness() {
    let rig = start_opts(Options {
        min_free_disk: u64::MAX,
        ..Options::default()
    })
    .await;
    let res = rig.post(json!({"prompt": "a red circle"})).await;
    assert!(retry_after(&res) > 0);
    assert_error(res, 507, "insufficient_storage").await;
    assert!(rig.all_tasks().is_empty());
    assert!(rig.backend.submitted.lock().unwrap().is_empty());

    let (status, body) = json_of(rig.get("/readyz").await).await;
    assert_eq!(status, 503, "{body}");
    let reasons = body["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 1, "{body}");
    assert!(reasons[0].as_str().unwrap().starts_with("disk:"), "{body}");
    assert_eq!(body["disk"]["floor_bytes"], u64::MAX);
    // The message names no path of the server.
    let data_dir = rig.data_dir.to_str().unwrap();
    assert!(!body.to_string().contains(data_dir), "{body}");
}
