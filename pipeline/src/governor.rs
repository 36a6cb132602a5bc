//! The CPU ceiling (`--max-cpu-percent`): how long the compute threads must pause so that the
//! process stays under a share of the machine's cores.
//!
//! A token bucket over the process's own CPU time (compute, API and everything else): credit
//! accrues at `ceiling x cores` CPU-seconds per wall second and every CPU-second the process
//! spends is debited. The bucket holds no credit beyond zero: idle time is never saved up, so
//! no window, however it falls, sees more than the ceiling plus the one piece of compute that
//! ran into debt (a batched step, a scene's post-processing). An earlier version banked half a
//! second of credit: the paced API run while generating, whose server starts idle, read 80.1%
//! of the machine against an 80% ceiling (79.8-79.9% without the bank), and single seconds
//! reached 92% (docs/PERFORMANCE.md, "CPU ceiling").
//!
//! The denoise operator asks before each batched step and, in debt, re-schedules itself for
//! later instead of stepping (a timely worker never sleeps); the post-processing threads,
//! which own their threads, sleep. Between those points the rayon pools run flat out, so the
//! ceiling holds over any stretch of a second or so, not at every instant.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use cpu_time::ProcessTime;

/// The CPU ceiling of the compute threads: a token bucket of CPU time against wall time.
pub struct CpuGovernor {
    /// CPU-seconds per wall second allowed (ceiling x cores); None: no ceiling.
    rate: Option<f64>,
    cores: usize,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    wall: Instant,
    cpu: Duration,
    credit: f64,
}

impl CpuGovernor {
    /// A governor holding the process under `percent` of `cores` (100 or more: no ceiling).
    pub fn new(percent: u32, cores: usize) -> Self {
        let rate = (percent < 100).then(|| f64::from(percent.max(1)) / 100.0 * cores as f64);
        CpuGovernor {
            rate,
            cores,
            bucket: Mutex::new(Bucket {
                wall: Instant::now(),
                cpu: process_cpu(),
                credit: 0.0,
            }),
        }
    }

    /// The ceiling in percent of all cores, if any.
    pub fn ceiling_percent(&self) -> Option<f64> {
        self.rate.map(|r| 100.0 * r / self.cores as f64)
    }

    /// How long to pause before the next piece of compute; None to go on now.
    pub fn pause(&self) -> Option<Duration> {
        self.rate?;
        self.pause_at(Instant::now(), process_cpu())
    }

    /// [`Self::pause`] at a given wall instant and process CPU time (tests drive the clock).
    pub fn pause_at(&self, wall: Instant, cpu: Duration) -> Option<Duration> {
        let rate = self.rate?;
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let earned = rate * wall.saturating_duration_since(b.wall).as_secs_f64();
        let spent = cpu.saturating_sub(b.cpu).as_secs_f64();
        b.credit = (b.credit + earned - spent).min(0.0);
        b.wall = wall.max(b.wall);
        b.cpu = cpu.max(b.cpu);
        if b.credit >= 0.0 {
            return None;
        }
        metrics::counter!("reel_cpu_ceiling_pauses_total").increment(1);
        Some(Duration::from_secs_f64(-b.credit / rate))
    }
}

fn process_cpu() -> Duration {
    ProcessTime::try_now().map_or(Duration::ZERO, |t| t.as_duration())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// The wall instant and process CPU time the governor's bucket starts from.
    fn start(g: &CpuGovernor) -> (Instant, Duration) {
        let b = g.bucket.lock().unwrap();
        (b.wall, b.cpu)
    }

    #[test]
    fn no_ceiling_never_pauses() {
        let g = CpuGovernor::new(100, 2);
        let t0 = Instant::now();
        assert_eq!(g.pause_at(t0 + 10 * MS, Duration::from_secs(100)), None);
        assert_eq!(g.ceiling_percent(), None);
    }

    #[test]
    fn spending_more_than_the_rate_pauses_until_it_is_earned_back() {
        // 50% of 2 cores: one CPU-second per wall second.
        let g = CpuGovernor::new(50, 2);
        let (t0, c0) = start(&g);
        // 100 ms of wall time with both cores busy: 200 ms spent, 100 ms earned.
        let pause = g.pause_at(t0 + 100 * MS, c0 + 200 * MS).expect("in debt");
        assert!((pause.as_secs_f64() - 0.1).abs() < 1e-9, "{pause:?}");
        // After the pause, with no CPU spent, the debt is paid.
        assert_eq!(g.pause_at(t0 + 200 * MS, c0 + 200 * MS), None);
    }

    #[test]
    fn idle_time_is_not_banked() {
        let g = CpuGovernor::new(50, 2);
        let (t0, c0) = start(&g);
        // A long idle spell, then a spike of 0.3 CPU-s: the spike runs (no debt before it) and
        // is then paid back in full, since the idle minute left no credit behind.
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(g.pause_at(t1, c0), None);
        let pause = g.pause_at(t1, c0 + 300 * MS).expect("the spike is debt");
        assert!((pause.as_secs_f64() - 0.3).abs() < 1e-9, "{pause:?}");
    }

    #[test]
    fn the_real_clock_reports_this_process() {
        let g = CpuGovernor::new(10, 1);
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < 50 * MS {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        // 50 ms of busy CPU at a 10% ceiling of one core: clearly in debt.
        assert!(g.pause().is_some());
    }
}
