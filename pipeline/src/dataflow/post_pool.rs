//! The threads that post-process scenes for the `post_process` operator, off the timely worker.
//!
//! The operator hands each denoised scene to [`PostPool::submit`] with a ticket; a pool thread
//! decodes it with the model (`VideoModel::decode`), and for the built-in model upscales and
//! interpolates the base frames ([`crate::post::PostProcessor`]), while a free-form model's
//! frames are delivered as decoded, each piece (one latent frame's worth) stored the moment
//! the VAE makes it. It stores the frames as PNG, tells the task's watchers of each stored
//! frame (they read the file: nothing is held in memory for them, nothing is encoded for
//! nobody), and sends back a [`Done`] with the same ticket, waking the operator through a
//! timely `SyncActivator`. The worker thread meanwhile goes on denoising.
//!
//! Order: a task's scenes all go to one thread (chosen by task id), whose queue is FIFO, so a
//! task's frames are published, and its scenes come back, in the order they were submitted
//! (the live streams count on frame indexes arriving in order).
//!
//! Batches: a thread takes every scene waiting in its queue (up to [`MAX_BATCH`]) at once and
//! post-processes the built-in model's together ([`crate::post::PostProcessor::process_batch`]:
//! on wgpu one submission and one read-back for all), then stores and publishes them in order.
//! A scene that arrives alone goes alone, so batching adds no wait; it only removes the
//! per-submission cost when scenes queue up (several tasks finishing at once);
//! `reel_post_batch_scenes` (a histogram) shows how many go together.
//!
//! A thread that panics reports its death to the engine's [`crate::health::Health`], whose
//! supervisor fails the tasks the engine held and starts afresh.
//!
//! Size: each scene's work is itself parallel on rayon's global pool (sized by
//! `--compute-threads`), so one thread keeps that pool busy; more only let several tasks'
//! scenes share it. [`pool_threads`] gives one per four compute threads.
//!
//! Cancellation: a thread skips a cancelled task's scene, and checks again between processing
//! and publishing, so a cancelled task costs at most the scene under way. Dropping the pool
//! closes the queues and joins the threads once they finish what they hold.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kernels::Clip;

use crossbeam::channel::{self, Receiver, Sender};
use rayon::prelude::*;
use timely::scheduling::SyncActivator;

use storage::{frame_file, task_dir};

use super::context::{Context, Home};
use super::messages::{DenoisedScene, ProcessedScene, SceneJob};
use super::post_process::{discard_written, write_atomically};
use crate::encode::png_rgb;
use crate::health::panic_message;
use crate::post::yuv::rgb_to_yuv420;
use crate::post::{PostInput, Processed};

/// The most scenes a thread post-processes together: bounds the memory of a batch (about 8 MB
/// of delivered frames per default scene) while covering the bursts of a busy server.
pub const MAX_BATCH: usize = 16;

/// Threads for post-processing when rayon's pool has `compute_threads` threads.
pub fn pool_threads(compute_threads: usize) -> usize {
    compute_threads.div_ceil(4).max(1)
}

/// A scene handed to the pool; `ticket` names it in the [`Done`] that answers it.
struct Job {
    ticket: u64,
    scene: DenoisedScene,
}

/// What became of one submitted scene.
pub enum Outcome {
    /// Post-processed, stored and published.
    Ready(ProcessedScene),
    /// The task was cancelled (or failed elsewhere) before the scene was through.
    Dropped,
    /// Post-processing or storing failed; the task should fail.
    Failed(anyhow::Error),
}

/// The answer to one submitted scene.
pub struct Done {
    pub ticket: u64,
    pub task: u64,
    pub outcome: Outcome,
}

pub struct PostPool {
    queues: Vec<Sender<Job>>,
    done: Receiver<Done>,
    threads: Vec<JoinHandle<()>>,
}

impl PostPool {
    /// Starts `threads` threads; each finished scene activates `wake`.
    pub fn start(
        ctx: Arc<Context>,
        home: Arc<Home>,
        threads: usize,
        wake: SyncActivator,
    ) -> PostPool {
        let (done_tx, done) = channel::unbounded();
        let (queues, threads) = (0..threads.max(1))
            .map(|i| {
                let (tx, rx) = channel::unbounded::<Job>();
                let (ctx, home, done_tx, wake) =
                    (ctx.clone(), home.clone(), done_tx.clone(), wake.clone());
                let thread = std::thread::Builder::new()
                    .name(format!("reel-post-{i}"))
                    .spawn(move || {
                        kernels::lower_current_thread_priority();
                        let serve = std::panic::AssertUnwindSafe(|| {
                            while let Ok(first) = rx.recv() {
                                let mut jobs = vec![first];
                                jobs.extend(rx.try_iter().take(MAX_BATCH - 1));
                                let outcomes = run(&ctx, &home, &jobs);
                                for (job, outcome) in jobs.iter().zip(outcomes) {
                                    let done = Done {
                                        ticket: job.ticket,
                                        task: job.scene.job.task,
                                        outcome,
                                    };
                                    if done_tx.send(done).is_err() {
                                        return;
                                    }
                                    // Fails only once the worker is gone, when nobody waits.
                                    let _ = wake.activate();
                                }
                            }
                        });
                        if let Err(panic) = std::panic::catch_unwind(serve) {
                            let why = panic_message(panic.as_ref());
                            ctx.health.report_death(format!(
                                "post-processing thread {i} panicked: {why}"
                            ));
                        }
                    })
                    // Only the OS refusing a thread at start-up gets here; nothing can run then.
                    .expect("cannot start a post-processing thread");
                (tx, thread)
            })
            .unzip();
        PostPool {
            queues,
            done,
            threads,
        }
    }

    /// Queues a scene behind its task's earlier ones.
    pub fn submit(&self, ticket: u64, scene: DenoisedScene) {
        let queue = &self.queues[scene.job.task as usize % self.queues.len()];
        // The threads only stop when `self` drops the queues, so the send cannot fail.
        let _ = queue.send(Job { ticket, scene });
    }

    /// The scenes answered since the last call, each task's in submission order.
    pub fn finished(&self) -> impl Iterator<Item = Done> + '_ {
        self.done.try_iter()
    }
}

impl Drop for PostPool {
    fn drop(&mut self) {
        self.queues.clear();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a post-processing thread panicked");
            }
        }
    }
}

/// The outcome of each of a thread's waiting scenes, in order.
fn run(ctx: &Context, home: &Home, jobs: &[Job]) -> Vec<Outcome> {
    if let Some(pause) = ctx.governor.pause() {
        std::thread::sleep(pause); // the CPU ceiling; this thread is ours to park
    }
    if ctx.model.spec().is_free_form() {
        return jobs
            .iter()
            .map(|job| {
                outcome(home, &job.scene, |out| {
                    stream_free_form(ctx, home, job, out)
                })
            })
            .collect();
    }
    // The built-in model: decode every live scene, post-process them together, then store
    // and publish each in order.
    let t = Instant::now();
    let clips: Vec<Option<anyhow::Result<Clip>>> = jobs
        .iter()
        .map(|job| {
            home.live(job.scene.job.task)
                .then(|| decode(ctx, &job.scene))
        })
        .collect();
    let inputs: Vec<PostInput<'_>> = clips
        .iter()
        .zip(jobs)
        .filter_map(|(clip, job)| match clip {
            Some(Ok(clip)) => Some(PostInput {
                clip,
                out_size: job.scene.job.params.size as usize,
                out_frames: job.scene.job.out_frames(),
            }),
            _ => None,
        })
        .collect();
    metrics::histogram!("reel_post_batch_scenes").record(inputs.len() as f64);
    let mut processed = home.post.process_batch(&inputs).into_iter();
    // Each scene is charged an equal share of the batch.
    let share = t.elapsed() / inputs.len().max(1) as u32;
    clips
        .into_iter()
        .zip(jobs)
        .map(|(clip, job)| match clip {
            None => Outcome::Dropped,
            Some(Err(e)) => Outcome::Failed(e),
            Some(Ok(_)) => {
                let frames = processed.next().expect("one result per decoded scene");
                outcome(home, &job.scene, |out| {
                    out.spent = share;
                    out.store(frames?)
                })
            }
        })
        .collect()
}

/// The built-in model's base frames of a scene (it decodes in one piece).
fn decode(ctx: &Context, scene: &DenoisedScene) -> anyhow::Result<Clip> {
    let mut clip = None;
    ctx.model.decode(&scene.latent, &mut |piece| {
        clip = Some(piece);
        true
    });
    clip.context("the model decoded no frames")
}

/// A free-form model's scene, made at the delivered size and rate: each decoded piece (a
/// latent frame's worth) is stored and announced at once, while the VAE decodes the next.
fn stream_free_form(
    ctx: &Context,
    home: &Home,
    job: &Job,
    out: &mut Frames<'_>,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut result = Ok(());
    ctx.model.decode(&job.scene.latent, &mut |clip| {
        result = out.store(to_frames(&clip));
        result.is_ok() && home.live(job.scene.job.task)
    });
    out.spent = t.elapsed().saturating_sub(out.publish);
    result
}

/// Stores a scene's frames through `make` (which fills `out`), records its timings and tells
/// what became of it.
fn outcome(
    home: &Home,
    scene: &DenoisedScene,
    make: impl FnOnce(&mut Frames<'_>) -> anyhow::Result<()>,
) -> Outcome {
    if !home.live(scene.job.task) {
        return Outcome::Dropped;
    }
    match store(home, scene, make) {
        Ok(Some(done)) => Outcome::Ready(done),
        Ok(None) => Outcome::Dropped,
        Err(e) => Outcome::Failed(e),
    }
}

/// Stores and publishes one scene's frames; None when its task was cancelled meanwhile.
fn store(
    home: &Home,
    scene: &DenoisedScene,
    make: impl FnOnce(&mut Frames<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<Option<ProcessedScene>> {
    let job = &scene.job;
    let _span = tracing::debug_span!("post_process", task = job.task, scene = job.index).entered();
    let task_root = home.data_dir.join(task_dir(job.task));
    let dir = task_root.join("frames");
    fs::create_dir_all(&dir)?;
    let mut out = Frames {
        home,
        job,
        dir: &dir,
        first: job.index * job.out_frames(),
        written: Vec::new(),
        processed: Processed {
            rgb: Vec::new(),
            yuv: Vec::new(),
            motion: Vec::new(),
        },
        publish: Duration::ZERO,
        spent: Duration::ZERO,
    };
    let stored = make(&mut out);
    home.add_timing(job.task, "post_process", out.spent.as_millis() as u64);
    home.add_timing(job.task, "publish", out.publish.as_millis() as u64);
    metrics::histogram!("reel_stage_seconds", "stage" => "post_process")
        .record(out.spent.as_secs_f64());
    // Ended while they were written (a deletion may have taken the directory from under
    // the writes, failing them): nobody wants these frames, and no record names them.
    if !home.live(job.task) {
        discard_written(&out.written, &[&dir, &task_root]);
        return Ok(None);
    }
    stored?;
    Ok(Some(ProcessedScene {
        job: job.clone(),
        frames: Arc::new(out.processed),
    }))
}

/// A free-form model's decoded frames, as they are: RGB8 and 4:2:0.
fn to_frames(clip: &Clip) -> Processed {
    let (w, h) = (clip.width, clip.height);
    let rgb: Vec<Vec<u8>> = clip
        .data
        .par_chunks_exact(w * h * 3)
        .map(|f| {
            f.iter()
                .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
                .collect()
        })
        .collect();
    let yuv = rgb.par_iter().map(|f| rgb_to_yuv420(f, w, h)).collect();
    Processed {
        rgb,
        yuv,
        motion: Vec::new(),
    }
}

/// One scene's delivered frames as they are stored: where, what was written, what is kept
/// for the encoder.
struct Frames<'a> {
    home: &'a Home,
    job: &'a SceneJob,
    dir: &'a Path,
    /// The global index of the scene's first frame.
    first: usize,
    written: Vec<PathBuf>,
    processed: Processed,
    publish: Duration,
    /// Decoding and post-processing time charged to the scene (publishing excluded).
    spent: Duration,
}

impl Frames<'_> {
    /// Stores `more` frames as PNG (in parallel), then tells watchers of each, in order;
    /// nothing once the task has ended.
    fn store(&mut self, more: Processed) -> anyhow::Result<()> {
        if !self.home.live(self.job.task) {
            return Ok(());
        }
        let t = Instant::now();
        let (w, h) = more.yuv.first().map_or((0, 0), |f| (f.width, f.height));
        let start = self.first + self.processed.rgb.len();
        let paths: Vec<PathBuf> = (0..more.rgb.len())
            .map(|i| self.dir.join(frame_file(start + i)))
            .collect();
        self.written.extend(paths.iter().cloned());
        let written =
            more.rgb
                .par_iter()
                .zip(&paths)
                .try_for_each(|(rgb, path)| -> anyhow::Result<()> {
                    Ok(write_atomically(path, &png_rgb(w as u32, h as u32, rgb)?)?)
                });
        if written.is_ok() && self.home.live(self.job.task) {
            for i in 0..more.rgb.len() {
                self.home.tasks.frame(self.job.task, start + i);
            }
        }
        self.processed.rgb.extend(more.rgb);
        self.processed.yuv.extend(more.yuv);
        self.processed.motion.extend(more.motion);
        self.publish += t.elapsed();
        written
    }
}
