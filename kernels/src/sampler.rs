//! Cosine-schedule samplers, the arithmetic of `model/sampler.py` step for step: DDIM (eta 0)
//! and DPM-Solver++(2M), for a network predicting x0 (what sampler.py does now) or v (the
//! config's `prediction` says which). Schedule scalars are computed in f64 like Python, then
//! used as f32 factors, the way PyTorch multiplies a float32 tensor by a Python float.
//! Classifier-free guidance and batching live in `scene.rs`; this file is one scene's solver.

use serde::{Deserialize, Serialize};

/// The first step starts here, where lambda = log(alpha / sigma) is still finite.
pub const T_MAX: f64 = 0.999;

/// The solver of a sampling run (serde: `ddim`, `dpmpp2m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// DDIM with eta 0 (deterministic, first order).
    Ddim,
    /// DPM-Solver++(2M): second order from the previous step's x0, first order at the start.
    DpmPP2M,
}

/// What the denoiser outputs (config key `prediction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prediction {
    /// The clean sample.
    X0,
    /// v = alpha * eps - sigma * x0.
    V,
}

/// (alpha, sigma) of the cosine schedule at t in [0, 1].
pub fn alpha_sigma(t: f64) -> (f64, f64) {
    (
        (0.5 * std::f64::consts::PI * t).cos(),
        (0.5 * std::f64::consts::PI * t).sin(),
    )
}

/// The `steps + 1` times of a `steps`-step run, from T_MAX down to exactly 0.
pub fn timesteps(steps: usize) -> Vec<f64> {
    (0..=steps)
        .map(|i| T_MAX * (1.0 - i as f64 / steps as f64))
        .collect()
}

/// One scene's position in its sampling run plus the multistep memory of DPM-Solver++.
#[derive(Clone, Debug)]
pub struct Solver {
    method: Method,
    prediction: Prediction,
    times: Vec<f64>,
    step: usize,
    /// x0 prediction and (alpha, sigma) of the previous step.
    prev: Option<(Vec<f32>, f64, f64)>,
}

impl Solver {
    /// `steps` must be at least 1 (the caller validates).
    pub fn new(method: Method, prediction: Prediction, steps: usize) -> Solver {
        Solver {
            method,
            prediction,
            times: timesteps(steps),
            step: 0,
            prev: None,
        }
    }

    /// The solver of this run.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Steps of the whole run.
    pub fn steps(&self) -> usize {
        self.times.len() - 1
    }

    /// Steps taken so far.
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// Whether every step has been taken.
    pub fn done(&self) -> bool {
        self.step == self.steps()
    }

    /// The network's estimate of the clean sample (x0) at the last step taken; `None` before
    /// the first. What a preview shows: the latent itself is still mostly noise mid-run.
    pub fn x0(&self) -> Option<&[f32]> {
        self.prev.as_ref().map(|(x0, _, _)| x0.as_slice())
    }

    /// The time the next step evaluates the network at.
    pub fn t(&self) -> f64 {
        self.times[self.step]
    }

    /// Advance `z` by one step given the (guided) network output at `self.t()`.
    pub fn advance(&mut self, z: &mut [f32], out: &[f32]) {
        assert!(!self.done(), "sampler advanced past its last step");
        assert_eq!(z.len(), out.len());
        let (t, tn) = (self.times[self.step], self.times[self.step + 1]);
        let (a, s) = alpha_sigma(t);
        let (an, sn) = alpha_sigma(tn);
        let (af, sf) = (a as f32, s as f32);
        let x0: Vec<f32> = match self.prediction {
            Prediction::X0 => out.to_vec(),
            Prediction::V => z.iter().zip(out).map(|(&z, &v)| af * z - sf * v).collect(),
        };
        if self.method == Method::Ddim || tn == 0.0 {
            for ((z, &o), &x0) in z.iter_mut().zip(out).zip(&x0) {
                let eps = match self.prediction {
                    Prediction::X0 => (*z - af * x0) / sf,
                    Prediction::V => sf * *z + af * o,
                };
                *z = an as f32 * x0 + sn as f32 * eps;
            }
        } else {
            let (lam, lam_n) = ((a / s).ln(), (an / sn).ln());
            let h = lam_n - lam;
            let (zf, df) = ((sn / s) as f32, (an * (-h).exp_m1()) as f32);
            match &self.prev {
                None => {
                    for (z, &d) in z.iter_mut().zip(&x0) {
                        *z = zf * *z - df * d;
                    }
                }
                Some((prev_x0, pa, ps)) => {
                    let r = (lam - (pa / ps).ln()) / h;
                    let (c0, c1) = ((1.0 + 1.0 / (2.0 * r)) as f32, (1.0 / (2.0 * r)) as f32);
                    for ((z, &x0), &p) in z.iter_mut().zip(&x0).zip(prev_x0) {
                        let d = c0 * x0 - c1 * p;
                        *z = zf * *z - df * d;
                    }
                }
            }
        }
        self.prev = Some((x0, a, s));
        self.step += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names() {
        assert_eq!(
            serde_json::to_string(&Method::DpmPP2M).unwrap(),
            "\"dpmpp2m\""
        );
        assert_eq!(
            serde_json::from_str::<Method>("\"ddim\"").unwrap(),
            Method::Ddim
        );
    }

    #[test]
    fn schedule_ends() {
        let ts = timesteps(4);
        assert_eq!((ts[0], ts[4], ts.len()), (T_MAX, 0.0, 5));
        let (a, s) = alpha_sigma(0.0);
        assert_eq!((a, s), (1.0, 0.0));
    }

    /// With the exact output for a point mass x0 (x0 itself, or v = a eps - s x0 with
    /// eps = (z - a x0) / s), every solver must land on x0: a property of the samplers
    /// independent of any network.
    #[test]
    fn exact_prediction_recovers_the_data_point() {
        for prediction in [Prediction::X0, Prediction::V] {
            for method in [Method::Ddim, Method::DpmPP2M] {
                let x0 = [0.7f32, -1.2, 0.1];
                let mut z = [1.5f32, -0.3, 0.9];
                let mut solver = Solver::new(method, prediction, 6);
                let mut seen = Vec::new();
                while !solver.done() {
                    let (a, s) = alpha_sigma(solver.t());
                    let out: Vec<f32> = match prediction {
                        Prediction::X0 => x0.to_vec(),
                        Prediction::V => z
                            .iter()
                            .zip(&x0)
                            .map(|(&z, &x)| {
                                (a * ((z as f64 - a * x as f64) / s) - s * x as f64) as f32
                            })
                            .collect(),
                    };
                    solver.advance(&mut z, &out);
                    let x0_seen = solver.x0().expect("an estimate after a step");
                    assert!(x0_seen.iter().zip(&x0).all(|(a, b)| (a - b).abs() < 1e-4));
                    seen.push(z);
                }
                assert_ne!(
                    seen[0], x0,
                    "{method:?}/{prediction:?} jumped to x0 in one step"
                );
                for (z, x) in z.iter().zip(&x0) {
                    assert!(
                        (z - x).abs() < 1e-4,
                        "{method:?}/{prediction:?}: {z} vs {x}"
                    );
                }
            }
        }
    }
}
