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

/// Every endpoint of the API, in the order the `api` scenario's users cycle through them.
/// `{id}` is the task last created; `{done}` a small task completed before the load starts.
pub const OPS: [&str; 13] = [
    "GET /api/tasks",
    "GET /api/tasks/{id}",
    "GET /healthz",
    "POST /api/tasks",
    "GET /readyz",
    "GET /api/stats",
    "GET /metrics",
    "GET /openapi.json",
    "GET /api/tasks/{done}/video",
    "GET /api/tasks/{done}/frames/0",
    "GET /api/tasks/{done}/events",
    "GET /api/tasks/{done}/stream",
    "DELETE /api/tasks/{id}",
];

/// [`OPS`] whose answer is timed to its head only: the MJPEG stream replays a finished task
/// at its frame rate, so its body takes as long as the video.
const HEAD_ONLY: &str = "GET /api/tasks/{done}/stream";

/// Sends one request and, unless `head_only`, reads its whole body; says how long it took.
async fn timed_op(
    req: reqwest::RequestBuilder,
    head_only: bool,
) -> (Duration, Result<(u16, Vec<u8>), reqwest::Error>) {
    if !head_only {
        return timed(req).await;
    }
    let t = Instant::now();
    let res = req.send().await.map(|r| (r.status().as_u16(), Vec::new()));
    (t.elapsed(), res)
}

/// The request of `OPS[op]`.
fn op_request(
    http: &reqwest::Client,
    base: &str,
    op: usize,
    last: u64,
    done: u64,
) -> reqwest::RequestBuilder {
    let path = OPS[op]
        .split_once(' ')
        .map_or("", |(_, p)| p)
        .replace("{id}", &last.to_string())
        .replace("{done}", &done.to_string());
    let url = format!("{base}{path}");
    match OPS[op].split(' ').next() {
        Some("POST") => http.post(url).json(&small_task()),
        Some("DELETE") => http.delete(url),
        _ => http.get(url),
    }
}

/// Polls the task until it is final; fails unless it completed within `within`.
pub async fn wait_completed(
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

/// How the `api` scenario's users behave.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ApiLoad {
    pub users: usize,
    /// Requests in all, shared by the users.
    pub requests: usize,
    /// Default 3-scene tasks kept queued or running for as long as the load lasts, so that
    /// generation saturates the compute meanwhile (0: none).
    pub background_tasks: usize,
    /// A user's pause after each answer, drawn uniformly from `[min, max]` milliseconds, like
    /// Locust's `between(min, max)`; `[0, 0]` sends back to back (a closed-loop stress).
    pub think_ms: [u64; 2],
}

impl ApiLoad {
    /// `users` users sending `requests` back to back, nothing generating.
    pub fn closed(users: usize, requests: usize) -> ApiLoad {
        ApiLoad {
            users,
            requests,
            background_tasks: 0,
            think_ms: [0, 0],
        }
    }

    fn think(&self, rng: &mut fastrand::Rng) -> Option<Duration> {
        let [lo, hi] = self.think_ms;
        (hi > 0).then(|| Duration::from_millis(rng.u64(lo..=hi)))
    }
}

/// Parses a think time `MIN,MAX` in milliseconds (for clap).
pub fn parse_think_ms(s: &str) -> Result<[u64; 2], String> {
    let parse = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
    match s.split_once(',') {
        Some((lo, hi)) => {
            let (lo, hi) = (parse(lo)?, parse(hi)?);
            if lo > hi {
                return Err(format!("MIN {lo} is above MAX {hi}"));
            }
            Ok([lo, hi])
        }
        None => Err("expected MIN,MAX in milliseconds".into()),
    }
}

/// Result of the `api` scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiResult {
    pub users: usize,
    pub wall_s: f64,
    pub total: Summary,
    pub by_op: BTreeMap<String, Summary>,
    /// Default 3-scene tasks kept in flight meanwhile.
    pub background_tasks: usize,
    /// The users' pause between requests (see [`ApiLoad::think_ms`]).
    #[serde(default)]
    pub think_ms: [u64; 2],
    /// Share of the load's duration during which a task was being generated, from polls of
    /// `/api/stats` every [`BUSY_POLL`] (0 without background tasks).
    #[serde(default)]
    pub generation_busy_share: f64,
    /// Background tasks submitted while the load ran.
    #[serde(default)]
    pub background_submitted: usize,
}

/// How often the background feeder checks how many tasks are unfinished.
pub const BUSY_POLL: Duration = Duration::from_millis(200);

/// `load.users` users share `load.requests` requests (until `deadline`), cycling through
/// [`OPS`] and pausing `load.think_ms` after each. With `load.background_tasks > 0`, that many
/// default 3-scene tasks (distinct seeds, so no cache hits) are kept unfinished throughout,
/// so the API is measured while generation saturates the compute.
pub async fn api(srv: &Server, load: ApiLoad, deadline: Instant) -> Result<ApiResult> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(load.users)
        .build()?;
    let seeded = post_task(&http, srv, &small_task()).await?;
    wait_completed(&http, srv, seeded, Duration::from_secs(60)).await?;
    let fed = Arc::new(Feeder::default());
    let feeder = (load.background_tasks > 0).then(|| {
        tokio::spawn(keep_generating(
            http.clone(),
            srv.base().to_owned(),
            load.background_tasks,
            fed.clone(),
        ))
    });
    if feeder.is_some() {
        // Let generation start before the first measured request.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let last_id = Arc::new(AtomicU64::new(seeded));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for user in 0..load.users {
        let (http, next, last_id) = (http.clone(), next.clone(), last_id.clone());
        let base = srv.base().to_owned();
        clients.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(user as u64);
            let mut tallies: [Tally; OPS.len()] = Default::default();
            // Paced users arrive spread over one pause, as Locust spawns them, rather than
            // all in the first millisecond.
            if let Some(pause) = load.think(&mut rng) {
                tokio::time::sleep(pause.mul_f64(rng.f64())).await;
            }
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= load.requests || Instant::now() >= deadline {
                    break;
                }
                let op = i % OPS.len();
                let last = last_id.load(Ordering::Relaxed);
                let req = op_request(&http, &base, op, last, seeded);
                let (took, res) = timed_op(req, OPS[op] == HEAD_ONLY).await;
                if let Ok((202, body)) = &res {
                    if let Some(id) = serde_json::from_slice::<Value>(body)
                        .ok()
                        .and_then(|v| v["id"].as_u64())
                    {
                        last_id.store(id, Ordering::Relaxed);
                    }
                }
                tallies[op].record(took, outcome(&res));
                if let Some(pause) = load.think(&mut rng) {
                    tokio::time::sleep(pause).await;
                }
            }
            tallies
        }));
    }
    let mut per_op: [Tally; OPS.len()] = Default::default();
    for c in clients {
        for (all, one) in per_op.iter_mut().zip(c.await?) {
            all.merge(one);
        }
    }
    let wall = started.elapsed();
    let (busy_share, submitted) = match feeder {
        Some(f) => {
            f.abort();
            match f.await {
                Err(e) if e.is_cancelled() => {}
                Err(e) => bail!("background feeder: {e}"),
                Ok(Err(e)) => return Err(e.context("background feeder")),
                Ok(Ok(())) => unreachable!("the feeder runs until aborted"),
            }
            fed.busy_share_and_submitted()
        }
        None => (0.0, 0),
    };
    let mut total = Tally::default();
    let mut by_op = BTreeMap::new();
    for (name, t) in OPS.iter().zip(per_op) {
        by_op.insert((*name).to_owned(), t.summary(wall));
        total.merge(t);
    }
    Ok(ApiResult {
        users: load.users,
        wall_s: wall.as_secs_f64(),
        total: total.summary(wall),
        by_op,
        background_tasks: load.background_tasks,
        think_ms: load.think_ms,
        generation_busy_share: busy_share,
        background_submitted: submitted,
    })
}

/// What the background feeder saw and did.
#[derive(Default)]
struct Feeder {
    polls: AtomicUsize,
    busy_polls: AtomicUsize,
    submitted: AtomicUsize,
}

impl Feeder {
    fn busy_share_and_submitted(&self) -> (f64, usize) {
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
async fn keep_generating(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn think_times_parse_as_min_max() {
        assert_eq!(parse_think_ms("1000,2000"), Ok([1000, 2000]));
        assert_eq!(parse_think_ms("0, 0"), Ok([0, 0]));
        assert!(parse_think_ms("2000,1000").is_err());
        assert!(parse_think_ms("1000").is_err());
        assert!(parse_think_ms("a,b").is_err());
    }

    #[test]
    fn every_endpoint_has_its_request() {
        let http = reqwest::Client::new();
        for (op, name) in OPS.iter().enumerate() {
            let req = op_request(&http, "http://h", op, 5, 1).build().unwrap();
            let (method, path) = name.split_once(' ').unwrap();
            assert_eq!(req.method().as_str(), method);
            let want = path.replace("{id}", "5").replace("{done}", "1");
            assert_eq!(req.url().path(), want);
        }
    }
}
