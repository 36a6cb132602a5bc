//! `encode_video`: delivered frames -> one MP4 per task, stored and published.
//!
//! Input: [`ProcessedScene`] (pipelined, on process 0). Output: the id of each completed task, at its epoch.
//! Scenes are fed to the task's H.264 encoder in scene order (early arrivals wait in a small
//! buffer); after the last one the MP4 is written, the task completed in storage, the result
//! cached and watchers told. Capabilities: none held (a task completes in the activation that
//! brings its last missing scene, under that message's capability).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::sync::Arc;
use std::time::Instant;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use storage::{now_ms, task_dir, Artifact, TaskStatus};

use super::context::{Context, Home};
use super::messages::ProcessedScene;
use super::post_process::{discard_written, write_atomically};
use crate::encode::Mp4Encoder;

/// The `encode_video` operator on a stream of processed scenes.
///
/// Input: [`ProcessedScene`], pipelined (no exchange: a task's scenes all come through one
/// worker). Output: the id of each task completed here, at its epoch. Capabilities: none held;
/// a task completes in the activation that brings its last missing scene.
pub trait EncodeVideo<'s> {
    /// Feeds each task's scenes, in scene order, to its H.264 encoder; after the last one
    /// writes the MP4, completes the task (through the task service) and caches the result.
    fn encode_video(self, ctx: Arc<Context>) -> StreamVec<'s, u64, u64>;
}

/// One task's encoder and the scenes that arrived before their turn.
struct Pending {
    encoder: Mp4Encoder,
    next: usize,
    early: BTreeMap<usize, ProcessedScene>,
    frames: usize,
}

impl<'s> EncodeVideo<'s> for StreamVec<'s, u64, ProcessedScene> {
    fn encode_video(self, ctx: Arc<Context>) -> StreamVec<'s, u64, u64> {
        self.unary(Pipeline, "encode_video", move |_cap, _info| {
            let mut pending: HashMap<u64, Pending> = HashMap::new();
            let home = ctx.home.clone();
            move |input, output| {
                let Some(home) = home.as_deref() else {
                    input.for_each_stamp(|_, _| {});
                    return;
                };
                pending.retain(|id, _| home.live(*id));
                input.for_each_stamp(|cap, data| {
                    let mut session = output.session(&cap);
                    for scene in data.flat_map(|d| d.drain(..)) {
                        let task = scene.job.task;
                        if !home.live(task) {
                            continue;
                        }
                        match accept(home, &mut pending, scene) {
                            Ok(true) => session.give(task),
                            Ok(false) => {}
                            Err(e) => {
                                pending.remove(&task);
                                home.tasks.fail(task, &format!("encoding: {e:#}"));
                            }
                        }
                    }
                });
            }
        })
    }
}

/// Feeds what can be fed; Ok(true) when the task just completed.
fn accept(
    home: &Home,
    pending: &mut HashMap<u64, Pending>,
    scene: ProcessedScene,
) -> anyhow::Result<bool> {
    let task = scene.job.task;
    let count = scene.job.count;
    let key = scene.job.cache_key.clone();
    let params = scene.job.params.clone();
    let (width, height) = params.frame_size();
    let _span = tracing::debug_span!("encode", task, scene = scene.job.index).entered();
    let t = Instant::now();
    let state = match pending.entry(task) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(Pending {
            encoder: Mp4Encoder::new(width, height, params.fps)?,
            next: 0,
            early: BTreeMap::new(),
            frames: 0,
        }),
    };
    state.early.insert(scene.job.index, scene);
    while let Some(s) = state.early.remove(&state.next) {
        for frame in &s.frames.yuv {
            state.encoder.push(frame)?;
        }
        state.frames += s.frames.yuv.len();
        state.next += 1;
        let _ = home.tasks.patch(task, |r| r.scenes_done = state.next);
    }
    home.add_timing(task, "encode", t.elapsed().as_millis() as u64);
    if state.next < count {
        return Ok(false);
    }
    let Some(done) = pending.remove(&task) else {
        return Ok(false);
    };
    let t = Instant::now();
    let mp4 = done.encoder.finish()?;
    let dir = task_dir(task);
    let task_root = home.data_dir.join(&dir);
    fs::create_dir_all(&task_root)?;
    let video = format!("{dir}/video.mp4");
    let video_path = home.data_dir.join(&video);
    write_atomically(&video_path, &mp4)?;
    let artifact = Artifact {
        video,
        frames_dir: format!("{dir}/frames"),
        frame_count: done.frames,
        video_bytes: mp4.len() as u64,
        width,
        height,
        fps: params.fps,
    };
    let encode_secs = t.elapsed();
    let stored = home.tasks.advance(task, TaskStatus::Completed, |r| {
        *r.timings_ms.entry("encode".into()).or_insert(0) += encode_secs.as_millis() as u64;
        r.timings_ms
            .insert("total".into(), now_ms().saturating_sub(r.created_ms));
        r.artifact = Some(artifact);
    });
    let Ok(Some(r)) = stored else {
        // Cancelled (perhaps deleted) meanwhile, or the record could not be written: no record
        // names the video, so nothing else would delete it; and not a result to cache.
        discard_written(&[video_path], &[&task_root.join("frames"), &task_root]);
        return Ok(false);
    };
    tracing::info!(task, timings_ms = ?r.timings_ms, "task completed");
    metrics::histogram!("reel_stage_seconds", "stage" => "encode")
        .record(encode_secs.as_secs_f64());
    if let Err(e) = home.tasks.store().cache_put(&key, task) {
        tracing::warn!(task, error = %e, "result not cached");
    }
    Ok(true)
}
