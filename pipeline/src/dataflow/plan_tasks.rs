//! `plan_tasks`: prompt -> scene plan.
//!
//! Input: [`TaskIn`], exchanged by task id so tasks spread over the workers.
//! Output: [`PlannedTask`] at the task's own epoch, once its plan is stored.
//! Capabilities: none held; each task is planned in the activation it arrives in.

use std::sync::Arc;
use std::time::Instant;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use storage::{now_ms, TaskStatus};

use super::context::Context;
use super::messages::{PlannedTask, TaskIn};
use crate::engine::FAULT_PANIC_PROMPT;

/// The `plan_tasks` operator on a stream of incoming tasks.
///
/// Input: [`TaskIn`], exchanged by task id (`Exchange` on `TaskIn::id`), so tasks spread over
/// the workers. Output: one [`PlannedTask`] per task that is neither cancelled nor failed to
/// plan, at the task's own epoch, after its plan is stored. Capabilities: none held; a task is
/// planned in the activation that brings it.
pub trait PlanTasks<'s> {
    /// Plans each task's prompt into scenes ([`crate::planner`]), stores the plan and the
    /// result-cache key, and passes the task on.
    fn plan_tasks(self, ctx: Arc<Context>) -> StreamVec<'s, u64, PlannedTask>;
}

impl<'s> PlanTasks<'s> for StreamVec<'s, u64, TaskIn> {
    fn plan_tasks(self, ctx: Arc<Context>) -> StreamVec<'s, u64, PlannedTask> {
        self.unary(
            Exchange::new(|t: &TaskIn| t.id),
            "plan",
            move |_cap, _info| {
                move |input, output| {
                    input.for_each_stamp(|cap, data| {
                        let mut session = output.session(&cap);
                        for task in data.flat_map(|d| d.drain(..)) {
                            if let Some(planned) = plan_one(&ctx, task) {
                                session.give(planned);
                            }
                        }
                    });
                }
            },
        )
    }
}

fn plan_one(ctx: &Context, task: TaskIn) -> Option<PlannedTask> {
    if !ctx.live(task.id) {
        return None;
    }
    let _span = tracing::debug_span!("plan", task = task.id).entered();
    if ctx.fault_injection && task.params.prompt.contains(FAULT_PANIC_PROMPT) {
        panic!("fault injection: task {} asked this worker to die", task.id);
    }
    let started = Instant::now();
    let p = &task.params;
    let plan = ctx.planner.plan(&p.prompt, p.num_scenes, p.seed);
    // Same plan, seed, parameters and model give the same video: that is the cache key.
    let cache_key = serde_json::json!({
        "model": ctx.model.id(),
        "scenes": plan.scenes.iter().map(|s| &s.caption).collect::<Vec<_>>(),
        "seed": p.seed, "steps": p.steps, "guidance": p.guidance,
        "seconds_per_scene": p.seconds_per_scene, "fps": p.fps, "size": p.size,
    })
    .to_string();
    let plan_json = serde_json::to_value(&plan).ok();
    let plan_ms = started.elapsed().as_millis() as u64;
    ctx.tasks
        .advance(task.id, TaskStatus::Planning, |r| {
            r.plan = plan_json;
            r.timings_ms
                .insert("queue".into(), now_ms().saturating_sub(r.created_ms));
            r.timings_ms.insert("plan".into(), plan_ms);
        })
        .ok()??;
    metrics::histogram!("reel_stage_seconds", "stage" => "plan")
        .record(started.elapsed().as_secs_f64());
    ctx.tasks.begin(task.id, plan.scenes.len());
    Some(PlannedTask {
        task,
        plan,
        cache_key,
    })
}
