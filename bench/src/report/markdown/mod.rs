//! The Markdown report and its SVG plots, one function per section, each section in a file of
//! its own, in the order the report shows them.

mod api;
mod burst;
mod cells;
mod gate;
mod generate;
mod header;
mod soak;
mod storage;
mod timelines;
mod verdict_tables;

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::gate::GateResult;
use super::plots::{draw, Panel};
use super::results::Results;
use crate::monitor::ProcessUsage;

/// Where the plots are drawn, and how the Markdown file refers to them.
struct Plots<'a> {
    dir: &'a Path,
    /// How the Markdown file refers to `dir`.
    link: String,
}

impl Plots<'_> {
    /// Draws `panels` into `file` and shows it in `out`.
    fn put(&self, out: &mut String, file: &str, alt: &str, panels: &[Panel]) -> Result<()> {
        draw(&self.dir.join(file), panels)?;
        let _ = writeln!(out, "![{alt}]({}/{file})\n", self.link);
        Ok(())
    }
}

/// A scenario's name and the server's CPU and memory over it, for the last section's plot.
type Timeline<'a> = (String, &'a ProcessUsage);

/// Writes the report for `r` to `out_md`, its plots into `plots_dir`. `command` is how the
/// report was started; `gate` the regression check, if one was asked for.
pub fn write(
    r: &Results,
    out_md: &Path,
    plots_dir: &Path,
    command: &str,
    gate: Option<&GateResult>,
) -> Result<()> {
    std::fs::create_dir_all(plots_dir)
        .with_context(|| format!("creating {}", plots_dir.display()))?;
    let md_dir = out_md.parent().unwrap_or(Path::new("."));
    let link = plots_dir
        .strip_prefix(md_dir)
        .unwrap_or(plots_dir)
        .display()
        .to_string();
    let plots = Plots {
        dir: plots_dir,
        link: if link.is_empty() { ".".into() } else { link },
    };
    let mut o = String::new();
    header::section(&mut o, r, command);
    verdict_tables::targets_section(&mut o, r);
    verdict_tables::goals_section(&mut o, r);
    let mut timelines = Vec::new();
    api::section(&mut o, &r.api, r.api_busy.as_ref(), &plots, &mut timelines)?;
    if let Some(m) = &r.burst {
        burst::section(&mut o, m);
    }
    generate::section(&mut o, &r.generate, &plots, &mut timelines)?;
    if let Some(m) = &r.storage {
        storage::section(&mut o, &m.result, &plots)?;
    }
    if let Some(m) = &r.soak {
        soak::section(&mut o, m, &plots)?;
    }
    timelines::section(&mut o, &timelines, &plots)?;
    if let Some(g) = gate {
        gate::section(&mut o, g);
    }
    std::fs::write(out_md, o).with_context(|| format!("writing {}", out_md.display()))
}
