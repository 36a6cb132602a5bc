//! SVG charts of a run (plotters, SVG backend only): line charts stacked in panels, one file
//! per chart.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

/// One named line.
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its `(x, y)` points, joined in this order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// The line `name` through `points`.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
        }
    }
}

/// One panel: lines over a shared x axis.
pub struct Panel {
    /// The caption above the chart.
    pub title: String,
    /// The x axis's description.
    pub x_label: String,
    /// The y axis's description.
    pub y_label: String,
    /// The lines, each in a colour of its own.
    pub series: Vec<Series>,
    /// How x values are written on the axis (e.g. `10^x` for a log-scaled axis).
    pub x_format: fn(&f64) -> String,
}

/// For plain axes: whole numbers without decimals, others with one.
pub fn plain(x: &f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// For axes that carry log10 of the value.
pub fn pow10(x: &f64) -> String {
    let v = 10f64.powf(*x);
    if v >= 1000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

/// The range of `values` with some headroom; a flat or empty range is widened.
fn span(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let lo = if from_zero { lo.min(0.0) } else { lo };
    if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi + (hi - lo) * 0.08)
    }
}

/// Draws `panels` stacked vertically into an SVG at `path`.
pub fn draw(path: &Path, panels: &[Panel]) -> Result<()> {
    let height = 320 * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (860, height)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    for (area, panel) in root
        .split_evenly((panels.len().max(1), 1))
        .iter()
        .zip(panels)
    {
        let all = || panel.series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) = span(all().map(|p| p.0), false);
        let (y0, y1) = span(all().map(|p| p.1), true);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(&panel.x_label)
            .y_desc(&panel.y_label)
            .x_label_formatter(&panel.x_format)
            .draw()
            .map_err(|e| err(&e))?;
        for (i, s) in panel.series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    colour.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(&s.name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
            if s.points.len() <= 40 {
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(|e| err(&e))?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
