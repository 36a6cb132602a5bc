//! `post_process`: base frames -> delivered frames, off the worker thread.
//!
//! Input: [`DenoisedScene`], exchanged to its task's home worker in process 0 (from whichever
//! worker, in whichever process, denoised it). Output: [`ProcessedScene`] at the scene's epoch.
//! A task's last scene to arrive carries its denoising time: the task is moved to
//! `PostProcessing` with it. Each scene is handed, as soon as it arrives, to the [`PostPool`] threads, which upscale,
//! interpolate and convert it, store its frames as PNG and tell live watchers of each, while this worker goes on denoising later scenes. A thread that finishes a scene
//! wakes this operator (a timely `SyncActivator`), which emits it and, after a task's last
//! scene, moves the task to `Encoding`; a failure fails the task.
//! Capabilities: one per scene in the pool, retained from the scene's input message when it is
//! submitted and dropped in the activation that receives its answer (after emitting under it),
//! so the epoch cannot complete while its frames are being made, and nothing waits on a
//! scene once it is back. A cancelled task's scenes come back unprocessed (the pool checks
//! before and after processing), so cancellation also releases their capabilities promptly.
//! Order: a task's scenes come back in the order they went in (see [`PostPool`]), which is
//! the order `denoise` finished them; `encode_video` puts them in scene order regardless.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use storage::TaskStatus;

use super::context::{Context, Home};
use super::messages::{count_bytes_in, DenoiseTimes, DenoisedScene, ProcessedScene};
use super::post_pool::{pool_threads, Outcome, PostPool};

/// The `post_process` operator on a stream of denoised scenes.
///
/// Input: [`DenoisedScene`], exchanged to the task's home worker (process 0). Output: one
/// [`ProcessedScene`] per scene that the [`PostPool`] threads bring back processed, at its
/// task's epoch. Capabilities: one retained per scene while it is in the pool, dropped in the
/// activation that emits it. In the other processes of a cluster it never receives a scene.
pub trait PostProcess<'s> {
    /// Hands each scene to the post-processing threads (upscale, interpolation, YUV, PNG
    /// frames stored and announced) and emits it when they are done; after a task's last
    /// scene, moves the task to `Encoding`.
    fn post_process(self, ctx: Arc<Context>) -> StreamVec<'s, u64, ProcessedScene>;
}

impl<'s> PostProcess<'s> for StreamVec<'s, u64, DenoisedScene> {
    fn post_process(self, ctx: Arc<Context>) -> StreamVec<'s, u64, ProcessedScene> {
        let scope = self.scope();
        let layout = ctx.layout;
        let home_of = move |s: &DenoisedScene| layout.home_worker(s.job.route);
        self.unary(Exchange::new(home_of), "post_process", move |_cap, info| {
            let wake = scope.worker().sync_activator_for(info.address.to_vec());
            // rayon's global pool is sized by the compute-thread setting at start-up.
            let threads = pool_threads(rayon::current_num_threads());
            let home = ctx.home.clone();
            let pool = home
                .as_ref()
                .map(|h| PostPool::start(ctx.clone(), h.clone(), threads, wake));
            let mut held: HashMap<u64, Capability<u64>> = HashMap::new();
            let mut next_ticket = 0u64;
            // Per task, scenes still to come back.
            let mut left: HashMap<u64, usize> = HashMap::new();
            move |input, output| {
                let (Some(home), Some(pool)) = (home.as_deref(), pool.as_ref()) else {
                    input.for_each_stamp(|_, _| {});
                    return;
                };
                left.retain(|id, _| home.live(*id));
                input.for_each_stamp(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else {
                        return;
                    };
                    for scene in data.flat_map(|d| d.drain(..)) {
                        count_bytes_in("scene", scene.process, &scene);
                        home.returned(scene.job.task);
                        if !home.live(scene.job.task) {
                            left.remove(&scene.job.task);
                            continue;
                        }
                        if let Some(times) = scene.task_done {
                            denoised(home, scene.job.task, times);
                        }
                        left.entry(scene.job.task).or_insert(scene.job.count);
                        held.insert(next_ticket, cap.clone());
                        pool.submit(next_ticket, scene);
                        next_ticket += 1;
                    }
                });
                for done in pool.finished() {
                    let Some(cap) = held.remove(&done.ticket) else {
                        continue;
                    };
                    let task = done.task;
                    match done.outcome {
                        Outcome::Ready(scene) => {
                            output.session(&cap).give(scene);
                            let n = left.entry(task).or_insert(1);
                            *n -= 1;
                            if *n == 0 {
                                left.remove(&task);
                                let _ = home.tasks.advance(task, TaskStatus::Encoding, |_| {});
                            }
                        }
                        Outcome::Dropped => {
                            left.remove(&task);
                        }
                        Outcome::Failed(e) => {
                            left.remove(&task);
                            home.tasks.fail(task, &format!("post-processing: {e:#}"));
                        }
                    }
                }
            }
        })
    }
}

/// The task's last scene left denoising: its time there is recorded and it moves on to
/// post-processing.
fn denoised(home: &Home, task: u64, times: DenoiseTimes) {
    home.add_timing(task, "denoise", times.denoise_ms);
    if times.preview_ms > 0 {
        home.add_timing(task, "preview", times.preview_ms);
    }
    let _ = home.tasks.advance(task, TaskStatus::PostProcessing, |_| {});
}

/// Writes through a temporary file and a rename, so a reader never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// Takes back files written for a task that ended while they were being written (cancelled,
/// or deleted through `DELETE /v1/videos/{id}`): the deletion may already have emptied the
/// task's directory, and nothing would delete them later. Then removes `dirs`, innermost
/// first, where that left them empty. Errors are ignored: a file the deletion got to first is
/// already gone.
pub fn discard_written(files: &[std::path::PathBuf], dirs: &[&Path]) {
    for f in files {
        let _ = fs::remove_file(f);
    }
    for d in dirs {
        let _ = fs::remove_dir(d);
    }
}
