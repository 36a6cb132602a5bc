//! The regression gate's section: the verdict, and each figure against its baseline.

use std::fmt::Write as _;

use crate::report::gate::GateResult;

pub fn section(o: &mut String, g: &GateResult) {
    let _ = writeln!(
        o,
        "## Regression gate\n\nAgainst the baseline of {} with a margin of {:.0}% (plus each figure's absolute slack): **{}**.\n",
        g.baseline_date,
        g.margin * 100.0,
        if g.passed() { "passed" } else { "FAILED" }
    );
    o.push_str("| figure | baseline | now | |\n|---|---|---|---|\n");
    for c in &g.compared {
        let _ = writeln!(
            o,
            "| {} | {:.3} {} | {:.3} {} | {} |",
            c.label,
            c.baseline,
            c.unit,
            c.now,
            c.unit,
            if c.regressed { "**regressed**" } else { "ok" }
        );
    }
    o.push('\n');
}
