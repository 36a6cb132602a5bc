//! Outcomes of many timed operations and their summary: latency percentiles, throughput and
//! the error rate. Every scenario (HTTP or storage) records into a [`Tally`] and reports a
//! [`Summary`], so that all of them print and serialise alike.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How one operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP status (storage operations that succeed record 200).
    Status(u16),
    /// No answer at all: a transport error, or a storage call that returned an error.
    Failed,
}

/// Outcomes of one kind of operation.
#[derive(Default)]
pub struct Tally {
    latencies: Vec<Duration>,
    statuses: BTreeMap<u16, u64>,
    failures: u64,
}

/// Latency percentiles in milliseconds (nearest-rank).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// The median, in ms.
    pub p50: f64,
    /// The 95th percentile, in ms.
    pub p95: f64,
    /// The 99th percentile, in ms.
    pub p99: f64,
    /// The slowest, in ms.
    pub max: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `ms` (sorted here); all zero when empty.
    ///
    /// The nearest rank of percentile `p` among `n` values is the `ceil(n * p)`-th smallest:
    ///
    /// ```
    /// use bench::tally::Percentiles;
    ///
    /// let mut ms = [4.0, 1.0, 3.0, 2.0];
    /// let p = Percentiles::of(&mut ms);
    /// assert_eq!((p.p50, p.p95, p.p99, p.max), (2.0, 4.0, 4.0, 4.0));
    /// assert_eq!(ms, [1.0, 2.0, 3.0, 4.0]);
    /// assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    /// ```
    pub fn of(ms: &mut [f64]) -> Percentiles {
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            let i = ((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len().max(1)) - 1;
            ms.get(i).copied().unwrap_or(0.0)
        };
        Percentiles {
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
            max: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// What a [`Tally`] amounts to over a wall time. A 429 (queue full, reel's documented
/// back-pressure) is counted as `rejected_429`, neither ok nor an error.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Operations recorded, whatever their outcome.
    pub requests: u64,
    /// Operations answered with a 2xx status.
    pub ok: u64,
    /// Operations answered 429.
    pub rejected_429: u64,
    /// Every other operation: a status neither 2xx nor 429, or no answer at all (the
    /// `transport_errors`).
    pub errors: u64,
    /// `errors` over `requests`, as a fraction (0 to 1); 0 when nothing was recorded.
    pub error_rate: f64,
    /// Operations by the status they were answered with (storage operations: 200 or 404).
    pub statuses: BTreeMap<u16, u64>,
    /// Operations that got no answer ([`Outcome::Failed`]), also counted in `errors`.
    pub transport_errors: u64,
    /// Operations (all outcomes) per second of the wall time.
    pub throughput_rps: f64,
    /// Latency percentiles of every operation, whatever its outcome.
    pub latency_ms: Percentiles,
}

impl Tally {
    /// Records one operation that took `took` and ended as `outcome`.
    pub fn record(&mut self, took: Duration, outcome: Outcome) {
        self.latencies.push(took);
        match outcome {
            Outcome::Status(s) => *self.statuses.entry(s).or_default() += 1,
            Outcome::Failed => self.failures += 1,
        }
    }

    /// Adds the operations of `other` (another user's or thread's) to this tally.
    pub fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (s, n) in other.statuses {
            *self.statuses.entry(s).or_default() += n;
        }
        self.failures += other.failures;
    }

    /// Latency percentiles, throughput over `wall`, and the error rate.
    pub fn summary(&self, wall: Duration) -> Summary {
        let mut ms: Vec<f64> = self
            .latencies
            .iter()
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        let total = self.latencies.len() as u64;
        let ok: u64 = self.statuses.range(200..300).map(|(_, n)| n).sum();
        let rejected = self.statuses.get(&429).copied().unwrap_or(0);
        let errors = total - ok - rejected;
        Summary {
            requests: total,
            ok,
            rejected_429: rejected,
            errors,
            error_rate: if total > 0 {
                errors as f64 / total as f64
            } else {
                0.0
            },
            statuses: self.statuses.clone(),
            transport_errors: self.failures,
            throughput_rps: total as f64 / wall.as_secs_f64().max(1e-9),
            latency_ms: Percentiles::of(&mut ms),
        }
    }
}

impl Summary {
    /// One printed line: counts, percentiles and throughput.
    pub fn line(&self, name: &str) -> String {
        let l = &self.latency_ms;
        format!(
            "{name:<24} n={:<6} ok={:<6} 429={:<5} err={:<4} ({:.2}%)  p50={:.3}ms p95={:.3}ms p99={:.3}ms max={:.2}ms  {:.0} op/s",
            self.requests, self.ok, self.rejected_429, self.errors, self.error_rate * 100.0,
            l.p50, l.p95, l.p99, l.max, self.throughput_rps,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_ranks() {
        let mut t = Tally::default();
        for ms in 1..=100u64 {
            t.record(Duration::from_millis(ms), Outcome::Status(200));
        }
        t.record(Duration::from_millis(500), Outcome::Status(429));
        t.record(Duration::from_millis(1), Outcome::Failed);
        t.record(Duration::from_millis(1), Outcome::Status(500));
        let s = t.summary(Duration::from_secs(1));
        assert_eq!(
            (s.requests, s.ok, s.rejected_429, s.errors),
            (103, 100, 1, 2)
        );
        assert_eq!(s.transport_errors, 1);
        assert_eq!(s.latency_ms.max, 500.0);
        assert!(s.latency_ms.p50 > 45.0 && s.latency_ms.p50 < 55.0);
        assert!((s.throughput_rps - 103.0).abs() < 1e-9);
    }
}
