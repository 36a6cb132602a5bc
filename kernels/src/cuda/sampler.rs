//! The host half of the fused sampler kernel (`sampler.cu`): one scene's step `t -> tn` as the
//! per-scene coefficients `guided_step` reads, computed in f64 and rounded to f32 exactly as
//! `Solver::advance` (sampler.rs) does, so the device update is bit-identical to the host's.

use crate::sampler::{alpha_sigma, timesteps, Method, Prediction};

/// Which update formula a step uses (`P_MODE` in sampler.cu).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// DDIM, also the last step of DPM-Solver++ (tn = 0).
    Ddim = 0,
    /// DPM-Solver++ without a previous x0 (first order).
    DpmFirst = 1,
    /// DPM-Solver++(2M) with the previous step's x0.
    DpmSecond = 2,
}

/// Guidance and solver coefficients of one scene's step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepCoefficients {
    guidance: f32,
    prediction: Prediction,
    mode: Mode,
    a: f32,
    s: f32,
    an: f32,
    sn: f32,
    zf: f32,
    df: f32,
    c0: f32,
    c1: f32,
}

impl StepCoefficients {
    /// Step `k` (0-based, below `steps`) of a `steps`-step run of `method` for a network
    /// predicting `prediction`, guided with `guidance`: the same times (`timesteps`) and the
    /// same previous-step memory as `Solver`.
    pub fn at_step(
        method: Method,
        prediction: Prediction,
        steps: usize,
        k: usize,
        guidance: f32,
    ) -> StepCoefficients {
        assert!(k < steps, "step {k} of a {steps}-step run");
        let times = timesteps(steps);
        let (t, tn) = (times[k], times[k + 1]);
        let (a, s) = alpha_sigma(t);
        let (an, sn) = alpha_sigma(tn);
        let mut c = StepCoefficients {
            guidance,
            prediction,
            mode: Mode::Ddim,
            a: a as f32,
            s: s as f32,
            an: an as f32,
            sn: sn as f32,
            zf: 0.0,
            df: 0.0,
            c0: 0.0,
            c1: 0.0,
        };
        if method == Method::Ddim || tn == 0.0 {
            return c;
        }
        let (lam, lam_n) = ((a / s).ln(), (an / sn).ln());
        let h = lam_n - lam;
        (c.zf, c.df) = ((sn / s) as f32, (an * (-h).exp_m1()) as f32);
        c.mode = match k {
            0 => Mode::DpmFirst,
            _ => {
                let (pa, ps) = alpha_sigma(times[k - 1]);
                let r = (lam - (pa / ps).ln()) / h;
                (c.c0, c.c1) = ((1.0 + 1.0 / (2.0 * r)) as f32, (1.0 / (2.0 * r)) as f32);
                Mode::DpmSecond
            }
        };
        c
    }

    /// The `PARAMS` floats of sampler.cu, in its `P_*` order.
    pub(crate) fn params(&self) -> [f32; 11] {
        let prediction = match self.prediction {
            Prediction::X0 => 0.0,
            Prediction::V => 1.0,
        };
        let c = self;
        [
            c.guidance,
            prediction,
            c.mode as i32 as f32,
            c.a,
            c.s,
            c.an,
            c.sn,
            c.zf,
            c.df,
            c.c0,
            c.c1,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::philox::gaussian;
    use crate::sampler::Solver;

    /// `guided_step` of sampler.cu for one element, operation for operation.
    fn kernel_element(p: &[f32; 11], z: &mut f32, prev_x0: &mut f32, c: f32, u: f32) {
        let o = u + p[0] * (c - u);
        let zi = *z;
        let v_pred = p[1] != 0.0;
        let (a, s) = (p[3], p[4]);
        let x0 = if v_pred { a * zi - s * o } else { o };
        *z = match p[2] as i32 {
            0 => {
                let eps = if v_pred {
                    s * zi + a * o
                } else {
                    (zi - a * x0) / s
                };
                p[5] * x0 + p[6] * eps
            }
            mode => {
                let d = if mode == 1 {
                    x0
                } else {
                    p[9] * x0 - p[10] * *prev_x0
                };
                p[7] * zi - p[8] * d
            }
        };
        *prev_x0 = x0;
    }

    /// The kernel's arithmetic with these coefficients against `Solver` on the same guided
    /// outputs, bit for bit, over whole runs of every method and prediction.
    #[test]
    fn coefficients_reproduce_the_solver_exactly() {
        let (len, steps, guidance) = (64, 7, 3.5f32);
        for method in [Method::Ddim, Method::DpmPP2M] {
            for prediction in [Prediction::X0, Prediction::V] {
                let mut solver = Solver::new(method, prediction, steps);
                let mut host = gaussian(3, 0, len);
                let mut dev = host.clone();
                let mut prev = vec![0.0f32; len];
                for k in 0..steps {
                    let (cond, uncond) = (
                        gaussian(4, 2 * k as u64, len),
                        gaussian(4, 2 * k as u64 + 1, len),
                    );
                    let guided: Vec<f32> = cond
                        .iter()
                        .zip(&uncond)
                        .map(|(&c, &u)| u + guidance * (c - u))
                        .collect();
                    solver.advance(&mut host, &guided);
                    let p =
                        StepCoefficients::at_step(method, prediction, steps, k, guidance).params();
                    for i in 0..len {
                        kernel_element(&p, &mut dev[i], &mut prev[i], cond[i], uncond[i]);
                    }
                    assert_eq!(dev, host, "{method:?}/{prediction:?} step {k}");
                }
            }
        }
    }

    #[test]
    fn modes_follow_the_solver_branches() {
        let mode = |m, k| StepCoefficients::at_step(m, Prediction::X0, 4, k, 1.0).mode;
        assert_eq!([0, 1, 3].map(|k| mode(Method::Ddim, k)), [Mode::Ddim; 3]);
        assert_eq!(
            [0, 1, 2, 3].map(|k| mode(Method::DpmPP2M, k)),
            [Mode::DpmFirst, Mode::DpmSecond, Mode::DpmSecond, Mode::Ddim]
        );
    }
}
