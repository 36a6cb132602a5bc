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

use super::context::{Context, Home};
use super::messages::{PlannedTask, SceneJob};

/// The `lookup_cache` operator on a stream of planned tasks.
///
/// Input: [`PlannedTask`], pipelined (no exchange: it stays on the worker that planned it).
/// Output: one [`SceneJob`] per scene of a task the cache cannot answer, at the task's epoch,
/// addressed to the denoiser `placement.rs` chose;
/// nothing for a cache hit (completed here from the earlier task's artifact) or a cancelled
/// task. Capabilities: none held. Runs where `plan_tasks` does: on process 0.
pub trait LookupCache<'s> {
    /// Completes repeated requests from the result cache and splits the rest into scene jobs,
    /// moving those tasks to `Generating`.
    fn lookup_cache(self, ctx: Arc<Context>) -> StreamVec<'s, u64, SceneJob>;
}

impl<'s> LookupCache<'s> for StreamVec<'s, u64, PlannedTask> {
    fn lookup_cache(self, ctx: Arc<Context>) -> StreamVec<'s, u64, SceneJob> {
        self.unary(Pipeline, "lookup_cache", move |_cap, _info| {
            let home = ctx.home.clone();
            let layout = ctx.layout;
            move |input, output| {
                let Some(home) = home.as_deref() else {
                    input.for_each_stamp(|_, _| {});
                    return;
                };
                input.for_each_stamp(|cap, data| {
                    let mut session = output.session(&cap);
                    for planned in data.flat_map(|d| d.drain(..)) {
                        let id = planned.task.id;
                        if !home.live(id) || complete_from_cache(home, &planned) {
                            continue;
                        }
                        if !matches!(
                            home.tasks.advance(id, TaskStatus::Generating, |_| {}),
                            Ok(Some(_))
                        ) {
                            continue;
                        }
                        let key: Arc<str> = planned.cache_key.as_str().into();
                        let params = Arc::new(planned.task.params);
                        let count = planned.plan.scenes.len();
                        let denoiser = home.place(id, planned.route, count, layout);
                        let owner: Option<Arc<str>> = planned.task.owner.as_deref().map(Arc::from);
                        for (index, scene) in planned.plan.scenes.into_iter().enumerate() {
                            session.give(SceneJob {
                                task: id,
                                route: planned.route,
                                denoiser,
                                index,
                                count,
                                caption: scene.caption,
                                params: params.clone(),
                                cache_key: key.clone(),
                                owner: owner.clone(),
                                priority: planned.task.priority,
                            });
                        }
                    }
                });
            }
        })
    }
}

/// True when an earlier task's artifact answers this one (and it is now completed).
fn complete_from_cache(home: &Home, planned: &PlannedTask) -> bool {
    let store = home.tasks.store();
    let source = match store.cache_get(&planned.cache_key) {
        Ok(Some(id)) => id,
        _ => {
            metrics::counter!("reel_cache_misses_total").increment(1);
            return false;
        }
    };
    let artifact = match store.get(source) {
        Ok(Some(r)) => r.artifact,
        _ => None,
    };
    let Some(artifact) = artifact else {
        metrics::counter!("reel_cache_misses_total").increment(1);
        return false;
    };
    metrics::counter!("reel_cache_hits_total").increment(1);
    let scenes = planned.plan.scenes.len();
    // Whether or not the write took (a cancel may have won), the task needs no generating.
    let _ = home
        .tasks
        .advance(planned.task.id, TaskStatus::Completed, |r| {
            r.artifact = Some(artifact);
            r.cached = true;
            r.scenes_done = scenes;
        });
    true
}
