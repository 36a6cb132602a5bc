//! The storage section: the fill rates, every (size, workload, clients) run, and the plot of
//! p99 and throughput against the stored tasks at the most clients.

use std::fmt::Write as _;

use anyhow::Result;

use super::cells::{summary_cells, usage_cells};
use super::Plots;
use crate::report::plots::{pow10, Panel, Series};
use crate::storage_load::{StorageResult, Workload};
use crate::tally::Summary;

pub fn section(o: &mut String, s: &StorageResult, plots: &Plots) -> Result<()> {
    o.push_str("## Storage\n\nreel's sled store driven directly (no HTTP) by concurrent client threads; the store is filled with `create_task` to each size in turn. Reads: `get`, a `list` page, a cache lookup; writes: `create_task` (flushed), progress `update`, status-changing `update` (flushed); mixed: 80% reads. CPU and RSS are the bench process's.\n\n| filled to | seconds | tasks/s |\n|---|---|---|\n");
    for p in &s.preload {
        let _ = writeln!(o, "| {} | {:.1} | {:.0} |", p.stored, p.secs, p.tasks_per_s);
    }
    let _ = writeln!(
        o,
        "\n| stored | workload | clients | ops | p50 ms | p95 ms | p99 ms | max ms | ops/s | errors | 429 | CPU (of machine) | RSS |\n|---|---|---|{}",
        "---|".repeat(10)
    );
    for run in &s.runs {
        let _ = writeln!(
            o,
            "| {} | {:?} | {} | {} | {} |",
            run.stored,
            run.workload,
            run.clients,
            summary_cells(&run.summary),
            usage_cells(&run.process)
        );
    }
    o.push('\n');
    plot(o, s, plots)
}

/// p99 and throughput by stored tasks, one line per workload, at the most clients.
fn plot(o: &mut String, s: &StorageResult, plots: &Plots) -> Result<()> {
    let most = s.runs.iter().map(|r| r.clients).max().unwrap_or(0);
    let line = |w: Workload, f: fn(&Summary) -> f64| {
        let pts = s
            .runs
            .iter()
            .filter(|r| r.workload == w && r.clients == most)
            .map(|r| ((r.stored.max(1) as f64).log10(), f(&r.summary)))
            .collect();
        Series::new(format!("{w:?}"), pts)
    };
    let all = |f: fn(&Summary) -> f64| {
        [Workload::Read, Workload::Write, Workload::Mixed]
            .into_iter()
            .map(|w| line(w, f))
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    plots.put(
        o,
        "storage.svg",
        "storage latency and throughput by stored tasks",
        &[
            Panel {
                title: format!("Storage p99 latency, {most} clients"),
                x_label: "stored tasks (log scale)".into(),
                y_label: "ms".into(),
                series: all(|s| s.latency_ms.p99),
                x_format: pow10,
            },
            Panel {
                title: format!("Storage throughput, {most} clients"),
                x_label: "stored tasks (log scale)".into(),
                y_label: "thousand ops/s".into(),
                series: all(|s| s.throughput_rps / 1e3),
                x_format: pow10,
            },
        ],
    )
}
