//! The host half of the device sampler (`sampler.cu`, the CUDA backend's
//! [`crate::Backend::guided_step`]): each scene's step coefficients (`scene_step.rs`: f64 as
//! `sampler.rs` computes them, rounded to f32 at the same points), packed into the per-scene
//! table the kernel reads.

use crate::error::KernelError;
use crate::sampler::Prediction;
use crate::scene_step::{coefficients, validate, SceneStep};

/// Words per scene of the packed table (`STEP_WORDS` in sampler.cu).
pub(crate) const STEP_WORDS: usize = 11;

/// The table `guided_step` reads: [`STEP_WORDS`] words per scene, in batch order. Errors on a
/// scene past its last step, a run of no steps or a guidance that is not finite.
pub(crate) fn pack(scenes: &[SceneStep]) -> Result<Vec<u32>, KernelError> {
    validate(scenes)?;
    let mut table = Vec::with_capacity(scenes.len() * STEP_WORDS);
    for s in scenes {
        let c = coefficients(s.method, s.steps, s.step);
        let v = matches!(s.prediction, Prediction::V) as u32;
        table.extend([s.guidance.to_bits(), v, c.update as u32]);
        table.extend([c.af, c.sf, c.an, c.sn, c.zf, c.df, c.c0, c.c1].map(f32::to_bits));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::{Method, Solver};
    use crate::scene_step::Update;

    /// What sampler.cu computes for one scene, transcribed operation for operation (Rust
    /// does not contract a * b + c into a fused multiply-add, and the kernel uses explicitly
    /// rounded intrinsics), so these tests check the coefficients and their packing against
    /// the host solver; the GPU test (tests/cuda_parity.rs) checks the kernel against this.
    fn apply(words: &[u32], z: &mut [f32], x0: &mut [f32], cond: &[f32], uncond: &[f32]) {
        let f = |i: usize| f32::from_bits(words[i]);
        let (g, v_pred, update) = (f(0), words[1] != 0, words[2]);
        let (af, sf, an, sn, zf, df, c0, c1) = (f(3), f(4), f(5), f(6), f(7), f(8), f(9), f(10));
        for i in 0..z.len() {
            let u = uncond[i];
            let o = u + g * (cond[i] - u);
            let zi = z[i];
            let x = if v_pred { af * zi - sf * o } else { o };
            z[i] = if update == 0 {
                let eps = if v_pred {
                    sf * zi + af * o
                } else {
                    (zi - af * x) / sf
                };
                an * x + sn * eps
            } else {
                let d = if update == 2 { c0 * x - c1 * x0[i] } else { x };
                zf * zi - df * d
            };
            x0[i] = x;
        }
    }

    /// Whole runs of every method and prediction, with network outputs that vary by step:
    /// the packed coefficients reproduce `Solver::advance` (after scene.rs's guidance
    /// combine) bit for bit, latents and x0 estimates alike.
    #[test]
    fn packed_steps_match_the_host_solver_bit_for_bit() {
        let len = 7;
        let noise = |seed: u64| crate::philox::gaussian(99, seed, len);
        for prediction in [Prediction::X0, Prediction::V] {
            for method in [Method::Ddim, Method::DpmPP2M] {
                for steps in [1, 2, 5] {
                    let guidance = 3.5f32;
                    let mut solver = Solver::new(method, prediction, steps);
                    let mut host_z = noise(1);
                    let (mut dev_z, mut dev_x0) = (host_z.clone(), vec![0.0f32; len]);
                    for step in 0..steps {
                        let (cond, uncond) = (noise(10 + step as u64), noise(50 + step as u64));
                        let guided: Vec<f32> = cond
                            .iter()
                            .zip(&uncond)
                            .map(|(&c, &u)| u + guidance * (c - u))
                            .collect();
                        solver.advance(&mut host_z, &guided);
                        let scene = SceneStep {
                            method,
                            prediction,
                            steps,
                            step,
                            guidance,
                        };
                        let words = pack(&[scene]).unwrap();
                        assert_eq!(words.len(), STEP_WORDS);
                        apply(&words, &mut dev_z, &mut dev_x0, &cond, &uncond);
                        let what = format!("{method:?}/{prediction:?} step {step} of {steps}");
                        assert_eq!(dev_z, host_z, "{what}: latents");
                        assert_eq!(dev_x0, solver.x0().unwrap(), "{what}: x0");
                    }
                }
            }
        }
    }

    #[test]
    fn the_table_is_per_scene_in_batch_order_and_bad_steps_are_errors() {
        let a = SceneStep {
            method: Method::DpmPP2M,
            prediction: Prediction::V,
            steps: 6,
            step: 2,
            guidance: 4.0,
        };
        let b = SceneStep {
            method: Method::Ddim,
            prediction: Prediction::X0,
            steps: 3,
            step: 0,
            guidance: 1.5,
        };
        let table = pack(&[a, b]).unwrap();
        assert_eq!(table.len(), 2 * STEP_WORDS);
        assert_eq!(&table[..STEP_WORDS], &pack(&[a]).unwrap()[..]);
        assert_eq!(&table[STEP_WORDS..], &pack(&[b]).unwrap()[..]);
        assert_eq!(
            (f32::from_bits(table[0]), table[1], table[2]),
            (4.0, 1, Update::DpmSecond as u32)
        );
        assert_eq!(
            (f32::from_bits(table[STEP_WORDS]), table[STEP_WORDS + 1]),
            (1.5, 0)
        );
        assert!(pack(&[]).unwrap().is_empty());
        for bad in [
            SceneStep { step: 6, ..a },
            SceneStep {
                steps: 0,
                step: 0,
                ..a
            },
            SceneStep {
                guidance: f32::NAN,
                ..a
            },
        ] {
            assert!(matches!(
                pack(&[a, bad]),
                Err(KernelError::InvalidArgument(_))
            ));
        }
    }
}
