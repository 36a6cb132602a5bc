//! The pipeline: everything between an accepted task and its finished video.
//!
//! The api crate hands task ids to the [`engine::Engine`]; the engine runs one timely dataflow
//! in which each task is its own epoch: plan ([`planner`]) -> cache lookup -> denoise (the
//! `kernels` model, continuous batching) -> post-process ([`post`]) -> encode ([`encode`]) ->
//! persist (the `storage` crate) -> publish (events to watchers). [`world`], [`render`] and
//! [`eval`] describe, draw and judge the scenes of shared/WORLD.md.

mod dataflow;
pub mod encode;
pub mod engine;
pub mod eval;
pub mod governor;
pub mod health;
pub mod plan;
pub mod planner;
pub mod post;
pub mod render;
pub mod world;
