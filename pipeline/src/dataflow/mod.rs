//! The timely dataflow that turns tasks into videos, one operator per stage and file.
//!
//! `TaskIn -> plan_tasks -> lookup_cache -> denoise -> post_process -> encode_video -> probe`.
//! `denoise` admits scenes in `fair_queue.rs` order, a task's scenes staggered
//! (`schedule.rs`), and publishes previews of watched scenes mid-run (`preview.rs`).
//! Each task is its own epoch, so the probe's frontier passing an epoch means that task has
//! left the graph entirely (completed, cached, failed or cancelled).

mod context;
mod denoise;
mod encode_video;
mod fair_queue;
mod lookup_cache;
mod messages;
mod plan_tasks;
mod post_pool;
mod post_process;
mod preview;
mod schedule;

pub use context::Context;
pub use messages::TaskIn;

use std::sync::Arc;

use timely::dataflow::operators::Probe;
use timely::dataflow::{ProbeHandle, StreamVec};

use denoise::Denoise;
use encode_video::EncodeVideo;
use lookup_cache::LookupCache;
use plan_tasks::PlanTasks;
use post_process::PostProcess;

/// Builds the stages over the stream of incoming tasks; the probe reports finished epochs.
pub fn build<'s>(tasks: StreamVec<'s, u64, TaskIn>, ctx: Arc<Context>, probe: &ProbeHandle<u64>) {
    tasks
        .plan_tasks(ctx.clone())
        .lookup_cache(ctx.clone())
        .denoise(ctx.clone())
        .post_process(ctx.clone())
        .encode_video(ctx)
        .probe_with(probe);
}
