//! The burst section: one row, and the reading of its tail when it shows retransmitted SYNs.

use std::fmt::Write as _;

use super::cells::{summary_cells, usage_cells, SUMMARY_HEAD};
use crate::http_load::BurstResult;
use crate::report::results::Measured;
use crate::report::verdicts::waited_for_syn_retry;

pub fn section(o: &mut String, m: &Measured<BurstResult>) {
    let t = &m.result.total;
    let _ = writeln!(
        o,
        "## Burst\n\n{} clients, each on its own connection, send one `GET /api/tasks` at the \
         same moment.\n\n| {SUMMARY_HEAD} |\n|{}\n| {} | {} |\n",
        m.result.connections,
        "---|".repeat(10),
        summary_cells(t),
        usage_cells(&m.server)
    );
    if waited_for_syn_retry(t) {
        let _ = writeln!(
            o,
            "The slowest connection took {:.0} ms, at least the 1 s Linux waits before it \
             retransmits a SYN: the slowest connections wait for a retransmitted SYN when the \
             server's accept queue overflows; see `docs/PERFORMANCE.md`, section \"Load, \
             storage and soak\".\n",
            t.latency_ms.max
        );
    }
}
