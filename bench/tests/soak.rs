//! A short soak against the real `reel serve` (the release binary of this build, found next
//! to `target/release/deps/`; nothing is built here): the scenario must post tasks, sample
//! the server many times, and come out with finite figures and no errors.

use bench::server::{find_reel, Server};
use bench::soak::{self, SoakConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_soak_samples_and_fits() {
    let bin = find_reel().expect("the reel binary (cargo build --release)");
    let srv = Server::start_ready(&bin, &[]).await.expect("reel serves");
    let cfg = SoakConfig {
        duration_s: 4.0,
        task_every_s: 1.0,
        sample_every_s: 0.2,
        warmup_s: 0.0,
        scenes: 1,
        steps: 1,
    };
    let mut seen = 0;
    let r = soak::run(&srv, cfg, |_| seen += 1)
        .await
        .expect("the soak runs");
    assert_eq!(seen, r.samples.len());
    assert!(r.samples.len() >= 12, "only {} samples", r.samples.len());
    assert!(r.samples.windows(2).all(|w| w[0].t_s < w[1].t_s));
    assert!(r.samples.iter().all(|s| s.rss_bytes > 0));
    assert!(r
        .samples
        .iter()
        .all(|s| s.probe_ms.len() <= 2 && !s.probe_ms.is_empty()));
    let posted = r.samples.last().map_or(0, |s| s.tasks_posted);
    assert!(posted >= 3, "posted {posted} tasks");
    assert_eq!(
        r.probes.errors + r.posts.errors,
        0,
        "{:?} {:?}",
        r.probes,
        r.posts
    );
    let s = &r.stats;
    assert!(s.memory_slope_mb_per_hour.is_finite());
    assert!(s.rss_first_quarter_mb > 1.0 && s.rss_last_quarter_mb > 1.0);
    assert!(s.latency_drift_ratio.is_finite() && s.latency_drift_ratio > 0.0);
    // Every sample keeps its probes, so the JSON carries what the report plots.
    let json = serde_json::to_value(&r).expect("serialises");
    assert_eq!(
        json["samples"].as_array().map(Vec::len),
        Some(r.samples.len())
    );
}
