//! API keys over a real socket: the open server, the first key closing it, admin-only
//! routes, revocation, and a key seeing only its own tasks.

mod common;

use common::{assert_error, json_of, png_bytes, start, walk_to};
use reqwest::Method;
use serde_json::{json, Value};
use storage::TaskStatus;

/// The ids of the tasks in a list answer.
fn ids(body: &Value) -> Vec<u64> {
    body["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn an_open_server_needs_no_header() {
    let rig = start().await;
    let (status, body) = json_of(rig.post(json!({"prompt": "a red circle"})).await).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["owner"], Value::Null);
    let id = body["id"].as_u64().unwrap();
    assert_eq!(rig.get(&format!("/api/tasks/{id}")).await.status(), 200);
    assert_eq!(ids(&json_of(rig.get("/api/tasks").await).await.1), [id]);
    assert_eq!(rig.get("/api/stats").await.status(), 200);
    let (status, keys) = json_of(rig.get("/api/keys").await).await;
    assert_eq!((status, keys), (200, json!({"keys": []})));
    // A header is not needed, and a bogus one is not held against the caller either.
    let res = rig.get_as("/api/tasks", "reel_bogus").await;
    assert_eq!(res.status(), 200);
    let (_, ready) = json_of(rig.get("/readyz").await).await;
    assert_eq!(ready["auth"], "open");
}

#[tokio::test]
async fn the_first_key_closes_the_server() {
    let rig = start().await;
    let res = rig
        .http
        .post(rig.url("/api/keys"))
        .json(&json!({"name": "root", "admin": true}))
        .send()
        .await
        .unwrap();
    let (status, made) = json_of(res).await;
    assert_eq!(status, 201, "{made}");
    let token = made["token"].as_str().unwrap();
    assert!(token.starts_with("reel_"), "{made}");
    assert!(made["id"].as_str().unwrap().starts_with("key_"), "{made}");
    assert_eq!(made["admin"], true);
    assert_eq!(made["revoked"], false);
    assert!(made["webhook_secret"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));

    // No header, a wrong scheme, an empty or unknown token: 401.
    for path in ["/api/tasks", "/api/tasks/1", "/api/stats", "/api/keys"] {
        assert_error(rig.get(path).await, 401, "unauthorized").await;
    }
    let res = rig.post(json!({"prompt": "a red circle"})).await;
    assert_error(res, 401, "unauthorized").await;
    for header in [
        format!("Basic {token}"),
        "Bearer ".to_owned(),
        token.to_owned(),
    ] {
        let res = rig
            .http
            .get(rig.url("/api/tasks"))
            .header("authorization", header.as_str())
            .send()
            .await
            .unwrap();
        assert_error(res, 401, "unauthorized").await;
    }
    assert_error(
        rig.get_as("/api/tasks", "reel_0000").await,
        401,
        "unauthorized",
    )
    .await;
    assert!(rig.all_tasks().is_empty());
    // Public routes stay public.
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        assert_eq!(rig.get(path).await.status(), 200, "{path}");
    }
    // The token works.
    assert_eq!(rig.get_as("/api/tasks", token).await.status(), 200);
    assert_eq!(rig.get_as("/api/stats", token).await.status(), 200);
}

#[tokio::test]
async fn admin_routes_need_an_admin_key_and_revoking_is_immediate() {
    let rig = start().await;
    let (root_id, root) = rig.create_key(None, "root", true).await;
    let (a_id, a) = rig.create_key(Some(&root), "alice", false).await;
    let (b_id, b) = rig.create_key(Some(&root), "bob", false).await;

    // A plain key may use the task routes, not the admin ones.
    assert_eq!(rig.get_as("/api/tasks", &a).await.status(), 200);
    for path in ["/api/stats", "/api/keys"] {
        assert_error(rig.get_as(path, &a).await, 403, "forbidden").await;
    }
    let res = rig
        .req(Method::POST, "/api/keys", Some(&a))
        .json(&json!({"name": "mine", "admin": true}))
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "forbidden").await;
    let res = rig.delete_as(&format!("/api/keys/{b_id}"), Some(&a)).await;
    assert_error(res, 403, "forbidden").await;

    // The list never shows a token.
    let res = rig.get_as("/api/keys", &root).await;
    let text = res.text().await.unwrap();
    for token in [&root, &a, &b] {
        assert!(!text.contains(token.as_str()), "{text}");
    }
    let list: Value = serde_json::from_str(&text).unwrap();
    let keys = list["keys"].as_array().unwrap();
    let listed: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 3);
    for id in [&root_id, &a_id, &b_id] {
        assert!(listed.contains(&id.as_str()), "{list}");
    }
    for k in keys {
        assert!(
            k.get("token").is_none() && k.get("webhook_secret").is_none(),
            "{k}"
        );
    }

    // Revoked: refused at once, and listed as revoked.
    let res = rig
        .delete_as(&format!("/api/keys/{b_id}"), Some(&root))
        .await;
    let (status, revoked) = json_of(res).await;
    assert_eq!(
        (status, &revoked["revoked"]),
        (200, &json!(true)),
        "{revoked}"
    );
    assert!(revoked.get("token").is_none());
    assert_error(rig.get_as("/api/tasks", &b).await, 401, "unauthorized").await;
    let res = rig.post_as(json!({"prompt": "x"}), Some(&b)).await;
    assert_error(res, 401, "unauthorized").await;
    assert_eq!(rig.get_as("/api/tasks", &a).await.status(), 200);
    let (_, list) = json_of(rig.get_as("/api/keys", &root).await).await;
    let bob = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == b_id.as_str())
        .unwrap();
    assert_eq!(bob["revoked"], true);

    // Unknown keys.
    let res = rig
        .delete_as("/api/keys/key_000000000000", Some(&root))
        .await;
    assert_error(res, 404, "key_not_found").await;
    // The server still needs keys.
    assert_error(rig.get("/api/tasks").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_key_sees_only_its_own_tasks() {
    let rig = start().await;
    // A task of the open server, before any key: nobody's but an admin's to see.
    let (status, _) = json_of(rig.post(json!({"prompt": "before keys"})).await).await;
    assert_eq!(status, 202);
    let (_, root) = rig.create_key(None, "root", true).await;
    let (a_id, a) = rig.create_key(Some(&root), "alice", false).await;
    let (_, b) = rig.create_key(Some(&root), "bob", false).await;

    let (status, task) = json_of(rig.post_as(json!({"prompt": "alice's"}), Some(&a)).await).await;
    assert_eq!(status, 202, "{task}");
    assert_eq!(task["owner"], a_id.as_str());
    let id = task["id"].as_u64().unwrap();
    assert_eq!(
        rig.store.get(id).unwrap().unwrap().owner,
        Some(a_id.clone())
    );
    let (_, bobs) = json_of(rig.post_as(json!({"prompt": "bob's"}), Some(&b)).await).await;
    let bobs = bobs["id"].as_u64().unwrap();
    walk_to(&rig.tasks, id, TaskStatus::Generating);
    rig.write_frame(id, 0, &png_bytes(0));
    rig.tasks.frame(id, 0);

    // To bob, alice's task does not exist: the same 404 as for no task at all.
    for path in [
        format!("/api/tasks/{id}"),
        format!("/api/tasks/{id}/events"),
        format!("/api/tasks/{id}/stream"),
        format!("/api/tasks/{id}/video"),
        format!("/api/tasks/{id}/frames/0"),
    ] {
        let body = assert_error(rig.get_as(&path, &b).await, 404, "task_not_found").await;
        assert_eq!(body["message"], format!("no task {id}"), "{path}");
    }
    let res = rig.delete_as(&format!("/api/tasks/{id}"), Some(&b)).await;
    assert_error(res, 404, "task_not_found").await;
    assert_eq!(
        rig.store.get(id).unwrap().unwrap().status,
        TaskStatus::Generating,
        "bob's DELETE changed nothing"
    );
    assert!(rig.tasks.is_live(id));
    let (_, list) = json_of(rig.get_as("/api/tasks", &b).await).await;
    assert_eq!(ids(&list), [bobs]);
    let (_, list) = json_of(rig.get_as("/api/tasks?status=generating", &b).await).await;
    assert_eq!(ids(&list), Vec::<u64>::new());

    // Alice sees hers (and only hers).
    assert_eq!(
        rig.get_as(&format!("/api/tasks/{id}"), &a).await.status(),
        200
    );
    let frame = rig.get_as(&format!("/api/tasks/{id}/frames/0"), &a).await;
    assert_eq!(frame.status(), 200);
    let (_, list) = json_of(rig.get_as("/api/tasks", &a).await).await;
    assert_eq!(ids(&list), [id]);

    // An admin sees everything, the open server's task included.
    let (_, list) = json_of(rig.get_as("/api/tasks", &root).await).await;
    assert_eq!(ids(&list), [bobs, id, 1]);
    assert_eq!(
        rig.get_as(&format!("/api/tasks/{id}"), &root)
            .await
            .status(),
        200
    );
    assert_error(rig.get_as("/api/tasks/1", &a).await, 404, "task_not_found").await;

    // Alice may cancel hers.
    let (status, body) = json_of(rig.delete_as(&format!("/api/tasks/{id}"), Some(&a)).await).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("cancelled")),
        "{body}"
    );
}
