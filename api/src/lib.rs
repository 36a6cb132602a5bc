//! reel's HTTP API: warp routes over the task service and the engine.
//!
//! [`routes`] is the whole service, built from [`ApiConfig`]. Every path, method and who may
//! call it is one entry of the route table ([`routes::ROUTES`]), which also labels the metrics
//! and generates the OpenAPI document ([`openapi`], at `/openapi.json`). Callers present API
//! keys ([`auth`]; the server runs open on loopback while none exists); a key sees only its own
//! tasks, under per-key quotas ([`quota`]). Requests are validated into `storage::TaskParams`
//! ([`models`]); a task's life belongs to the `tasks` crate's service, which the handlers call;
//! the engine is reached through the [`Backend`] trait (the binary implements it over
//! `pipeline::engine::Engine`; the tests use a fake), whose types live in the `contract` crate,
//! so this crate builds without the engine. Progress comes back as server-sent events
//! ([`sse`]) and a live multipart PNG stream ([`stream`]); videos and frames are files under
//! the data dir ([`media`]). Every rejection, warp's own included, becomes one JSON shape
//! `{"code", "message"}` in [`errors::recover`], which never leaks paths or debug text.
//! The OpenAI-style video API (`/v1/videos`, [`openai`]) maps onto the same tasks.
//! Operators get Prometheus metrics at `/metrics` ([`metrics`]) and a JSON summary at
//! `/api/stats` ([`stats`]), both for admin keys (or `/metrics` on a listener of its own,
//! [`metrics_only`]). People get a web page at `/` ([`page`]), embedded in the binary.
//!
//! ```no_run
//! # async fn serve(tasks: std::sync::Arc<tasks::TaskService>, engine: std::sync::Arc<dyn api::Backend>) {
//! let api = api::routes(tasks, engine, api::ApiConfig::new("./data".into())).unwrap();
//! warp::serve(api).run(([127, 0, 0, 1], 8000)).await;
//! # }
//! ```
#![warn(missing_docs)]

pub mod auth;
mod backend;
pub mod disk;
pub mod errors;
mod filters;
mod handlers;
mod media;
pub mod metrics;
pub mod models;
pub mod openai;
pub mod openapi;
pub mod page;
pub mod quota;
pub mod routes;
mod sse;
pub mod stats;
mod stream;
pub mod webhook_target;

pub use backend::Backend;
pub use errors::ApiError;
pub use filters::{metrics_only, routes, ApiConfig};
