//! The task resource over a real socket: create, validate, read, list, cancel.

mod common;

use std::sync::atomic::Ordering;

use api::quota::Limits;
use common::{assert_error, json_of, start, start_opts, walk_to, walk_to_with, Options};
use serde_json::json;
use storage::{Artifact, TaskStatus};

#[tokio::test]
async fn create_fills_defaults_and_submits() {
    let rig = start().await;
    let res = rig
        .post(json!({"prompt": "测试视频", "num_scenes": 3}))
        .await;
    assert_eq!(res.headers()["location"], "/api/tasks/1");
    let (status, body) = json_of(res).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["id"], 1);
    assert_eq!(body["status"], "queued");
    let p = &body["params"];
    assert_eq!(p["prompt"], "测试视频");
    assert_eq!(p["num_scenes"], 3);
    assert_eq!(p["steps"], 20);
    assert_eq!(p["guidance"], 4.0);
    assert_eq!(p["seconds_per_scene"], 2.0);
    assert_eq!(p["fps"], 24);
    assert_eq!(p["size"], 256);
    assert!(p["seed"].is_u64());
    assert_eq!(body["links"]["video"], "/api/tasks/1/video");
    assert_eq!(body["progress"]["scenes"], json!([0.0, 0.0, 0.0]));
    assert_eq!(*rig.backend.submitted.lock().unwrap(), vec![1]);

    let stored = rig.store.get(1).unwrap().unwrap();
    assert_eq!(stored.params.seed, p["seed"].as_u64().unwrap());
    assert_eq!(stored.status, TaskStatus::Queued);
}

#[tokio::test]
async fn explicit_values_are_kept_and_prompt_trimmed() {
    // Every parameter at its maximum is over the default pixel budget; lift it.
    let rig = start_opts(Options {
        limits: Some(Limits {
            max_task_pixels: u64::MAX,
            ..Limits::default()
        }),
        ..Options::default()
    })
    .await;
    let (status, body) = json_of(
        rig.post(json!({
            "prompt": "  a large blue square growing  ",
            "num_scenes": 8, "seed": u64::MAX, "steps": 100, "guidance": 0,
            "seconds_per_scene": 10, "fps": 60, "size": 512
        }))
        .await,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let p = rig.store.get(1).unwrap().unwrap().params;
    assert_eq!(p.prompt, "a large blue square growing");
    assert_eq!((p.num_scenes, p.seed, p.steps), (8, u64::MAX, 100));
    assert_eq!(
        (p.guidance, p.seconds_per_scene, p.fps, p.size),
        (0.0, 10.0, 60, 512)
    );

    // Two tasks without a seed get (almost surely) different random ones.
    rig.post(json!({"prompt": "x"})).await;
    rig.post(json!({"prompt": "x"})).await;
    let seeds: Vec<u64> = [2, 3]
        .iter()
        .map(|id| rig.store.get(*id).unwrap().unwrap().params.seed)
        .collect();
    assert_ne!(seeds[0], seeds[1]);

    // Exactly at the limit: 2000 characters of three bytes each.
    let (status, _) = json_of(rig.post(json!({"prompt": "视".repeat(2000)})).await).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn bad_bodies_are_4xx_json_and_store_nothing() {
    let rig = start().await;
    // Not JSON, not the right shape, wrong kinds of values, unknown fields.
    let json_errors = [
        r#"{"prompt": "#,
        "not json",
        "[]",
        "null",
        "{}",
        r#"{"prompt": 5}"#,
        r#"{"prompt": "x", "num_scenes": "3"}"#,
        r#"{"prompt": "x", "num_scenes": 2.5}"#,
        r#"{"prompt": "x", "seed": -1}"#,
        r#"{"prompt": "x", "seed": 18446744073709551616}"#,
        r#"{"prompt": "x", "guidance": "high"}"#,
        r#"{"prompt": "x", "colour": "red"}"#,
    ];
    // Well-formed, but outside the accepted ranges (or beyond the parameter's own type:
    // no silent wrap-around or saturation).
    let long = json!({ "prompt": "a".repeat(2001) }).to_string();
    let field_errors = [
        r#"{"prompt": ""}"#,
        r#"{"prompt": "   \n "}"#,
        long.as_str(),
        r#"{"prompt": "x", "num_scenes": 0}"#,
        r#"{"prompt": "x", "num_scenes": 9}"#,
        r#"{"prompt": "x", "steps": 0}"#,
        r#"{"prompt": "x", "steps": 101}"#,
        r#"{"prompt": "x", "guidance": -0.1}"#,
        r#"{"prompt": "x", "guidance": 20.5}"#,
        r#"{"prompt": "x", "guidance": 1e39}"#,
        r#"{"prompt": "x", "seconds_per_scene": 0.4}"#,
        r#"{"prompt": "x", "seconds_per_scene": 11}"#,
        r#"{"prompt": "x", "fps": 0}"#,
        r#"{"prompt": "x", "fps": 61}"#,
        r#"{"prompt": "x", "fps": 4294967320}"#,
        r#"{"prompt": "x", "size": 48}"#,
        r#"{"prompt": "x", "size": 528}"#,
        r#"{"prompt": "x", "size": 100}"#,
    ];
    let cases = json_errors
        .iter()
        .map(|b| (*b, 400, "invalid_json"))
        .chain(field_errors.iter().map(|b| (*b, 400, "invalid_field")))
        // No body at all: warp's body limit needs a content-length.
        .chain([("", 411, "length_required")]);
    for (body, status, code) in cases {
        let (got, answer) = json_of(rig.post_raw(body.to_owned()).await).await;
        assert_eq!(got, status, "body {body:?}: {answer}");
        assert_eq!(answer["code"], code, "body {body:?}: {answer}");
    }
    // The message says what is wrong.
    let unknown = rig.post_raw(r#"{"prompt": "x", "colour": "red"}"#).await;
    let body = assert_error(unknown, 400, "invalid_json").await;
    assert!(
        body["message"].as_str().unwrap().contains("colour"),
        "{body}"
    );
    let range = rig.post_raw(r#"{"prompt": "x", "fps": 61}"#).await;
    let body = assert_error(range, 400, "invalid_field").await;
    assert!(body["message"].as_str().unwrap().contains("fps"), "{body}");

    // Too large, wrong content type.
    let huge = json!({"prompt": "a".repeat(100 * 1024)}).to_string();
    assert_error(rig.post_raw(huge).await, 413, "payload_too_large").await;
    let plain = rig
        .http
        .post(rig.url("/api/tasks"))
        .header("content-type", "text/plain")
        .body(r#"{"prompt": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_error(plain, 415, "unsupported_media_type").await;

    assert!(rig.store.list(None, 10, None).unwrap().0.is_empty());
    assert!(rig.backend.submitted.lock().unwrap().is_empty());
    assert_eq!(rig.tasks.live_count(), 0);
}

#[tokio::test]
async fn full_queue_is_429_with_retry_after_and_stores_nothing() {
    let rig = start().await;
    rig.backend.bound.store(4, Ordering::SeqCst);
    rig.backend.depth.store(4, Ordering::SeqCst);
    let res = rig.post(json!({"prompt": "a red circle"})).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0);
    assert_error(res, 429, "queue_full").await;
    assert!(rig.store.list(None, 10, None).unwrap().0.is_empty());
    assert!(rig.backend.submitted.lock().unwrap().is_empty());

    rig.backend.depth.store(3, Ordering::SeqCst);
    let (status, _) = json_of(rig.post(json!({"prompt": "a red circle"})).await).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn queue_filling_after_the_check_closes_the_stored_task() {
    let rig = start().await;
    rig.backend.refuse_submit.store(true, Ordering::SeqCst);
    let res = rig.post(json!({"prompt": "a red circle"})).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_error(res, 429, "queue_full").await;
    // Stored, then ended (failed, with the reason) rather than left queued forever.
    let r = rig.store.get(1).unwrap().unwrap();
    assert_eq!(r.status, TaskStatus::Failed);
    assert!(r.error.unwrap().contains("queue is full"));
    assert!(!rig.tasks.is_live(1));
    assert_eq!(rig.tasks.live_count(), 0);
}

#[tokio::test]
async fn get_shows_plan_progress_and_unknown_ids_are_404() {
    let rig = start().await;
    let t = rig.stored_task();
    let caption = "a small red circle moving left on a black background";
    // The engine's plan as stored; the API reads captions and guesses, ignoring the rest.
    let plan = json!({"scenes": [
        {"scene": {"shape": "circle"}, "caption": caption, "guessed": []},
        {"scene": {"shape": "circle"}, "caption": caption, "guessed": ["motion"]},
    ]});
    walk_to_with(&rig.tasks, t.id, TaskStatus::Generating, |r| {
        r.plan = Some(plan);
        r.scenes_done = 1;
    });
    let path = format!("/api/tasks/{}", t.id);

    // Before the engine reports steps: derived from the record.
    let (status, body) = json_of(rig.get(&path).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "generating");
    assert_eq!(body["plan"][1]["caption"], caption);
    assert_eq!(body["plan"][1]["guessed"], json!(["motion"]));
    assert_eq!(body["progress"]["overall"], 0.5, "{body}");
    assert_eq!(body["progress"]["scenes"], json!([1.0, 0.0]), "{body}");

    // With live progress from the engine, through the task service.
    rig.tasks.begin(t.id, 2);
    rig.tasks.step(t.id, 0, 10, 10);
    rig.tasks.step(t.id, 1, 5, 10);
    for n in 0..3 {
        rig.tasks.frame(t.id, n);
    }
    let (_, body) = json_of(rig.get(&path).await).await;
    assert_eq!(body["progress"]["overall"], 0.75, "{body}");
    assert_eq!(body["progress"]["scenes"], json!([1.0, 0.5]));
    assert_eq!(body["progress"]["frames_ready"], 3);

    // Completed: everything done, whatever was live before.
    walk_to_with(&rig.tasks, t.id, TaskStatus::Completed, |r| {
        r.timings_ms.insert("total".into(), 1234);
        r.artifact = Some(Artifact {
            video: "v.mp4".into(),
            frames_dir: "f".into(),
            frame_count: 16,
            video_bytes: 999,
            width: 64,
            height: 64,
            fps: 8,
        });
    });
    let (_, body) = json_of(rig.get(&path).await).await;
    assert_eq!(body["status"], "completed");
    assert_eq!(body["progress"]["overall"], 1.0);
    assert_eq!(body["progress"]["frames_ready"], 16);
    assert_eq!(body["timings_ms"]["total"], 1234);
    assert_eq!(body["artifact"]["video_bytes"], 999);
    assert!(
        body["artifact"].get("video").is_none(),
        "no server paths leak: {body}"
    );

    assert_error(rig.get("/api/tasks/999").await, 404, "task_not_found").await;
    assert_error(rig.get("/api/tasks/abc").await, 404, "route_not_found").await;
    assert_error(rig.get("/api/tasks/-1").await, 404, "route_not_found").await;
    assert_error(
        rig.get("/api/tasks/99999999999999999999999").await,
        404,
        "route_not_found",
    )
    .await;
}

#[tokio::test]
async fn list_pages_newest_first_and_filters_by_status() {
    let rig = start().await;
    for _ in 0..25 {
        rig.stored_task();
    }
    for id in [3, 7, 11] {
        walk_to(&rig.tasks, id, TaskStatus::Completed);
    }
    let mut ids = Vec::new();
    let mut next = "/api/tasks?limit=10".to_string();
    loop {
        let (status, body) = json_of(rig.get(&next).await).await;
        assert_eq!(status, 200, "{body}");
        let page = body["tasks"].as_array().unwrap();
        assert!(page.len() <= 10);
        ids.extend(page.iter().map(|t| t["id"].as_u64().unwrap()));
        match body["next_cursor"].as_u64() {
            Some(c) => next = format!("/api/tasks?limit=10&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(ids, (1..=25).rev().collect::<Vec<u64>>());

    let (_, body) = json_of(rig.get("/api/tasks").await).await;
    assert_eq!(body["tasks"].as_array().unwrap().len(), 20, "default limit");

    let (_, body) = json_of(rig.get("/api/tasks?status=completed&limit=2").await).await;
    let got: Vec<_> = body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(got, vec![json!(11), json!(7)]);
    let c = body["next_cursor"].as_u64().unwrap();
    let (_, body) = json_of(
        rig.get(&format!("/api/tasks?status=completed&limit=2&cursor={c}"))
            .await,
    )
    .await;
    assert_eq!(body["tasks"][0]["id"], 3);
    assert_eq!(body["next_cursor"], json!(null));

    for bad in [
        "/api/tasks?status=done",
        "/api/tasks?limit=0",
        "/api/tasks?limit=101",
        "/api/tasks?limit=ten",
        "/api/tasks?cursor=-3",
        "/api/tasks?limit=-1",
    ] {
        let res = rig.get(bad).await;
        let (status, body) = json_of(res).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["code"], "invalid_query", "{bad}: {body}");
    }
}

#[tokio::test]
async fn cancel_is_idempotent() {
    let rig = start().await;
    let t = rig.stored_task();
    walk_to(&rig.tasks, t.id, TaskStatus::Generating);
    let path = rig.url(&format!("/api/tasks/{}", t.id));
    let (status, body) = json_of(rig.http.delete(&path).send().await.unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")));
    // The engine drops the task's work once it is no longer live.
    assert!(!rig.tasks.is_live(t.id));
    assert_eq!(
        rig.store.get(t.id).unwrap().unwrap().status,
        TaskStatus::Cancelled
    );
    assert_eq!(rig.store.counts().unwrap()[&TaskStatus::Cancelled], 1);

    let (status, again) = json_of(rig.http.delete(&path).send().await.unwrap()).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(again["updated_ms"], body["updated_ms"]);
    assert_eq!(
        rig.store.counts().unwrap()[&TaskStatus::Cancelled],
        1,
        "no second cancel"
    );

    // A completed task stays completed.
    let done = rig.stored_task();
    walk_to(&rig.tasks, done.id, TaskStatus::Completed);
    let url = rig.url(&format!("/api/tasks/{}", done.id));
    let (status, body) = json_of(rig.http.delete(&url).send().await.unwrap()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("completed")));
    assert_eq!(rig.store.counts().unwrap()[&TaskStatus::Cancelled], 1);

    let missing = rig
        .http
        .delete(rig.url("/api/tasks/77"))
        .send()
        .await
        .unwrap();
    assert_error(missing, 404, "task_not_found").await;
    assert_eq!(rig.tasks.live_count(), 0);
}

#[tokio::test]
async fn wrong_methods_and_unknown_routes() {
    let rig = start().await;
    rig.stored_task();
    let h = &rig.http;
    assert_error(
        h.put(rig.url("/api/tasks")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_error(
        h.delete(rig.url("/api/tasks")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_error(
        h.patch(rig.url("/api/tasks/1")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_error(
        h.post(rig.url("/api/tasks/1"))
            .body("{}")
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_error(
        h.post(rig.url("/healthz")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_error(
        h.get(rig.url("/nope")).send().await.unwrap(),
        404,
        "route_not_found",
    )
    .await;
    assert_error(
        h.get(rig.url("/api/tasks/1/nope")).send().await.unwrap(),
        404,
        "route_not_found",
    )
    .await;
    // `/` is the web page; nothing else sits beside it.
    assert_error(
        h.get(rig.url("/index.html")).send().await.unwrap(),
        404,
        "route_not_found",
    )
    .await;
    assert_error(
        h.post(rig.url("/")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}

/// The load `ab -n 1000 -c 10` puts on the list: every answer a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_list_requests_ten_at_a_time() {
    let rig = start().await;
    for _ in 0..30 {
        rig.stored_task();
    }
    let url = rig.url("/api/tasks");
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let (http, url) = (rig.http.clone(), url.clone());
            tokio::spawn(async move {
                let mut ok = 0;
                for _ in 0..100 {
                    let res = http.get(&url).send().await.unwrap();
                    if res.status() == 200 && res.bytes().await.unwrap().len() > 100 {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for w in workers {
        ok += w.await.unwrap();
    }
    assert_eq!(ok, 1000);
}

#[tokio::test]
async fn webhooks_to_private_addresses_are_refused_unless_allowed() {
    let rig = start().await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://[::1]/hook",
        "http://localhost:8000/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/hook",
    ] {
        let res = rig.post(json!({"prompt": "x", "webhook": url})).await;
        let body = assert_error(res, 400, "invalid_field").await;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("not a public address"),
            "{body}"
        );
    }
    // Nothing was stored or submitted.
    assert!(rig.store.get(1).unwrap().is_none());
    let (status, body) = json_of(
        rig.post(json!({"prompt": "x", "webhook": "https://hooks.example.com/reel"}))
            .await,
    )
    .await;
    assert_eq!(status, 202, "{body}");

    let open = start_opts(Options {
        limits: Some(Limits {
            private_webhooks: true,
            ..Limits::default()
        }),
        ..Options::default()
    })
    .await;
    let (status, body) = json_of(
        open.post(json!({"prompt": "x", "webhook": "http://127.0.0.1:9/hook"}))
            .await,
    )
    .await;
    assert_eq!(status, 202, "{body}");
}
