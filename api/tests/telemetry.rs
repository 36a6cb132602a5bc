//! `/metrics` and `/api/stats` over a real socket, and the route labels of the request metrics.

mod common;

use common::{json_of, start, start_with};

/// The value of the first sample line of `metric` whose labels include every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The recorder is one per process and its gauges are global: two tests scraping their own
/// rigs at once would overwrite each other's task counts between a scrape's set and render.
static RECORDER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn metrics_render_requests_by_route_and_process_gauges() {
    let _alone = RECORDER.lock().await;
    let handle = api::metrics::install_recorder().unwrap();
    let rig = start_with(Some(handle)).await;
    let id = rig.stored_task().id;
    assert_eq!(rig.get("/healthz").await.status(), 200);
    assert_eq!(rig.get(&format!("/api/tasks/{id}")).await.status(), 200);
    assert_eq!(rig.get("/api/tasks/987654").await.status(), 404);
    assert_eq!(rig.get("/no/such/path").await.status(), 404);

    let res = rig.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = res.text().await.unwrap();

    let count = "reel_http_request_duration_seconds_count";
    let get_ok = [
        r#"route="/api/tasks/{id}""#,
        r#"status="200""#,
        r#"method="GET""#,
    ];
    assert!(sample(&text, count, &get_ok).unwrap() >= 1.0, "{text}");
    let missing = [r#"route="/api/tasks/{id}""#, r#"status="404""#];
    assert!(sample(&text, count, &missing).unwrap() >= 1.0, "{text}");
    assert!(sample(&text, count, &[r#"route="unmatched""#, r#"status="404""#]).is_some());
    assert!(sample(&text, count, &[r#"route="/healthz""#]).is_some());
    // Histogram buckets, and no raw path as a label value.
    assert!(text.contains(r#"reel_http_request_duration_seconds_bucket{"#));
    assert!(!text.contains("987654"), "{text}");
    // This scrape is itself in flight while it renders.
    assert!(sample(&text, "reel_http_requests_in_flight", &[]).unwrap() >= 1.0);
    assert!(sample(&text, "reel_process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(sample(&text, "reel_process_cpu_percent", &[]).is_some());
    assert_eq!(sample(&text, "reel_queue_bound", &[]), Some(100.0));
    assert!(sample(&text, "reel_tasks", &[r#"status="queued""#]).unwrap() >= 1.0);
    assert!(sample(&text, "reel_tasks", &[r#"status="failed""#]).is_some());
    assert!(
        sample(&text, "reel_live_tasks", &[]).unwrap() >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn metrics_are_not_mounted_without_a_recorder() {
    let rig = start().await;
    assert_eq!(rig.get("/metrics").await.status(), 404);
}

#[tokio::test]
async fn stats_summarise_host_queue_tasks_and_cache() {
    let rig = start().await;
    rig.stored_task();
    rig.stored_task();
    rig.backend
        .depth
        .store(7, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = json_of(rig.get("/api/stats").await).await;
    assert_eq!(status, 200, "{body}");

    let mem = &body["memory"];
    let total = mem["total_bytes"].as_u64().unwrap();
    assert!(mem["rss_bytes"].as_u64().unwrap() > 0);
    assert!(total > 0 && mem["available_bytes"].as_u64().unwrap() <= total);
    assert!(mem["rss_bytes"].as_u64().unwrap() < total);
    assert!(body["cpu"]["process_percent"].as_f64().unwrap() >= 0.0);
    assert!(body["cpu"]["cores"].as_u64().unwrap() >= 1);
    let disk = &body["disk"];
    assert!(disk["free_bytes"].as_u64().unwrap() <= disk["total_bytes"].as_u64().unwrap());
    assert!(disk["total_bytes"].as_u64().unwrap() > 0);
    assert!(body["network"]["received_bytes"].is_u64());
    assert_eq!(body["queue"]["depth"], 7);
    assert_eq!(body["queue"]["bound"], 100);
    assert_eq!(body["tasks"]["queued"], 2);
    assert_eq!(body["tasks"]["completed"], 0);
    for key in ["hits", "memory_hits", "misses"] {
        assert!(body["cache"][key].is_u64(), "{body}");
    }
    assert!(body["gpu"].is_null());
    // Both stored tasks are queued, so live; nothing else is held.
    assert_eq!(body["live_tasks"], 2);
}

#[tokio::test]
async fn gpu_figures_appear_when_the_model_runs_on_a_gpu() {
    let _alone = RECORDER.lock().await;
    let handle = api::metrics::install_recorder().unwrap();
    let rig = start_with(Some(handle)).await;
    let usage = contract::GpuUsage {
        name: "Test GPU".into(),
        utilization_percent: 42,
        memory_used_bytes: 3 << 30,
        memory_total_bytes: 80 << 30,
    };
    *rig.backend.gpu.lock().unwrap() = Some(usage);

    let (status, body) = json_of(rig.get("/api/stats").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["gpu"]["name"], "Test GPU");
    assert_eq!(body["gpu"]["utilization_percent"], 42);
    assert_eq!(body["gpu"]["memory_used_bytes"], 3u64 << 30);
    assert_eq!(body["gpu"]["memory_total_bytes"], 80u64 << 30);

    let text = rig.get("/metrics").await.text().await.unwrap();
    assert_eq!(
        sample(&text, "reel_gpu_utilization_percent", &[]),
        Some(42.0)
    );
    let used = sample(&text, "reel_gpu_memory_used_bytes", &[]);
    assert_eq!(used, Some((3u64 << 30) as f64), "{text}");
    let total = sample(&text, "reel_gpu_memory_total_bytes", &[]);
    assert_eq!(total, Some((80u64 << 30) as f64));
}

/// Every path of the OpenAPI document is its own route label.
#[test]
fn route_labels_are_the_documented_templates() {
    use api::routes::template_of;
    let doc = api::openapi::spec(&common::builtin_model());
    for path in doc["paths"].as_object().unwrap().keys() {
        let concrete = path
            .replace("{id}", "42")
            .replace("{n}", "3")
            .replace("{key}", "key_0123456789ab");
        assert_eq!(template_of(&concrete), path);
    }
    assert_eq!(template_of("/api/tasks/x"), "unmatched");
    assert_eq!(template_of("/api/keys/nokey"), "/api/keys/{key}");
    assert_eq!(template_of("/api/keys/a/b"), "unmatched");
    assert_eq!(template_of("/api/stats"), "/api/stats");
    assert_eq!(template_of("/"), "/");
    assert_eq!(template_of("/index.html"), "unmatched");
}
