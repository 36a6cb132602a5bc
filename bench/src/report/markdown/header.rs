//! The report's opening: when and where it was measured, by which command, and how to read
//! its CPU and RSS figures.

use std::fmt::Write as _;

use crate::report::results::Results;

/// The title and the paragraph under it; `command` is how the run was started.
pub fn section(o: &mut String, r: &Results, command: &str) {
    let _ = writeln!(
        o,
        "# reel benchmark report\n\nMeasured {} on {}.\nRelease build; every HTTP scenario \
         runs against a fresh `reel serve` on loopback, started by the bench; the whole run took \
         {:.0} s. Written by\n\n    {command}\n\nCPU figures are the server's mean over the \
         scenario as a share of the whole machine ({} cores); RSS is the server's largest.\n",
        r.date,
        r.machine.describe(),
        r.wall_s,
        r.machine.cores
    );
    if !r.kept.is_empty() {
        let _ = writeln!(
            o,
            "Taken from other runs on the same machine: {}.\n",
            r.kept.join(", ")
        );
    }
}
