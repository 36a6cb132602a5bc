//! The timely dataflow that turns tasks into videos, one operator per stage and file.
//!
//! `TaskIn -> plan_tasks -> lookup_cache -> denoise -> post_process -> encode_video -> probe`,
//! with `denoise`'s reports (steps, previews, failures) going to `apply_reports` and process
//! 0's [`Control`] (tasks ended, tasks watched) broadcast into `denoise`.
//! `denoise` admits scenes in `fair_queue.rs` order, a task's scenes staggered
//! (`schedule.rs`), and previews watched scenes mid-run (`preview.rs`).
//! Each task is its own epoch, so the probe's frontier passing an epoch means that task has
//! left the graph entirely (completed, cached, failed or cancelled).
//!
//! Where each runs: a task's life (store, events, artifacts) belongs to process 0, so
//! planning, the cache, post-processing, encoding and the reports run on its workers (the
//! task's home worker, by a hash of its parameters); `denoise`, the compute, runs on every
//! worker of every process (timely's cluster mode), scenes exchanged to the denoiser
//! `placement.rs` chose (the least loaded, or an identical task's) and their finished latents
//! exchanged back home. On one process the exchanges stay within it.

mod apply_reports;
mod context;
mod denoise;
mod encode_video;
mod fair_queue;
mod lookup_cache;
mod messages;
mod placement;
mod plan_tasks;
mod post_pool;
mod post_process;
mod preview;
mod schedule;

pub use context::{Context, Home, Layout};
pub use messages::{Control, Controlled, TaskIn};

use std::sync::Arc;

use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::OkErr;
use timely::dataflow::operators::Probe;
use timely::dataflow::{ProbeHandle, StreamVec};

use apply_reports::ApplyReports;
use denoise::Denoise;
use encode_video::EncodeVideo;
use lookup_cache::LookupCache;
use messages::{DenoiseOut, DenoisedScene, Report};
use plan_tasks::PlanTasks;
use post_process::PostProcess;

/// Builds the stages over the streams of incoming tasks and process 0's control messages;
/// the probe reports finished epochs. Every worker of every process builds the same graph.
pub fn build<'s>(
    tasks: StreamVec<'s, u64, TaskIn>,
    control: StreamVec<'s, u64, Control>,
    ctx: Arc<Context>,
    probe: &ProbeHandle<u64>,
) {
    let (scenes, reports) = tasks
        .plan_tasks(ctx.clone())
        .lookup_cache(ctx.clone())
        .denoise(control.broadcast(), ctx.clone())
        .ok_err::<Vec<DenoisedScene>, _, Vec<Report>, _, _>(|out| match out {
            DenoiseOut::Scene(scene) => Ok(scene),
            DenoiseOut::Report(report) => Err(report),
        });
    reports.apply_reports(ctx.clone());
    scenes
        .post_process(ctx.clone())
        .encode_video(ctx)
        .probe_with(probe);
}
