//! The HTTP scenarios against a running [`Server`]: `api` (concurrent users over a fixed
//! number of requests cycling through the endpoints, optionally while generation keeps the
//! compute busy), `burst` (many connections at one moment) and `generate` (concurrent
//! generation tasks against a single one).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::server::Server;
use crate::tally::{Outcome, Summary, Tally};

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

/// The outcome of a [`timed`] request for a [`Tally`].
pub fn outcome<T>(res: &Result<(u16, T), reqwest::Error>) -> Outcome {
    match res {
        Ok((s, _)) => Outcome::Status(*s),
        Err(_) => Outcome::Failed,
    }
}

pub const PROMPT: &str = "a small red circle moving left on a black background";

/// One small scene, one step, fixed seed: after the first, every such POST is a cache hit.
pub fn small_task() -> Value {
    json!({"prompt": PROMPT, "num_scenes": 1, "steps": 1, "seed": 7, "size": 64, "seconds_per_scene": 0.5})
}

/// Posts `body` and returns the new task's id (a 202 is required).
pub async fn post_task(http: &reqwest::Client, srv: &Server, body: &Value) -> Result<u64> {
    let r = http.post(srv.url("/api/tasks")).json(body).send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    match v["id"].as_u64() {
        Some(id) if status.as_u16() == 202 => Ok(id),
        _ => bail!("POST /api/tasks answered {status}: {v}"),
    }
}

pub const OPS: [&str; 4] = [
    "GET /api/tasks",
    "GET /api/tasks/{id}",
    "GET /healthz",
    "POST /api/tasks",
];

/// Result of the `api` scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiResult {
    pub users: usize,
    pub wall_s: f64,
    pub total: Summary,
    pub by_op: BTreeMap<String, Summary>,
    /// Default 3-scene tasks submitted before the load to keep the compute busy.
    pub background_tasks: usize,
    /// Whether generation was still running when the load ended (so it overlapped it all).
    pub generation_busy_at_end: bool,
}

/// `users` clients share `requests` requests (until `deadline`), cycling through [`OPS`].
/// With `background_tasks > 0`, that many default 3-scene tasks (distinct seeds, so no cache
/// hits) are submitted first, so the API is measured while generation saturates the compute.
pub async fn api(
    srv: &Server,
    users: usize,
    requests: usize,
    background_tasks: usize,
    deadline: Instant,
) -> Result<ApiResult> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(users)
        .build()?;
    let seeded = post_task(&http, srv, &small_task()).await?;
    for i in 0..background_tasks {
        let body = json!({"prompt": "测试视频", "num_scenes": 3, "seed": 90_000 + i as u64});
        post_task(&http, srv, &body).await?;
    }
    let last_id = Arc::new(AtomicU64::new(seeded));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..users {
        let (http, next, last_id) = (http.clone(), next.clone(), last_id.clone());
        let base = srv.base().to_owned();
        clients.push(tokio::spawn(async move {
            let mut tallies: [Tally; 4] = Default::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests || Instant::now() >= deadline {
                    break;
                }
                let op = i % OPS.len();
                let req = match op {
                    0 => http.get(format!("{base}/api/tasks")),
                    1 => http.get(format!(
                        "{base}/api/tasks/{}",
                        last_id.load(Ordering::Relaxed)
                    )),
                    2 => http.get(format!("{base}/healthz")),
                    _ => http.post(format!("{base}/api/tasks")).json(&small_task()),
                };
                let (took, res) = timed(req).await;
                if let Ok((202, body)) = &res {
                    if let Some(id) = serde_json::from_slice::<Value>(body)
                        .ok()
                        .and_then(|v| v["id"].as_u64())
                    {
                        last_id.store(id, Ordering::Relaxed);
                    }
                }
                tallies[op].record(took, outcome(&res));
            }
            tallies
        }));
    }
    let mut per_op: [Tally; 4] = Default::default();
    for c in clients {
        for (all, one) in per_op.iter_mut().zip(c.await?) {
            all.merge(one);
        }
    }
    let wall = started.elapsed();
    let generation_busy_at_end = background_tasks > 0 && generation_busy(&http, srv).await?;
    let mut total = Tally::default();
    let mut by_op = BTreeMap::new();
    for (name, t) in OPS.iter().zip(per_op) {
        by_op.insert((*name).to_owned(), t.summary(wall));
        total.merge(t);
    }
    Ok(ApiResult {
        users,
        wall_s: wall.as_secs_f64(),
        total: total.summary(wall),
        by_op,
        background_tasks,
        generation_busy_at_end,
    })
}

/// Whether any task is still queued or in progress, from `/api/stats`.
async fn generation_busy(http: &reqwest::Client, srv: &Server) -> Result<bool> {
    let stats: Value = http.get(srv.url("/api/stats")).send().await?.json().await?;
    let tasks = stats["tasks"]
        .as_object()
        .context("/api/stats has no tasks")?;
    Ok([
        "queued",
        "planning",
        "generating",
        "post_processing",
        "encoding",
    ]
    .iter()
    .any(|s| tasks.get(*s).and_then(Value::as_u64).unwrap_or(0) > 0))
}

/// Result of the `burst` scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BurstResult {
    pub connections: usize,
    pub wall_s: f64,
    pub total: Summary,
}

/// `n` clients, each on its own connection, send one `GET /api/tasks` at the same moment.
pub async fn burst(srv: &Server, n: usize) -> Result<BurstResult> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        // One client each: its own pool, so its own connection.
        clients.push(
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?,
        );
    }
    let started = Instant::now();
    let url = srv.url("/api/tasks");
    let handles: Vec<_> = clients
        .into_iter()
        .map(|http| {
            let (barrier, url) = (barrier.clone(), url.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let (took, res) = timed(http.get(url)).await;
                (took, outcome(&res))
            })
        })
        .collect();
    let mut tally = Tally::default();
    for h in handles {
        let (took, outcome) = h.await?;
        tally.record(took, outcome);
    }
    let wall = started.elapsed();
    Ok(BurstResult {
        connections: n,
        wall_s: wall.as_secs_f64(),
        total: tally.summary(wall),
    })
}

/// When one task was first seen with a frame and when it ended, from its submission.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskRun {
    pub id: u64,
    pub status: String,
    pub first_frame_s: Option<f64>,
    pub wall_s: f64,
}

/// The size of the tasks of a `generate` run.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TaskShape {
    pub scenes: usize,
    pub steps: usize,
}

/// Submits `k` tasks at once (distinct seeds from `seed0`) and polls them until each is final
/// or the deadline passes.
async fn run_tasks(
    http: &reqwest::Client,
    srv: &Server,
    shape: TaskShape,
    k: usize,
    seed0: u64,
    deadline: Instant,
) -> Result<Vec<TaskRun>> {
    let started = Instant::now();
    let mut runs = Vec::with_capacity(k);
    for i in 0..k {
        let body = json!({"prompt": PROMPT, "num_scenes": shape.scenes, "steps": shape.steps, "seed": seed0 + i as u64});
        runs.push(TaskRun {
            id: post_task(http, srv, &body).await?,
            status: "queued".into(),
            first_frame_s: None,
            wall_s: 0.0,
        });
    }
    let final_states = ["completed", "failed", "cancelled"];
    let running = |r: &TaskRun| !final_states.contains(&r.status.as_str());
    while Instant::now() < deadline && runs.iter().any(running) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for run in runs.iter_mut().filter(|r| running(r)) {
            let v: Value = http
                .get(srv.url(&format!("/api/tasks/{}", run.id)))
                .send()
                .await?
                .json()
                .await?;
            let now = started.elapsed().as_secs_f64();
            run.status = v["status"].as_str().unwrap_or("unknown").to_owned();
            if run.first_frame_s.is_none()
                && v["progress"]["frames_ready"].as_u64().unwrap_or(0) > 0
            {
                run.first_frame_s = Some(now);
            }
            run.wall_s = now;
        }
    }
    Ok(runs)
}

/// Tasks of one `generate` run: their makespan and scenes per second.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskGroup {
    pub tasks: usize,
    pub runs: Vec<TaskRun>,
    pub wall_s: f64,
    pub scenes_per_s: f64,
    pub all_completed: bool,
}

impl TaskGroup {
    fn new(runs: Vec<TaskRun>, scenes: usize) -> TaskGroup {
        let wall_s = runs.iter().map(|r| r.wall_s).fold(0.0, f64::max);
        let done = runs.iter().filter(|r| r.status == "completed").count();
        TaskGroup {
            tasks: runs.len(),
            wall_s,
            scenes_per_s: (done * scenes) as f64 / wall_s.max(1e-9),
            all_completed: done == runs.len(),
            runs,
        }
    }

    /// Median time to the first frame of the group's tasks that produced one.
    pub fn first_frame_median_s(&self) -> Option<f64> {
        let mut t: Vec<f64> = self.runs.iter().filter_map(|r| r.first_frame_s).collect();
        t.sort_by(f64::total_cmp);
        t.get(t.len() / 2).copied()
    }
}

/// Result of the `generate` scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerateResult {
    pub shape: TaskShape,
    pub single: TaskGroup,
    /// One group per concurrency asked for, in that order.
    pub concurrent: Vec<TaskGroup>,
}

impl GenerateResult {
    /// Scenes per second of `group` against the single task's.
    pub fn speedup(&self, group: &TaskGroup) -> f64 {
        if self.single.scenes_per_s > 0.0 {
            group.scenes_per_s / self.single.scenes_per_s
        } else {
            0.0
        }
    }
}

/// One task of `shape` alone, then, for each `k` of `concurrency`, `k` such tasks together.
/// Seeds count up from `seed0`, so that no task is a cache hit of another.
pub async fn generate(
    srv: &Server,
    shape: TaskShape,
    concurrency: &[usize],
    seed0: u64,
    deadline: Instant,
) -> Result<GenerateResult> {
    let http = reqwest::Client::new();
    let single = TaskGroup::new(
        run_tasks(&http, srv, shape, 1, seed0, deadline).await?,
        shape.scenes,
    );
    let mut seed = seed0 + 1;
    let mut concurrent = Vec::with_capacity(concurrency.len());
    for &k in concurrency {
        let runs = run_tasks(&http, srv, shape, k, seed, deadline).await?;
        seed += k as u64;
        concurrent.push(TaskGroup::new(runs, shape.scenes));
    }
    Ok(GenerateResult {
        shape,
        single,
        concurrent,
    })
}
