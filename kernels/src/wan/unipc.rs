//! diffusers' `UniPCMultistepScheduler` in the form Wan2.1 ships it: flow sigmas with a
//! fixed shift, flow prediction, data (x0) prediction, the B(h) predictor (UniP) and
//! corrector (UniC).
//!
//! Schedule for `n` steps and `N` training timesteps: `u_i = 1 + i (1/N - 1) / n`
//! (`i < n`, numpy's linspace), `sigma_i = s u_i / (1 + (s - 1) u_i)` (shift `s`), the first
//! lowered by 1e-6 when within 1e-6 of 1 (so that `log(1 - sigma)` stays finite); timestep
//! `t_i = trunc(N sigma_i)` (an integer: diffusers casts to int64). In f64, then sigmas
//! rounded to f32 with a final 0 (or the last sigma, `final_sigmas_type = sigma_min`)
//! appended.
//!
//! With `alpha = 1 - sigma` and `lambda = ln(alpha) - ln(sigma)`, a step at index `k` with the
//! model's velocity `v` on sample `x`:
//!
//! - `m = x - sigma_k v` (the x0 prediction).
//! - Corrector (from the second step, unless disabled): with the previous step's order `p`,
//!   `h = lambda_k - lambda_{k-1}`, `hh = -h`, `B = e^hh - 1` (bh2) or `hh` (bh1),
//!   `r_i = (lambda_{k-1-i} - lambda_{k-1}) / h`, `D_i = (m_{-1-i} - m_{-1}) / r_i` for
//!   `i < p`, and `rho` solving `R rho = b` (`R_ij = r_j^i`, `r_p = 1`; `b_i = i! phi_{i+1}(hh)
//!   / B`, the `phi` recursion of diffusers; `rho = [0.5]` at order 1):
//!   `x = sigma_k / sigma_{k-1} x_prev - alpha_k (e^hh - 1) m_{-1}
//!   - alpha_k B (sum_i rho_i D_i + rho_p (m - m_{-1}))`, `x_prev` the sample the previous
//!   predictor started from and `m_{-1}` its x0.
//! - Predictor of order `p = min(order, steps left (lower_order_final), steps so far + 1)`,
//!   from `sigma_k` to `sigma_{k+1}`, the same with `i` counted from `m` and `rho` solving the
//!   `p - 1` leading equations (`[0.5]` at order 2):
//!   `x' = sigma_{k+1} / sigma_k x - alpha_{k+1} (e^hh - 1) m - alpha_{k+1} B sum_i rho_i D_i`.
//!
//! Scalars are f32 as in diffusers (0-dim f32 tensors); the small `R rho = b` systems are
//! solved in f64 and rounded.

use rayon::prelude::*;

use super::UniPcConfig;

/// A UniPC run of a fixed number of steps; [`UniPcScheduler::step`] once per timestep, in
/// order.
#[derive(Debug, Clone)]
pub struct UniPcScheduler {
    order: usize,
    bh2: bool,
    lower_order_final: bool,
    disable_corrector: Vec<usize>,
    sigmas: Vec<f32>,
    timesteps: Vec<i64>,
    step_index: usize,
    /// The x0 predictions of the last `order` steps, newest last.
    model_outputs: Vec<Vec<f32>>,
    /// The sample the last predictor started from.
    last_sample: Option<Vec<f32>>,
    lower_order_nums: usize,
    this_order: usize,
}

/// `ln(1 - sigma) - ln(sigma)`.
pub(crate) fn lambda(sigma: f32) -> f32 {
    (1.0 - sigma).ln() - sigma.ln()
}

/// Solves the small dense system `a x = b` (`a` row-major `n x n`) by Gaussian elimination
/// with partial pivoting, in f64.
pub(crate) fn solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .expect("non-empty system");
        if pivot != col {
            for c in 0..n {
                a.swap(col * n + c, pivot * n + c);
            }
            b.swap(col, pivot);
        }
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            for c in col..n {
                a[row * n + c] -= f * a[col * n + c];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row * n + c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row * n + row];
    }
    x
}

/// The B(h) coefficients shared by predictor and corrector, for `h` and ratios `rks` (the
/// last one 1): `(hh, e^hh - 1, B, R, b)`, `R` row-major `rks.len()` square.
pub(crate) fn bh_terms(h: f32, rks: &[f32], bh2: bool) -> (f32, f32, Vec<f32>, Vec<f32>) {
    let hh = -h;
    let h_phi_1 = hh.exp_m1();
    let mut h_phi_k = h_phi_1 / hh - 1.0;
    let mut factorial = 1.0f32;
    let b_h = if bh2 { hh.exp_m1() } else { hh };
    let p = rks.len();
    let mut r = Vec::with_capacity(p * p);
    let mut b = Vec::with_capacity(p);
    for i in 1..=p {
        r.extend(rks.iter().map(|&rk| rk.powi(i as i32 - 1)));
        b.push(h_phi_k * factorial / b_h);
        factorial *= (i + 1) as f32;
        h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    (h_phi_1, b_h, r, b)
}

/// The leading `n x n` block of the row-major `p x p` matrix `r`, widened.
pub(crate) fn leading(r: &[f32], p: usize, n: usize) -> Vec<f64> {
    (0..n)
        .flat_map(|i| r[i * p..i * p + n].iter().map(|&v| v as f64))
        .collect()
}

impl UniPcScheduler {
    /// The schedule of `steps` steps for `config`.
    ///
    /// Panics if `steps` is 0 or the config is one [`UniPcConfig::unsupported`] refuses
    /// (a config read by `WanCheckpoint::open` has been checked).
    pub fn new(config: &UniPcConfig, steps: usize) -> UniPcScheduler {
        assert!(steps > 0, "UniPC: no steps");
        if let Some(why) = config.unsupported() {
            panic!("{why}");
        }
        let n_train = config.num_train_timesteps as f64;
        let shift = config.flow_shift;
        let step = (1.0 / n_train - 1.0) / steps as f64;
        let mut sigmas: Vec<f64> = (0..steps)
            .map(|i| {
                let u = 1.0 + i as f64 * step;
                shift * u / (1.0 + (shift - 1.0) * u)
            })
            .collect();
        if (sigmas[0] - 1.0).abs() < 1e-6 {
            sigmas[0] -= 1e-6;
        }
        let timesteps = sigmas.iter().map(|s| (s * n_train) as i64).collect();
        let last = match config.final_sigmas_type.as_str() {
            "sigma_min" => sigmas[steps - 1],
            _ => 0.0,
        };
        let sigmas = sigmas
            .iter()
            .chain(std::iter::once(&last))
            .map(|&s| s as f32)
            .collect();
        UniPcScheduler {
            order: config.solver_order,
            bh2: config.solver_type == "bh2",
            lower_order_final: config.lower_order_final,
            disable_corrector: config.disable_corrector.clone(),
            sigmas,
            timesteps,
            step_index: 0,
            model_outputs: Vec::new(),
            last_sample: None,
            lower_order_nums: 0,
            this_order: 1,
        }
    }

    /// The timesteps, one per step (integers, as diffusers' int64 tensor).
    pub fn timesteps(&self) -> &[i64] {
        &self.timesteps
    }

    /// The sigmas, one per step and the final one.
    pub fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    /// Steps taken so far.
    pub fn step_index(&self) -> usize {
        self.step_index
    }

    /// One step: the sample after this timestep, from the model's (guided) output
    /// `model_output` for `sample`.
    ///
    /// Panics after the last step, or if the lengths differ.
    pub fn step(&mut self, model_output: &[f32], sample: &[f32]) -> Vec<f32> {
        let k = self.step_index;
        assert!(k < self.timesteps.len(), "UniPC: past the last step");
        assert_eq!(model_output.len(), sample.len(), "UniPC: sizes differ");
        let sigma = self.sigmas[k];
        let x0: Vec<f32> = sample
            .par_iter()
            .zip(model_output)
            .map(|(&x, &v)| x - sigma * v)
            .collect();

        let corrected;
        let mut sample = sample;
        if k > 0 && !self.disable_corrector.contains(&(k - 1)) {
            if let Some(last) = &self.last_sample {
                corrected = self.corrector(&x0, last, self.this_order);
                sample = &corrected;
            }
        }

        if self.model_outputs.len() == self.order {
            self.model_outputs.remove(0);
        }
        self.model_outputs.push(x0);
        let order = if self.lower_order_final {
            self.order.min(self.timesteps.len() - k)
        } else {
            self.order
        };
        self.this_order = order.min(self.lower_order_nums + 1);
        let prev = self.predictor(sample, self.this_order);
        self.last_sample = Some(sample.to_vec());
        if self.lower_order_nums < self.order {
            self.lower_order_nums += 1;
        }
        self.step_index += 1;
        prev
    }

    /// `model_outputs[len - 1 - back]`.
    fn output(&self, back: usize) -> &[f32] {
        &self.model_outputs[self.model_outputs.len() - 1 - back]
    }

    /// UniP from `sigmas[k]` to `sigmas[k + 1]` of order `p` on `x`.
    fn predictor(&self, x: &[f32], p: usize) -> Vec<f32> {
        let k = self.step_index;
        let (sigma_t, sigma_s0) = (self.sigmas[k + 1], self.sigmas[k]);
        let alpha_t = 1.0 - sigma_t;
        let lambda_s0 = lambda(sigma_s0);
        let h = lambda(sigma_t) - lambda_s0;
        let m0 = self.output(0);
        let mut rks: Vec<f32> = (1..p)
            .map(|i| (lambda(self.sigmas[k - i]) - lambda_s0) / h)
            .collect();
        rks.push(1.0);
        let (h_phi_1, b_h, r, b) = bh_terms(h, &rks, self.bh2);
        let rhos: Vec<f32> = match p {
            1 => Vec::new(),
            2 => vec![0.5],
            _ => solve(
                leading(&r, p, p - 1),
                b[..p - 1].iter().map(|&v| v as f64).collect(),
            )
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        };
        let c_x = sigma_t / sigma_s0;
        let c_m = alpha_t * h_phi_1;
        let c_res = alpha_t * b_h;
        let history: Vec<&[f32]> = (1..p).map(|i| self.output(i)).collect();
        x.par_iter()
            .zip(m0)
            .enumerate()
            .map(|(e, (&x, &m0))| {
                let base = c_x * x - c_m * m0;
                if history.is_empty() {
                    return base;
                }
                let res: f32 = rhos
                    .iter()
                    .zip(&history)
                    .zip(&rks)
                    .map(|((rho, mi), rk)| rho * ((mi[e] - m0) / rk))
                    .sum();
                base - c_res * res
            })
            .collect()
    }

    /// UniC of order `p` at `sigmas[k]` (k = the current step), from the previous
    /// predictor's start `last` and this step's x0 `model_t`.
    fn corrector(&self, model_t: &[f32], last: &[f32], p: usize) -> Vec<f32> {
        let k = self.step_index;
        let (sigma_t, sigma_s0) = (self.sigmas[k], self.sigmas[k - 1]);
        let alpha_t = 1.0 - sigma_t;
        let lambda_s0 = lambda(sigma_s0);
        let h = lambda(sigma_t) - lambda_s0;
        let m0 = self.output(0);
        let mut rks: Vec<f32> = (1..p)
            .map(|i| (lambda(self.sigmas[k - 1 - i]) - lambda_s0) / h)
            .collect();
        rks.push(1.0);
        let (h_phi_1, b_h, r, b) = bh_terms(h, &rks, self.bh2);
        let rhos: Vec<f32> = if p == 1 {
            vec![0.5]
        } else {
            solve(leading(&r, p, p), b.iter().map(|&v| v as f64).collect())
                .into_iter()
                .map(|v| v as f32)
                .collect()
        };
        let c_x = sigma_t / sigma_s0;
        let c_m = alpha_t * h_phi_1;
        let c_res = alpha_t * b_h;
        let rho_t = rhos[p - 1];
        let history: Vec<&[f32]> = (1..p).map(|i| self.output(i)).collect();
        last.par_iter()
            .zip(m0)
            .zip(model_t)
            .enumerate()
            .map(|(e, ((&x, &m0), &mt))| {
                let base = c_x * x - c_m * m0;
                let corr: f32 = rhos
                    .iter()
                    .zip(&history)
                    .zip(&rks)
                    .map(|((rho, mi), rk)| rho * ((mi[e] - m0) / rk))
                    .sum();
                base - c_res * (corr + rho_t * (mt - m0))
            })
            .collect()
    }
}
