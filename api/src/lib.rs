//! reel's HTTP API: warp routes over the task store and the generation pipeline.
//!
//! [`routes`] is the whole service. Requests are validated into `storage::TaskParams`
//! ([`models`]), persisted in the `storage` crate, and handed to the pipeline through the
//! [`Backend`] trait, which the binary implements over `pipeline::engine::Engine` (the tests
//! use a fake). Progress comes back as server-sent events ([`sse`]) and a live MJPEG stream
//! ([`stream`]); finished videos and frames are files under the data dir ([`media`]). Every
//! rejection, warp's own included, becomes one JSON shape `{"code", "message"}` in
//! [`errors::recover`]. The contract is written down in [`openapi`], served at
//! `/openapi.json`. Operators get Prometheus metrics at `/metrics` ([`metrics`], mounted by
//! [`routes_with_metrics`]) and a JSON summary of the host and the queue at `/api/stats`
//! ([`stats`]).

mod backend;
pub mod errors;
mod filters;
mod handlers;
mod media;
pub mod metrics;
pub mod models;
pub mod openapi;
mod sse;
pub mod stats;
mod stream;

pub use backend::Backend;
pub use errors::ApiError;
pub use filters::{routes, routes_with_metrics};
