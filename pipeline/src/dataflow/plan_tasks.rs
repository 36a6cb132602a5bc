//! `plan_tasks`: prompt -> scene plan.
//!
//! Input: [`TaskIn`], exchanged to a worker of process 0 (which owns the task service) by a
//! hash of the task's parameters, so tasks spread over its workers. Output: [`PlannedTask`] at
//! the task's own epoch, once its plan is stored.
//!
//! Where the planner runs: the rule planner takes microseconds, so a task is planned on the
//! worker in the activation it arrives in, and no capability is held. A planner that
//! [blocks](crate::plan::Planner::blocks) (the LLM planner waits on HTTP for up to its
//! timeout) must not hold a timely worker for seconds, since that worker also drives every
//! task's denoising: the operator then moves the task to `Planning`, retains the epoch's
//! capability and hands the task to [`PLANNING_THREADS`] threads of its own; a thread that is
//! done wakes the operator (a timely `SyncActivator`), which stores the plan and emits the
//! task under the capability, then drops it. Planning inside the graph (rather than before a
//! task enters it) keeps one path for every task: resumed tasks, cancellation (a task that
//! ended meanwhile is dropped on its return), the engine's ledger and its recovery all stay as
//! they are. The planner's own timeout bounds how long a capability is held.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::{self, Receiver, Sender};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::scheduling::SyncActivator;

use storage::{now_ms, TaskRecord, TaskStatus};

use super::context::{Context, Home};
use super::messages::{PlannedTask, TaskIn};
use crate::engine::FAULT_PANIC_PROMPT;
use crate::health::panic_message;
use crate::plan::Plan;

/// The exchange key of a task: a hash of its parameters (prompt, seed, steps, sizes, ...),
/// the same on every worker and process, so identical tasks are planned (on its home worker,
/// [`super::context::Layout::home_worker`]) and denoised (on any worker) on one.
pub fn route(t: &TaskIn) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(&t.params)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

/// Threads per `plan` operator (so per worker) asking a blocking planner: how many of a
/// worker's tasks wait on the LLM at once.
pub const PLANNING_THREADS: usize = 4;

/// The `plan_tasks` operator on a stream of incoming tasks.
///
/// Input: [`TaskIn`], exchanged to its home worker in process 0 by a hash of what the task
/// asks ([`route`]), so tasks spread over the workers while identical ones meet on one, where
/// `denoise` samples their scenes once. Output: one [`PlannedTask`] per task that is neither
/// cancelled nor failed to plan, at the task's own epoch, after its plan is stored.
/// Capabilities: none held with the rule planner; with a blocking planner, one per task while
/// its plan is being made. In the other processes of a cluster it never receives a task.
pub trait PlanTasks<'s> {
    /// Plans each task's prompt into scenes ([`crate::planner`]), stores the plan and the
    /// result-cache key, and passes the task on.
    fn plan_tasks(self, ctx: Arc<Context>) -> StreamVec<'s, u64, PlannedTask>;
}

impl<'s> PlanTasks<'s> for StreamVec<'s, u64, TaskIn> {
    fn plan_tasks(self, ctx: Arc<Context>) -> StreamVec<'s, u64, PlannedTask> {
        let scope = self.scope();
        let layout = ctx.layout;
        let home_of = move |t: &TaskIn| layout.home_worker(route(t));
        self.unary(Exchange::new(home_of), "plan", move |_cap, info| {
            let home = ctx.home.clone();
            let threads = home.as_ref().filter(|h| h.planner.blocks()).map(|h| {
                let wake = scope.worker().sync_activator_for(info.address.to_vec());
                PlanningThreads::start(&ctx, h, wake)
            });
            let mut held: HashMap<u64, Capability<u64>> = HashMap::new();
            move |input, output| {
                let Some(home) = home.as_deref() else {
                    input.for_each_stamp(|_, _| {});
                    return;
                };
                input.for_each_stamp(|cap, data| {
                    let tasks = data
                        .flat_map(|d| d.drain(..))
                        .filter_map(|t| admit(&ctx, home, t));
                    match &threads {
                        None => {
                            let mut session = output.session(&cap);
                            for task in tasks {
                                let started = Instant::now();
                                let _span = tracing::debug_span!("plan", task = task.id).entered();
                                let p = &task.params;
                                let plan = home.planner.plan(&p.prompt, p.num_scenes, p.seed);
                                if let Some(planned) = finish(&ctx, home, task, plan, started) {
                                    session.give(planned);
                                }
                            }
                        }
                        Some(threads) => {
                            let Some(cap) = cap.retain_least(0) else {
                                return;
                            };
                            for task in tasks {
                                let started = Instant::now();
                                // Planning while the LLM is asked; the plan is stored later.
                                let moved =
                                    home.tasks.advance(task.id, TaskStatus::Planning, |r| {
                                        queued(r);
                                    });
                                if !matches!(moved, Ok(Some(_))) {
                                    continue;
                                }
                                held.insert(task.id, cap.clone());
                                threads.submit(task, started);
                            }
                        }
                    }
                });
                for (task, plan, started) in threads.iter().flat_map(|t| t.finished()) {
                    let Some(cap) = held.remove(&task.id) else {
                        continue;
                    };
                    if let Some(planned) = finish(&ctx, home, task, plan, started) {
                        output.session(&cap).give(planned);
                    }
                }
            }
        })
    }
}

/// The task, if it should be planned: not ended meanwhile. Honours the fault marker here, on
/// the worker, so that the test's panic kills a timely worker.
fn admit(ctx: &Context, home: &Home, task: TaskIn) -> Option<TaskIn> {
    if !home.live(task.id) {
        return None;
    }
    if ctx.fault_injection && task.params.prompt.contains(FAULT_PANIC_PROMPT) {
        panic!("fault injection: task {} asked this worker to die", task.id);
    }
    Some(task)
}

/// Records how long the task waited for planning.
fn queued(r: &mut TaskRecord) {
    r.timings_ms
        .insert("queue".into(), now_ms().saturating_sub(r.created_ms));
}

/// Stores `plan` (and the time since `started`) and makes the task ready for the cache
/// lookup; `None` when the task ended meanwhile or the write failed.
fn finish(
    ctx: &Context,
    home: &Home,
    task: TaskIn,
    plan: Plan,
    started: Instant,
) -> Option<PlannedTask> {
    let p = &task.params;
    // Same plan, seed, parameters and model give the same video: that is the cache key.
    let cache_key = serde_json::json!({
        "model": ctx.model.spec().id,
        "scenes": plan.scenes.iter().map(|s| &s.caption).collect::<Vec<_>>(),
        "seed": p.seed, "steps": p.steps, "guidance": p.guidance,
        "seconds_per_scene": p.seconds_per_scene, "fps": p.fps, "size": p.size,
        "free_form": p.free_form,
    })
    .to_string();
    let plan_json = serde_json::to_value(&plan).ok();
    let plan_ms = started.elapsed().as_millis() as u64;
    let store = |r: &mut TaskRecord| {
        r.plan = plan_json;
        r.timings_ms.insert("plan".into(), plan_ms);
    };
    if home.planner.blocks() {
        // Already `Planning` (see the operator); ended meanwhile: dropped.
        if !home.live(task.id) {
            return None;
        }
        home.tasks.patch(task.id, store).ok()??;
    } else {
        home.tasks
            .advance(task.id, TaskStatus::Planning, |r| {
                queued(r);
                store(r);
            })
            .ok()??;
    }
    metrics::histogram!("reel_stage_seconds", "stage" => "plan")
        .record(started.elapsed().as_secs_f64());
    home.tasks.begin(task.id, plan.scenes.len());
    Some(PlannedTask {
        route: route(&task),
        task,
        plan,
        cache_key,
    })
}

/// The threads that call a blocking planner for one `plan` operator. Dropping it closes
/// their queue: each ends after the plan it is making (they are not joined, so a worker
/// stopping does not wait on the network).
struct PlanningThreads {
    jobs: Sender<(TaskIn, Instant)>,
    done: Receiver<(TaskIn, Plan, Instant)>,
}

impl PlanningThreads {
    fn start(ctx: &Arc<Context>, home: &Arc<Home>, wake: SyncActivator) -> PlanningThreads {
        let (jobs, queue) = channel::unbounded::<(TaskIn, Instant)>();
        let (done_tx, done) = channel::unbounded();
        for i in 0..PLANNING_THREADS {
            let (ctx, home, queue, done_tx, wake) = (
                ctx.clone(),
                home.clone(),
                queue.clone(),
                done_tx.clone(),
                wake.clone(),
            );
            let run = move || {
                for (task, started) in queue.iter() {
                    let p = &task.params;
                    let plan = {
                        let _span = tracing::debug_span!("plan", task = task.id).entered();
                        let call =
                            AssertUnwindSafe(|| home.planner.plan(&p.prompt, p.num_scenes, p.seed));
                        match std::panic::catch_unwind(call) {
                            Ok(plan) => plan,
                            Err(panic) => {
                                let why = panic_message(panic.as_ref());
                                ctx.health
                                    .report_death(format!("planning thread {i} panicked: {why}"));
                                return;
                            }
                        }
                    };
                    if done_tx.send((task, plan, started)).is_err() || wake.activate().is_err() {
                        return;
                    }
                }
            };
            if let Err(e) = std::thread::Builder::new()
                .name(format!("reel-plan-{i}"))
                .spawn(run)
            {
                tracing::error!(error = %e, "cannot start a planning thread");
            }
        }
        PlanningThreads { jobs, done }
    }

    fn submit(&self, task: TaskIn, started: Instant) {
        // The threads only stop when this end is dropped.
        let _ = self.jobs.send((task, started));
    }

    /// Plans made since the last call.
    fn finished(&self) -> impl Iterator<Item = (TaskIn, Plan, Instant)> + '_ {
        self.done.try_iter()
    }
}
