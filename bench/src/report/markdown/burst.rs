//! The burst section: one row, and why its slowest connections are slow.

use std::fmt::Write as _;

use super::cells::{summary_cells, usage_cells, SUMMARY_HEAD};
use crate::http_load::BurstResult;
use crate::report::results::Measured;

pub fn section(o: &mut String, m: &Measured<BurstResult>) {
    let _ = writeln!(
        o,
        "## Burst\n\n{} clients, each on its own connection, send one `GET /api/tasks` at the \
         same moment.\n\n| {SUMMARY_HEAD} |\n|{}\n| {} | {} |\n",
        m.result.connections,
        "---|".repeat(10),
        summary_cells(&m.result.total),
        usage_cells(&m.server)
    );
    o.push_str(
        "The slowest connections wait for a retransmitted SYN (about 1 s on Linux) when \
         the server's accept queue overflows; see `docs/PERFORMANCE.md`, section \"Load, \
         storage and soak\".\n\n",
    );
}
