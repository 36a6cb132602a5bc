//! peer_report: reel side by side with the stack it replaces (`bench/peer/`: FastAPI + Celery +
//! Redis + SQLite + the model in PyTorch). Every scenario runs against a fresh reel and then a
//! fresh peer, scenario after scenario in one run, with the same requests and seeds; then both
//! systems' videos of one prompt suite are judged by reel's evaluator. Writes a Markdown table
//! of both with the ratios, and the measured results as JSON.
//!
//! `cargo build --release && cargo run --release -p bench --bin peer_report -- --out docs/PEER_REPORT.md`
//!
//! The peer's packages must be installed first (`source bench/peer/deps.sh`, or a run of
//! `scripts/peer_smoke.sh`): a peer start waits at most 180 s for its worker.
//!
//! `--input` rewrites the report from saved results without measuring.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use bench::http_load::ApiLoad;
use bench::report::machine::{now_utc, Machine};
use bench::report::peer::{self, absorb, Comparison};
use bench::report::results::{measure, Plan, Results};
use bench::scenario::Scenario;
use bench::server::{find_reel, Server};
use bench::soak::SoakConfig;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The Markdown report to write.
    #[arg(long, default_value = "docs/PEER_REPORT.md")]
    out: PathBuf,
    /// Where the measured results are saved [default: `peer/results.json` next to the report].
    #[arg(long)]
    results_json: Option<PathBuf>,
    /// Read the results of an earlier run instead of measuring.
    #[arg(long)]
    input: Option<PathBuf>,
    /// The peer's start script.
    #[arg(long, default_value = "bench/peer/serve.sh")]
    peer_script: PathBuf,
    /// The reel binary [default: `reel` next to this executable]; the peer plans with it too.
    #[arg(long)]
    reel_bin: Option<PathBuf>,
    /// Scenarios to run (`storage` is reel's store alone and has no peer: not offered).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "api,api-busy,burst,generate,soak"
    )]
    scenarios: Vec<Scenario>,
    /// `api`: concurrent users of each run, back to back.
    #[arg(long, value_delimiter = ',', default_value = "10,50")]
    api_users: Vec<usize>,
    /// `api`: requests of each run (paired with `--api-users`; the last repeats).
    #[arg(long, value_delimiter = ',', default_value = "1000,3000")]
    api_requests: Vec<usize>,
    /// `api-busy`: users, requests, 3-scene tasks kept unfinished, and pauses (ms, MIN,MAX).
    #[arg(long, default_value_t = 50)]
    busy_users: usize,
    #[arg(long, default_value_t = 1500)]
    busy_requests: usize,
    #[arg(long, default_value_t = 2)]
    busy_tasks: usize,
    #[arg(long, value_parser = bench::http_load::parse_think_ms, default_value = "1000,2000")]
    busy_think_ms: [u64; 2],
    /// `burst`: simultaneous connections.
    #[arg(long, default_value_t = 500)]
    burst: usize,
    /// `generate`: scenes per task, the concurrent tasks after the single one, steps.
    #[arg(long, default_value_t = 3)]
    generate_scenes: usize,
    #[arg(long, value_delimiter = ',', default_value = "10")]
    generate_tasks: Vec<usize>,
    #[arg(long, default_value_t = 20)]
    generate_steps: usize,
    /// `soak`: length, task interval and warm-up left out, in seconds.
    #[arg(long, default_value_t = 240.0)]
    soak_secs: f64,
    #[arg(long, default_value_t = 5.0)]
    soak_task_every: f64,
    #[arg(long, default_value_t = 30.0)]
    soak_warmup: f64,
    /// Scenes of the adherence suite (`eval::prompt_suite`; 0 skips it).
    #[arg(long, default_value_t = 24)]
    adherence_scenes: usize,
    /// Seed of the adherence suite and its tasks.
    #[arg(long, default_value_t = 2026)]
    adherence_seed: u64,
    /// Bound on each scenario, in seconds.
    #[arg(long, default_value_t = 600)]
    max_secs: u64,
}

impl Args {
    /// The plan of one scenario against reel (`peer: None`) or the peer.
    fn plan(&self, s: Scenario, reel_bin: &std::path::Path, peer: Option<PathBuf>) -> Plan {
        let requests = |i: usize| {
            let last = self.api_requests.last().copied().unwrap_or(1000);
            self.api_requests.get(i).copied().unwrap_or(last)
        };
        Plan {
            reel_bin: Some(reel_bin.to_owned()),
            peer,
            contract_only: true,
            api: if s == Scenario::Api {
                self.api_users
                    .iter()
                    .enumerate()
                    .map(|(i, &u)| (u, requests(i)))
                    .collect()
            } else {
                Vec::new()
            },
            api_busy: (s == Scenario::ApiBusy).then_some(ApiLoad {
                users: self.busy_users,
                requests: self.busy_requests,
                background_tasks: self.busy_tasks,
                think_ms: self.busy_think_ms,
                contract_only: true,
            }),
            burst: (s == Scenario::Burst).then_some(self.burst),
            generate_scenes: if s == Scenario::Generate {
                vec![self.generate_scenes]
            } else {
                Vec::new()
            },
            generate_tasks: self.generate_tasks.clone(),
            generate_steps: self.generate_steps,
            storage: None,
            soak: (s == Scenario::Soak).then_some(SoakConfig {
                duration_s: self.soak_secs,
                task_every_s: self.soak_task_every,
                sample_every_s: 1.0,
                warmup_s: self.soak_warmup,
                scenes: 1,
                steps: self.generate_steps,
            }),
            max_secs: self.max_secs,
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let command = std::iter::once("peer_report".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let json_path = args.results_json.clone().unwrap_or_else(|| {
        args.out
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
            .join("peer/results.json")
    });
    let cmp = match &args.input {
        Some(path) => Comparison::load(path)?,
        None => {
            let cmp = run(&args, command.clone()).await?;
            if let Some(dir) = json_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            cmp.save(&json_path)?;
            eprintln!("results saved to {}", json_path.display());
            cmp
        }
    };
    let md = document(&cmp, &json_path);
    std::fs::write(&args.out, &md)?;
    eprintln!("report written to {}", args.out.display());
    println!("{}", peer::markdown(&cmp));
    Ok(())
}

/// Every scenario against reel, then the peer, one after the other; then the adherence suite.
async fn run(args: &Args, command: String) -> Result<Comparison> {
    let reel_bin = match &args.reel_bin {
        Some(p) => p.clone(),
        None => find_reel()?,
    };
    let peer_script = std::fs::canonicalize(&args.peer_script)?;
    let machine = Machine::detect()?;
    let date = now_utc();
    let mut reel = Results::empty(date.clone(), machine.clone());
    let mut peer_res = Results::empty(date, machine);
    reel.command = command.clone();
    peer_res.command = command.clone();
    for &s in &args.scenarios {
        if s == Scenario::Storage || s == Scenario::FirstFrames {
            eprintln!("{s:?} has no peer counterpart: skipped");
            continue;
        }
        eprintln!("== {s:?}: reel");
        absorb(&mut reel, measure(&args.plan(s, &reel_bin, None)).await?);
        eprintln!("== {s:?}: peer");
        let plan = args.plan(s, &reel_bin, Some(peer_script.clone()));
        absorb(&mut peer_res, measure(&plan).await?);
    }
    let (mut reel_adherence, mut peer_adherence) = (None, None);
    if args.adherence_scenes > 0 {
        let suite = eval::prompt_suite(args.adherence_scenes, args.adherence_seed);
        let deadline = || Instant::now() + Duration::from_secs(args.max_secs);
        eprintln!("== adherence: reel");
        let srv = Server::start_ready(&reel_bin, &[]).await?;
        reel_adherence =
            Some(peer::adherence(&srv, &suite, args.adherence_seed, deadline()).await?);
        drop(srv);
        eprintln!("== adherence: peer");
        let srv = Server::start_peer_ready(&peer_script, &reel_bin).await?;
        peer_adherence =
            Some(peer::adherence(&srv, &suite, args.adherence_seed, deadline()).await?);
    }
    Ok(Comparison {
        command,
        reel,
        peer: peer_res,
        reel_adherence,
        peer_adherence,
    })
}

/// The whole report: how it was measured, the table, and what the peer is.
fn document(cmp: &Comparison, json_path: &std::path::Path) -> String {
    let r = &cmp.reel;
    format!(
        "# reel side by side with its peer (FastAPI + Celery + Redis + PyTorch)\n\n\
         Measured {date} on {machine}; the scenarios took {wall:.0} s (the adherence suite \
         apart). Measured by\n\n    {command}\n\n\
         (after `cargo build --release` and `source bench/peer/deps.sh`, from the repository root) and rewritten from its saved \
         results by\n\n    peer_report --out docs/PEER_REPORT.md --input {json}\n\n\
         Each scenario runs against a fresh `reel serve` and then a fresh peer \
         (`bench/peer/serve.sh`: Redis, one Celery worker, uvicorn with FastAPI; see \
         `bench/peer/README.md`), with the same requests, prompts and seeds. The `api` users cycle \
         through the routes both serve: {ops}. CPU is the mean over a scenario as a share of the \
         whole machine, and RSS the largest, of the server's whole process tree (the peer's: \
         its script, Redis, the Celery master and its worker, uvicorn). The ratio says how many \
         times better reel is (the peer's figure over reel's for lower-is-better figures); \
         a row where the peer is ahead is in bold. Latencies are the medians (p50) and 99th \
         percentiles of every request of a run; task times are single runs, or the median task \
         of a group.\n\n{table}",
        date = r.date,
        machine = r.machine.describe(),
        wall = r.wall_s + cmp.peer.wall_s,
        command = cmp.command,
        json = json_path.display(),
        ops = peer::contract_ops(),
        table = peer::markdown(cmp),
    )
}
