//! Where a task's scenes are denoised: the least loaded denoiser (timely worker, in any
//! process), unless an identical task is in flight, whose denoiser it then joins so that
//! `denoise` samples their scenes once.
//!
//! Placing by a hash of the parameters alone balances only on average: with few tasks in
//! flight, several land on one denoiser while another idles (`docs/DEPLOY.md` measured 7 of 8
//! tasks on one of two processes). The home worker that splits a task into scene jobs
//! (`lookup_cache`) asks [`Placement::place`]; every scene that comes back home
//! (`post_process`) is [`Placement::returned`]; a task that ended leaves at the next placement.

use std::collections::HashMap;

/// The denoisers' assigned work, as process 0 placed it.
#[derive(Debug, Default)]
pub struct Placement {
    /// Per task in denoising: its route, its denoiser and its scenes not yet back.
    tasks: HashMap<u64, Placed>,
}

#[derive(Debug, Clone, Copy)]
struct Placed {
    route: u64,
    worker: usize,
    left: usize,
}

impl Placement {
    /// The denoiser (of `denoisers`) for `task`'s `scenes` scenes: an identical task's (same
    /// `route`) while one is in denoising, else the one with the fewest scenes outstanding
    /// (ties to the lowest index after `route`, so that equal loads still spread). Tasks for
    /// which `live` is false are forgotten first.
    pub fn place(
        &mut self,
        task: u64,
        route: u64,
        scenes: usize,
        denoisers: usize,
        live: impl Fn(u64) -> bool,
    ) -> usize {
        self.tasks.retain(|t, _| live(*t));
        let denoisers = denoisers.max(1);
        let worker = match self.tasks.values().find(|p| p.route == route) {
            Some(p) => p.worker,
            None => {
                let mut load = vec![0usize; denoisers];
                for p in self.tasks.values() {
                    load[p.worker % denoisers] += p.left;
                }
                let start = (route % denoisers as u64) as usize;
                (0..denoisers)
                    .map(|k| (start + k) % denoisers)
                    .min_by_key(|&w| load[w])
                    .unwrap_or(0)
            }
        };
        self.tasks.insert(
            task,
            Placed {
                route,
                worker,
                left: scenes,
            },
        );
        worker
    }

    /// One of `task`'s scenes came back from denoising.
    pub fn returned(&mut self, task: u64) {
        if let Some(p) = self.tasks.get_mut(&task) {
            p.left = p.left.saturating_sub(1);
            if p.left == 0 {
                self.tasks.remove(&task);
            }
        }
    }

    /// Forgets everything (a fresh dataflow starts with empty denoisers).
    pub fn clear(&mut self) {
        self.tasks.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_idle_denoisers_first_and_keeps_identical_tasks_together() {
        let mut p = Placement::default();
        let live = |_| true;
        // Three tasks whose routes would all hash to denoiser 0 of 3.
        let a = p.place(1, 0, 3, 3, live);
        let b = p.place(2, 3, 3, 3, live);
        let c = p.place(3, 6, 3, 3, live);
        let mut all = vec![a, b, c];
        all.sort();
        assert_eq!(all, [0, 1, 2]);
        // An identical task joins its twin, whatever the loads.
        assert_eq!(p.place(4, 3, 3, 3, live), b);
        // Scenes coming back free their denoiser: task 1's three, then a new task goes there.
        for _ in 0..3 {
            p.returned(1);
        }
        assert_eq!(p.place(5, 9, 2, 3, live), a);
        // An ended task's scenes no longer count.
        assert_eq!(p.place(6, 12, 1, 3, |t| t != 2 && t != 4), b);
    }
}
