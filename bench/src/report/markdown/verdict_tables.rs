//! The sections that judge the run: the original targets and the goals of issue 6.

use std::fmt::Write as _;

use crate::report::results::Results;
use crate::report::verdicts::{goals, targets, Verdict};

fn verdict_table(out: &mut String, rows: &[Verdict]) {
    out.push_str("| target | measured | verdict |\n|---|---|---|\n");
    for v in rows {
        let mark = match v.pass {
            Some(true) => "**pass**",
            Some(false) => "**FAIL**",
            None => "n/a",
        };
        let _ = writeln!(out, "| {} | {} | {mark} |", v.target, v.measured);
    }
    out.push('\n');
}

pub fn targets_section(o: &mut String, r: &Results) {
    o.push_str("## The original targets\n\n");
    verdict_table(o, &targets(r));
}

pub fn goals_section(o: &mut String, r: &Results) {
    o.push_str("## The goals of issue 6, on this machine\n\n");
    verdict_table(o, &goals(r));
}
