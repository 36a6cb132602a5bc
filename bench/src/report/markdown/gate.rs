//! The regression gate's section: the verdict, and each figure against its baseline and the
//! limit the margin and its slack allow.

use std::fmt::Write as _;

use crate::report::figures::Better;
use crate::report::gate::{beyond, GateResult};
use crate::report::verdicts::decimals;

pub fn section(o: &mut String, g: &GateResult) {
    let _ = writeln!(
        o,
        "## Regression gate\n\nAgainst the baseline of {} with a margin of {:.0}% (plus each figure's absolute slack): **{}**.\n",
        g.baseline_date,
        g.margin * 100.0,
        if g.passed() { "passed" } else { "FAILED" }
    );
    o.push_str("| figure | baseline | limit | now | |\n|---|---|---|---|---|\n");
    for c in &g.compared {
        let bound = match c.better {
            Better::Lower => "at most",
            Better::Higher => "at least",
        };
        // `now` printed on the same side of the limit as it is, and the limit as finely, so
        // that "ok" or "regressed" follows from the row.
        let d = decimals(c.now, 3, |now| beyond(now, c.limit, c.better));
        let _ = writeln!(
            o,
            "| {} | {:.3} {} | {bound} {:.d$} {} | {:.d$} {} | {} |",
            c.label,
            c.baseline,
            c.unit,
            c.limit,
            c.unit,
            c.now,
            c.unit,
            if c.regressed { "**regressed**" } else { "ok" }
        );
    }
    o.push('\n');
}
