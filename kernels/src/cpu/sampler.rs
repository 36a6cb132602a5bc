//! The CPU backend's sampler step (`Backend::guided_step`): the guidance combine of scene.rs
//! and the update of `Solver::advance`, operation for operation in their order (Rust never
//! contracts `a * b + c` into a fused multiply-add), from the factors of `scene_step.rs`,
//! which round as `Solver::advance` does: the result is the host sampler's, bit for bit.

use rayon::prelude::*;

use crate::sampler::Prediction;
use crate::scene_step::{coefficients, SceneStep, Update};

/// Advances `latents` (slabs of `len` values, one per scene of `scenes`) by one step from the
/// denoiser's `out` (the conditional slabs, then the unconditional ones), writing each scene's
/// x0 estimate into `x0` (read first, as the previous estimate, by second-order steps).
/// The caller has validated the scenes and the sizes.
pub(crate) fn guided_step(
    latents: &mut [f32],
    x0: &mut [f32],
    out: &[f32],
    scenes: &[SceneStep],
    len: usize,
) {
    let (cond, uncond) = out.split_at(scenes.len() * len);
    latents
        .par_chunks_mut(len)
        .zip(x0.par_chunks_mut(len))
        .zip(cond.par_chunks(len).zip(uncond.par_chunks(len)))
        .zip(scenes)
        .for_each(|(((z, x0), (cond, uncond)), s)| scene_step(s, z, x0, cond, uncond));
}

fn scene_step(s: &SceneStep, z: &mut [f32], x0: &mut [f32], cond: &[f32], uncond: &[f32]) {
    let c = coefficients(s.method, s.steps, s.step);
    let (g, v_pred) = (s.guidance, s.prediction == Prediction::V);
    for (((z, x0), &cond), &u) in z.iter_mut().zip(x0).zip(cond).zip(uncond) {
        // scene.rs's guidance combine, then Solver::advance.
        let o = u + g * (cond - u);
        let zi = *z;
        let x = if v_pred { c.af * zi - c.sf * o } else { o };
        *z = match c.update {
            Update::Ddim => {
                let eps = if v_pred {
                    c.sf * zi + c.af * o
                } else {
                    (zi - c.af * x) / c.sf
                };
                c.an * x + c.sn * eps
            }
            Update::DpmFirst => c.zf * zi - c.df * x,
            Update::DpmSecond => c.zf * zi - c.df * (c.c0 * x - c.c1 * *x0),
        };
        *x0 = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{Method, Solver};

    /// Whole runs of every method and prediction, two scenes of different step counts in one
    /// batch until the shorter one finishes, with network outputs that vary by step: the
    /// latents and x0 estimates equal `Solver::advance`'s (after scene.rs's guidance combine)
    /// bit for bit.
    #[test]
    fn matches_the_host_solver_bit_for_bit() {
        let len = 7;
        let noise = |seed: u64| crate::philox::gaussian(99, seed, len);
        for prediction in [Prediction::X0, Prediction::V] {
            for method in [Method::Ddim, Method::DpmPP2M] {
                let runs = [(5usize, 3.5f32), (2, 1.25)];
                let mut solvers: Vec<Solver> = runs
                    .iter()
                    .map(|&(steps, _)| Solver::new(method, prediction, steps))
                    .collect();
                let mut host: Vec<Vec<f32>> = vec![noise(1), noise(2)];
                let (mut z, mut x0) = (host.concat(), vec![0.0f32; 2 * len]);
                for step in 0..2 {
                    let (cond, uncond) = (noise(10 + step as u64), noise(50 + step as u64));
                    let out = [cond.clone(), cond.clone(), uncond.clone(), uncond.clone()];
                    let mut scenes = Vec::new();
                    for (i, &(steps, guidance)) in runs.iter().enumerate() {
                        let guided: Vec<f32> = cond
                            .iter()
                            .zip(&uncond)
                            .map(|(&c, &u)| u + guidance * (c - u))
                            .collect();
                        solvers[i].advance(&mut host[i], &guided);
                        scenes.push(SceneStep {
                            method,
                            prediction,
                            steps,
                            step,
                            guidance,
                        });
                    }
                    guided_step(&mut z, &mut x0, &out.concat(), &scenes, len);
                    let what = format!("{method:?}/{prediction:?} step {step}");
                    assert_eq!(z, host.concat(), "{what}: latents");
                    let want: Vec<f32> = solvers
                        .iter()
                        .flat_map(|s| s.x0().unwrap())
                        .copied()
                        .collect();
                    assert_eq!(x0, want, "{what}: x0");
                }
                assert!(solvers[1].done() && !solvers[0].done());
            }
        }
    }
}
