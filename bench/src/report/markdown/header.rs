//! The report's opening: when and where it was measured, by which command, and how to read
//! its CPU and RSS figures.

use std::fmt::Write as _;

use crate::report::results::Results;

/// The title and the paragraph under it. `command` wrote this report; when that is not the
/// command that measured `r` (a report rewritten with `--input`), both are given.
pub fn section(o: &mut String, r: &Results, command: &str) {
    let _ = writeln!(
        o,
        "# reel benchmark report\n\nMeasured {} on {}.\nRelease build; every HTTP scenario \
         runs against a fresh `reel serve` on loopback, started by the bench; the whole run took \
         {:.0} s. {}\n\nCPU figures are the server's mean over the scenario as a share of the \
         whole machine ({} cores); RSS is the server's largest.\n",
        r.date,
        r.machine.describe(),
        r.wall_s,
        provenance(&r.command, command),
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

/// Which command measured the results and which wrote the report.
fn provenance(measured_by: &str, written_by: &str) -> String {
    match measured_by {
        m if m == written_by => format!("Written by\n\n    {written_by}"),
        "" => format!(
            "Written from the saved results of this run, which do not record the command that measured them, by\n\n    {written_by}"
        ),
        m => format!("Measured by\n\n    {m}\n\nand written from its saved results by\n\n    {written_by}"),
    }
}
