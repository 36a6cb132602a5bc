//! The original targets and the goals, each judged from the numbers it prints.
//!
//! A verdict compares the unrounded figure with its limit, and the figure is printed with as
//! many decimals as it takes to land on the same side of that limit ([`decimals`]): a mean
//! CPU of 79.65% against "under 80%" prints 79.7%, not 80%. A refused request (429, reel's
//! back-pressure) counts against a target on serving requests, like an error: the client
//! it turned away was not served.

use serde::{Deserialize, Serialize};
use storage::TaskParams;

use super::figures::max_rss_bytes;
use super::results::Results;
use crate::tally::Summary;

/// A target or goal with its verdict; `pass` is `None` when the run did not measure it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Verdict {
    /// The target or goal, as the report words it.
    pub target: String,
    /// What the run measured for it, as printed, or why there is no verdict (e.g. "not
    /// measured in this run").
    pub measured: String,
    /// Whether it was met; `None` when the run did not measure what it asks.
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

/// Decimals beyond which printing only adds noise; an `f64` of the sizes judged here prints
/// exactly by then.
const MAX_DECIMALS: usize = 17;

/// The fewest decimals, at least `min`, with which `value` prints as a number that `test`
/// answers for just as it answers for `value`: the printed figure agrees with the verdict.
pub fn decimals<T: PartialEq>(value: f64, min: usize, test: impl Fn(f64) -> T) -> usize {
    let answer = test(value);
    (min..MAX_DECIMALS)
        .find(|&d| {
            format!("{value:.d$}")
                .parse::<f64>()
                .is_ok_and(|shown| test(shown) == answer)
        })
        .unwrap_or(MAX_DECIMALS)
}

/// `value` printed per [`decimals`], and whether it passes `test`.
fn judged(value: f64, min: usize, test: impl Fn(f64) -> bool) -> (String, bool) {
    let d = decimals(value, min, &test);
    (format!("{value:.d$}"), test(value))
}

/// Whether every request was served: no error and no 429.
fn all_served(t: &Summary) -> bool {
    t.errors == 0 && t.rejected_429 == 0
}

/// The errors and refusals of `t`, as [`all_served`] judges them.
fn unserved(t: &Summary) -> String {
    format!("{} errors, {} refused (429)", t.errors, t.rejected_429)
}

/// The CPU ceiling, in percent of the whole machine.
const CPU_CEILING: f64 = 80.0;

/// A mean CPU, printed on the same side of [`CPU_CEILING`] as it is (or on it), so that both
/// "under 80%" and "held 80%" follow from the printed number.
fn cpu_percent(cpu: f64) -> String {
    let d = decimals(cpu, 0, |c| c.partial_cmp(&CPU_CEILING));
    format!("{cpu:.d$}%")
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

/// Linux waits 1 s before it retransmits an unanswered SYN (its initial RTO), so a
/// connection whose SYN a full accept queue dropped takes at least this long.
pub const SYN_RETRY_MS: f64 = 1000.0;

/// Whether the burst's slowest connection took as long as a retransmitted SYN waits.
pub fn waited_for_syn_retry(t: &Summary) -> bool {
    t.latency_ms.max >= SYN_RETRY_MS
}

/// Soak: no leak when the last quarter's RSS is within 5% of the first quarter's.
const LEAK_PERCENT: f64 = 5.0;
/// Soak: no degradation when the last quarter's p99 is within 25% (or 1 ms) of the first's.
const DRIFT_RATIO: f64 = 1.25;
const DRIFT_SLACK_MS: f64 = 1.0;

/// RSS growth over a soak, signed and printed per [`decimals`], and whether it is no leak.
fn growth(percent: f64) -> (String, bool) {
    let leak_free = |g: f64| g < LEAK_PERCENT;
    let d = decimals(percent, 2, leak_free);
    (format!("{percent:+.d$}%"), leak_free(percent))
}

/// A p99 from the first quarter to the last, with its ratio and rise, and whether it held.
pub fn drift(first_ms: f64, last_ms: f64) -> (String, bool) {
    let (ratio, rise) = (last_ms / first_ms, last_ms - first_ms);
    let ratio_held = |x: f64| x <= DRIFT_RATIO;
    let rise_held = |x: f64| x < DRIFT_SLACK_MS;
    let (dr, dd) = (decimals(ratio, 2, ratio_held), decimals(rise, 2, rise_held));
    (
        format!("{first_ms:.2} -> {last_ms:.2} ms ({ratio:.dr$}x, {rise:+.dd$} ms)"),
        ratio_held(ratio) || rise_held(rise),
    )
}

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
    vec![
        verdict(
            "API under 100 ms (p99, every user count)",
            worst_api.map(|m| {
                let (p99, pass) = judged(m.result.total.latency_ms.p99, 2, |p| p < 100.0);
                (
                    format!("worst p99 {p99} ms ({} users)", m.result.users),
                    pass,
                )
            }),
        ),
        verdict(
            "3-scene video under 2 min",
            three.map(|m| {
                let (wall, pass) = judged(m.result.single.wall_s, 2, |w| w < 120.0);
                (
                    format!(
                        "{wall} s ({} steps, {} px, 3 x {} s)",
                        m.result.shape.steps,
                        TaskParams::DEFAULT_SIZE,
                        TaskParams::DEFAULT_SECONDS_PER_SCENE
                    ),
                    pass,
                )
            }),
        ),
        verdict(
            "10+ concurrent users (no error, no 429)",
            match (users, ten_tasks) {
                (Some(u), Some((s, c))) => {
                    let t = &u.result.total;
                    let completed = c.runs.iter().filter(|t| t.status == "completed").count();
                    Some((
                        format!(
                            "{} API users: {}; {} concurrent {s}-scene tasks: {completed} completed in {:.1} s",
                            u.result.users,
                            unserved(t),
                            c.tasks,
                            c.wall_s
                        ),
                        all_served(t) && c.all_completed,
                    ))
                }
                _ => None,
            },
        ),
        verdict(
            "memory under 16 GB",
            (!r.api.is_empty() || r.soak.is_some() || !r.generate.is_empty()).then(|| {
                let (gb, pass) = judged(max_rss_bytes(r) as f64 / 1e9, 3, |g| g < 16.0);
                (format!("largest RSS {gb} GB"), pass)
            }),
        ),
        verdict(
            "CPU under 80%",
            generating_cpu(r).map(|(cpu, what)| {
                (
                    format!(
                        "highest mean server CPU {} of the machine ({what})",
                        cpu_percent(cpu)
                    ),
                    cpu < CPU_CEILING,
                )
            }),
        ),
        verdict(
            "1000 concurrent requests with no error (nor 429)",
            r.burst
                .as_ref()
                .filter(|m| m.result.connections >= 1000)
                .map(|m| {
                    let t = &m.result.total;
                    (
                        format!(
                            "{} connections: {}, {} ok, p99 {:.0} ms",
                            m.result.connections,
                            unserved(t),
                            t.ok,
                            t.latency_ms.p99
                        ),
                        all_served(t),
                    )
                }),
        ),
        verdict(
            "no leak (soak RSS growth under 5%, first to last quarter)",
            r.soak.as_ref().map(|m| {
                let s = &m.result.stats;
                let (g, pass) = growth(s.rss_growth_percent);
                (
                    format!(
                        "RSS {g} over {:.0} s (slope {:+.1} MB/h)",
                        m.result.wall_s, s.memory_slope_mb_per_hour
                    ),
                    pass,
                )
            }),
        ),
        verdict(
            "no degradation (soak probe p99 at most 1.25x, or under 1 ms above, the first quarter's)",
            r.soak.as_ref().map(|m| {
                let s = &m.result.stats;
                let (cold, cold_held) = drift(s.p99_first_quarter_ms, s.p99_last_quarter_ms);
                // Runs from before the back-to-back probes are judged on the first ones.
                match s.back_to_back_p99() {
                    Some((first, last)) => {
                        let (warm, held) = drift(first, last);
                        (
                            format!("probe p99 back to back {warm}, first to last quarter ({cold} after idle)"),
                            held,
                        )
                    }
                    None => (
                        format!("probe p99 {cold}, first to last quarter"),
                        cold_held,
                    ),
                }
            }),
        ),
    ]
}

const HOUR_S: f64 = 3600.0;
const HOUR_GOAL: &str = "no memory growth beyond 5% over a one-hour soak";

/// A soak's length, printed on the same side of an hour as it is.
fn soak_secs(wall_s: f64) -> String {
    let d = decimals(wall_s, 0, |w| w < HOUR_S);
    format!("{wall_s:.d$} s")
}

/// The goals of issue 6, measured on this machine.
pub fn goals(r: &Results) -> Vec<Verdict> {
    vec![
        verdict(
            "zero errors at 1000 concurrent connections (nor 429)",
            r.burst
                .as_ref()
                .filter(|m| m.result.connections >= 1000)
                .map(|m| {
                    let t = &m.result.total;
                    (
                        format!("{} of {}", unserved(t), t.requests),
                        all_served(t),
                    )
                }),
        ),
        verdict(
            "API p99 under 10 ms with 100 users while generation saturates the compute (a task in generation at 95% of the polls or more)",
            r.api_busy.as_ref().map(|m| {
                let (p99, fast) = judged(m.result.total.latency_ms.p99, 2, |p| p < 10.0);
                let (busy, saturated) =
                    judged(m.result.generation_busy_share * 100.0, 0, |b| b >= 95.0);
                (
                    format!(
                        "p99 {p99} ms, {} users ({}), server CPU {} of the machine; generating {busy}% of the time",
                        m.result.users,
                        pacing(m.result.think_ms),
                        cpu_percent(m.server.cpu_mean_machine_percent()),
                    ),
                    fast && saturated,
                )
            }),
        ),
        match &r.soak {
            // A shorter soak says something, but not what the goal asks: no verdict.
            Some(m) if m.result.wall_s < HOUR_S => Verdict {
                target: HOUR_GOAL.into(),
                measured: format!(
                    "not measured for an hour; this run's {} soak: {}",
                    soak_secs(m.result.wall_s),
                    growth(m.result.stats.rss_growth_percent).0
                ),
                pass: None,
            },
            soak => verdict(
                HOUR_GOAL,
                soak.as_ref().map(|m| {
                    let (g, pass) = growth(m.result.stats.rss_growth_percent);
                    (format!("{g} over {}", soak_secs(m.result.wall_s)), pass)
                }),
            ),
        },
        verdict(
            "the CPU ceiling held (80%)",
            generating_cpu(r).map(|(cpu, what)| {
                (
                    format!("{} of the machine, mean over {what}", cpu_percent(cpu)),
                    cpu <= CPU_CEILING,
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
