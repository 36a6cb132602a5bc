//! load: drives a real `reel serve` over HTTP and reports latency, throughput, errors, and the
//! server's CPU and memory.
//!
//! It starts the reel binary itself (`--reel-bin`; by default `reel` next to this executable,
//! so run `cargo build --release` first) on a free loopback port with a fresh data dir, waits
//! for `/healthz`, runs one scenario, and stops the server:
//! - `api`: `--users` concurrent clients share `--requests` requests, cycling through
//!   `GET /api/tasks`, `GET /api/tasks/{id}`, `GET /healthz` and `POST /api/tasks` (one small
//!   scene, one step, fixed seed, so repeats are cache hits);
//! - `burst`: `--connections` clients, each on its own connection, send one `GET /api/tasks`
//!   at the same moment;
//! - `generate`: one task of `--scenes` scenes alone, then `--tasks` such tasks together:
//!   wall time, time to first frame (polled), and throughput against the single task.
//!
//! Work stops being issued after `--max-secs`. A 429 (queue full) is counted as "rejected",
//! not as an error. `--json PATH` writes the result. Server CPU is percent of one core.
//!
//! `cargo build --release && cargo run --release -p bench --bin load -- --scenario api --users 100 --requests 10000`

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use serde_json::{json, Value};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Scenario {
    Api,
    Burst,
    Generate,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "api")]
    scenario: Scenario,
    /// `api`: concurrent clients.
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// `api`: requests in all.
    #[arg(long, default_value_t = 10_000)]
    requests: usize,
    /// `burst`: simultaneous connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// `generate`: concurrent tasks.
    #[arg(long, default_value_t = 4)]
    tasks: usize,
    /// `generate`: scenes per task.
    #[arg(long, default_value_t = 2)]
    scenes: usize,
    /// `generate`: denoising steps per scene.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// No new work after this many seconds (the run then drains and reports).
    #[arg(long, default_value_t = 300)]
    max_secs: u64,
    /// The reel binary [default: `reel` next to this executable].
    #[arg(long)]
    reel_bin: Option<PathBuf>,
    /// Extra argument for `reel serve`, repeatable (e.g. `--serve-arg=--queue-bound=100000`).
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    serve_args: Vec<String>,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `reel serve` on a free loopback port with its own data dir; stopped and cleaned on drop.
struct Server {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Server {
    fn start(bin: &Path, extra: &[String]) -> Result<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir = std::env::temp_dir().join(format!("reel-load-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = File::create(dir.join("server.log"))?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Server {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits for `/healthz`; fails with the server's log if it exits or never answers.
    async fn ready(&mut self, http: &reqwest::Client) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("reel exited ({status}):\n{}", self.log_tail());
            }
            if let Ok(r) = http.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("reel did not answer /healthz in 60 s:\n{}", self.log_tail())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let start = log.len().saturating_sub(4000);
        log.get(start..).unwrap_or_default().to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server process's CPU and memory, sampled every 250 ms on a thread of its own.
struct Monitor {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ProcessUsage>,
}

#[derive(Debug, Default, Serialize)]
struct ProcessUsage {
    cpu_mean_percent: f32,
    cpu_max_percent: f32,
    rss_max_bytes: u64,
    rss_last_bytes: u64,
}

impl Monitor {
    fn start(pid: u32) -> Result<Monitor> {
        let mut system = System::new()?;
        let pid = Pid::from_u32(pid);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut usage = ProcessUsage::default();
            let (mut sum, mut n) = (0.0, 0u32);
            let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
            while !flag.load(Ordering::Relaxed) {
                system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, kind);
                if let Some(p) = system.process(pid) {
                    // The first sample has no previous one to measure CPU against.
                    if usage.rss_last_bytes > 0 {
                        sum += p.cpu_usage();
                        n += 1;
                        usage.cpu_max_percent = usage.cpu_max_percent.max(p.cpu_usage());
                    }
                    usage.rss_last_bytes = p.memory();
                    usage.rss_max_bytes = usage.rss_max_bytes.max(p.memory());
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            usage.cpu_mean_percent = if n > 0 { sum / n as f32 } else { 0.0 };
            usage
        });
        Ok(Monitor { stop, thread })
    }

    fn finish(self) -> ProcessUsage {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Outcomes of one kind of request.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    transport_errors: u64,
}

impl Tally {
    fn record(&mut self, took: Duration, status: Result<u16, reqwest::Error>) {
        self.latencies.push(took);
        match status {
            Ok(s) => *self.statuses.entry(s).or_default() += 1,
            Err(_) => self.transport_errors += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.transport_errors += other.transport_errors;
    }

    /// Latency percentiles, throughput over `wall`, and the error rate.
    fn summary(&self, wall: Duration) -> Value {
        let mut ms: Vec<f64> = self
            .latencies
            .iter()
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            let i = ((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len().max(1)) - 1;
            ms.get(i).copied().unwrap_or(0.0)
        };
        let total = self.latencies.len() as u64;
        let ok: u64 = self.statuses.range(200..300).map(|(_, n)| n).sum();
        let rejected = self.statuses.get(&429).copied().unwrap_or(0);
        let errors = total - ok - rejected;
        json!({
            "requests": total,
            "ok": ok,
            "rejected_429": rejected,
            "errors": errors,
            "error_rate": if total > 0 { errors as f64 / total as f64 } else { 0.0 },
            "statuses": self.statuses,
            "transport_errors": self.transport_errors,
            "throughput_rps": total as f64 / wall.as_secs_f64().max(1e-9),
            "latency_ms": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": ms.last().copied().unwrap_or(0.0)},
        })
    }
}

/// Sends one request, reads its whole body, and says how it went.
async fn timed(req: reqwest::RequestBuilder) -> (Duration, Result<(u16, Vec<u8>), reqwest::Error>) {
    let t = Instant::now();
    let res = async {
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.bytes().await?.to_vec()))
    }
    .await;
    (t.elapsed(), res)
}

const PROMPT: &str = "a small red circle moving left on a black background";

fn small_task() -> Value {
    json!({"prompt": PROMPT, "num_scenes": 1, "steps": 1, "seed": 7, "size": 64, "seconds_per_scene": 0.5})
}

const OPS: [&str; 4] = [
    "GET /api/tasks",
    "GET /api/tasks/{id}",
    "GET /healthz",
    "POST /api/tasks",
];

async fn scenario_api(srv: &Server, args: &Args, deadline: Instant) -> Result<Value> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.users)
        .build()?;
    let (_, first) = timed(http.post(srv.url("/api/tasks")).json(&small_task())).await;
    let (status, body) = first?;
    if status != 202 {
        bail!(
            "seeding POST answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let seeded: Value = serde_json::from_slice(&body)?;
    let last_id = Arc::new(AtomicU64::new(seeded["id"].as_u64().unwrap_or(1)));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut users = Vec::new();
    for _ in 0..args.users {
        let (http, next, last_id, requests) =
            (http.clone(), next.clone(), last_id.clone(), args.requests);
        let base = srv.base.clone();
        users.push(tokio::spawn(async move {
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
                tallies[op].record(took, res.map(|(s, _)| s));
            }
            tallies
        }));
    }
    let mut by_op: [Tally; 4] = Default::default();
    for u in users {
        for (all, one) in by_op.iter_mut().zip(u.await?) {
            all.merge(one);
        }
    }
    let wall = started.elapsed();
    let mut total = Tally::default();
    let mut ops = serde_json::Map::new();
    for (name, t) in OPS.iter().zip(by_op) {
        ops.insert((*name).into(), t.summary(wall));
        total.merge(t);
    }
    Ok(
        json!({"wall_s": wall.as_secs_f64(), "users": args.users, "total": total.summary(wall), "by_op": ops}),
    )
}

async fn scenario_burst(srv: &Server, args: &Args) -> Result<Value> {
    let n = args.connections;
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
                (took, res.map(|(s, _)| s))
            })
        })
        .collect();
    let mut tally = Tally::default();
    for h in handles {
        let (took, status) = h.await?;
        tally.record(took, status);
    }
    let wall = started.elapsed();
    Ok(json!({"wall_s": wall.as_secs_f64(), "connections": n, "total": tally.summary(wall)}))
}

/// When one task was first seen with a frame and when it ended, from its submission.
#[derive(Debug, Serialize)]
struct TaskRun {
    id: u64,
    status: String,
    first_frame_s: Option<f64>,
    wall_s: f64,
}

/// Submits `k` tasks at once (distinct seeds from `seed0`) and polls them until each is final
/// or the deadline passes.
async fn run_tasks(
    http: &reqwest::Client,
    srv: &Server,
    args: &Args,
    k: usize,
    seed0: u64,
    deadline: Instant,
) -> Result<Vec<TaskRun>> {
    let started = Instant::now();
    let mut runs = Vec::with_capacity(k);
    for i in 0..k {
        let body = json!({"prompt": PROMPT, "num_scenes": args.scenes, "steps": args.steps, "seed": seed0 + i as u64});
        let r = http.post(srv.url("/api/tasks")).json(&body).send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        let id = v["id"]
            .as_u64()
            .with_context(|| format!("POST answered {status}: {v}"))?;
        runs.push(TaskRun {
            id,
            status: "queued".into(),
            first_frame_s: None,
            wall_s: 0.0,
        });
    }
    let final_states = ["completed", "failed", "cancelled"];
    while Instant::now() < deadline
        && runs
            .iter()
            .any(|r| !final_states.contains(&r.status.as_str()))
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for run in runs
            .iter_mut()
            .filter(|r| !final_states.contains(&r.status.as_str()))
        {
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

async fn scenario_generate(srv: &Server, args: &Args, deadline: Instant) -> Result<Value> {
    let http = reqwest::Client::new();
    let single = run_tasks(&http, srv, args, 1, 1_000, deadline).await?;
    let many = run_tasks(&http, srv, args, args.tasks, 2_000, deadline).await?;
    let wall = |runs: &[TaskRun]| runs.iter().map(|r| r.wall_s).fold(0.0, f64::max);
    let done = |runs: &[TaskRun]| runs.iter().filter(|r| r.status == "completed").count();
    let scenes_per_s = |runs: &[TaskRun]| (done(runs) * args.scenes) as f64 / wall(runs).max(1e-9);
    let (one, k) = (scenes_per_s(&single), scenes_per_s(&many));
    Ok(json!({
        "scenes": args.scenes,
        "steps": args.steps,
        "single": {"runs": single, "wall_s": wall(&single), "scenes_per_s": one},
        "concurrent": {"tasks": args.tasks, "runs": many, "wall_s": wall(&many), "scenes_per_s": k},
        "speedup_vs_single": if one > 0.0 { k / one } else { 0.0 },
        "all_completed": done(&single) == 1 && done(&many) == args.tasks,
    }))
}

fn print_summary(name: &str, s: &Value) {
    let l = &s["latency_ms"];
    println!(
        "{name:<22} n={:<6} ok={:<6} 429={:<5} err={:<4} ({:.2}%)  p50={:.2}ms p95={:.2}ms p99={:.2}ms max={:.2}ms  {:.0} req/s",
        s["requests"], s["ok"], s["rejected_429"], s["errors"],
        s["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
        l["p50"].as_f64().unwrap_or(0.0), l["p95"].as_f64().unwrap_or(0.0),
        l["p99"].as_f64().unwrap_or(0.0), l["max"].as_f64().unwrap_or(0.0),
        s["throughput_rps"].as_f64().unwrap_or(0.0),
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = match &args.reel_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("reel"),
    };
    let mut srv = Server::start(&bin, &args.serve_args)?;
    srv.ready(&reqwest::Client::new()).await?;
    let monitor = Monitor::start(srv.child.id())?;
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let result = match args.scenario {
        Scenario::Api => scenario_api(&srv, &args, deadline).await,
        Scenario::Burst => scenario_burst(&srv, &args).await,
        Scenario::Generate => scenario_generate(&srv, &args, deadline).await,
    };
    let server = monitor.finish();
    let result = result.with_context(|| format!("server log:\n{}", srv.log_tail()))?;
    drop(srv);

    if let Some(total) = result.get("total") {
        print_summary("total", total);
    }
    if let Some(ops) = result["by_op"].as_object() {
        for (name, s) in ops {
            print_summary(name, s);
        }
    }
    if matches!(args.scenario, Scenario::Generate) {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    println!(
        "server: cpu mean {:.0}% max {:.0}% (of one core), rss max {:.1} MiB",
        server.cpu_mean_percent,
        server.cpu_max_percent,
        server.rss_max_bytes as f64 / (1 << 20) as f64
    );
    if let Some(path) = &args.json {
        let doc = json!({"scenario": args.scenario, "result": result, "server": server});
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
