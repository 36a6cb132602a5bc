//! CPU and resident memory of one process and its descendants (the reel server; the peer's
//! supervisor with its Redis, Celery and uvicorn processes; this process for the storage
//! scenario), and the whole machine's CPU beside it, read through sysinfo: a [`ProcessProbe`]
//! for samples taken on demand (the soak) and a [`Monitor`] that samples on a thread of its
//! own while a scenario runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::{Deserialize, Serialize};
use sysinfo::{Pid, Process, ProcessRefreshKind, ProcessesToUpdate, System};

/// Reads one process's CPU (percent of one core, since the previous read) and RSS, its
/// descendants' added (a process without children, like reel, reads as itself), and the
/// whole machine's CPU over the same span.
pub struct ProcessProbe {
    system: System,
    pid: Pid,
    primed: bool,
}

impl ProcessProbe {
    /// A probe of the process `pid`; its first [`sample`](ProcessProbe::sample) has no CPU
    /// figures yet. Fails only if sysinfo cannot read the system (a `pid` that does not
    /// exist shows as `None` samples).
    pub fn new(pid: u32) -> Result<ProcessProbe> {
        Ok(ProcessProbe {
            system: System::new()?,
            pid: Pid::from_u32(pid),
            primed: false,
        })
    }

    /// The process and its descendants now; `None` once the process is gone. CPU time of
    /// descendants that exited between reads is not counted.
    pub fn sample(&mut self) -> Option<Reading> {
        let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
        self.system
            .refresh_processes_specifics(ProcessesToUpdate::All, true, kind);
        self.system.refresh_cpu_usage();
        self.system.process(self.pid)?;
        let tree: Vec<&Process> = self
            .system
            .processes()
            .values()
            .filter(|p| p.thread_kind().is_none() && self.descends(p))
            .collect();
        let reading = Reading {
            cpu_percent: self
                .primed
                .then(|| tree.iter().map(|p| p.cpu_usage()).sum()),
            machine_cpu_percent: self.primed.then(|| self.system.global_cpu_usage()),
            rss_bytes: tree.iter().map(|p| p.memory()).sum(),
            cpu_time_ms: tree.iter().map(|p| p.accumulated_cpu_time()).sum(),
        };
        self.primed = true;
        Some(reading)
    }
}

impl ProcessProbe {
    /// Whether `p` is the probed process or one of its descendants.
    fn descends(&self, p: &Process) -> bool {
        let mut at = Some(p.pid());
        // Bounded: a parent chain is short, and a cycle (pid reuse) must not hang the probe.
        for _ in 0..64 {
            match at {
                Some(pid) if pid == self.pid => return true,
                Some(pid) => at = self.system.process(pid).and_then(Process::parent),
                None => return false,
            }
        }
        false
    }
}

/// One read of a [`ProcessProbe`].
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    /// Percent of one core since the previous read; `None` on the first read, which has
    /// nothing to measure against.
    pub cpu_percent: Option<f32>,
    /// Percent of the whole machine busy since the previous read, every process counted
    /// (what else ran beside the server shows as the difference); `None` on the first read.
    pub machine_cpu_percent: Option<f32>,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
    /// CPU time used since the process started, all threads.
    pub cpu_time_ms: u64,
}

/// One reading of a [`Monitor`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct UsageSample {
    /// Seconds since the monitor started.
    pub t_s: f64,
    /// Percent of one core.
    pub cpu_percent: f32,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
}

/// A process's CPU and memory over a scenario.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// CPU time over wall time, in percent of one core (up to 100 x cores).
    pub cpu_mean_percent: f32,
    /// Highest per-sample reading.
    pub cpu_max_percent: f32,
    /// Largest resident set size read, in bytes.
    pub rss_max_bytes: u64,
    /// Resident set size at the last read, in bytes.
    pub rss_last_bytes: u64,
    /// Logical cores of the machine, to turn the CPU figures into a share of it.
    pub cores: usize,
    /// Every read but the first (which has no CPU figure), in order.
    pub samples: Vec<UsageSample>,
}

impl ProcessUsage {
    /// Mean CPU as a percent of the whole machine (all cores).
    pub fn cpu_mean_machine_percent(&self) -> f64 {
        self.cpu_mean_percent as f64 / self.cores.max(1) as f64
    }

    /// One printed line: mean and highest CPU (percent of one core), the cores, and the
    /// largest RSS in MiB.
    pub fn line(&self) -> String {
        format!(
            "cpu mean {:.0}% max {:.0}% (of one core; {} cores), rss max {:.1} MiB",
            self.cpu_mean_percent,
            self.cpu_max_percent,
            self.cores,
            self.rss_max_bytes as f64 / MIB
        )
    }
}

/// Bytes in a MiB (2^20), as a divisor for byte counts.
pub const MIB: f64 = (1 << 20) as f64;

/// Samples a process every `every` on a thread of its own until [`Monitor::finish`].
pub struct Monitor {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ProcessUsage>,
}

impl Monitor {
    /// Starts sampling the process `pid` every `every`; fails as [`ProcessProbe::new`] does.
    pub fn start(pid: u32, every: Duration) -> Result<Monitor> {
        let mut probe = ProcessProbe::new(pid)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut usage = ProcessUsage {
                cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
                ..ProcessUsage::default()
            };
            let mut cpu_ms = None;
            loop {
                let stopping = flag.load(Ordering::Relaxed);
                if let Some(r) = probe.sample() {
                    if let Some(cpu) = r.cpu_percent {
                        usage.samples.push(UsageSample {
                            t_s: started.elapsed().as_secs_f64(),
                            cpu_percent: cpu,
                            rss_bytes: r.rss_bytes,
                        });
                        usage.cpu_max_percent = usage.cpu_max_percent.max(cpu);
                    }
                    let first = *cpu_ms.get_or_insert(r.cpu_time_ms);
                    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
                    usage.cpu_mean_percent = (r.cpu_time_ms.saturating_sub(first) as f64
                        / wall_ms.max(1.0)
                        * 100.0) as f32;
                    usage.rss_last_bytes = r.rss_bytes;
                    usage.rss_max_bytes = usage.rss_max_bytes.max(r.rss_bytes);
                }
                if stopping {
                    break usage;
                }
                std::thread::sleep(every);
            }
        });
        Ok(Monitor { stop, thread })
    }

    /// Stops the sampling after one last read (waiting up to `every` for it) and returns what
    /// was measured; an empty [`ProcessUsage`] if the sampling thread panicked.
    pub fn finish(self) -> ProcessUsage {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}
