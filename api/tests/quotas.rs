//! Per-key quotas (in flight, per hour) and the per-task pixel budget, over a real socket.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use api::quota::Limits;
use api::ApiConfig;
use common::{assert_error, json_of, retry_after, start, start_opts, Options, Rig};
use serde_json::json;
use storage::TaskStatus;
use tasks::TaskService;

async fn rig_with(limits: Limits) -> Rig {
    start_opts(Options {
        limits: Some(limits),
        ..Options::default()
    })
    .await
}

/// An admin and two plain keys: (root, a, b) tokens.
async fn keys(rig: &Rig) -> (String, String, String) {
    let (_, root) = rig.create_key(None, "root", true).await;
    let (_, a) = rig.create_key(Some(&root), "alice", false).await;
    let (_, b) = rig.create_key(Some(&root), "bob", false).await;
    (root, a, b)
}

async fn post(rig: &Rig, token: &str) -> reqwest::Response {
    rig.post_as(json!({"prompt": "a red circle"}), Some(token))
        .await
}

#[tokio::test]
async fn in_flight_per_key() {
    let rig = rig_with(Limits {
        in_flight_per_key: 2,
        ..Limits::default()
    })
    .await;
    let (_, a, b) = keys(&rig).await;
    let mut mine = Vec::new();
    for _ in 0..2 {
        let (status, body) = json_of(post(&rig, &a).await).await;
        assert_eq!(status, 202, "{body}");
        mine.push(body["id"].as_u64().unwrap());
    }
    let res = post(&rig, &a).await;
    assert!(retry_after(&res) > 0);
    let body = assert_error(res, 429, "quota_exceeded").await;
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("2 tasks in flight"), "{body}");
    assert_eq!(rig.all_tasks().len(), 2, "nothing stored");
    assert_eq!(rig.backend.submitted.lock().unwrap().len(), 2);

    // Another key is counted apart.
    let (status, body) = json_of(post(&rig, &b).await).await;
    assert_eq!(status, 202, "{body}");

    // Once one of them ends, there is room again.
    rig.tasks.fail(mine[0], "boom");
    let (status, body) = json_of(post(&rig, &a).await).await;
    assert_eq!(status, 202, "{body}");
    // Finished tasks do not count, whatever way they ended.
    common::walk_to(&rig.tasks, mine[1], TaskStatus::Completed);
    let (status, body) = json_of(post(&rig, &a).await).await;
    assert_eq!(status, 202, "{body}");
    assert_error(post(&rig, &a).await, 429, "quota_exceeded").await;
}

/// Concurrent requests of one key cannot get past the in-flight limit together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_per_key_holds_under_concurrent_requests() {
    let rig = rig_with(Limits {
        in_flight_per_key: 2,
        ..Limits::default()
    })
    .await;
    let (_, a, _) = keys(&rig).await;
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (http, url, a) = (rig.http.clone(), rig.url("/api/tasks"), a.clone());
            tokio::spawn(async move {
                let res = http
                    .post(url)
                    .bearer_auth(a)
                    .json(&json!({"prompt": "a red circle"}))
                    .send()
                    .await
                    .unwrap();
                res.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.await.unwrap());
    }
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((accepted, refused), (2, 18), "{statuses:?}");
    assert_eq!(rig.all_tasks().len(), 2);
}

#[tokio::test]
async fn per_hour_per_key() {
    let rig = rig_with(Limits {
        per_hour_per_key: 3,
        ..Limits::default()
    })
    .await;
    let (_, a, b) = keys(&rig).await;
    for _ in 0..3 {
        let (status, body) = json_of(post(&rig, &a).await).await;
        assert_eq!(status, 202, "{body}");
        // Ended at once: only the hourly count can refuse the next.
        rig.tasks.cancel(body["id"].as_u64().unwrap()).unwrap();
    }
    let res = post(&rig, &a).await;
    let wait = retry_after(&res);
    assert!((3000..=3600).contains(&wait), "{wait}");
    let body = assert_error(res, 429, "quota_exceeded").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("3 tasks per hour"),
        "{body}"
    );
    assert_eq!(rig.all_tasks().len(), 3, "nothing stored");

    let (status, body) = json_of(post(&rig, &b).await).await;
    assert_eq!(status, 202, "{body}");
}

/// A task the engine did not take is not counted against its key.
#[tokio::test]
async fn refused_submissions_are_not_counted() {
    let rig = rig_with(Limits {
        per_hour_per_key: 1,
        ..Limits::default()
    })
    .await;
    let (_, a, _) = keys(&rig).await;
    rig.backend.refuse_submit.store(true, Ordering::SeqCst);
    assert_error(post(&rig, &a).await, 429, "queue_full").await;
    rig.backend.refuse_submit.store(false, Ordering::SeqCst);
    let (status, body) = json_of(post(&rig, &a).await).await;
    assert_eq!(status, 202, "{body}");
    assert_error(post(&rig, &a).await, 429, "quota_exceeded").await;
}

/// 8 scenes of 10 s at 60 fps and 512 px is 4800 frames, over the default budget: a 400 that
/// says so, stores nothing and uses none of the key's quota.
#[tokio::test]
async fn a_task_over_the_pixel_budget_is_refused() {
    let rig = rig_with(Limits {
        per_hour_per_key: 1,
        ..Limits::default()
    })
    .await;
    let huge = json!({
        "prompt": "a large blue square growing",
        "num_scenes": 8, "seconds_per_scene": 10, "fps": 60, "size": 512
    });
    // Open server.
    let body = assert_error(rig.post(huge.clone()).await, 400, "task_too_large").await;
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("4800 frames x 512 x 512"), "{body}");
    assert!(
        message.contains(&Limits::default().max_task_pixels.to_string()),
        "{body}"
    );
    // With a key.
    let (_, a, _) = keys(&rig).await;
    for _ in 0..2 {
        let res = rig.post_as(huge.clone(), Some(&a)).await;
        assert_error(res, 400, "task_too_large").await;
    }
    assert!(rig.all_tasks().is_empty());
    assert!(rig.backend.submitted.lock().unwrap().is_empty());
    assert_eq!(rig.tasks.live_count(), 0);
    let (status, body) = json_of(post(&rig, &a).await).await;
    assert_eq!(status, 202, "{body}");

    // The default task fits the default budget.
    let rig = start().await;
    let (status, body) = json_of(rig.post(json!({"prompt": "x"})).await).await;
    assert_eq!(status, 202, "{body}");
}

/// The API served again over the same store, as after a restart: a new task service that
/// takes the unfinished tasks again, and quotas read back from the store.
async fn serve_again(rig: &Rig, limits: Limits) -> String {
    let tasks = Arc::new(TaskService::new(rig.store.clone()));
    tasks.resume().unwrap();
    let mut config = ApiConfig::new(rig.data_dir.clone());
    config.limits = limits;
    let routes = api::routes(tasks, rig.backend.clone(), config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    format!("http://{addr}")
}

/// A restart resets nobody's quotas: the hour is read back from the store, and the tasks
/// taken again are still in flight.
#[tokio::test]
async fn quotas_survive_a_restart() {
    let limits = Limits {
        in_flight_per_key: 2,
        per_hour_per_key: 3,
        ..Limits::default()
    };
    let rig = rig_with(limits).await;
    let (_, a, b) = keys(&rig).await;
    // a: two in flight; b: three in the hour, all ended.
    for _ in 0..2 {
        assert_eq!(post(&rig, &a).await.status(), 202);
    }
    for _ in 0..3 {
        let (status, body) = json_of(post(&rig, &b).await).await;
        assert_eq!(status, 202, "{body}");
        rig.tasks.cancel(body["id"].as_u64().unwrap()).unwrap();
    }

    let base = serve_again(&rig, limits).await;
    let post_again = |token: &str| {
        rig.http
            .post(format!("{base}/api/tasks"))
            .bearer_auth(token)
            .json(&json!({"prompt": "a red circle"}))
            .send()
    };
    let res = post_again(&a).await.unwrap();
    let body = assert_error(res, 429, "quota_exceeded").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("2 tasks in flight"),
        "{body}"
    );
    let res = post_again(&b).await.unwrap();
    let body = assert_error(res, 429, "quota_exceeded").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("3 tasks per hour"),
        "{body}"
    );
}

/// A request's priority defaults to its key's and may not exceed it; admins (and the open
/// server's user) may ask up to the top.
#[tokio::test]
async fn priorities_are_capped_by_the_key() {
    let rig = start().await;
    let (status, body) = json_of(rig.post(json!({"prompt": "x", "priority": 9})).await).await;
    assert_eq!((status, &body["priority"]), (202, &json!(9)), "{body}");
    let (_, body) = json_of(rig.post(json!({"prompt": "x"})).await).await;
    assert_eq!(body["priority"], 5);
    let res = rig.post(json!({"prompt": "x", "priority": 10})).await;
    assert_error(res, 400, "invalid_field").await;

    let (_, root) = rig.create_key(None, "root", true).await;
    let res = rig
        .req(reqwest::Method::POST, "/api/keys", Some(&root))
        .json(&json!({"name": "batch", "priority": 2}))
        .send()
        .await
        .unwrap();
    let (status, made) = json_of(res).await;
    assert_eq!((status, &made["priority"]), (201, &json!(2)), "{made}");
    let low = made["token"].as_str().unwrap();
    let (_, body) = json_of(rig.post_as(json!({"prompt": "x"}), Some(low)).await).await;
    assert_eq!(body["priority"], 2, "{body}");
    let (_, body) = json_of(
        rig.post_as(json!({"prompt": "x", "priority": 1}), Some(low))
            .await,
    )
    .await;
    assert_eq!(body["priority"], 1, "{body}");
    let res = rig
        .post_as(json!({"prompt": "x", "priority": 3}), Some(low))
        .await;
    let body = assert_error(res, 400, "invalid_field").await;
    assert!(
        body["message"].as_str().unwrap().contains("priority"),
        "{body}"
    );
    let (_, body) = json_of(
        rig.post_as(json!({"prompt": "x", "priority": 9}), Some(&root))
            .await,
    )
    .await;
    assert_eq!(body["priority"], 9, "{body}");
    assert_eq!(
        rig.store
            .get(body["id"].as_u64().unwrap())
            .unwrap()
            .unwrap()
            .priority,
        9
    );
}
