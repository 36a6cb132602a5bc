//! The figures of a run (each with a key for the baseline, a direction and a slack), and the
//! original targets and the goals judged against them.

use serde::{Deserialize, Serialize};

use super::results::Results;
use crate::monitor::MIB;

/// Which way a figure improves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Better {
    Lower,
    Higher,
}

/// One measured number.
#[derive(Clone, Debug)]
pub struct Figure {
    /// Stable name in the baseline, e.g. `api.u100.p99_ms`.
    pub key: String,
    pub label: String,
    pub value: f64,
    pub unit: &'static str,
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

/// A target or goal with its verdict; `pass` is `None` when the run did not measure it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verdict {
    pub target: String,
    pub measured: String,
    pub pass: Option<bool>,
}

fn verdict(target: &str, measured: Option<(String, bool)>) -> Verdict {
    let (measured, pass) = match measured {
        Some((m, p)) => (m, Some(p)),
        None => ("not measured in this run".into(), None),
    };
    Verdict {
        target: target.into(),
        measured,
        pass,
    }
}

/// The highest mean server CPU (percent of the whole machine) of the runs that generate.
fn generating_cpu(r: &Results) -> Option<(f64, &'static str)> {
    let mut runs: Vec<(f64, &'static str)> = r
        .generate
        .iter()
        .map(|m| (m.server.cpu_mean_machine_percent(), "generate"))
        .collect();
    runs.extend(
        r.api_busy
            .iter()
            .map(|m| (m.server.cpu_mean_machine_percent(), "API while generating")),
    );
    runs.into_iter().max_by(|a, b| a.0.total_cmp(&b.0))
}

/// Soak: no leak when the last quarter's RSS is within 5% of the first quarter's.
const LEAK_PERCENT: f64 = 5.0;
/// Soak: no degradation when the last quarter's p99 is within 25% (or 1 ms) of the first's.
const DRIFT_RATIO: f64 = 1.25;
const DRIFT_SLACK_MS: f64 = 1.0;

/// The original plan's targets.
pub fn targets(r: &Results) -> Vec<Verdict> {
    let worst_api = r.api.iter().max_by(|a, b| {
        a.result
            .total
            .latency_ms
            .p99
            .total_cmp(&b.result.total.latency_ms.p99)
    });
    let three = r.generate.iter().find(|m| m.result.shape.scenes == 3);
    let users = r
        .api
        .iter()
        .filter(|m| m.result.users >= 10)
        .max_by_key(|m| m.result.users);
    let ten_tasks = r
        .generate
        .iter()
        .flat_map(|m| {
            m.result
                .concurrent
                .iter()
                .map(move |c| (m.result.shape.scenes, c))
        })
        .filter(|(_, c)| c.tasks >= 10)
        .max_by_key(|(s, _)| *s);
    let rss = max_rss_bytes(r) as f64 / (1u64 << 30) as f64;
    vec![
        verdict(
            "API under 100 ms (p99, every user count)",
            worst_api.map(|m| {
                let p99 = m.result.total.latency_ms.p99;
                (
                    format!("worst p99 {p99:.2} ms ({} users)", m.result.users),
                    p99 < 100.0,
                )
            }),
        ),
        verdict(
            "3-scene video under 2 min",
            three.map(|m| {
                let w = m.result.single.wall_s;
                (
                    format!("{w:.2} s ({} steps, 256 px, 3 x 2 s)", m.result.shape.steps),
                    w < 120.0,
                )
            }),
        ),
        verdict(
            "10+ concurrent users",
            match (users, ten_tasks) {
                (Some(u), Some((s, c))) => {
                    let e = u.result.total.errors;
                    Some((
                    format!("{} API users: {e} errors; {} concurrent {s}-scene tasks: {} completed in {:.1} s",
                        u.result.users, c.tasks, c.runs.iter().filter(|t| t.status == "completed").count(), c.wall_s),
                    e == 0 && c.all_completed,
                ))
                }
                _ => None,
            },
        ),
        verdict(
            "memory under 16 GB",
            (!r.api.is_empty() || r.soak.is_some() || !r.generate.is_empty())
                .then(|| (format!("largest RSS {:.3} GiB", rss), rss < 16.0)),
        ),
        verdict(
            "CPU under 80%",
            generating_cpu(r).map(|(cpu, what)| {
                (
                    format!("highest mean server CPU {cpu:.0}% of the machine ({what})"),
                    cpu < 80.0,
                )
            }),
        ),
        verdict(
            "1000 concurrent requests with no error",
            r.burst
                .as_ref()
                .filter(|m| m.result.connections >= 1000)
                .map(|m| {
                    let t = &m.result.total;
                    (
                        format!(
                            "{} connections: {} errors, {} ok, p99 {:.0} ms",
                            m.result.connections, t.errors, t.ok, t.latency_ms.p99
                        ),
                        t.errors == 0,
                    )
                }),
        ),
        verdict(
            "no leak",
            r.soak.as_ref().map(|m| {
                let s = &m.result.stats;
                (
                    format!(
                        "RSS {:+.2}% over {:.0} s (slope {:+.1} MB/h)",
                        s.rss_growth_percent, m.result.wall_s, s.memory_slope_mb_per_hour
                    ),
                    s.rss_growth_percent < LEAK_PERCENT,
                )
            }),
        ),
        verdict(
            "no degradation",
            r.soak.as_ref().map(|m| {
                let s = &m.result.stats;
                let held = |first: f64, last: f64| {
                    last <= first * DRIFT_RATIO || last - first < DRIFT_SLACK_MS
                };
                let cold = format!(
                    "probe p99 {:.2} -> {:.2} ms, first to last quarter",
                    s.p99_first_quarter_ms, s.p99_last_quarter_ms
                );
                // Runs from before the back-to-back probes are judged on the first ones.
                match s.back_to_back_p99() {
                    Some((first, last)) => (
                        format!(
                            "probe p99 back to back {first:.2} -> {last:.2} ms, first to last quarter ({cold} after idle)"
                        ),
                        held(first, last),
                    ),
                    None => (cold, held(s.p99_first_quarter_ms, s.p99_last_quarter_ms)),
                }
            }),
        ),
    ]
}

const HOUR_GOAL: &str = "no memory growth beyond 5% over a one-hour soak";

/// The goals of issue 6, measured on this machine.
pub fn goals(r: &Results) -> Vec<Verdict> {
    vec![
        verdict(
            "zero errors at 1000 concurrent connections",
            r.burst
                .as_ref()
                .filter(|m| m.result.connections >= 1000)
                .map(|m| {
                    (
                        format!(
                            "{} errors of {}",
                            m.result.total.errors, m.result.total.requests
                        ),
                        m.result.total.errors == 0,
                    )
                }),
        ),
        verdict(
            "API p99 under 10 ms with 100 users while generation saturates the compute",
            r.api_busy.as_ref().map(|m| {
                let p99 = m.result.total.latency_ms.p99;
                let busy = m.result.generation_busy_share;
                (
                    format!(
                        "p99 {p99:.2} ms, {} users ({}), server CPU {:.0}% of the machine; generating {:.0}% of the time",
                        m.result.users,
                        pacing(m.result.think_ms),
                        m.server.cpu_mean_machine_percent(),
                        busy * 100.0
                    ),
                    // Saturated: a task was in generation for at least 95% of the polls.
                    p99 < 10.0 && busy >= 0.95,
                )
            }),
        ),
        match &r.soak {
            // A shorter soak says something, but not what the goal asks: no verdict.
            Some(m) if m.result.wall_s < 3600.0 => Verdict {
                target: HOUR_GOAL.into(),
                measured: format!(
                    "not measured for an hour; this run's {:.0} s soak: {:+.2}%",
                    m.result.wall_s, m.result.stats.rss_growth_percent
                ),
                pass: None,
            },
            soak => verdict(
                HOUR_GOAL,
                soak.as_ref().map(|m| {
                    let g = m.result.stats.rss_growth_percent;
                    (
                        format!("{g:+.2}% over {:.0} s", m.result.wall_s),
                        g < LEAK_PERCENT,
                    )
                }),
            ),
        },
        verdict(
            "the CPU ceiling held (80%)",
            generating_cpu(r).map(|(cpu, what)| {
                (
                    format!("{cpu:.0}% of the machine, mean over {what}"),
                    cpu <= 80.0,
                )
            }),
        ),
    ]
}

/// How the API users were paced, in words.
pub fn pacing(think_ms: [u64; 2]) -> String {
    match think_ms {
        [0, 0] => "back to back".into(),
        [lo, hi] => format!("pausing {lo}-{hi} ms between requests"),
    }
}
