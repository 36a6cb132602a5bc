//! The soak section: its figures after the warm-up, and the plot of RSS (with its
//! least-squares line), probe latency and CPU over time.

use std::fmt::Write as _;

use anyhow::Result;

use super::Plots;
use crate::monitor::MIB;
use crate::report::plots::{plain, Panel, Series};
use crate::report::results::Measured;
use crate::soak::{linear_fit, SoakResult};

pub fn section(o: &mut String, m: &Measured<SoakResult>, plots: &Plots) -> Result<()> {
    let s = &m.result;
    let st = &s.stats;
    // Runs from before the back-to-back probes have none: leave them out rather than print zeros.
    let (pairs, warm_row) = match st.back_to_back_p99() {
        Some((first, last)) => (
            ", each sent twice back to back: the first pays for the machine waking from idle, the second is reel's own cost",
            format!("| probe p99 back to back, first / last quarter | {first:.2} / {last:.2} ms |\n"),
        ),
        None => ("", String::new()),
    };
    let _ = writeln!(
        o,
        "## Soak\n\nA {}-scene task ({} steps, distinct seeds) every {} s for {:.0} s; the server's RSS and CPU and two probes (`GET /api/tasks`, `GET /api/tasks/{{latest}}`{pairs}) sampled every {} s: {} samples, {} tasks posted, {} completed, {} probe errors, {} post errors. The figures leave out the first {:.0} s (start-up: the first tasks fill the allocator's arenas and the model's buffers).\n\n| figure | value |\n|---|---|\n| RSS, first quarter mean | {:.1} MiB |\n| RSS, last quarter mean | {:.1} MiB |\n| RSS growth | {:+.2}% |\n| memory slope (least squares) | {:+.2} MB/hour |\n| probe p99, first quarter | {:.2} ms |\n| probe p99, last quarter | {:.2} ms |\n| latency drift (last / first) | {:.2}x |\n{warm_row}| server CPU, mean | {:.0}% of one core |\n| whole machine busy (every process), first / last quarter | {:.0}% / {:.0}% |\n\nThe same scenario runs for an hour or a day with `load --scenario soak --duration-secs 3600` (or `86400`), or `report --soak-secs 3600`.\n",
        s.config.scenes, s.config.steps, s.config.task_every_s, s.wall_s, s.config.sample_every_s,
        s.samples.len(), s.samples.last().map_or(0, |x| x.tasks_posted), s.tasks_completed,
        s.probes.errors, s.posts.errors, s.config.warmup_s,
        st.rss_first_quarter_mb, st.rss_last_quarter_mb, st.rss_growth_percent,
        st.memory_slope_mb_per_hour, st.p99_first_quarter_ms, st.p99_last_quarter_ms,
        st.latency_drift_ratio,
        st.cpu_mean_percent, st.machine_cpu_first_quarter_percent, st.machine_cpu_last_quarter_percent,
    );
    plot(o, m, plots)
}

/// Server RSS with its least-squares line after the warm-up, the slowest probe of each
/// sample, and the server's and the whole machine's CPU.
fn plot(o: &mut String, m: &Measured<SoakResult>, plots: &Plots) -> Result<()> {
    let s = &m.result;
    let rss: Vec<(f64, f64)> = s
        .samples
        .iter()
        .map(|x| (x.t_s, x.rss_bytes as f64 / MIB))
        .collect();
    let analysed: Vec<(f64, f64)> = rss
        .iter()
        .copied()
        .filter(|&(t, _)| t >= s.config.warmup_s)
        .collect();
    let fit = linear_fit(
        &analysed
            .iter()
            .map(|&(t, y)| (t / 3600.0, y))
            .collect::<Vec<_>>(),
    );
    let mut rss_series = vec![Series::new("RSS", rss.clone())];
    if let (Some((a, b)), Some(first), Some(last)) = (fit, analysed.first(), analysed.last()) {
        let at = |t: f64| (t, a * t / 3600.0 + b);
        rss_series.push(Series::new(
            "least-squares fit",
            vec![at(first.0), at(last.0)],
        ));
    }
    let probe = s
        .samples
        .iter()
        .map(|x| (x.t_s, x.probe_ms.iter().copied().fold(0.0, f64::max)))
        .collect();
    let cpu = s
        .samples
        .iter()
        .map(|x| (x.t_s, x.cpu_percent as f64 / m.server.cores.max(1) as f64))
        .collect();
    let machine = s
        .samples
        .iter()
        .map(|x| (x.t_s, x.machine_cpu_percent as f64))
        .collect();
    plots.put(
        o,
        "soak.svg",
        "soak: RSS, probe latency and CPU over time",
        &[
            Panel {
                title: "Soak: server RSS".into(),
                x_label: "seconds".into(),
                y_label: "MiB".into(),
                series: rss_series,
                x_format: plain,
            },
            Panel {
                title: "Soak: slowest probe of each sample".into(),
                x_label: "seconds".into(),
                y_label: "ms".into(),
                series: vec![Series::new("probe latency", probe)],
                x_format: plain,
            },
            Panel {
                title: "Soak: CPU".into(),
                x_label: "seconds".into(),
                y_label: "% of the machine".into(),
                series: vec![
                    Series::new("server", cpu),
                    Series::new("whole machine", machine),
                ],
                x_format: plain,
            },
        ],
    )
}
