//! diffusers' `FlowMatchEulerDiscreteScheduler` (deterministic, fixed shift).
//!
//! The scheduler is built with training sigmas `u = j / N` (`j = N..1`, f32) shifted as
//! `s u / (1 + (s - 1) u)`; `set_timesteps(n)` then spaces `n` timesteps linearly from
//! `N sigma_max` to `N sigma_min` of those shifted sigmas (f64), divides by `N` and shifts
//! them *again* (as diffusers 0.42 does: 2 steps at shift 3 give sigmas 1, 0.00893), rounds
//! them to f32 and appends 0; timestep `i` is `N sigma_i` in f32. A step is
//! `x' = x + (sigma_{i+1} - sigma_i) v` for the model's velocity `v`.

use rayon::prelude::*;

use super::FlowMatchEulerConfig;

/// A FlowMatchEuler run of a fixed number of steps; [`FlowMatchEulerScheduler::step`] once
/// per timestep, in order.
#[derive(Debug, Clone)]
pub struct FlowMatchEulerScheduler {
    sigmas: Vec<f32>,
    timesteps: Vec<f32>,
    step_index: usize,
}

impl FlowMatchEulerScheduler {
    /// The schedule of `steps` steps for `config`.
    ///
    /// Panics if `steps` is 0 or the config is one [`FlowMatchEulerConfig::unsupported`]
    /// refuses (a config read by `WanCheckpoint::open` has been checked).
    pub fn new(config: &FlowMatchEulerConfig, steps: usize) -> FlowMatchEulerScheduler {
        assert!(steps > 0, "FlowMatchEuler: no steps");
        if let Some(why) = config.unsupported() {
            panic!("{why}");
        }
        let n_train = config.num_train_timesteps;
        let shift = config.shift;
        // The training schedule's ends (u = 1 and u = 1/N), in f32 as the constructor
        // computes them.
        let shift_f32 = |u: f32| {
            let s = shift as f32;
            s * u / (1.0 + (s - 1.0) * u)
        };
        let sigma_max = shift_f32(1.0) as f64;
        let sigma_min = shift_f32(1.0 / n_train as f32) as f64;
        let (t0, t1) = (sigma_max * n_train as f64, sigma_min * n_train as f64);
        let delta = if steps > 1 {
            (t1 - t0) / (steps - 1) as f64
        } else {
            0.0
        };
        let mut sigmas: Vec<f32> = (0..steps)
            .map(|i| {
                let t = if steps > 1 && i == steps - 1 {
                    t1
                } else {
                    t0 + i as f64 * delta
                };
                let u = t / n_train as f64;
                (shift * u / (1.0 + (shift - 1.0) * u)) as f32
            })
            .collect();
        let timesteps = sigmas.iter().map(|s| s * n_train as f32).collect();
        sigmas.push(0.0);
        FlowMatchEulerScheduler {
            sigmas,
            timesteps,
            step_index: 0,
        }
    }

    /// The timesteps, one per step (what the transformer is given).
    pub fn timesteps(&self) -> &[f32] {
        &self.timesteps
    }

    /// The sigmas, one per step and the final 0.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// One step: the sample after this timestep, from the model's (guided) output
    /// `model_output` for `sample`.
    ///
    /// Panics after the last step, or if the lengths differ.
    pub fn step(&mut self, model_output: &[f32], sample: &[f32]) -> Vec<f32> {
        let i = self.step_index;
        assert!(
            i < self.timesteps.len(),
            "FlowMatchEuler: past the last step"
        );
        assert_eq!(
            model_output.len(),
            sample.len(),
            "FlowMatchEuler: sizes differ"
        );
        let dt = self.sigmas[i + 1] - self.sigmas[i];
        self.step_index += 1;
        sample
            .par_iter()
            .zip(model_output)
            .map(|(&x, &v)| x + dt * v)
            .collect()
    }
}
