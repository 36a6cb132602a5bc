//! What every HTTP scenario shares: timing a request, its outcome for a [`Tally`], and
//! posting a task and waiting for it.
//!
//! [`Tally`]: crate::tally::Tally

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::server::Server;
use crate::tally::Outcome;

/// Sends one request, reads its whole body, and says how long it took and how it went.
pub async fn timed(
    req: reqwest::RequestBuilder,
) -> (Duration, Result<(u16, Vec<u8>), reqwest::Error>) {
    let t = Instant::now();
    let res = async {
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.bytes().await?.to_vec()))
    }
    .await;
    (t.elapsed(), res)
}

/// The outcome of a [`timed`] request for a [`Tally`](crate::tally::Tally).
pub fn outcome<T>(res: &Result<(u16, T), reqwest::Error>) -> Outcome {
    match res {
        Ok((s, _)) => Outcome::Status(*s),
        Err(_) => Outcome::Failed,
    }
}

/// The prompt of the tasks the scenarios post.
pub const PROMPT: &str = "a small red circle moving left on a black background";

/// One small scene, one step, fixed seed: after the first, every such POST is a cache hit.
pub(super) fn small_task() -> Value {
    json!({"prompt": PROMPT, "num_scenes": 1, "steps": 1, "seed": 7, "size": 64, "seconds_per_scene": 0.5})
}

/// The smallest OpenAI-style video: one second at 64x64. `/v1/videos` draws its own seed, so
/// unlike [`small_task`] each one is generated (20 steps, one scene).
pub(super) fn small_video() -> Value {
    json!({"prompt": PROMPT, "seconds": "1", "size": "64x64"})
}

/// Posts `body` and returns the new task's id (a 202 is required).
pub(super) async fn post_task(http: &reqwest::Client, srv: &Server, body: &Value) -> Result<u64> {
    let r = http.post(srv.url("/api/tasks")).json(body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    match v["id"].as_u64() {
        Some(id) if status.as_u16() == 202 => Ok(id),
        _ => bail!("POST /api/tasks answered {status}: {v}"),
    }
}

/// Polls the task until it is final; fails unless it completed within `within`.
pub(super) async fn wait_completed(
    http: &reqwest::Client,
    srv: &Server,
    id: u64,
    within: Duration,
) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let v: Value = http
            .get(srv.url(&format!("/api/tasks/{id}")))
            .send()
            .await?
            .json()
            .await?;
        match v["status"].as_str() {
            Some("completed") => return Ok(()),
            Some("failed" | "cancelled") => bail!("task {id} ended: {v}"),
            _ if Instant::now() >= deadline => bail!("task {id} not done in {within:?}: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
