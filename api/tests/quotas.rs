//! Per-key quotas (in flight, per hour) and the per-task pixel budget, over a real socket.

mod common;

use std::sync::atomic::Ordering;

use api::quota::Limits;
use common::{assert_error, json_of, retry_after, start, start_opts, Options, Rig};
use serde_json::json;
use storage::TaskStatus;

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
