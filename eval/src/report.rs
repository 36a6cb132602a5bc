//! Verdicts -> per-attribute accuracy: rows for all scenes, the held-out (colour, shape)
//! pairs (composition the model never saw) and each size, as data or as a Markdown table.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Verdict, ATTRS};
use pipeline::world::{Size, HELD_OUT};

/// Accuracy of one subset of verdicts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// Which subset, as the table's first column shows it.
    pub label: String,
    /// Scenes in the subset.
    pub n: usize,
    /// Fraction passing each attribute, in [`ATTRS`] order (0 for an empty subset).
    pub accuracy: [f64; 5],
    /// Fraction passing every attribute.
    pub all: f64,
}

impl Row {
    /// The row of the verdicts `keep` selects.
    pub fn of(label: &str, verdicts: &[Verdict], keep: impl Fn(&Verdict) -> bool) -> Row {
        let subset: Vec<&Verdict> = verdicts.iter().filter(|v| keep(v)).collect();
        let n = subset.len();
        let rate = |ok: usize| if n == 0 { 0.0 } else { ok as f64 / n as f64 };
        Row {
            label: label.to_owned(),
            n,
            accuracy: ATTRS.map(|a| rate(subset.iter().filter(|v| v.pass(a)).count())),
            all: rate(subset.iter().filter(|v| v.all_pass()).count()),
        }
    }
}

/// Whether a verdict's expected scene is one of the held-out pairs.
pub fn held_out(v: &Verdict) -> bool {
    HELD_OUT.contains(&(v.expected.color, v.expected.shape))
}

/// Rows: all scenes, the held-out pairs, then one per size.
pub fn rows(verdicts: &[Verdict]) -> Vec<Row> {
    let mut out = vec![
        Row::of("all", verdicts, |_| true),
        Row::of("held-out pairs", verdicts, held_out),
    ];
    for &size in Size::ALL {
        let label = format!("size {}", size.name());
        out.push(Row::of(&label, verdicts, |v| v.expected.size == size));
    }
    out
}

/// The rows as a Markdown table of percentages.
pub fn markdown(rows: &[Row]) -> String {
    let mut s =
        String::from("| scenes | n | background | colour | shape | size | motion | all |\n");
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = write!(s, "| {} | {} |", r.label, r.n);
        for a in r.accuracy.iter().chain([&r.all]) {
            let _ = write!(s, " {:.1}% |", 100.0 * a);
        }
        s.push('\n');
    }
    s
}
