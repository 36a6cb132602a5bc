//! The background feeder of the `api` scenario while generating: it keeps default tasks
//! unfinished so that generation saturates the compute, and notes how much of the time a task
//! was in generation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

/// How often the background feeder checks how many tasks are unfinished.
pub(super) const BUSY_POLL: Duration = Duration::from_millis(200);

/// What the background feeder saw and did.
#[derive(Default)]
pub(super) struct Feeder {
    polls: AtomicUsize,
    busy_polls: AtomicUsize,
    submitted: AtomicUsize,
}

impl Feeder {
    pub(super) fn busy_share_and_submitted(&self) -> (f64, usize) {
        let polls = self.polls.load(Ordering::Relaxed).max(1);
        (
            self.busy_polls.load(Ordering::Relaxed) as f64 / polls as f64,
            self.submitted.load(Ordering::Relaxed),
        )
    }
}

/// States of a task that is on its way but not yet finished.
const UNFINISHED: [&str; 5] = [
    "queued",
    "planning",
    "generating",
    "post_processing",
    "encoding",
];

/// Keeps `k` default 3-scene tasks unfinished until aborted: every [`BUSY_POLL`] it reads the
/// task counts from `/api/stats`, notes whether any task is past the queue, and tops up.
pub(super) async fn keep_generating(
    http: reqwest::Client,
    base: String,
    k: usize,
    fed: Arc<Feeder>,
) -> Result<()> {
    let mut seed = 90_000u64;
    loop {
        let stats: Value = http
            .get(format!("{base}/api/stats"))
            .send()
            .await?
            .json()
            .await?;
        let tasks = stats["tasks"]
            .as_object()
            .context("/api/stats has no tasks")?;
        let count = |s: &str| tasks.get(s).and_then(Value::as_u64).unwrap_or(0) as usize;
        let unfinished: usize = UNFINISHED.iter().map(|s| count(s)).sum();
        fed.polls.fetch_add(1, Ordering::Relaxed);
        if unfinished > count("queued") {
            fed.busy_polls.fetch_add(1, Ordering::Relaxed);
        }
        for _ in unfinished..k {
            let body = json!({"prompt": "测试视频", "num_scenes": 3, "seed": seed});
            let r = http
                .post(format!("{base}/api/tasks"))
                .json(&body)
                .send()
                .await?;
            if r.status().as_u16() != 202 {
                bail!("background POST answered {}", r.status());
            }
            seed += 1;
            fed.submitted.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(BUSY_POLL).await;
    }
}
