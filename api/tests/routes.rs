//! The route table (`api::routes::ROUTES`) against what the server actually routes, the
//! metrics labels and the OpenAPI document.

mod common;

use std::collections::BTreeSet;

use api::routes::{template_of, Access, ROUTES};
use common::{json_of, start_with};
use reqwest::Method;
use serde_json::json;

/// The template with its parameters filled: `{id}` an existing task, `{n}` 0, `{key}` a
/// well-formed key id.
fn concrete(template: &str, id: u64) -> String {
    template
        .replace("{id}", &id.to_string())
        .replace("{n}", "0")
        .replace("{key}", "key_000000000000")
}

/// Every entry of the table is served: as an admin, each method on each filled-in template
/// gets an answer that is not "no such route" or "wrong method" (nor a refusal of the key).
#[tokio::test]
async fn every_route_in_the_table_is_served() {
    let rig = start_with(Some(api::metrics::install_recorder().unwrap())).await;
    let (_, root) = rig.create_key(None, "root", true).await;
    let id = rig.stored_task().id;
    // Listed in table order: the DELETE of the task comes after its reads.
    for r in ROUTES {
        let path = concrete(r.path, id);
        assert_eq!(template_of(&path), r.path, "{} {}", r.method, r.path);
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let mut req = rig.req(method, &path, Some(&root));
        if r.method == "POST" {
            req = req.json(&match r.path {
                "/api/keys" => json!({"name": "from the table"}),
                _ => json!({"prompt": "a cyan diamond"}),
            });
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let is_json = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/json");
        // Streams of a live task do not end: read JSON bodies only.
        let body = if is_json {
            res.json::<serde_json::Value>().await.unwrap()
        } else {
            json!(null)
        };
        let code = body["code"].as_str().unwrap_or("");
        // A 404 of the resource (no frame 0 yet, no such key) is fine: the route served it.
        assert!(
            !matches!(status, 401 | 403 | 405)
                && code != "route_not_found"
                && code != "method_not_allowed",
            "{} {path}: {status} {body}",
            r.method
        );
    }
}

/// Without a key (once keys exist), every non-public route is a 401 and every public one is
/// served: access in the table is access in the routes.
#[tokio::test]
async fn access_in_the_table_is_enforced() {
    let rig = start_with(Some(api::metrics::install_recorder().unwrap())).await;
    let (_, root) = rig.create_key(None, "root", true).await;
    let (_, user) = rig.create_key(Some(&root), "user", false).await;
    let id = rig.stored_task().id;
    for r in ROUTES {
        let path = concrete(r.path, id);
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let anonymous = rig.req(method.clone(), &path, None).send().await.unwrap();
        let status = anonymous.status().as_u16();
        match r.access {
            Access::Public => assert_eq!(status, 200, "{} {}", r.method, r.path),
            Access::Key | Access::Admin => {
                let (status, body) = json_of(anonymous).await;
                // reel's shape, or OpenAI's for the /v1 routes.
                let code = body["code"].as_str().or(body["error"]["code"].as_str());
                assert_eq!(
                    (status, code),
                    (401, Some("unauthorized")),
                    "{} {}: {body}",
                    r.method,
                    r.path
                );
            }
        }
        if r.access == Access::Admin {
            let res = rig.req(method, &path, Some(&user)).send().await.unwrap();
            let (status, body) = json_of(res).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (403, Some("forbidden")),
                "{} {}: {body}",
                r.method,
                r.path
            );
        }
    }
}

/// The served document lists exactly the table's (path, method) pairs, with its summaries,
/// and marks every non-public operation as needing a key.
#[tokio::test]
async fn the_document_lists_exactly_the_table() {
    let rig = common::start().await;
    let (status, doc) = json_of(rig.get("/openapi.json").await).await;
    assert_eq!(status, 200);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((path.clone(), method.to_ascii_uppercase()));
            let r = ROUTES
                .iter()
                .find(|r| r.path == path && r.method.eq_ignore_ascii_case(method))
                .unwrap_or_else(|| panic!("{method} {path} is not in the table"));
            assert_eq!(op["summary"], r.summary);
            assert_eq!(
                op.get("security").is_some(),
                r.access != Access::Public,
                "{method} {path}"
            );
        }
    }
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.path.to_owned(), r.method.to_owned()))
        .collect();
    assert_eq!(documented, table);
    assert_eq!(table.len(), ROUTES.len(), "no entry twice");
}

/// Paths outside the table are labelled "unmatched" and answered 404 `route_not_found`.
#[tokio::test]
async fn paths_outside_the_table_are_unmatched() {
    let rig = common::start().await;
    rig.stored_task();
    for path in [
        "/api/tasks/abc",
        "/api/tasks/1/frames/x",
        "/api/task",
        "/metrics/x",
        "/index.html",
        "/page.js/x",
    ] {
        assert_eq!(template_of(path), "unmatched", "{path}");
        common::assert_error(rig.get(path).await, 404, "route_not_found").await;
    }
}
