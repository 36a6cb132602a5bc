//! `denoise`: continuous batching of scene sampling.
//!
//! Input: [`SceneJob`] (pipelined). Output: [`DenoisedScene`] at the scene's epoch, as soon as
//! that scene's last step is done (so its frames go downstream while other scenes still run).
//! Every activation advances all in-flight scenes, of any task, by one sampler step in one
//! batched forward pass of at most `max_batch` scenes; waiting scenes join between steps, in
//! [`FairQueue`] order (priority, then API keys taking turns), a task's scenes staggered so its
//! first finishes first ([`SceneOrder`], `--scene-stagger`: a scene not yet due is passed over
//! and its slot goes to another task's), and scenes of tasks that ended (cancelled, failed)
//! leave, freeing their slot within one step. After a step, a scene of a task someone watches
//! is previewed at the [`CADENCE`] (`--previews`): its current estimate of the clean frames,
//! as a small PNG sent through the task service; nobody watching, nothing is made.
//!
//! Identical scenes in flight at once are sampled once: a scene whose [`SceneKey`] (all that
//! the model's `start` reads: caption, seed, scene index, steps, guidance, free-form shape and
//! conditioning) matches a running scene's joins that run as a follower instead of taking a
//! batch slot, and so do waiting scenes with its key when a run starts. Every follower's task
//! sees the run's steps and previews, and gets the finished run at its own epoch (the result
//! cache cannot do this for work still running). A run whose leader's task ends passes to a
//! follower; it stops only when no task wants it.
//!
//! The operator re-activates itself
//! while it has work instead of looping, so the worker stays responsive; over the CPU ceiling
//! (`--max-cpu-percent`, [`crate::governor`]) it re-activates itself after the pause instead.
//! Capabilities: one per waiting, running or following scene, dropped when the scene leaves.

use std::collections::HashMap;
use std::iter;
use std::sync::Arc;
use std::time::Instant;

use kernels::{FreeFormScene, SceneRequest, SceneRun};
use storage::TaskStatus;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use super::context::Context;
use super::fair_queue::FairQueue;
use super::messages::{DenoisedScene, SceneJob};
use super::preview::{self, CADENCE};
use super::schedule::{SceneOrder, Stage};

/// The `denoise` operator on a stream of scene jobs.
///
/// Input: [`SceneJob`], pipelined (no exchange: a task's scenes all arrive on one worker,
/// which staggers them). Output: one [`DenoisedScene`] per scene that finishes sampling, at its
/// task's epoch, as soon as its last step is done; previews go to watchers through the task
/// service, not downstream. Identical scenes in flight at once share one run (the module's
/// doc). Capabilities: one retained per waiting, running or following scene, dropped when
/// the scene is emitted, fails or is cancelled.
pub trait Denoise<'s> {
    /// Samples the scenes with the model, all in-flight scenes of any task advanced together
    /// by one batched step per activation (continuous batching, at most `max_batch` scenes).
    fn denoise(self, ctx: Arc<Context>) -> StreamVec<'s, u64, DenoisedScene>;
}

/// Everything the model's `start` reads of a scene: scenes with equal keys sample the same
/// latent, step for step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SceneKey(String);

impl SceneKey {
    fn of(job: &SceneJob) -> SceneKey {
        let p = &job.params;
        let fields = (
            &job.caption,
            p.seed,
            job.index,
            p.steps,
            p.guidance,
            &p.free_form,
        );
        SceneKey(serde_json::to_string(&fields).unwrap_or_default())
    }
}

/// A scene waiting for a batch slot.
struct Waiting {
    cap: Capability<u64>,
    job: SceneJob,
    key: SceneKey,
}

/// A scene of another task riding on a run with its key.
struct Follower {
    cap: Capability<u64>,
    job: SceneJob,
}

struct Running {
    /// The leader: the scene the run was started for (or that took it over).
    cap: Capability<u64>,
    job: SceneJob,
    key: SceneKey,
    state: SceneRun,
    /// After which step, and when, this scene was last previewed.
    previewed: Option<(usize, Instant)>,
    /// Identical scenes of other tasks, delivered the same run.
    followers: Vec<Follower>,
}

impl Running {
    /// Every scene this run is for, the leader first.
    fn jobs(&self) -> impl Iterator<Item = &SceneJob> {
        iter::once(&self.job).chain(self.followers.iter().map(|f| &f.job))
    }

    /// Drops the scenes of tasks that ended; a follower takes over from an ended leader.
    /// False when no scene is left, so the run can stop.
    fn keep_live(&mut self, ctx: &Context) -> bool {
        self.followers.retain(|f| ctx.live(f.job.task));
        if !ctx.live(self.job.task) {
            if self.followers.is_empty() {
                return false;
            }
            let next = self.followers.remove(0);
            self.cap = next.cap;
            self.job = next.job;
        }
        true
    }

    /// Adds `job` (with its capability) to this run, its task's clock at the run's step.
    fn follow(
        &mut self,
        cap: Capability<u64>,
        job: SceneJob,
        clocks: &mut HashMap<u64, TaskClock>,
    ) {
        if let Some(c) = clocks.get_mut(&job.task) {
            c.order
                .set(job.index, Stage::Running(self.state.step_index()));
        }
        metrics::counter!("reel_scenes_shared_total").increment(1);
        self.followers.push(Follower { cap, job });
    }
}

/// Per task: when its first scene started, how many are still to finish, where each stands
/// (which may start) and the time spent on previews.
struct TaskClock {
    started: Instant,
    left: usize,
    order: SceneOrder,
    preview_secs: f64,
}

impl<'s> Denoise<'s> for StreamVec<'s, u64, SceneJob> {
    fn denoise(self, ctx: Arc<Context>) -> StreamVec<'s, u64, DenoisedScene> {
        let scope = self.scope();
        self.unary(Pipeline, "denoise", move |_cap, info| {
            let activator = scope.activator_for(info.address);
            let mut waiting: FairQueue<Waiting> = FairQueue::default();
            let mut running: Vec<Running> = Vec::new();
            let mut clocks: HashMap<u64, TaskClock> = HashMap::new();
            move |input, output| {
                input.for_each_stamp(|cap, data| {
                    let Some(cap) = cap.retain_least(0) else {
                        return;
                    };
                    for job in data.flat_map(|d| d.drain(..)) {
                        clocks.entry(job.task).or_insert_with(|| TaskClock {
                            started: Instant::now(),
                            left: job.count,
                            order: SceneOrder::new(job.count, job.params.steps, ctx.scene_stagger),
                            preview_secs: 0.0,
                        });
                        let key = SceneKey::of(&job);
                        match running.iter_mut().find(|r| r.key == key) {
                            Some(r) => r.follow(cap.clone(), job, &mut clocks),
                            None => {
                                let (priority, owner) = (job.priority, job.owner.clone());
                                let cap = cap.clone();
                                waiting.push(priority, owner, Waiting { cap, job, key });
                            }
                        }
                    }
                });
                waiting.retain(|w| ctx.live(w.job.task));
                running.retain_mut(|r| r.keep_live(&ctx));
                clocks.retain(|id, _| ctx.live(*id));

                while running.len() < ctx.max_batch {
                    let may_start = |w: &Waiting| {
                        clocks
                            .get(&w.job.task)
                            .is_none_or(|c| c.order.may_start(w.job.index))
                    };
                    let Some(Waiting { cap, job, key }) = waiting.pop_where(may_start) else {
                        break;
                    };
                    if let Some(r) = running.iter_mut().find(|r| r.key == key) {
                        r.follow(cap, job, &mut clocks);
                        continue;
                    }
                    if let Some(state) = start(&ctx, &job) {
                        if let Some(c) = clocks.get_mut(&job.task) {
                            c.order.set(job.index, Stage::Running(0));
                        }
                        let mut run = Running {
                            cap,
                            job,
                            key,
                            state,
                            previewed: None,
                            followers: Vec::new(),
                        };
                        // Waiting scenes with the same key ride along.
                        while let Some(w) = waiting.pop_where(|w| w.key == run.key) {
                            run.follow(w.cap, w.job, &mut clocks);
                        }
                        running.push(run);
                    }
                }
                metrics::gauge!("reel_batch_size").set(running.len() as f64);
                metrics::gauge!("reel_scenes_waiting").set(waiting.len() as f64);
                if !running.is_empty() {
                    if let Some(pause) = ctx.governor.pause() {
                        // over the CPU ceiling: come back later rather than park the worker
                        activator.activate_after(pause);
                        return;
                    }
                    let t = Instant::now();
                    let mut states: Vec<&mut SceneRun> =
                        running.iter_mut().map(|r| &mut r.state).collect();
                    let span = tracing::debug_span!("denoise_step", batch = states.len());
                    span.in_scope(|| ctx.model.step(&mut states));
                    let dt = t.elapsed().as_secs_f64();
                    let frames: usize = running.iter().map(|r| r.state.frames()).sum();
                    metrics::histogram!("reel_denoise_step_seconds").record(dt);
                    metrics::counter!("reel_denoise_steps_total").increment(running.len() as u64);
                    metrics::gauge!("reel_denoise_frame_steps_per_second")
                        .set(frames as f64 / dt.max(1e-9));
                    for r in &mut running {
                        let (step, steps) = (r.state.step_index(), r.state.steps());
                        for job in r.jobs() {
                            ctx.tasks.step(job.task, job.index, step, steps);
                            if let Some(c) = clocks.get_mut(&job.task) {
                                c.order.set(job.index, Stage::Running(step));
                            }
                        }
                        if ctx.previews {
                            let secs = send_preview(&ctx, r);
                            if let Some(c) = clocks.get_mut(&r.job.task) {
                                c.preview_secs += secs;
                            }
                        }
                    }
                }
                let (finished, still): (Vec<Running>, Vec<Running>) =
                    running.drain(..).partition(|r| r.state.done());
                running = still;
                for r in finished {
                    let run = Arc::new(r.state);
                    let followers = r.followers.into_iter().map(|f| (f.cap, f.job));
                    for (cap, job) in iter::once((r.cap, r.job)).chain(followers) {
                        let (task, index) = (job.task, job.index);
                        output.session(&cap).give(DenoisedScene {
                            job,
                            run: run.clone(),
                        });
                        scene_denoised(&ctx, &mut clocks, task, index);
                    }
                }
                if !running.is_empty() || !waiting.is_empty() {
                    activator.activate();
                }
            }
        })
    }
}

/// Scene `index` of `task` has left denoising: its clock marks it done, and when it was the
/// task's last, the task's denoise (and preview) time is recorded and it moves on to
/// post-processing.
fn scene_denoised(ctx: &Context, clocks: &mut HashMap<u64, TaskClock>, task: u64, index: usize) {
    let Some(c) = clocks.get_mut(&task) else {
        return;
    };
    c.order.set(index, Stage::Done);
    c.left -= 1;
    if c.left > 0 {
        return;
    }
    if let Some(c) = clocks.remove(&task) {
        let secs = c.started.elapsed();
        ctx.add_timing(task, "denoise", secs.as_millis() as u64);
        if c.preview_secs > 0.0 {
            let ms = (c.preview_secs * 1000.0).round() as u64;
            ctx.add_timing(task, "preview", ms);
        }
        metrics::histogram!("reel_stage_seconds", "stage" => "denoise").record(secs.as_secs_f64());
    }
    let _ = ctx.tasks.advance(task, TaskStatus::PostProcessing, |_| {});
}

/// Previews the run if the [`CADENCE`] says it is time and somebody watches one of its
/// scenes' tasks (each watched one gets the same PNG); returns the seconds spent (0 when none
/// was made). A preview that cannot be encoded is logged and skipped: it is not worth failing
/// the task for.
fn send_preview(ctx: &Context, r: &mut Running) -> f64 {
    let (step, steps) = (r.state.step_index(), r.state.steps());
    let last = r.previewed.map(|(at, when)| (at, when.elapsed()));
    if !CADENCE.due(step, steps, last) {
        return 0.0;
    }
    let watched: Vec<(u64, usize)> = r
        .jobs()
        .filter(|j| ctx.tasks.watched(j.task))
        .map(|j| (j.task, j.index))
        .collect();
    if watched.is_empty() {
        return 0.0;
    }
    let t = Instant::now();
    let side = r.job.params.size as usize;
    let png = ctx
        .model
        .preview(&r.state)
        .map(|clip| preview::render(&clip, side));
    match png {
        Some(Ok(png)) => {
            let png: Arc<[u8]> = png.into();
            for (task, index) in watched {
                ctx.tasks.preview(task, index, step, steps, png.clone());
            }
        }
        Some(Err(e)) => tracing::warn!(task = r.job.task, error = %e, "preview not made"),
        None => {}
    }
    r.previewed = Some((step, Instant::now()));
    let secs = t.elapsed().as_secs_f64();
    metrics::histogram!("reel_preview_seconds").record(secs);
    secs
}

/// The scene's sampler run, or None after failing its task (e.g. a caption the model
/// cannot read: the planner should never produce one).
fn start(ctx: &Context, job: &SceneJob) -> Option<SceneRun> {
    let p = &job.params;
    let request = SceneRequest {
        caption: &job.caption,
        seed: p.seed,
        stream: job.index as u64,
        steps: p.steps,
        guidance: p.guidance,
        free_form: p.free_form.as_ref().map(|f| FreeFormScene {
            width: f.width as usize,
            height: f.height as usize,
            num_frames: f.num_frames,
            negative_prompt: &f.negative_prompt,
            scheduler: &f.scheduler,
        }),
    };
    match ctx.model.start(&request) {
        Ok(run) => Some(run),
        Err(e) => {
            ctx.tasks
                .fail(job.task, &format!("cannot start scene {}: {e}", job.index));
            None
        }
    }
}
