//! The regression gate: a stored baseline of figures and the check of a run against it.
//!
//! A figure regresses when it is worse than the baseline's by more than the margin (a
//! fraction, e.g. 0.25) plus the figure's absolute slack, which keeps tiny figures (a 0.03 ms
//! latency, an RSS of a few MiB) from failing on noise:
//! lower-is-better: `now > base * (1 + margin) + slack`;
//! higher-is-better: `now < base * (1 - margin) - slack`.
//! Figures in only one of the two are listed but never fail the gate.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::figures::{Better, Figure};

/// The stored baseline: when and where it was measured, and its figures by key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Baseline {
    /// When the baseline run was measured (its [`Results::date`](super::results::Results::date)).
    pub date: String,
    /// The machine it was measured on, as [`Machine::describe`](super::machine::Machine::describe)
    /// words it.
    pub machine: String,
    /// The values of its gated figures, by [`Figure::key`].
    pub figures: BTreeMap<String, f64>,
}

impl Baseline {
    /// The gated figures of a run.
    pub fn of(date: &str, machine: &str, figures: &[Figure]) -> Baseline {
        Baseline {
            date: date.to_owned(),
            machine: machine.to_owned(),
            figures: figures
                .iter()
                .filter(|f| f.gated)
                .map(|f| (f.key.clone(), f.value))
                .collect(),
        }
    }

    /// Reads a baseline saved as JSON at `path`.
    pub fn load(path: &Path) -> Result<Baseline> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the baseline {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Writes the baseline to `path` as pretty-printed JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// One figure against its baseline value.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    /// The figure's [`Figure::key`].
    pub key: String,
    /// The figure's [`Figure::label`].
    pub label: String,
    /// The figure's [`Figure::unit`].
    pub unit: String,
    /// The baseline's value.
    pub baseline: f64,
    /// Which way the figure improves.
    pub better: Better,
    /// The worst `now` that passes: the baseline with the margin and the figure's slack.
    pub limit: f64,
    /// This run's value.
    pub now: f64,
    /// Whether `now` is beyond `limit`, on the worse side.
    pub regressed: bool,
}

/// The gate's verdict on a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GateResult {
    /// The relative margin allowed, a fraction (e.g. 0.25).
    pub margin: f64,
    /// When the baseline was measured.
    pub baseline_date: String,
    /// Every gated figure of the run that the baseline has too, in report order.
    pub compared: Vec<Comparison>,
    /// Baseline figures this run did not measure.
    pub missing: Vec<String>,
}

impl GateResult {
    /// The compared figures that regressed.
    pub fn regressions(&self) -> impl Iterator<Item = &Comparison> {
        self.compared.iter().filter(|c| c.regressed)
    }

    /// Whether no figure regressed (a figure missing on either side never fails).
    pub fn passed(&self) -> bool {
        self.regressions().next().is_none()
    }
}

/// The worst value of `f` that is not worse than `base` beyond `margin` and its slack.
fn limit(f: &Figure, base: f64, margin: f64) -> f64 {
    match f.better {
        Better::Lower => base * (1.0 + margin) + f.slack,
        Better::Higher => base * (1.0 - margin) - f.slack,
    }
}

/// Whether `value` is beyond `limit`, on the worse side of it.
pub fn beyond(value: f64, limit: f64, better: Better) -> bool {
    match better {
        Better::Lower => value > limit,
        Better::Higher => value < limit,
    }
}

/// Compares a run's gated figures with the baseline.
pub fn check(figures: &[Figure], baseline: &Baseline, margin: f64) -> GateResult {
    let compared: Vec<Comparison> = figures
        .iter()
        .filter(|f| f.gated)
        .filter_map(|f| {
            let base = *baseline.figures.get(&f.key)?;
            let limit = limit(f, base, margin);
            Some(Comparison {
                key: f.key.clone(),
                label: f.label.clone(),
                unit: f.unit.to_owned(),
                baseline: base,
                better: f.better,
                limit,
                now: f.value,
                regressed: beyond(f.value, limit, f.better),
            })
        })
        .collect();
    let missing = baseline
        .figures
        .keys()
        .filter(|k| !compared.iter().any(|c| &c.key == *k))
        .cloned()
        .collect();
    GateResult {
        margin,
        baseline_date: baseline.date.clone(),
        compared,
        missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(key: &str, value: f64, better: Better, slack: f64) -> Figure {
        Figure {
            key: key.into(),
            label: key.into(),
            value,
            unit: "ms",
            better,
            slack,
            gated: true,
        }
    }

    #[test]
    fn margin_and_slack_decide() {
        let base = Baseline {
            date: "d".into(),
            machine: "m".into(),
            figures: [("lat".to_owned(), 10.0), ("rps".to_owned(), 100.0)].into(),
        };
        let ok = [
            fig("lat", 12.0, Better::Lower, 0.0),
            fig("rps", 80.0, Better::Higher, 0.0),
        ];
        assert!(check(&ok, &base, 0.25).passed());
        let slow = [fig("lat", 13.0, Better::Lower, 0.0)];
        assert!(!check(&slow, &base, 0.2).passed());
        let within_slack = [fig("lat", 13.0, Better::Lower, 1.0)];
        assert!(check(&within_slack, &base, 0.2).passed());
        let fewer = [fig("rps", 70.0, Better::Higher, 0.0)];
        let r = check(&fewer, &base, 0.25);
        assert_eq!(r.regressions().count(), 1);
        assert_eq!(r.compared[0].limit, 75.0);
        assert_eq!(r.missing, vec!["lat".to_owned()]);
    }
}
