//! The `api` scenario: concurrent users over a fixed number of requests cycling through every
//! endpoint, back to back or paced like Locust users, optionally while generation keeps the
//! compute busy (see [`super::feeder`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{outcome, post_task, small_task, small_video, timed, wait_completed};
use super::feeder::{keep_generating, Feeder};
use crate::server::Server;
use crate::tally::{Summary, Tally};

/// Every endpoint of the API, in the order the `api` scenario's users cycle through them.
/// `{id}` is the task last created; `{done}` a small task completed before the load starts.
pub const OPS: [&str; 17] = [
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
    "GET /v1/videos",
    "GET /v1/videos/video_{done}",
    "GET /v1/videos/video_{done}/content",
    "POST /v1/videos",
];

/// The [`OPS`] of the routes the original plan names (create, read, list, video) with the
/// health check and the task counts the bench reads: what both reel and the peer
/// (`bench/peer/`) serve, so that a comparison runs these only ([`ApiLoad::contract_only`]).
pub const CONTRACT_OPS: [&str; 6] = [
    "GET /api/tasks",
    "GET /api/tasks/{id}",
    "GET /healthz",
    "POST /api/tasks",
    "GET /api/stats",
    "GET /api/tasks/{done}/video",
];

/// [`OPS`] whose answer is timed to its head only: the live frame stream replays a finished task
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
        Some("POST") if path.starts_with("/v1/") => http.post(url).json(&small_video()),
        Some("POST") => http.post(url).json(&small_task()),
        Some("DELETE") => http.delete(url),
        _ => http.get(url),
    }
}

/// How the `api` scenario's users behave.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ApiLoad {
    /// Concurrent users, each sending one request at a time.
    pub users: usize,
    /// Requests in all, shared by the users.
    pub requests: usize,
    /// Default 3-scene tasks kept queued or running for as long as the load lasts, so that
    /// generation saturates the compute meanwhile (0: none).
    pub background_tasks: usize,
    /// A user's pause after each answer, drawn uniformly from `[min, max]` milliseconds, like
    /// Locust's `between(min, max)`; `[0, 0]` sends back to back (a closed-loop stress).
    pub think_ms: [u64; 2],
    /// Cycle through [`CONTRACT_OPS`] only, rather than every endpoint of [`OPS`].
    #[serde(default)]
    pub contract_only: bool,
}

impl ApiLoad {
    /// `users` users sending `requests` back to back, nothing generating.
    pub fn closed(users: usize, requests: usize) -> ApiLoad {
        ApiLoad {
            users,
            requests,
            background_tasks: 0,
            think_ms: [0, 0],
            contract_only: false,
        }
    }

    /// The indices into [`OPS`] the users cycle through, in order.
    fn ops(&self) -> Vec<usize> {
        (0..OPS.len())
            .filter(|&i| !self.contract_only || CONTRACT_OPS.contains(&OPS[i]))
            .collect()
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
    /// Concurrent users.
    pub users: usize,
    /// Seconds from the users' start to the last one's end (the small task completed
    /// beforehand and the background tasks' head start not counted).
    pub wall_s: f64,
    /// Every request together.
    pub total: Summary,
    /// The requests of each endpoint, keyed by its [`OPS`] entry (e.g. `GET /healthz`); each
    /// throughput is over the whole `wall_s`.
    pub by_op: BTreeMap<String, Summary>,
    /// Default 3-scene tasks kept in flight meanwhile.
    pub background_tasks: usize,
    /// The users' pause between requests (see [`ApiLoad::think_ms`]).
    #[serde(default)]
    pub think_ms: [u64; 2],
    /// Share of the load's duration during which a task was being generated, from polls of
    /// `/api/stats` every `feeder::BUSY_POLL` (0 without background tasks).
    #[serde(default)]
    pub generation_busy_share: f64,
    /// Background tasks submitted while the load ran.
    #[serde(default)]
    pub background_submitted: usize,
}

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
    let ops: Arc<[usize]> = load.ops().into();
    let started = Instant::now();
    let mut clients = Vec::new();
    for user in 0..load.users {
        let (http, next, last_id, ops) = (http.clone(), next.clone(), last_id.clone(), ops.clone());
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
                let op = ops[i % ops.len()];
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
    for (i, t) in per_op.into_iter().enumerate() {
        if ops.contains(&i) {
            by_op.insert(OPS[i].to_owned(), t.summary(wall));
            total.merge(t);
        }
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
    fn the_contract_is_a_subset_of_every_endpoint() {
        let mut load = ApiLoad::closed(1, 1);
        assert_eq!(load.ops().len(), OPS.len());
        load.contract_only = true;
        let names: Vec<&str> = load.ops().iter().map(|&i| OPS[i]).collect();
        assert_eq!(names.len(), CONTRACT_OPS.len());
        assert!(CONTRACT_OPS.iter().all(|op| names.contains(op)));
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
