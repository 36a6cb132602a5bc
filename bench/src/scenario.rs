//! The load scenarios, named alike by the `load` binary (one at a time) and the `report`
//! binary (a list of them).

use clap::ValueEnum;
use serde::Serialize;

/// One load scenario, as named on the command line (`api-busy`, ...) and in `load --json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Concurrent users cycling through every endpoint, back to back or paced.
    Api,
    /// The `api` scenario while default tasks keep generation saturating the compute.
    ApiBusy,
    /// Many connections sending one request at the same moment.
    Burst,
    /// Concurrent generation tasks against a single one.
    Generate,
    /// Time to the first preview and frame over SSE, server configurations side by side.
    FirstFrames,
    /// reel's sled store driven directly, without a server.
    Storage,
    /// Tasks over a long time with the server's RSS, CPU and latency sampled.
    Soak,
}
