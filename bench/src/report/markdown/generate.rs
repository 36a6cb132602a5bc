//! The generation section: each task size alone and concurrent, with the makespan plot.

use std::fmt::Write as _;

use anyhow::Result;

use super::cells::usage_cells;
use super::{Plots, Timeline};
use crate::http_load::GenerateResult;
use crate::report::plots::{plain, Panel, Series};
use crate::report::results::Measured;

/// Writes the section when the run generated, and adds each run's server usage to
/// `timelines`.
pub fn section<'a>(
    o: &mut String,
    runs: &'a [Measured<GenerateResult>],
    plots: &Plots,
    timelines: &mut Vec<Timeline<'a>>,
) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    o.push_str("## Generation\n\nOne task alone, then k tasks submitted together (distinct seeds, so no cache hits).\n\n| scenes | steps | tasks | makespan s | median first frame s | scenes/s | vs one task | all completed | server CPU (of machine) | server RSS |\n|---|---|---|---|---|---|---|---|---|---|\n");
    let mut makespan = Vec::new();
    for m in runs {
        let g = &m.result;
        let first = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.2}"));
        let _ = writeln!(
            o,
            "| {} | {} | 1 | {:.2} | {} | {:.2} | 1.00x | {} | {} |",
            g.shape.scenes,
            g.shape.steps,
            g.single.wall_s,
            first(g.single.first_frame_median_s()),
            g.single.scenes_per_s,
            g.single.all_completed,
            usage_cells(&m.server)
        );
        for c in &g.concurrent {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.2} | {} | {:.2} | {:.2}x | {} | |",
                g.shape.scenes,
                g.shape.steps,
                c.tasks,
                c.wall_s,
                first(c.first_frame_median_s()),
                c.scenes_per_s,
                g.speedup(c),
                c.all_completed
            );
        }
        let mut pts = vec![(1.0, g.single.wall_s)];
        pts.extend(g.concurrent.iter().map(|c| (c.tasks as f64, c.wall_s)));
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        makespan.push(Series::new(format!("{} scenes", g.shape.scenes), pts));
        timelines.push((format!("generate, {} scenes", g.shape.scenes), &m.server));
    }
    o.push('\n');
    plots.put(
        o,
        "generate.svg",
        "generation makespan by concurrent tasks",
        &[Panel {
            title: "Generation makespan".into(),
            x_label: "concurrent tasks".into(),
            y_label: "seconds".into(),
            series: makespan,
            x_format: plain,
        }],
    )
}
