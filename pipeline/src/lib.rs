//! The pipeline: everything between an accepted task and its finished video.
//!
//! The api crate hands task ids to the [`engine::Engine`]; the engine runs one timely dataflow
//! in which each task is its own epoch: plan ([`planner`]) -> cache lookup -> denoise (the
//! `kernels` model, continuous batching) -> post-process ([`post`]) -> encode ([`encode`]) ->
//! persist (the `storage` crate) -> publish (events to watchers). [`world`] describes the
//! scenes of shared/WORLD.md (the `eval` crate draws and judges them). [`inprocess`] is the
//! whole of it as a library: store, task service and engine behind submit, events, frames
//! and cancel, which the binary's commands and the Python package (`python/`) use.

#![warn(missing_docs)]

pub mod cluster;
mod dataflow;
pub mod encode;
pub mod engine;
pub mod governor;
pub mod health;
pub mod inprocess;
pub mod plan;
pub mod planner;
pub mod post;
pub mod world;
