//! report: runs a bounded set of load scenarios (or reads the JSON of an earlier run), writes
//! a Markdown report with SVG plots and the original targets judged, and gates the run
//! against a stored baseline.
//!
//! `cargo build --release && cargo run --release -p bench --bin report -- --out docs/BENCH_REPORT.md`
//!
//! The measured results are saved as JSON (`--results-json`, by default `results.json` next
//! to the plots) and `--input` rewrites a report from such a file without measuring;
//! `--keep` fills the scenarios a run leaves out from such a file (the report says so).
//! `--baseline bench/baseline.json --max-regression 0.25` exits non-zero when a figure is
//! worse than the baseline's beyond the margin (see `bench::report::gate`);
//! `--write-baseline` stores this run's figures as the new baseline instead.

use std::path::PathBuf;

use anyhow::{bail, Result};
use bench::http_load::ApiLoad;
use bench::report::figures::figures;
use bench::report::gate::{self, Baseline};
use bench::report::markdown;
use bench::report::results::{measure, Plan, Results};
use bench::scenario::Scenario;
use bench::soak::SoakConfig;
use bench::storage_load::{StorageConfig, Workload};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The Markdown report to write.
    #[arg(long, default_value = "docs/BENCH_REPORT.md")]
    out: PathBuf,
    /// Where the SVG plots go [default: `bench/` next to the report].
    #[arg(long)]
    plots_dir: Option<PathBuf>,
    /// Where the measured results are saved [default: `results.json` among the plots].
    #[arg(long)]
    results_json: Option<PathBuf>,
    /// Take the scenarios this run leaves out from the results of an earlier run on this
    /// machine (e.g. a one-hour soak run on its own with `--scenarios soak`).
    #[arg(long, conflicts_with = "input")]
    keep: Option<PathBuf>,
    /// Read the results of an earlier run instead of measuring.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Scenarios to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "api,api-busy,burst,generate,storage,soak"
    )]
    scenarios: Vec<Scenario>,
    /// `api`: concurrent users of each run.
    #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
    api_users: Vec<usize>,
    /// `api`: requests of each run (paired with `--api-users`; the last repeats).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    api_requests: Vec<usize>,
    /// `api-busy`: users, requests, default 3-scene tasks kept unfinished meanwhile, and each
    /// user's pause between requests in ms (uniform in MIN,MAX, like Locust's `between`;
    /// `0,0` sends back to back).
    #[arg(long, default_value_t = 100)]
    busy_users: usize,
    #[arg(long, default_value_t = 3000)]
    busy_requests: usize,
    #[arg(long, default_value_t = 4)]
    busy_tasks: usize,
    #[arg(long, value_parser = bench::http_load::parse_think_ms, default_value = "1000,2000")]
    busy_think_ms: [u64; 2],
    /// `burst`: simultaneous connections.
    #[arg(long, default_value_t = 1000)]
    burst: usize,
    /// `generate`: scenes per task of each run.
    #[arg(long, value_delimiter = ',', default_value = "1,3,5")]
    generate_scenes: Vec<usize>,
    /// `generate`: concurrent tasks after the single one.
    #[arg(long, value_delimiter = ',', default_value = "3,5,10")]
    generate_tasks: Vec<usize>,
    #[arg(long, default_value_t = 20)]
    generate_steps: usize,
    /// `storage`: stored tasks, clients, operations and seconds per run.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    storage_sizes: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
    storage_clients: Vec<usize>,
    #[arg(long, default_value_t = 20_000)]
    storage_ops: usize,
    #[arg(long, default_value_t = 3.0)]
    storage_secs: f64,
    /// `soak`: length (3600 for the one-hour goal), task interval, sample interval.
    #[arg(long, default_value_t = 600.0)]
    soak_secs: f64,
    #[arg(long, default_value_t = 5.0)]
    soak_task_every: f64,
    #[arg(long, default_value_t = 1.0)]
    soak_sample_every: f64,
    /// `soak`: seconds of start-up left out of the analysis.
    #[arg(long, default_value_t = 30.0)]
    soak_warmup: f64,
    #[arg(long, default_value_t = 1)]
    soak_scenes: usize,
    #[arg(long, default_value_t = 20)]
    soak_steps: usize,
    /// Bound on each HTTP scenario, in seconds.
    #[arg(long, default_value_t = 300)]
    max_secs: u64,
    /// The reel binary [default: `reel` next to this executable].
    #[arg(long)]
    reel_bin: Option<PathBuf>,
    /// A baseline to gate against (or, with `--write-baseline`, to write).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Largest tolerated regression, as a fraction of the baseline figure.
    #[arg(long, default_value_t = 0.25)]
    max_regression: f64,
    /// Store this run's figures as the baseline (`--baseline`, default bench/baseline.json).
    #[arg(long)]
    write_baseline: bool,
}

impl Args {
    fn plan(&self) -> Plan {
        let on = |s| self.scenarios.contains(&s);
        let requests = |i: usize| {
            let last = self.api_requests.last().copied().unwrap_or(1000);
            self.api_requests.get(i).copied().unwrap_or(last)
        };
        Plan {
            reel_bin: self.reel_bin.clone(),
            peer: None,
            contract_only: false,
            api: if on(Scenario::Api) {
                self.api_users
                    .iter()
                    .enumerate()
                    .map(|(i, &u)| (u, requests(i)))
                    .collect()
            } else {
                Vec::new()
            },
            api_busy: on(Scenario::ApiBusy).then_some(ApiLoad {
                users: self.busy_users,
                requests: self.busy_requests,
                background_tasks: self.busy_tasks,
                think_ms: self.busy_think_ms,
                contract_only: false,
            }),
            burst: on(Scenario::Burst).then_some(self.burst),
            generate_scenes: if on(Scenario::Generate) {
                self.generate_scenes.clone()
            } else {
                Vec::new()
            },
            generate_tasks: self.generate_tasks.clone(),
            generate_steps: self.generate_steps,
            storage: on(Scenario::Storage).then(|| StorageConfig {
                sizes: self.storage_sizes.clone(),
                clients: self.storage_clients.clone(),
                workloads: vec![Workload::Read, Workload::Write, Workload::Mixed],
                ops: self.storage_ops,
                max_secs: self.storage_secs,
            }),
            soak: on(Scenario::Soak).then_some(SoakConfig {
                duration_s: self.soak_secs,
                task_every_s: self.soak_task_every,
                sample_every_s: self.soak_sample_every,
                warmup_s: self.soak_warmup,
                scenes: self.soak_scenes,
                steps: self.soak_steps,
            }),
            max_secs: self.max_secs,
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let md_dir = args
        .out
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let plots_dir = args
        .plots_dir
        .clone()
        .unwrap_or_else(|| md_dir.join("bench"));
    let command = std::iter::once("report".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let results = match &args.input {
        Some(path) => Results::load(path)?,
        None => {
            let mut r = measure(&args.plan()).await?;
            r.command = command.clone();
            if let Some(path) = &args.keep {
                r.keep_unmeasured(Results::load(path)?)?;
            }
            let path = args
                .results_json
                .clone()
                .unwrap_or_else(|| plots_dir.join("results.json"));
            std::fs::create_dir_all(&plots_dir)?;
            r.save(&path)?;
            eprintln!("results saved to {}", path.display());
            r
        }
    };
    let figs = figures(&results);
    let machine = results.machine.describe();
    let verdict = match (&args.baseline, args.write_baseline) {
        (path, true) => {
            let path = path
                .clone()
                .unwrap_or_else(|| PathBuf::from("bench/baseline.json"));
            Baseline::of(&results.date, &machine, &figs).save(&path)?;
            eprintln!("baseline written to {}", path.display());
            None
        }
        (Some(path), false) => Some(gate::check(
            &figs,
            &Baseline::load(path)?,
            args.max_regression,
        )),
        (None, false) => None,
    };
    markdown::write(&results, &args.out, &plots_dir, &command, verdict.as_ref())?;
    eprintln!("report written to {}", args.out.display());
    for f in &figs {
        println!("{:<48} {:>12.3} {}", f.key, f.value, f.unit);
    }
    if let Some(v) = verdict {
        let bad: Vec<String> = v
            .regressions()
            .map(|c| {
                format!(
                    "{} ({}): {:.3} -> {:.3} {}",
                    c.label, c.key, c.baseline, c.now, c.unit
                )
            })
            .collect();
        if !bad.is_empty() {
            bail!(
                "{} figure(s) regressed beyond {:.0}%:\n{}",
                bad.len(),
                args.max_regression * 100.0,
                bad.join("\n")
            );
        }
        println!(
            "regression gate passed: {} figures within {:.0}% of the baseline of {}",
            v.compared.len(),
            args.max_regression * 100.0,
            v.baseline_date
        );
    }
    Ok(())
}
