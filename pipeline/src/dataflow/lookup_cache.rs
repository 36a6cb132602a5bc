//! `lookup_cache`: answers a repeated request from the result cache.
//!
//! Input: [`PlannedTask`] (pipelined). Output: one [`SceneJob`] per scene for a cache miss;
//! nothing for a hit, which is completed right here (the earlier task's artifact, marked
//! cached). Capabilities: none held.

use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use storage::TaskStatus;

use super::context::Context;
use super::messages::{PlannedTask, SceneJob};

/// The `lookup_cache` operator on a stream of planned tasks.
///
/// Input: [`PlannedTask`], pipelined (no exchange: it stays on the worker that planned it).
/// Output: one [`SceneJob`] per scene of a task the cache cannot answer, at the task's epoch;
/// nothing for a cache hit (completed here from the earlier task's artifact) or a cancelled
/// task. Capabilities: none held.
pub trait LookupCache<'s> {
    /// Completes repeated requests from the result cache and splits the rest into scene jobs,
    /// moving those tasks to `Generating`.
    fn lookup_cache(self, ctx: Arc<Context>) -> StreamVec<'s, u64, SceneJob>;
}

impl<'s> LookupCache<'s> for StreamVec<'s, u64, PlannedTask> {
    fn lookup_cache(self, ctx: Arc<Context>) -> StreamVec<'s, u64, SceneJob> {
        self.unary(Pipeline, "lookup_cache", move |_cap, _info| {
            move |input, output| {
                input.for_each_stamp(|cap, data| {
                    let mut session = output.session(&cap);
                    for task in data.flat_map(|d| d.drain(..)) {
                        if ctx.cancelled(task.id) || complete_from_cache(&ctx, &task) {
                            continue;
                        }
                        ctx.set_status(task.id, TaskStatus::Generating);
                        let key: Arc<str> = task.cache_key.as_str().into();
                        let count = task.plan.scenes.len();
                        for (index, scene) in task.plan.scenes.iter().enumerate() {
                            session.give(SceneJob {
                                task: task.id,
                                index,
                                count,
                                caption: scene.caption.clone(),
                                params: task.params.clone(),
                                cache_key: key.clone(),
                            });
                        }
                    }
                });
            }
        })
    }
}

/// True when an earlier task's artifact answers this one (and it is now completed).
fn complete_from_cache(ctx: &Context, task: &PlannedTask) -> bool {
    let source = match ctx.store.cache_get(&task.cache_key) {
        Ok(Some(id)) => id,
        _ => {
            metrics::counter!("reel_cache_misses_total").increment(1);
            return false;
        }
    };
    let artifact = match ctx.store.get(source) {
        Ok(Some(r)) => r.artifact,
        _ => None,
    };
    let Some(artifact) = artifact else {
        metrics::counter!("reel_cache_misses_total").increment(1);
        return false;
    };
    metrics::counter!("reel_cache_hits_total").increment(1);
    ctx.update(task.id, |r| {
        r.artifact = Some(artifact);
        r.cached = true;
        r.scenes_done = task.plan.scenes.len();
        r.status = TaskStatus::Completed;
    });
    ctx.hub.done(task.id, TaskStatus::Completed);
    true
}
