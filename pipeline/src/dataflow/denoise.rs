//! `denoise`: continuous batching of scene sampling, on every worker of every process.
//!
//! Inputs: [`SceneJob`], exchanged to the denoiser chosen at home (`placement.rs`: the least
//! loaded, or an identical task's, so a task's scenes and identical tasks meet on one worker,
//! in whichever process), and [`Control`],
//! broadcast from process 0 (which tasks ended, which are watched: this operator cannot ask
//! the task service, which lives in process 0 only). Output: [`DenoiseOut`] for the task's
//! home worker in process 0: each scene's finished latent at the scene's epoch as soon as its
//! last step is done (so its frames go downstream while other scenes still run), and
//! [`Report`]s of steps, previews and failures for the task service.
//!
//! Every activation advances all in-flight scenes, of any task, by one sampler step in one
//! batched forward pass of at most `max_batch` scenes; waiting scenes join between steps, in
//! [`FairQueue`] order (priority, then API keys taking turns), a task's scenes staggered so its
//! first finishes first ([`SceneOrder`], `--scene-stagger`: a scene not yet due is passed over
//! and its slot goes to another task's), and scenes of tasks that ended (cancelled, failed)
//! leave, freeing their slot within one step. After a step, a scene of a task someone watches
//! is previewed at the [`CADENCE`] (`--previews`): its current estimate of the clean frames,
//! as a small PNG reported home; nobody watching, nothing is made.
//!
//! Identical scenes in flight at once are sampled once: a scene whose [`SceneKey`] (all that
//! the model's `start` reads: caption, seed, scene index, steps, guidance, free-form shape and
//! conditioning) matches a running scene's joins that run as a follower instead of taking a
//! batch slot, and so do waiting scenes with its key when a run starts. Every follower's task
//! sees the run's steps and previews, and gets the finished run at its own epoch (the result
//! cache cannot do this for work still running). A run whose leader's task ends passes to a
//! follower; it stops only when no task wants it.
//!
//! Why here and not as differential dataflow's `distinct` and `join` over the scene jobs: a
//! task is its epoch, and an arrangement seals updates only once the frontier passes their
//! time. A run's result made at its first requester's epoch could be joined with the other
//! requests only after that epoch completed, which needs the result delivered first; and its
//! steps and previews, which must stream, would wait as long. Sharing needs no more than a
//! key, which every scene job carries, and placement puts equal keys on one worker.
//!
//! The operator re-activates itself
//! while it has work instead of looping, so the worker stays responsive; over the CPU ceiling
//! (`--max-cpu-percent`, [`crate::governor`]) it re-activates itself after the pause instead.
//! After each activation whose counts changed, it reports its load (scenes waiting, running,
//! following) home, under the capability of a scene it holds or held at the activation's start.
//! Capabilities: one per waiting, running or following scene, dropped when the scene leaves;
//! none for control messages, which are remembered until every scene of their task's epoch
//! has arrived (the jobs input's frontier passed it) and the task has none left here.

use std::collections::HashMap;
use std::iter;
use std::sync::Arc;
use std::time::Instant;

use contract::DenoiserLoad;
use kernels::{FreeFormScene, SceneRequest, SceneRun};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;

use super::context::Context;
use super::fair_queue::FairQueue;
use super::messages::{
    Control, Controlled, DenoiseOut, DenoiseTimes, DenoisedScene, Report, Reported, SceneJob,
};
use super::preview::{self, CADENCE};
use super::schedule::{SceneOrder, Stage};

/// The `denoise` operator on a stream of scene jobs.
///
/// Inputs: [`SceneJob`], exchanged to its `denoiser` (a task's scenes all arrive on one
/// worker, which staggers them; identical tasks' too), and [`Control`] (already broadcast: every worker sees
/// every message). Output: [`DenoiseOut`], one `Scene` per scene that finishes sampling, at
/// its task's epoch, as soon as its last step is done, and `Report`s (steps, previews,
/// failures) under the capability of the scene they are about. Identical scenes in flight at
/// once share one run (the module's doc). Capabilities: one retained per waiting, running or
/// following scene, dropped when the scene is emitted, fails or is cancelled.
pub trait Denoise<'s> {
    /// Samples the scenes with the model, all in-flight scenes of any task advanced together
    /// by one batched step per activation (continuous batching, at most `max_batch` scenes).
    fn denoise(
        self,
        control: StreamVec<'s, u64, Control>,
        ctx: Arc<Context>,
    ) -> StreamVec<'s, u64, DenoiseOut>;
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

/// What process 0 said about the tasks: which ended, which are watched (each with its epoch,
/// to know when to forget it).
#[derive(Default)]
struct Told {
    ended: HashMap<u64, u64>,
    watched: HashMap<u64, u64>,
}

impl Told {
    fn hear(&mut self, c: Control) {
        match c.what {
            Controlled::Ended => {
                self.ended.insert(c.task, c.epoch);
                self.watched.remove(&c.task);
            }
            Controlled::Watched(true) => {
                self.watched.insert(c.task, c.epoch);
            }
            Controlled::Watched(false) => {
                self.watched.remove(&c.task);
            }
        }
    }

    fn live(&self, task: u64) -> bool {
        !self.ended.contains_key(&task)
    }

    fn watched(&self, task: u64) -> bool {
        self.watched.contains_key(&task)
    }

    /// Forgets tasks whose every scene has arrived (`arrived(epoch)`) and that have none here.
    fn forget(&mut self, arrived: impl Fn(u64) -> bool, here: impl Fn(u64) -> bool) {
        self.ended.retain(|_, e| !arrived(*e));
        self.watched.retain(|t, e| !arrived(*e) || here(*t));
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
    fn keep_live(&mut self, told: &Told) -> bool {
        self.followers.retain(|f| told.live(f.job.task));
        if !told.live(self.job.task) {
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

    /// A report about this run, for its leader's home.
    fn report(&self, process: usize, what: Reported) -> DenoiseOut {
        DenoiseOut::Report(Report {
            route: self.job.route,
            process,
            what,
        })
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
    fn denoise(
        self,
        control: StreamVec<'s, u64, Control>,
        ctx: Arc<Context>,
    ) -> StreamVec<'s, u64, DenoiseOut> {
        let scope = self.scope();
        let process = scope.index() / ctx.layout.workers;
        let to_denoiser = Exchange::new(|j: &SceneJob| j.denoiser);
        self.binary_frontier(
            control,
            to_denoiser,
            Pipeline,
            "denoise",
            move |_cap, info| {
                let activator = scope.activator_for(info.address);
                let mut waiting: FairQueue<Waiting> = FairQueue::default();
                let mut running: Vec<Running> = Vec::new();
                let mut clocks: HashMap<u64, TaskClock> = HashMap::new();
                let mut told = Told::default();
                let worker = scope.index();
                let mut reported = (0, 0, 0);
                move |(input, frontier), (control, _), output| {
                    control.for_each_stamp(|_, data| {
                        for c in data.flat_map(|d| d.drain(..)) {
                            told.hear(c);
                        }
                    });
                    input.for_each_stamp(|cap, data| {
                        let Some(cap) = cap.retain_least(0) else {
                            return;
                        };
                        for job in data.flat_map(|d| d.drain(..)) {
                            if !told.live(job.task) {
                                continue;
                            }
                            clocks.entry(job.task).or_insert_with(|| TaskClock {
                                started: Instant::now(),
                                left: job.count,
                                order: SceneOrder::new(
                                    job.count,
                                    job.params.steps,
                                    ctx.scene_stagger,
                                ),
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
                    // A capability to report this activation's load under, should every scene leave.
                    let spare = any_cap(&running, &waiting);
                    waiting.retain(|w| told.live(w.job.task));
                    running.retain_mut(|r| r.keep_live(&told));
                    clocks.retain(|id, _| told.live(*id));
                    told.forget(
                        |epoch| !frontier.less_equal(&epoch),
                        |task| clocks.contains_key(&task),
                    );

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
                        let state = match start(&ctx, &job) {
                            Ok(state) => state,
                            Err(reason) => {
                                // Its other scenes leave too; home fails the task.
                                told.ended.insert(job.task, *cap.time());
                                let what = Reported::Failed {
                                    task: job.task,
                                    reason,
                                };
                                let report = Report {
                                    route: job.route,
                                    process,
                                    what,
                                };
                                output.session(&cap).give(DenoiseOut::Report(report));
                                continue;
                            }
                        };
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
                    waiting.retain(|w| told.live(w.job.task));
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
                        metrics::counter!("reel_denoise_steps_total")
                            .increment(running.len() as u64);
                        metrics::gauge!("reel_denoise_frame_steps_per_second")
                            .set(frames as f64 / dt.max(1e-9));
                        for r in &mut running {
                            let (step, steps) = (r.state.step_index(), r.state.steps());
                            let scenes: Vec<(u64, usize)> =
                                r.jobs().map(|j| (j.task, j.index)).collect();
                            for &(task, index) in &scenes {
                                if let Some(c) = clocks.get_mut(&task) {
                                    c.order.set(index, Stage::Running(step));
                                }
                            }
                            let report = r.report(
                                process,
                                Reported::Step {
                                    scenes,
                                    step,
                                    steps,
                                },
                            );
                            output.session(&r.cap).give(report);
                            if ctx.previews {
                                if let Some((report, secs)) = preview(&ctx, &told, process, r) {
                                    output.session(&r.cap).give(report);
                                    if let Some(c) = clocks.get_mut(&r.job.task) {
                                        c.preview_secs += secs;
                                    }
                                }
                            }
                        }
                    }
                    let (finished, still): (Vec<Running>, Vec<Running>) =
                        running.drain(..).partition(|r| r.state.done());
                    running = still;
                    for r in finished {
                        let latent = Arc::new(ctx.model.latent(&r.state));
                        let followers = r.followers.into_iter().map(|f| (f.cap, f.job));
                        for (cap, job) in iter::once((r.cap, r.job)).chain(followers) {
                            let task_done = scene_denoised(&mut clocks, job.task, job.index);
                            let scene = DenoisedScene {
                                job,
                                latent: latent.clone(),
                                task_done,
                                process,
                            };
                            output.session(&cap).give(DenoiseOut::Scene(scene));
                        }
                    }
                    let load = (
                        waiting.len(),
                        running.len(),
                        running.iter().map(|r| r.followers.len()).sum(),
                    );
                    let cap = any_cap(&running, &waiting).or(spare);
                    if let (true, Some(cap)) = (load != reported, cap) {
                        reported = load;
                        let (waiting, running, following) = load;
                        let load = DenoiserLoad {
                            process,
                            worker,
                            waiting,
                            running,
                            following,
                        };
                        let report = Report {
                            route: 0,
                            process,
                            what: Reported::Load(load),
                        };
                        output.session(&cap).give(DenoiseOut::Report(report));
                    }
                    if !running.is_empty() || !waiting.is_empty() {
                        activator.activate();
                    }
                }
            },
        )
    }
}

/// A capability of some scene this denoiser holds (to report its load under), if any.
fn any_cap(running: &[Running], waiting: &FairQueue<Waiting>) -> Option<Capability<u64>> {
    running
        .first()
        .map(|r| r.cap.clone())
        .or_else(|| waiting.any().map(|w| w.cap.clone()))
}

/// Scene `index` of `task` has left denoising: its clock marks it done; when it was the
/// task's last, the task's denoise (and preview) time, for its home to record as it moves the
/// task on to post-processing.
fn scene_denoised(
    clocks: &mut HashMap<u64, TaskClock>,
    task: u64,
    index: usize,
) -> Option<DenoiseTimes> {
    let c = clocks.get_mut(&task)?;
    c.order.set(index, Stage::Done);
    c.left -= 1;
    if c.left > 0 {
        return None;
    }
    let c = clocks.remove(&task)?;
    let secs = c.started.elapsed();
    metrics::histogram!("reel_stage_seconds", "stage" => "denoise").record(secs.as_secs_f64());
    Some(DenoiseTimes {
        denoise_ms: secs.as_millis() as u64,
        preview_ms: (c.preview_secs * 1000.0).round() as u64,
    })
}

/// A preview of the run, if the [`CADENCE`] says it is time and somebody watches one of its
/// scenes' tasks (each watched one gets the same PNG), with the seconds it took. A preview
/// that cannot be encoded is logged and skipped: it is not worth failing the task for.
fn preview(
    ctx: &Context,
    told: &Told,
    process: usize,
    r: &mut Running,
) -> Option<(DenoiseOut, f64)> {
    let (step, steps) = (r.state.step_index(), r.state.steps());
    let last = r.previewed.map(|(at, when)| (at, when.elapsed()));
    if !CADENCE.due(step, steps, last) {
        return None;
    }
    let scenes: Vec<(u64, usize)> = r
        .jobs()
        .filter(|j| told.watched(j.task))
        .map(|j| (j.task, j.index))
        .collect();
    if scenes.is_empty() {
        return None;
    }
    let t = Instant::now();
    let side = r.job.params.size as usize;
    let png = ctx
        .model
        .preview(&r.state)
        .map(|clip| preview::render(&clip, side));
    r.previewed = Some((step, Instant::now()));
    let secs = t.elapsed().as_secs_f64();
    metrics::histogram!("reel_preview_seconds").record(secs);
    match png? {
        Ok(png) => {
            let what = Reported::Preview {
                scenes,
                step,
                steps,
                png,
            };
            Some((r.report(process, what), secs))
        }
        Err(e) => {
            tracing::warn!(task = r.job.task, error = %e, "preview not made");
            None
        }
    }
}

/// The scene's sampler run, or why it cannot start (e.g. a caption the model cannot read:
/// the planner should never produce one), for the task's record.
fn start(ctx: &Context, job: &SceneJob) -> Result<SceneRun, String> {
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
    ctx.model
        .start(&request)
        .map_err(|e| format!("cannot start scene {}: {e}", job.index))
}
