//! load: one bounded load scenario, printing p50/p95/p99/max latency, throughput, error rate,
//! CPU and memory.
//!
//! The HTTP scenarios start the reel binary themselves (`--reel-bin`; by default `reel` next
//! to this executable, so run `cargo build --release` first) on a free loopback port with a
//! fresh data dir, wait for `/healthz`, run, and stop the server:
//! - `api`: `--users` concurrent clients share `--requests` requests, cycling through every
//!   endpoint (`bench::http_load::OPS`; `POST /api/tasks` is one small scene, one step, fixed
//!   seed, so repeats are cache hits; `POST /v1/videos` a one-second 64x64 video, generated
//!   each time, as `/v1` draws its seed), back to back or, with
//!   `--think-ms MIN,MAX`, pausing like Locust users; `--background-tasks K` keeps K default
//!   3-scene tasks unfinished throughout so that generation saturates the compute meanwhile;
//! - `api-busy`: `api` while generating, so `--background-tasks K` (K > 0) is required;
//! - `burst`: `--connections` clients, each on its own connection, send one `GET /api/tasks`
//!   at the same moment;
//! - `generate`: one task of `--scenes` scenes alone, then `--tasks` such tasks together (a
//!   list runs each concurrency in turn): wall time, time to first frame (polled), and
//!   throughput against the single task;
//! - `first-frames`: for each of `--scene-list` scenes x `--tasks` concurrent tasks, the time
//!   from each task's POST to its first SSE `preview`, first `frame` and `done`, on several
//!   servers side by side (`--variant NAME=ARGS`, repeatable; by default `before` =
//!   `--scene-stagger=0 --previews=false`, reel's order before previews, `stagger` =
//!   `--previews=false`, and `after`, the default server), `--rounds` rounds with the
//!   variants' order rotating; prints a Markdown table of the medians
//!   (`bench::http_load::first_frames`);
//! - `soak`: a task every `--task-every-secs` for `--duration-secs`, with the server's RSS, CPU
//!   and two API probes sampled every `--sample-every-secs`: memory slope (MB/hour), RSS
//!   growth and p99 drift between the first and last quarters after `--warmup-secs`. The
//!   long forms are
//!   `--duration-secs 3600` (the one-hour goal) and `86400`.
//!
//! `storage` needs no server: it drives reel's sled store directly in a temporary directory
//! (`--stored` sizes, `--clients` counts, `--workloads`), see `bench::storage_load`; CPU and
//! RSS are then this process's.
//!
//! Work stops being issued after `--max-secs` (per run for `storage`). A 429 (queue full)
//! counts as "rejected", not as an error. `--json PATH` writes the result (the soak's samples
//! included). Server CPU is percent of one core.
//!
//! `cargo build --release && cargo run --release -p bench --bin load -- --scenario api --users 100 --requests 10000`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use bench::http_load::{self, ApiLoad, FirstFramesConfig, TaskShape, Variant};
use bench::monitor::{Monitor, ProcessUsage};
use bench::scenario::Scenario;
use bench::server::{find_reel, Server};
use bench::soak::{self, SoakConfig};
use bench::storage_load::{self, StorageConfig, Workload};
use clap::Parser;
use serde_json::{json, Value};

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
    /// `api`: default 3-scene tasks kept unfinished meanwhile, so generation loads the compute.
    #[arg(long, default_value_t = 0)]
    background_tasks: usize,
    /// `api`: each user's pause after an answer, uniform in MIN,MAX ms (Locust's `between`).
    #[arg(long, value_parser = http_load::parse_think_ms, default_value = "0,0")]
    think_ms: [u64; 2],
    /// `burst`: simultaneous connections.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// `generate`: concurrent tasks (comma-separated for several runs).
    #[arg(long, value_delimiter = ',', default_value = "4")]
    tasks: Vec<usize>,
    /// `generate`, `soak`: scenes per task.
    #[arg(long, default_value_t = 2)]
    scenes: usize,
    /// `generate`, `soak`: denoising steps per scene.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// `first-frames`: scenes per task, one cell each.
    #[arg(long, value_delimiter = ',', default_value = "1,3,8")]
    scene_list: Vec<usize>,
    /// `first-frames`: rounds (figures are medians over them).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// `first-frames`: a server configuration, `NAME=ARGS` (`--reel-bin=PATH` among the ARGS
    /// picks its binary), repeatable [default: before, stagger, after].
    #[arg(long = "variant")]
    variants: Vec<Variant>,
    /// `storage`: stored tasks at which the workloads run.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    stored: Vec<usize>,
    /// `storage`: concurrent clients.
    #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
    clients: Vec<usize>,
    /// `storage`: workloads.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "read,write,mixed"
    )]
    workloads: Vec<Workload>,
    /// `storage`: operations per (size, workload, clients) run.
    #[arg(long, default_value_t = 5000)]
    ops: usize,
    /// `soak`: how long.
    #[arg(long, default_value_t = 600.0)]
    duration_secs: f64,
    /// `soak`: seconds between posted tasks.
    #[arg(long, default_value_t = 5.0)]
    task_every_secs: f64,
    /// `soak`: seconds between samples.
    #[arg(long, default_value_t = 1.0)]
    sample_every_secs: f64,
    /// `soak`: seconds of start-up left out of the analysis (the samples are kept).
    #[arg(long, default_value_t = 30.0)]
    warmup_secs: f64,
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

/// Runs an HTTP scenario against a fresh server; returns its result and the server's usage.
async fn over_http(args: &Args) -> Result<(Value, ProcessUsage)> {
    let bin = match &args.reel_bin {
        Some(p) => p.clone(),
        None => find_reel()?,
    };
    let srv = Server::start_ready(&bin, &args.serve_args).await?;
    let monitor = Monitor::start(srv.pid(), Duration::from_millis(250))?;
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let shape = TaskShape {
        scenes: args.scenes,
        steps: args.steps,
    };
    let result = match args.scenario {
        Scenario::Api | Scenario::ApiBusy => {
            let load = ApiLoad {
                users: args.users,
                requests: args.requests,
                background_tasks: args.background_tasks,
                think_ms: args.think_ms,
                contract_only: false,
            };
            let r = http_load::api(&srv, load, deadline).await;
            r.map(|r| {
                println!("{}", r.total.line("total"));
                for (name, s) in &r.by_op {
                    println!("{}", s.line(name));
                }
                json!(r)
            })
        }
        Scenario::Burst => http_load::burst(&srv, args.connections).await.map(|r| {
            println!("{}", r.total.line("burst"));
            json!(r)
        }),
        Scenario::Generate => http_load::generate(&srv, shape, &args.tasks, 1_000, deadline)
            .await
            .map(|r| json!(r)),
        Scenario::Soak => {
            let cfg = SoakConfig {
                duration_s: args.duration_secs.min(args.max_secs as f64),
                task_every_s: args.task_every_secs,
                sample_every_s: args.sample_every_secs,
                warmup_s: args.warmup_secs,
                scenes: args.scenes,
                steps: args.steps,
            };
            soak::run(&srv, cfg, |s| {
                if s.starts_minute(&cfg) {
                    eprintln!("{}", s.progress_line());
                }
            })
            .await
            .map(|r| {
                println!("{}", r.probes.line("probes"));
                println!("{}", r.posts.line("posts"));
                println!(
                    "{} samples, {} tasks completed; {}",
                    r.samples.len(),
                    r.tasks_completed,
                    r.stats.line()
                );
                json!(r)
            })
        }
        Scenario::Storage | Scenario::FirstFrames => {
            unreachable!("runs without this one server")
        }
    };
    let usage = monitor.finish();
    let result = result.with_context(|| format!("server log:\n{}", srv.log_tail()))?;
    Ok((result, usage))
}

fn storage(args: &Args) -> Result<(Value, ProcessUsage)> {
    let cfg = StorageConfig {
        sizes: args.stored.clone(),
        clients: args.clients.clone(),
        workloads: args.workloads.clone(),
        ops: args.ops,
        max_secs: args.max_secs as f64,
    };
    let dir = tempfile::tempdir()?;
    let monitor = Monitor::start(std::process::id(), Duration::from_millis(250))?;
    let result = storage_load::run(dir.path(), &cfg, |r| {
        let name = format!("{}k {:?} x{}", r.stored / 1000, r.workload, r.clients);
        println!("{}  {}", r.summary.line(&name), r.process.line());
    })?;
    for p in &result.preload {
        println!(
            "preload to {} tasks: {:.1} s ({:.0} tasks/s)",
            p.stored, p.secs, p.tasks_per_s
        );
    }
    Ok((json!(result), monitor.finish()))
}

/// The `first-frames` scenario: one server per variant, side by side; the usage reported is
/// the last variant's server's.
async fn first_frames(args: &Args) -> Result<(Value, ProcessUsage)> {
    let default_bin = match &args.reel_bin {
        Some(p) => p.clone(),
        None => find_reel()?,
    };
    let variants = if args.variants.is_empty() {
        http_load::default_variants()
    } else {
        args.variants.clone()
    };
    let mut servers = Vec::new();
    for v in &variants {
        let bin = v.bin.clone().unwrap_or_else(|| default_bin.clone());
        let serve_args: Vec<String> = args.serve_args.iter().chain(&v.args).cloned().collect();
        servers.push(Server::start_ready(&bin, &serve_args).await?);
    }
    let last = servers.last().context("no variant")?;
    let monitor = Monitor::start(last.pid(), Duration::from_millis(250))?;
    let cfg = FirstFramesConfig {
        scenes: args.scene_list.clone(),
        tasks: args.tasks.clone(),
        steps: args.steps,
        rounds: args.rounds,
    };
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let result = http_load::first_frames(&servers, &variants, &cfg, deadline, |c| {
        let med = |f: &dyn Fn(&http_load::TaskTimes) -> Option<f64>| {
            let mut v: Vec<f64> = c.runs.iter().filter_map(f).collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).map_or("-".into(), |x| format!("{x:.2}"))
        };
        eprintln!(
            "round {} {} scenes x{} {}: preview {} frame {} done {} s",
            c.round,
            c.scenes,
            c.tasks,
            c.variant,
            med(&|r| r.first_preview_s),
            med(&|r| r.first_frame_s),
            med(&|r| Some(r.done_s)),
        );
    })
    .await?;
    println!("{}", http_load::table(&result));
    Ok((json!(result), monitor.finish()))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.scenario != Scenario::ApiBusy || args.background_tasks > 0,
        "api-busy keeps tasks generating: give --background-tasks K (K > 0)"
    );
    let (result, usage) = match args.scenario {
        Scenario::Storage => storage(&args)?,
        Scenario::FirstFrames => first_frames(&args).await?,
        _ => over_http(&args).await?,
    };
    if matches!(args.scenario, Scenario::Generate) {
        println!("{}", serde_json::to_string_pretty(&result)?);
    }
    let whose = match args.scenario {
        Scenario::Storage => "this process",
        _ => "server",
    };
    println!("{whose}: {}", usage.line());
    if let Some(path) = &args.json {
        let doc = json!({"scenario": args.scenario, "result": result, "server": usage});
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
