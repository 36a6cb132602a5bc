//! What a report measures ([`Plan`]), running it ([`measure`]), and what it found
//! ([`Results`], saved as JSON so that a report can be rewritten without measuring again).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::machine::{now_utc, Machine};
use crate::http_load::{self, ApiLoad, ApiResult, BurstResult, GenerateResult, TaskShape};
use crate::monitor::{Monitor, ProcessUsage};
use crate::server::Server;
use crate::soak::{self, SoakConfig, SoakResult};
use crate::storage_load::{self, StorageConfig, StorageResult};

/// A scenario's result with the server's CPU and memory meanwhile.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Measured<T> {
    /// The scenario's result.
    pub result: T,
    /// The server's CPU and memory while it ran (for `storage`, this process's: the store and
    /// its clients).
    pub server: ProcessUsage,
}

/// Everything one report run measured; absent parts were not asked for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    /// When the run started, RFC 3339 in UTC to the second.
    pub date: String,
    /// How the run was started (empty in runs saved before it was recorded), so that a report
    /// rewritten from the saved results still names the command that measured them.
    #[serde(default)]
    pub command: String,
    /// The machine it ran on.
    pub machine: Machine,
    /// Seconds the whole run took.
    pub wall_s: f64,
    /// The `api` scenario, one per `(users, requests)` of [`Plan::api`], in that order.
    pub api: Vec<Measured<ApiResult>>,
    /// The API while default tasks keep the compute busy.
    pub api_busy: Option<Measured<ApiResult>>,
    /// The `burst` scenario.
    pub burst: Option<Measured<BurstResult>>,
    /// The `generate` scenario, one per entry of [`Plan::generate_scenes`], in that order.
    pub generate: Vec<Measured<GenerateResult>>,
    /// The `storage` scenario.
    pub storage: Option<Measured<StorageResult>>,
    /// The `soak` scenario.
    pub soak: Option<Measured<SoakResult>>,
    /// Parts taken from other runs on the same machine (see [`Results::keep_unmeasured`]),
    /// each as "part (date)".
    #[serde(default)]
    pub kept: Vec<String>,
}

impl Results {
    /// A run on `machine` at `date` that has measured nothing yet.
    pub fn empty(date: String, machine: Machine) -> Results {
        Results {
            date,
            command: String::new(),
            machine,
            wall_s: 0.0,
            api: Vec::new(),
            api_busy: None,
            burst: None,
            generate: Vec::new(),
            storage: None,
            soak: None,
            kept: Vec::new(),
        }
    }

    /// Reads results saved as JSON at `path`.
    pub fn load(path: &Path) -> Result<Results> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Fills the parts this run did not measure from `earlier`, a run on the same machine (a
    /// one-hour soak, say, run apart from the quicker scenarios), noting each in `kept`.
    pub fn keep_unmeasured(&mut self, earlier: Results) -> Result<()> {
        let (now, then) = (self.machine.describe(), earlier.machine.describe());
        if now != then {
            bail!("the earlier run was on another machine: {then}");
        }
        let date = earlier.date;
        let mut kept = |part: &str, taken: bool| {
            if taken {
                self.kept.push(format!("{part} ({date})"));
            }
        };
        fn take<T>(mine: &mut Option<T>, theirs: Option<T>) -> bool {
            let taken = mine.is_none() && theirs.is_some();
            if taken {
                *mine = theirs;
            }
            taken
        }
        fn take_all<T>(mine: &mut Vec<T>, theirs: Vec<T>) -> bool {
            let taken = mine.is_empty() && !theirs.is_empty();
            if taken {
                *mine = theirs;
            }
            taken
        }
        kept("api", take_all(&mut self.api, earlier.api));
        kept("api-busy", take(&mut self.api_busy, earlier.api_busy));
        kept("burst", take(&mut self.burst, earlier.burst));
        kept("generate", take_all(&mut self.generate, earlier.generate));
        kept("storage", take(&mut self.storage, earlier.storage));
        kept("soak", take(&mut self.soak, earlier.soak));
        Ok(())
    }

    /// Writes the results to `path` as pretty-printed JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// Which scenarios to run, at which sizes. Empty lists and `None` skip a scenario.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The reel binary to serve with; `None` finds the one of this build
    /// ([`find_reel`](crate::server::find_reel)) when a scenario needs a server.
    pub reel_bin: Option<PathBuf>,
    /// Measure the peer instead of reel: its `bench/peer/serve.sh`, whose worker plans with
    /// the reel binary's `plan`.
    pub peer: Option<PathBuf>,
    /// The `api` runs cycle through [`CONTRACT_OPS`](crate::http_load::CONTRACT_OPS) only
    /// (what the peer serves too); `api_busy` says so itself.
    pub contract_only: bool,
    /// `(users, requests)` pairs.
    pub api: Vec<(usize, usize)>,
    /// The API while generation runs.
    pub api_busy: Option<ApiLoad>,
    /// Connections of the `burst` scenario.
    pub burst: Option<usize>,
    /// Scenes per task of each generate run, and the concurrencies of each.
    pub generate_scenes: Vec<usize>,
    /// Concurrencies of each generate run: `k` tasks together, after one alone.
    pub generate_tasks: Vec<usize>,
    /// Denoising steps per scene of the generate tasks.
    pub generate_steps: usize,
    /// The `storage` scenario's sizes and bounds.
    pub storage: Option<StorageConfig>,
    /// The `soak` scenario's duration and pace.
    pub soak: Option<SoakConfig>,
    /// Bound on each HTTP scenario.
    pub max_secs: u64,
}

impl Plan {
    fn needs_server(&self) -> bool {
        !self.api.is_empty()
            || self.api_busy.is_some()
            || self.burst.is_some()
            || !self.generate_scenes.is_empty()
            || self.soak.is_some()
    }
}

/// Runs `run` against a fresh server (reel of `bin`, or the peer of the script `peer`), with
/// its CPU and RSS monitored.
async fn with_server<T>(
    bin: &Path,
    peer: Option<&Path>,
    run: impl AsyncFnOnce(&Server) -> Result<T>,
) -> Result<Measured<T>> {
    let srv = match peer {
        Some(script) => Server::start_peer_ready(script, bin).await?,
        None => Server::start_ready(bin, &[]).await?,
    };
    let monitor = Monitor::start(srv.pid(), Duration::from_millis(250))?;
    let result = run(&srv).await;
    let server = monitor.finish();
    let result = result.with_context(|| format!("server log:\n{}", srv.log_tail()))?;
    Ok(Measured { result, server })
}

/// Runs the plan, printing progress to stderr.
pub async fn measure(plan: &Plan) -> Result<Results> {
    let started = Instant::now();
    let bin = match (&plan.reel_bin, plan.needs_server()) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(crate::server::find_reel()?),
        (None, false) => None,
    };
    let deadline = || Instant::now() + Duration::from_secs(plan.max_secs);
    let peer = plan.peer.as_deref();
    let mut out = Results::empty(now_utc(), Machine::detect()?);
    if let Some(bin) = &bin {
        for &(users, requests) in &plan.api {
            let load = ApiLoad {
                contract_only: plan.contract_only,
                ..ApiLoad::closed(users, requests)
            };
            let m = with_server(bin, peer, async |srv| {
                http_load::api(srv, load, deadline()).await
            })
            .await?;
            eprintln!("{}", m.result.total.line(&format!("api x{users}")));
            out.api.push(m);
        }
        if let Some(load) = plan.api_busy {
            let m = with_server(bin, peer, async |srv| {
                http_load::api(srv, load, deadline()).await
            })
            .await?;
            eprintln!("{}", m.result.total.line("api while generating"));
            out.api_busy = Some(m);
        }
        if let Some(n) = plan.burst {
            let m = with_server(bin, peer, async |srv| http_load::burst(srv, n).await).await?;
            eprintln!("{}", m.result.total.line(&format!("burst x{n}")));
            out.burst = Some(m);
        }
        for (i, &scenes) in plan.generate_scenes.iter().enumerate() {
            let shape = TaskShape {
                scenes,
                steps: plan.generate_steps,
            };
            let seed0 = 10_000 * (i as u64 + 1);
            let m = with_server(bin, peer, async |srv| {
                http_load::generate(srv, shape, &plan.generate_tasks, seed0, deadline()).await
            })
            .await?;
            eprintln!(
                "generate {scenes} scenes: single {:.2} s, concurrent makespans {:?}",
                m.result.single.wall_s,
                m.result
                    .concurrent
                    .iter()
                    .map(|g| (g.tasks, (g.wall_s * 100.0).round() / 100.0))
                    .collect::<Vec<_>>()
            );
            out.generate.push(m);
        }
    }
    if let Some(cfg) = &plan.storage {
        let dir = tempfile::tempdir()?;
        let monitor = Monitor::start(std::process::id(), Duration::from_millis(250))?;
        let result = storage_load::run(dir.path(), cfg, |r| {
            let name = format!("storage {} {:?} x{}", r.stored, r.workload, r.clients);
            eprintln!("{}", r.summary.line(&name));
        })?;
        out.storage = Some(Measured {
            result,
            server: monitor.finish(),
        });
    }
    if let (Some(cfg), Some(bin)) = (plan.soak, &bin) {
        let m = with_server(bin, peer, async |srv| {
            soak::run(srv, cfg, |s| {
                if s.starts_minute(&cfg) {
                    eprintln!("soak {}", s.progress_line());
                }
            })
            .await
        })
        .await?;
        eprintln!("soak: {}", m.result.stats.line());
        out.soak = Some(m);
    }
    out.wall_s = started.elapsed().as_secs_f64();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty(date: &str, machine: Machine) -> Results {
        Results::empty(date.into(), machine)
    }

    fn burst(connections: usize) -> Option<Measured<BurstResult>> {
        Some(Measured {
            result: BurstResult {
                connections,
                wall_s: 1.0,
                total: Default::default(),
            },
            server: ProcessUsage::default(),
        })
    }

    #[test]
    fn keeps_only_what_this_run_left_out_and_says_so() {
        let machine = Machine::detect().unwrap();
        let mut earlier = empty("then", machine.clone());
        earlier.burst = burst(7);
        let mut now = empty("now", machine.clone());
        now.keep_unmeasured(earlier.clone()).unwrap();
        assert_eq!(now.burst.as_ref().unwrap().result.connections, 7);
        assert_eq!(now.kept, ["burst (then)"]);

        let mut measured = empty("now", machine);
        measured.burst = burst(9);
        measured.keep_unmeasured(earlier.clone()).unwrap();
        assert_eq!(measured.burst.unwrap().result.connections, 9);
        assert!(measured.kept.is_empty());

        let mut elsewhere = empty("now", Machine::default());
        assert!(elsewhere.keep_unmeasured(earlier).is_err());
    }
}
