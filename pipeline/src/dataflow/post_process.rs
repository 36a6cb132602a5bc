//! `post_process`: base frames -> delivered frames, streamed to watchers as they exist.
//!
//! Input: [`DenoisedScene`] (pipelined). Output: [`ProcessedScene`] at the same epoch.
//! Each scene is upscaled, interpolated to the delivered rate and converted to YUV as soon as
//! it is denoised (overlapping the denoising of later scenes); its frames are written as PNG
//! and published as JPEG to live watchers. Capabilities: none held.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use storage::TaskStatus;

use super::context::Context;
use super::messages::{DenoisedScene, ProcessedScene};
use crate::encode::{jpeg_rgb, png_rgb};

/// JPEG quality of live-stream frames.
const STREAM_JPEG_QUALITY: u8 = 85;

pub trait PostProcess<'s> {
    fn post_process(self, ctx: Arc<Context>) -> StreamVec<'s, u64, ProcessedScene>;
}

impl<'s> PostProcess<'s> for StreamVec<'s, u64, DenoisedScene> {
    fn post_process(self, ctx: Arc<Context>) -> StreamVec<'s, u64, ProcessedScene> {
        self.unary(Pipeline, "post_process", move |_cap, _info| {
            let mut left: HashMap<u64, usize> = HashMap::new();
            move |input, output| {
                input.for_each_stamp(|cap, data| {
                    let mut session = output.session(&cap);
                    for scene in data.flat_map(|d| d.drain(..)) {
                        let task = scene.job.task;
                        if ctx.cancelled(task) {
                            left.remove(&task);
                            continue;
                        }
                        match process(&ctx, &scene) {
                            Ok(done) => session.give(done),
                            Err(e) => {
                                fail(&ctx, task, &e);
                                left.remove(&task);
                                continue;
                            }
                        }
                        let n = left.entry(task).or_insert(scene.job.count);
                        *n -= 1;
                        if *n == 0 {
                            left.remove(&task);
                            ctx.set_status(task, TaskStatus::Encoding);
                        }
                    }
                });
            }
        })
    }
}

fn process(ctx: &Context, scene: &DenoisedScene) -> anyhow::Result<ProcessedScene> {
    let job = &scene.job;
    let t = Instant::now();
    let size = job.params.size as usize;
    let frames = ctx.post.process(&scene.clip, size, job.out_frames())?;
    let secs = t.elapsed();
    ctx.add_timing(job.task, "post_process", secs.as_millis() as u64);
    metrics::histogram!("reel_stage_seconds", "stage" => "post_process").record(secs.as_secs_f64());

    let t = Instant::now();
    let dir = ctx
        .data_dir
        .join(Context::artifact_dir(job.task))
        .join("frames");
    fs::create_dir_all(&dir)?;
    let first = job.index * job.out_frames();
    for (i, rgb) in frames.rgb.iter().enumerate() {
        let index = first + i;
        write_atomically(
            &dir.join(format!("{index:05}.png")),
            &png_rgb(size as u32, size as u32, rgb)?,
        )?;
        let jpeg = jpeg_rgb(size as u32, size as u32, rgb, STREAM_JPEG_QUALITY)?;
        ctx.hub.frame(job.task, index, Arc::new(jpeg));
    }
    ctx.add_timing(job.task, "publish", t.elapsed().as_millis() as u64);
    Ok(ProcessedScene {
        job: job.clone(),
        frames: Arc::new(frames),
    })
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// Marks the task failed (stopping its other scenes) and tells its watchers.
pub fn fail(ctx: &Context, task: u64, error: &anyhow::Error) {
    tracing::error!(task, error = %error, "task failed");
    metrics::counter!("reel_errors_total", "kind" => "task_failed").increment(1);
    ctx.update(task, |r| {
        r.status = TaskStatus::Failed;
        r.error = Some(error.to_string());
    });
    ctx.hub.cancel(task);
    ctx.hub.done(task, TaskStatus::Failed);
}
