//! Which of a task's scenes may start denoising: a task's scenes are staggered so that its
//! first scene finishes first and its frames stream while the others are still sampled.
//!
//! Scene `k` of a task may start once scene `k - 1` has done [`lead_steps`] of its steps (or
//! finished); scene 0 may always start. The stagger is a fraction of the scene's steps
//! (`--scene-stagger`): 0 starts a task's scenes together, as reel did before (all of them
//! finish at the last step); 1 starts each when the one before it is done, so the first scene's
//! frames come after a `1 / scenes` share of the denoising. Scenes that may not start yet are
//! passed over in the wait queue ([`super::fair_queue::FairQueue::pop_where`]), so the free slot
//! goes to another task's scene and batching across tasks is kept.
//!
//! What it costs: a task's own scenes share fewer steps. Where a batched step costs about as
//! much as its scenes would one by one (reel's CPU backend, and its CUDA backend past a
//! batch of a few), that is nothing: the same scene-steps are done, in another order. Where a
//! batch is nearly free (a GPU far from full), a lone task takes longer, up to `scenes` times
//! its denoising at stagger 1; a lower stagger trades first frames for that time.

/// Where one scene of a task stands in denoising.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Not started.
    Waiting,
    /// Started, with this many steps done.
    Running(usize),
    /// All its steps done.
    Done,
}

/// Steps scene `k - 1` must have done before scene `k` starts, for `stagger` (a fraction of
/// the `steps`, clamped to [0, 1]).
pub fn lead_steps(stagger: f32, steps: usize) -> usize {
    let lead = (f64::from(stagger.clamp(0.0, 1.0)) * steps as f64).ceil();
    (lead as usize).min(steps)
}

/// The stages of one task's scenes and the lead that orders them.
#[derive(Clone, Debug)]
pub struct SceneOrder {
    stages: Vec<Stage>,
    lead: usize,
}

impl SceneOrder {
    /// `count` scenes of `steps` steps, none started, staggered by `stagger`.
    pub fn new(count: usize, steps: usize, stagger: f32) -> SceneOrder {
        SceneOrder {
            stages: vec![Stage::Waiting; count],
            lead: lead_steps(stagger, steps),
        }
    }

    /// Whether scene `index` may start now: it is the first, or the scene before it has
    /// started and done the lead's steps, or finished.
    pub fn may_start(&self, index: usize) -> bool {
        let Some(before) = index.checked_sub(1) else {
            return true;
        };
        match self.stages.get(before) {
            Some(Stage::Waiting) => false,
            Some(Stage::Running(done)) => *done >= self.lead,
            Some(Stage::Done) | None => true,
        }
    }

    /// Records where scene `index` stands.
    pub fn set(&mut self, index: usize, stage: Stage) {
        if let Some(s) = self.stages.get_mut(index) {
            *s = stage;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::fair_queue::FairQueue;
    use super::*;

    #[test]
    fn the_lead_is_a_share_of_the_steps() {
        assert_eq!(lead_steps(0.0, 20), 0);
        assert_eq!(lead_steps(0.5, 20), 10);
        assert_eq!(lead_steps(0.33, 20), 7);
        assert_eq!(lead_steps(1.0, 20), 20);
        assert_eq!((lead_steps(-1.0, 20), lead_steps(7.0, 20)), (0, 20));
        assert_eq!(lead_steps(0.01, 1), 1);
    }

    #[test]
    fn a_scene_waits_for_the_one_before_it() {
        let mut o = SceneOrder::new(3, 10, 0.5);
        assert!(o.may_start(0) && !o.may_start(1) && !o.may_start(2));
        o.set(0, Stage::Running(0));
        assert!(!o.may_start(1));
        o.set(0, Stage::Running(4));
        assert!(!o.may_start(1));
        o.set(0, Stage::Running(5));
        assert!(o.may_start(1) && !o.may_start(2));
        o.set(1, Stage::Running(0));
        o.set(0, Stage::Done);
        assert!(!o.may_start(2));
        o.set(1, Stage::Done);
        assert!(o.may_start(2));
        // Stagger 0: only the order is kept; each may start once the one before has.
        let mut together = SceneOrder::new(2, 10, 0.0);
        assert!(!together.may_start(1));
        together.set(0, Stage::Running(0));
        assert!(together.may_start(1));
    }

    /// A scene of the simulation: (task, scene index).
    type Scene = (usize, usize);

    /// One simulated denoiser: tasks of `scenes` scenes (one owner, submitted in order),
    /// `steps` steps each, at most `batch` scenes per step. Returns, per step, the
    /// (task, scene) pairs that ran, and the step at which each scene finished.
    fn simulate(
        tasks: usize,
        scenes: usize,
        steps: usize,
        batch: usize,
        stagger: f32,
    ) -> (Vec<Vec<Scene>>, Vec<(Scene, usize)>) {
        let mut waiting = FairQueue::default();
        let mut orders: Vec<SceneOrder> = (0..tasks)
            .map(|_| SceneOrder::new(scenes, steps, stagger))
            .collect();
        for t in 0..tasks {
            for s in 0..scenes {
                waiting.push(5, None::<Arc<str>>, (t, s));
            }
        }
        let (mut running, mut ran, mut finished) = (Vec::new(), Vec::new(), Vec::new());
        while !waiting.is_empty() || !running.is_empty() {
            while running.len() < batch {
                let Some((t, s)) = waiting.pop_where(|&(t, s)| orders[t].may_start(s)) else {
                    break;
                };
                orders[t].set(s, Stage::Running(0));
                running.push((t, s, 0));
            }
            ran.push(running.iter().map(|&(t, s, _)| (t, s)).collect());
            for (t, s, done) in &mut running {
                *done += 1;
                orders[*t].set(*s, Stage::Running(*done));
            }
            let step = ran.len();
            running.retain(|&(t, s, done)| {
                if done == steps {
                    orders[t].set(s, Stage::Done);
                    finished.push(((t, s), step));
                }
                done < steps
            });
        }
        (ran, finished)
    }

    #[test]
    fn stagger_zero_is_the_old_order_all_together() {
        let (ran, finished) = simulate(1, 3, 4, 8, 0.0);
        assert_eq!(ran.len(), 4);
        assert!(ran.iter().all(|r| r.len() == 3));
        assert!(finished.iter().all(|&(_, step)| step == 4));
    }

    #[test]
    fn a_lone_task_s_first_scene_finishes_first() {
        // Stagger 1: one after another, the first done after a third of the scene-steps.
        let (ran, finished) = simulate(1, 3, 4, 8, 1.0);
        assert_eq!(finished, [((0, 0), 4), ((0, 1), 8), ((0, 2), 12)]);
        assert!(ran.iter().all(|r| r.len() == 1));
        // Stagger 0.5: overlapping by half, still in scene order.
        let (ran, finished) = simulate(1, 3, 4, 8, 0.5);
        assert_eq!(finished, [((0, 0), 4), ((0, 1), 6), ((0, 2), 8)]);
        let widths: Vec<usize> = ran.iter().map(Vec::len).collect();
        assert_eq!(widths, [1, 1, 2, 2, 2, 2, 1, 1]);
    }

    #[test]
    fn other_tasks_fill_the_batch_while_a_task_s_later_scenes_wait() {
        // Ten 3-scene tasks, batch 8: the first steps run the first scenes of 8 tasks, not
        // 3 + 3 + 2 scenes of 3 tasks; the batch stays full while 8 scenes may run.
        let (ran, finished) = simulate(10, 3, 4, 8, 1.0);
        let first: Vec<(usize, usize)> = (0..8).map(|t| (t, 0)).collect();
        assert_eq!(ran[0], first);
        let scene_steps: usize = ran.iter().map(Vec::len).sum();
        assert_eq!(scene_steps, 10 * 3 * 4, "the same work, in another order");
        assert!(ran[..12].iter().all(|r| r.len() == 8));
        // Every task's scenes finish in scene order, and tasks' first frames come in
        // submission order.
        for t in 0..10 {
            let mine: Vec<usize> = finished
                .iter()
                .filter(|((task, _), _)| *task == t)
                .map(|((_, s), _)| *s)
                .collect();
            assert_eq!(mine, [0, 1, 2], "task {t}");
        }
        let firsts: Vec<usize> = (0..10)
            .map(|t| finished.iter().find(|((task, _), _)| *task == t).unwrap().1)
            .collect();
        assert!(firsts.windows(2).all(|w| w[0] <= w[1]), "{firsts:?}");
        assert_eq!(firsts[0], 4);
        // The old order, for comparison: task 0's first scene finishes with its last.
        let (_, old) = simulate(10, 3, 4, 8, 0.0);
        let old_first = old.iter().find(|((t, _), _)| *t == 0).unwrap().1;
        assert_eq!(old_first, 4);
        let old_last_of_0 = old.iter().rfind(|((t, _), _)| *t == 0).unwrap().1;
        assert_eq!(old_last_of_0, 4);
    }
}
