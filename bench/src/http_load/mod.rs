//! The HTTP scenarios against a running [`Server`](crate::server::Server), one file each:
//! `api` (concurrent users over a fixed number of requests cycling through the endpoints,
//! optionally while `feeder` keeps the compute busy with generation), `burst` (many
//! connections at one moment), `generate` (concurrent generation tasks against a single
//! one) and `first_frames` (time to the first preview and frame seen over SSE, several
//! server configurations side by side); `client` holds what they share.

mod api;
mod burst;
mod client;
mod feeder;
mod first_frames;
mod generate;

pub use api::{api, parse_think_ms, ApiLoad, ApiResult, CONTRACT_OPS, OPS};
pub use burst::{burst, BurstResult};
pub use client::{outcome, timed, PROMPT};
pub use first_frames::{
    default_variants, first_frames, table, CellRun, CellSummary, FirstFramesConfig,
    FirstFramesResult, TaskTimes, Variant,
};
pub use generate::{generate, GenerateResult, TaskGroup, TaskRun, TaskShape};
