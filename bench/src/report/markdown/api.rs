//! The API section: the closed-loop user counts and the paced run while generating, in all
//! and by endpoint, with the latency and throughput plot.

use std::fmt::Write as _;

use anyhow::Result;

use super::cells::{summary_cells, usage_cells, SUMMARY_HEAD};
use super::{Plots, Timeline};
use crate::http_load::{ApiResult, OPS};
use crate::report::plots::{plain, Panel, Series};
use crate::report::results::Measured;
use crate::report::verdicts::pacing;
use crate::tally::Summary;

/// Writes the section when the run measured the API, and adds each run's server usage to
/// `timelines`.
pub fn section<'a>(
    o: &mut String,
    runs: &'a [Measured<ApiResult>],
    busy: Option<&'a Measured<ApiResult>>,
    plots: &Plots,
    timelines: &mut Vec<Timeline<'a>>,
) -> Result<()> {
    if runs.is_empty() && busy.is_none() {
        return Ok(());
    }
    let ops: Vec<String> = OPS.iter().map(|op| format!("`{op}`")).collect();
    let _ = write!(
        o,
        "## API\n\nEach user cycles through every endpoint: {} (`{{id}}` a task of its own, `{{done}}` a finished one; `POST /api/tasks` is a cached one-scene task, `POST /v1/videos` a one-second 64x64 video generated each time, the live frame stream is timed to its head).",
        ops.join(", ")
    );
    o.push_str(" The user counts alone send back to back (a closed-loop stress, whose latency is mostly queueing: users / throughput); the run while generating paces its users like Locust users, arriving spread over one pause, while the bench keeps default tasks unfinished so that generation saturates the compute throughout.\n\n");
    let _ = writeln!(o, "| users | {SUMMARY_HEAD} |\n|---|{}", "---|".repeat(10));
    for m in runs {
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            m.result.users,
            summary_cells(&m.result.total),
            usage_cells(&m.server)
        );
        timelines.push((format!("api, {} users", m.result.users), &m.server));
    }
    if let Some(m) = busy {
        let _ = writeln!(
            o,
            "| {}, {}, while {} default tasks are kept generating | {} | {} |",
            m.result.users,
            pacing(m.result.think_ms),
            m.result.background_tasks,
            summary_cells(&m.result.total),
            usage_cells(&m.server)
        );
        timelines.push(("api while generating".into(), &m.server));
    }
    o.push('\n');
    if let Some(m) = busy {
        by_endpoint(o, &m.result);
    }
    if !runs.is_empty() {
        plot(o, runs, plots)?;
    }
    Ok(())
}

/// The table of the run while generating, one row per endpoint.
fn by_endpoint(o: &mut String, r: &ApiResult) {
    let _ = writeln!(
        o,
        "By endpoint, while generating ({:.0}% of the run had a task in generation; the live frame stream is timed to its head, since it replays the video at its frame rate):\n\n| endpoint | requests | p50 ms | p95 ms | p99 ms | max ms | req/s | errors | 429 |\n|---|---|---|---|---|---|---|---|---|",
        r.generation_busy_share * 100.0
    );
    for (op, s) in &r.by_op {
        let _ = writeln!(o, "| `{op}` | {} |", summary_cells(s));
    }
    o.push('\n');
}

/// Latency percentiles and throughput against the closed-loop user counts.
fn plot(o: &mut String, runs: &[Measured<ApiResult>], plots: &Plots) -> Result<()> {
    let pts = |f: fn(&Summary) -> f64| -> Vec<(f64, f64)> {
        runs.iter()
            .map(|m| (m.result.users as f64, f(&m.result.total)))
            .collect()
    };
    plots.put(
        o,
        "api.svg",
        "API latency and throughput by users",
        &[
            Panel {
                title: "API latency percentiles".into(),
                x_label: "concurrent users".into(),
                y_label: "ms".into(),
                series: vec![
                    Series::new("p50", pts(|s| s.latency_ms.p50)),
                    Series::new("p95", pts(|s| s.latency_ms.p95)),
                    Series::new("p99", pts(|s| s.latency_ms.p99)),
                ],
                x_format: plain,
            },
            Panel {
                title: "API throughput".into(),
                x_label: "concurrent users".into(),
                y_label: "requests/s".into(),
                series: vec![Series::new("all endpoints", pts(|s| s.throughput_rps))],
                x_format: plain,
            },
        ],
    )
}
