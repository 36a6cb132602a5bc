//! The section of the server's CPU and RSS over each scenario, one line per scenario.

use anyhow::Result;

use super::{Plots, Timeline};
use crate::monitor::{ProcessUsage, MIB};
use crate::report::plots::{plain, Panel, Series};

/// Writes the section when any scenario recorded the server's usage.
pub fn section(o: &mut String, timelines: &[Timeline], plots: &Plots) -> Result<()> {
    if timelines.is_empty() {
        return Ok(());
    }
    o.push_str("## Server CPU and memory over time\n\n");
    plots.put(
        o,
        "server.svg",
        "server CPU and RSS over each scenario",
        &time_panels(timelines, "Server"),
    )
}

fn over_time(u: &ProcessUsage, cpu: bool) -> Vec<(f64, f64)> {
    let cores = u.cores.max(1) as f64;
    u.samples
        .iter()
        .map(|s| {
            let y = if cpu {
                s.cpu_percent as f64 / cores
            } else {
                s.rss_bytes as f64 / MIB
            };
            (s.t_s, y)
        })
        .collect()
}

fn time_panels(runs: &[Timeline], what: &str) -> [Panel; 2] {
    let series = |cpu| {
        runs.iter()
            .map(|(name, u)| Series::new(name.clone(), over_time(u, cpu)))
            .collect()
    };
    [
        Panel {
            title: format!("{what} CPU over time"),
            x_label: "seconds into the scenario".into(),
            y_label: "% of the machine".into(),
            series: series(true),
            x_format: plain,
        },
        Panel {
            title: format!("{what} RSS over time"),
            x_label: "seconds into the scenario".into(),
            y_label: "MiB".into(),
            series: series(false),
            x_format: plain,
        },
    ]
}
