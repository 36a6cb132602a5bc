//! Table cells that several sections share: a [`Summary`]'s counts and percentiles, and a
//! process's CPU and memory.

use crate::monitor::{ProcessUsage, MIB};
use crate::tally::Summary;

/// The head of the columns of [`summary_cells`] and [`usage_cells`], in that order.
pub const SUMMARY_HEAD: &str =
    "requests | p50 ms | p95 ms | p99 ms | max ms | req/s | errors | 429 | server CPU (of machine) | server RSS";

pub fn usage_cells(u: &ProcessUsage) -> String {
    format!(
        "{:.0}% | {:.0} MiB",
        u.cpu_mean_machine_percent(),
        u.rss_max_bytes as f64 / MIB
    )
}

pub fn summary_cells(s: &Summary) -> String {
    let l = &s.latency_ms;
    format!(
        "{} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} | {} | {}",
        s.requests, l.p50, l.p95, l.p99, l.max, s.throughput_rps, s.errors, s.rejected_429
    )
}
