//! The figures of a run, each with a key for the baseline, a direction and a slack (the
//! targets and goals are judged in [`super::verdicts`]).

use serde::{Deserialize, Serialize};

use super::results::Results;
use crate::monitor::MIB;

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Better {
    /// Lower is better: latencies, times, errors, memory, growth.
    Lower,
    /// Higher is better: throughputs.
    Higher,
}

/// One measured number.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Stable name in the baseline, e.g. `api.u100.p99_ms`.
    pub key: String,
    /// Its name in the report, e.g. `API p99, 100 users`.
    pub label: String,
    /// The number, in `unit`.
    pub value: f64,
    /// `ms`, `s`, `MiB`, `%`, `x` (a ratio), `req/s`, `op/s`, `MB/h`, or empty for a count; it
    /// sets the slack.
    pub unit: &'static str,
    /// Which way it improves.
    pub better: Better,
    /// Absolute tolerance on top of the relative margin (see [`super::gate`]).
    pub slack: f64,
    /// Whether the regression gate checks it (read throughputs of microsecond operations, for
    /// one, swing too much on a shared machine to gate).
    pub gated: bool,
}

fn fig(key: String, label: String, value: f64, unit: &'static str, better: Better) -> Figure {
    let slack = match unit {
        "ms" => 2.0,
        "s" => 0.5,
        "MiB" => 16.0,
        "%" => 2.0,
        "x" => 0.5,
        _ => 0.0,
    };
    Figure {
        key,
        label,
        value,
        unit,
        better,
        slack,
        gated: true,
    }
}

/// Every figure of a run, in report order.
pub fn figures(r: &Results) -> Vec<Figure> {
    use Better::{Higher, Lower};
    let mut out = Vec::new();
    for m in &r.api {
        let (u, t) = (m.result.users, &m.result.total);
        out.push(fig(
            format!("api.u{u}.p99_ms"),
            format!("API p99, {u} users"),
            t.latency_ms.p99,
            "ms",
            Lower,
        ));
        out.push(fig(
            format!("api.u{u}.throughput_rps"),
            format!("API throughput, {u} users"),
            t.throughput_rps,
            "req/s",
            Higher,
        ));
        out.push(fig(
            format!("api.u{u}.errors"),
            format!("API errors, {u} users"),
            t.errors as f64,
            "",
            Lower,
        ));
    }
    if let Some(m) = &r.api_busy {
        let t = &m.result.total;
        out.push(fig(
            "api_busy.p99_ms".into(),
            format!("API p99, {} users while generating", m.result.users),
            t.latency_ms.p99,
            "ms",
            Lower,
        ));
        out.push(fig(
            "api_busy.errors".into(),
            "API errors while generating".into(),
            t.errors as f64,
            "",
            Lower,
        ));
    }
    if let Some(m) = &r.burst {
        let (n, t) = (m.result.connections, &m.result.total);
        out.push(fig(
            format!("burst.c{n}.errors"),
            format!("burst errors, {n} connections"),
            t.errors as f64,
            "",
            Lower,
        ));
        out.push(fig(
            format!("burst.c{n}.p99_ms"),
            format!("burst p99, {n} connections"),
            t.latency_ms.p99,
            "ms",
            Lower,
        ));
    }
    for m in &r.generate {
        let g = &m.result;
        let s = g.shape.scenes;
        out.push(fig(
            format!("generate.s{s}.single_wall_s"),
            format!("{s}-scene task alone, wall"),
            g.single.wall_s,
            "s",
            Lower,
        ));
        for c in &g.concurrent {
            let k = c.tasks;
            out.push(fig(
                format!("generate.s{s}.k{k}.wall_s"),
                format!("{k} concurrent {s}-scene tasks, makespan"),
                c.wall_s,
                "s",
                Lower,
            ));
            if let Some(ff) = c.first_frame_median_s() {
                let mut f = fig(
                    format!("generate.s{s}.k{k}.first_frame_s"),
                    format!("{k} concurrent {s}-scene tasks, median first frame"),
                    ff,
                    "s",
                    Lower,
                );
                // Polled every 100 ms and queued behind the batch: too coarse to gate.
                f.gated = false;
                out.push(f);
            }
        }
    }
    if let Some(m) = &r.storage {
        for run in &m.result.runs {
            let key = format!(
                "storage.n{}.{:?}.c{}",
                run.stored, run.workload, run.clients
            )
            .to_lowercase();
            let label = format!(
                "storage {:?}, {} stored, {} clients",
                run.workload, run.stored, run.clients
            );
            out.push(fig(
                format!("{key}.p99_ms"),
                format!("{label}, p99"),
                run.summary.latency_ms.p99,
                "ms",
                Lower,
            ));
            let mut t = fig(
                format!("{key}.throughput_ops"),
                format!("{label}, throughput"),
                run.summary.throughput_rps,
                "op/s",
                Higher,
            );
            t.gated = run.workload != crate::storage_load::Workload::Read;
            out.push(t);
            out.push(fig(
                format!("{key}.errors"),
                format!("{label}, errors"),
                run.summary.errors as f64,
                "",
                Lower,
            ));
        }
    }
    if let Some(m) = &r.soak {
        let s = &m.result.stats;
        out.push(fig(
            "soak.rss_growth_percent".into(),
            "soak RSS growth, last vs first quarter".into(),
            s.rss_growth_percent,
            "%",
            Lower,
        ));
        let mut slope = fig(
            "soak.memory_slope_mb_per_hour".into(),
            "soak memory slope".into(),
            s.memory_slope_mb_per_hour,
            "MB/h",
            Lower,
        );
        // A short soak's slope extrapolates seconds to an hour: too noisy to gate.
        slope.gated = false;
        out.push(slope);
        out.push(fig(
            "soak.latency_drift_ratio".into(),
            "soak probe p99 drift, last / first quarter".into(),
            s.latency_drift_ratio,
            "x",
            Lower,
        ));
        out.push(fig(
            "soak.errors".into(),
            "soak errors".into(),
            (m.result.probes.errors + m.result.posts.errors) as f64,
            "",
            Lower,
        ));
    }
    out.push(fig(
        "rss_max_mib".into(),
        "largest server RSS".into(),
        max_rss_bytes(r) as f64 / MIB,
        "MiB",
        Lower,
    ));
    out
}

/// The largest RSS of the server (or of the storage bench) in any scenario.
pub fn max_rss_bytes(r: &Results) -> u64 {
    let mut usages: Vec<u64> = r.api.iter().map(|m| m.server.rss_max_bytes).collect();
    usages.extend(r.api_busy.iter().map(|m| m.server.rss_max_bytes));
    usages.extend(r.burst.iter().map(|m| m.server.rss_max_bytes));
    usages.extend(r.generate.iter().map(|m| m.server.rss_max_bytes));
    usages.extend(r.storage.iter().map(|m| m.server.rss_max_bytes));
    usages.extend(r.soak.iter().map(|m| m.server.rss_max_bytes));
    usages.into_iter().max().unwrap_or(0)
}
