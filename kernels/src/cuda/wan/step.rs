//! The per-step ops (`wan_step.cu`), as [`WanCuda`] methods, and the host side of the
//! scheduler update on the device.
//!
//! - [`WanCuda::time_embedding`]: `embed_time`'s sinusoid of `timesteps[*step]`, f32, with
//!   [`WanCuda::advance_step`] moving the device step counter; [`WanCuda::silu_bf16`] the time
//!   MLP's activations.
//! - [`WanCuda::cfg_combine`]: `u + g (c - u)` over the batch of two, f32, bit-identical to
//!   pipeline.rs.
//! - [`WanCuda::combine`]: `out = beta out + sum_i c_i x_i` over f32 buffers, the one kernel
//!   every scheduler update is made of ([`StepPlan`] says which, per step).
//! - [`WanCuda::f32_to_bf16`], [`WanCuda::f32_to_bf16_rows`], [`WanCuda::bf16_to_f32`].
//!
//! # The schedulers as linear combinations
//!
//! A step of either scheduler is linear in the model output and in the scheduler's own past
//! tensors, with scalar coefficients that depend only on the sigmas and the step index. So the
//! host computes the coefficients ([`StepPlan::step`]) and the device applies them
//! ([`WanCuda::run_combines`]) to buffers named by [`StepBuffer`]: the sample, the (guided)
//! velocity, `Last` (the sample the last predictor started from) and `order + 1` history
//! slots of x0 predictions.
//!
//! - Flow-matching Euler (euler.rs): `Sample = 1 Sample + (sigma_{i+1} - sigma_i) Velocity`,
//!   the CPU's own arithmetic, so bit-identical.
//! - UniPC (unipc.rs), step `k` with the velocity `v`:
//!   1. `m = x - sigma_k v` into a free history slot (bit-identical to the CPU's x0);
//!   2. the corrector (from the second step, unless disabled), of the previous step's order
//!      `p`, in place on `Last`: `Last = c_x Last + a_0 m_0 + sum_{i<p} a_i m_i + a_t m`, where
//!      `m_i` is the x0 of `i` steps back and, with the CPU's `c_m`, `c_res`, `rho_i` and
//!      `r_i`, `a_i = -c_res rho_{i-1} / r_{i-1}`, `a_t = -c_res rho_t` and `a_0 = -c_m -
//!      sum_{i>0} a_i - a_t` (the CPU's `D_i = (m_i - m_0) / r_i` expanded); otherwise
//!      `Last = Sample`;
//!   3. the predictor of this step's order `p`: `Sample = c_x Last + a_0 m + sum_{0<i<p} a_i
//!      m_i` with `a_i = -c_res rho_{i-1} / r_{i-1}` and `a_0 = -c_m - sum_{i>0} a_i`.
//!
//!   The scalars are computed in f32 exactly as unipc.rs does (`lambda`, the B(h) terms, the
//!   `rho` systems in f64), the expanded coefficients in f64 from them and rounded once, so
//!   the device's result differs from the CPU's only by the rounding of the expanded sum (a
//!   few f32 ulps of the sample's magnitude; the unit test bounds it over whole runs).
//!   Those scalar functions are unipc.rs's own (shared, so the two cannot drift); the unit
//!   tests run both schedulers here against this plan on random data.
//!
//! The coefficients (and, for UniPC, which history slots an update reads) change from step to
//! step and are kernel arguments: a step captured as a CUDA graph needs its `wan_combine`
//! nodes' parameters updated before each replay (`cuGraphExecKernelNodeSetParams`), where
//! the time embedding reads its timestep from the device by itself.

use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

use super::norm::{grid_config, int, invalid, row_threads, RowLayout};
use super::WanCuda;
use crate::cuda::check;
use crate::cuda::ptx::Source;
use crate::error::KernelError;
use crate::wan::unipc::{bh_terms, lambda, leading, solve};
use crate::wan::{FlowMatchEulerScheduler, UniPcConfig, UniPcScheduler, WanScheduler};

/// The `wan_step.cu` source and its kernels.
pub(crate) const SOURCE: Source = Source {
    file: "wan_step.cu",
    code: wan_source!("wan_step.cu"),
    kernels: &[
        "wan_time_embedding",
        "wan_advance_step",
        "wan_silu_bf16",
        "wan_cfg_combine",
        "wan_combine",
        "wan_f32_to_bf16",
        "wan_bf16_to_f32",
    ],
};

/// Inputs one `wan_combine` launch takes.
const COMBINE_TERMS: usize = 4;

/// `-ln(10000)` rounded to f32, as `embed_time` rounds it.
fn log_period() -> f32 {
    -(10000f64.ln() as f32)
}

/// A buffer of the scheduler's state on the device: its index in the buffers
/// [`WanCuda::run_combines`] is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepBuffer {
    /// The latent being denoised (index 0).
    Sample,
    /// The model's guided output for it (index 1).
    Velocity,
    /// UniPC: the sample its last predictor started from (index 2).
    Last,
    /// UniPC: history slot `i` of x0 predictions (index `3 + i`).
    History(usize),
}

impl StepBuffer {
    /// The buffer's index.
    pub fn index(self) -> usize {
        match self {
            StepBuffer::Sample => 0,
            StepBuffer::Velocity => 1,
            StepBuffer::Last => 2,
            StepBuffer::History(i) => 3 + i,
        }
    }
}

/// One scheduler update: `out = beta out + sum_i c_i terms_i` (`out` read only when `beta !=
/// 0`; no term is `out` itself).
#[derive(Clone, Debug, PartialEq)]
pub struct Combine {
    /// The buffer written.
    pub out: StepBuffer,
    /// Its own coefficient.
    pub beta: f32,
    /// The other buffers and their coefficients, summed in this order.
    pub terms: Vec<(StepBuffer, f32)>,
}

/// The scheduler update of each step as [`Combine`]s, for the scheduler a checkpoint names.
#[derive(Clone, Debug)]
pub enum StepPlan {
    /// UniPC multistep.
    UniPc(UniPcPlan),
    /// Flow-matching Euler: its sigmas and the next step.
    Euler {
        /// The schedule's sigmas (the final 0 included).
        sigmas: Vec<f32>,
        /// The next step.
        index: usize,
    },
}

impl StepPlan {
    /// The plan of `steps` steps of `config`'s scheduler (the sigmas of the CPU scheduler).
    ///
    /// Panics as `WanSampler::new` does (no steps, an unsupported config).
    pub fn new(config: &WanScheduler, steps: usize) -> StepPlan {
        match config {
            WanScheduler::UniPc(c) => StepPlan::UniPc(UniPcPlan::new(c, steps)),
            WanScheduler::FlowMatchEuler(c) => StepPlan::Euler {
                sigmas: FlowMatchEulerScheduler::new(c, steps).sigmas().to_vec(),
                index: 0,
            },
        }
    }

    /// Buffers the plan's updates address ([`StepBuffer::index`] below this).
    pub fn buffers(&self) -> usize {
        match self {
            StepPlan::UniPc(p) => p.buffers(),
            StepPlan::Euler { .. } => 2,
        }
    }

    /// The next step's updates, to run in order once `Velocity` holds the model's output for
    /// `Sample`; afterwards `Sample` holds the next sample.
    ///
    /// Panics after the last step.
    pub fn step(&mut self) -> Vec<Combine> {
        match self {
            StepPlan::UniPc(p) => p.step(),
            StepPlan::Euler { sigmas, index } => {
                let i = *index;
                assert!(i + 1 < sigmas.len(), "FlowMatchEuler: past the last step");
                *index += 1;
                vec![Combine {
                    out: StepBuffer::Sample,
                    beta: 1.0,
                    terms: vec![(StepBuffer::Velocity, sigmas[i + 1] - sigmas[i])],
                }]
            }
        }
    }
}

/// UniPC's state machine (unipc.rs) with its tensors replaced by history slots: which buffer
/// each x0 lives in, and the coefficients of each step's updates.
#[derive(Clone, Debug)]
pub struct UniPcPlan {
    order: usize,
    bh2: bool,
    lower_order_final: bool,
    disable_corrector: Vec<usize>,
    sigmas: Vec<f32>,
    steps: usize,
    step_index: usize,
    /// History slots holding the x0 of the last `order` steps, newest last.
    history: Vec<usize>,
    lower_order_nums: usize,
    this_order: usize,
}

impl UniPcPlan {
    /// The plan of `steps` steps of `config`, on the CPU scheduler's sigmas.
    ///
    /// Panics as [`UniPcScheduler::new`] does.
    pub fn new(config: &UniPcConfig, steps: usize) -> UniPcPlan {
        let scheduler = UniPcScheduler::new(config, steps);
        UniPcPlan {
            order: config.solver_order,
            bh2: config.solver_type == "bh2",
            lower_order_final: config.lower_order_final,
            disable_corrector: config.disable_corrector.clone(),
            sigmas: scheduler.sigmas().to_vec(),
            steps,
            step_index: 0,
            history: Vec::new(),
            lower_order_nums: 0,
            this_order: 1,
        }
    }

    /// Sample, velocity, last and `order + 1` history slots: the corrector still reads the
    /// oldest of `order` x0s when the newest is written.
    pub fn buffers(&self) -> usize {
        StepBuffer::History(self.order + 1).index()
    }

    /// The updates of the next step, as [`UniPcScheduler::step`] takes it.
    ///
    /// Panics after the last step.
    pub fn step(&mut self) -> Vec<Combine> {
        let k = self.step_index;
        assert!(k < self.steps, "UniPC: past the last step");
        let free = (0..=self.order)
            .find(|s| !self.history.contains(s))
            .expect("order + 1 slots hold at most order x0s");
        let mut ops = vec![Combine {
            out: StepBuffer::History(free),
            beta: 0.0,
            terms: vec![
                (StepBuffer::Sample, 1.0),
                (StepBuffer::Velocity, -self.sigmas[k]),
            ],
        }];
        if k > 0 && !self.disable_corrector.contains(&(k - 1)) {
            ops.push(self.corrector(free));
        } else {
            ops.push(Combine {
                out: StepBuffer::Last,
                beta: 0.0,
                terms: vec![(StepBuffer::Sample, 1.0)],
            });
        }
        if self.history.len() == self.order {
            self.history.remove(0);
        }
        self.history.push(free);
        let order = if self.lower_order_final {
            self.order.min(self.steps - k)
        } else {
            self.order
        };
        self.this_order = order.min(self.lower_order_nums + 1);
        ops.push(self.predictor(self.this_order));
        if self.lower_order_nums < self.order {
            self.lower_order_nums += 1;
        }
        self.step_index += 1;
        ops
    }

    /// The slot of the x0 `back` steps before the newest.
    fn slot(&self, back: usize) -> StepBuffer {
        StepBuffer::History(self.history[self.history.len() - 1 - back])
    }

    /// UniC of order `this_order` at step `k` into `Last`, `model_t` (this step's x0) in slot
    /// `fresh`, the history not yet updated.
    fn corrector(&self, fresh: usize) -> Combine {
        let k = self.step_index;
        let p = self.this_order;
        let s = Scalars::new(&self.sigmas, k, k - 1, |i| k - 1 - i, p, self.bh2);
        let rhos: Vec<f32> = if p == 1 {
            vec![0.5]
        } else {
            solve(leading(&s.r, p, p), s.b.iter().map(|&v| v as f64).collect())
                .into_iter()
                .map(|v| v as f32)
                .collect()
        };
        let rho_t = rhos[p - 1];
        let c_res = s.c_res as f64;
        let mut terms = Vec::with_capacity(p + 1);
        let mut a0 = -(s.c_m as f64);
        for i in 1..p {
            let a = -c_res * rhos[i - 1] as f64 / s.rks[i - 1] as f64;
            a0 -= a;
            terms.push((self.slot(i), a as f32));
        }
        let a_t = -c_res * rho_t as f64;
        a0 -= a_t;
        terms.insert(0, (self.slot(0), a0 as f32));
        terms.push((StepBuffer::History(fresh), a_t as f32));
        Combine {
            out: StepBuffer::Last,
            beta: s.c_x,
            terms,
        }
    }

    /// UniP of order `p` from `sigmas[k]` to `sigmas[k + 1]`, from `Last` into `Sample`, the
    /// history updated.
    fn predictor(&self, p: usize) -> Combine {
        let k = self.step_index;
        let s = Scalars::new(&self.sigmas, k + 1, k, |i| k - i, p, self.bh2);
        let rhos: Vec<f32> = match p {
            1 => Vec::new(),
            2 => vec![0.5],
            _ => solve(
                leading(&s.r, p, p - 1),
                s.b[..p - 1].iter().map(|&v| v as f64).collect(),
            )
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        };
        let c_res = s.c_res as f64;
        let mut terms = vec![(StepBuffer::Last, s.c_x)];
        let mut a0 = -(s.c_m as f64);
        let mut history = Vec::with_capacity(p);
        for i in 1..p {
            let a = -c_res * rhos[i - 1] as f64 / s.rks[i - 1] as f64;
            a0 -= a;
            history.push((self.slot(i), a as f32));
        }
        terms.push((self.slot(0), a0 as f32));
        terms.extend(history);
        Combine {
            out: StepBuffer::Sample,
            beta: 0.0,
            terms,
        }
    }
}

/// The f32 scalars of one UniPC update from `sigmas[s0]` to `sigmas[t]` of order `p`, computed
/// as unipc.rs's predictor and corrector do; `back(i)` is the sigma index of the x0 `i` steps
/// before the newest.
struct Scalars {
    c_x: f32,
    c_m: f32,
    c_res: f32,
    rks: Vec<f32>,
    r: Vec<f32>,
    b: Vec<f32>,
}

impl Scalars {
    fn new(
        sigmas: &[f32],
        t: usize,
        s0: usize,
        back: impl Fn(usize) -> usize,
        p: usize,
        bh2: bool,
    ) -> Scalars {
        let (sigma_t, sigma_s0) = (sigmas[t], sigmas[s0]);
        let alpha_t = 1.0 - sigma_t;
        let lambda_s0 = lambda(sigma_s0);
        let h = lambda(sigma_t) - lambda_s0;
        let mut rks: Vec<f32> = (1..p)
            .map(|i| (lambda(sigmas[back(i)]) - lambda_s0) / h)
            .collect();
        rks.push(1.0);
        let (h_phi_1, b_h, r, b) = bh_terms(h, &rks, bh2);
        Scalars {
            c_x: sigma_t / sigma_s0,
            c_m: alpha_t * h_phi_1,
            c_res: alpha_t * b_h,
            rks,
            r,
            b,
        }
    }
}

/// The `wan_combine` launches of an update with `terms` terms: `(beta, first term, end)`,
/// the first with the update's `beta`, the rest accumulating onto it (beta 1).
fn combine_launches(beta: f32, terms: usize) -> Vec<(f32, usize, usize)> {
    (0..terms)
        .step_by(COMBINE_TERMS)
        .map(|start| {
            let b = if start == 0 { beta } else { 1.0 };
            (b, start, (start + COMBINE_TERMS).min(terms))
        })
        .collect()
}

impl WanCuda {
    /// `embed_time`'s sinusoid of `timesteps[step[0]]` into `out` (f32 `[freq_dim]`): cosines,
    /// then sines, a 0 last when `freq_dim` is odd. The timestep table and the counter
    /// ([`WanCuda::advance_step`]) live on the device so a captured step graph replays
    /// unchanged; a counter past the table gives NaNs.
    pub fn time_embedding(
        &self,
        timesteps: &CudaSlice<f32>,
        step: &CudaSlice<u32>,
        out: &mut CudaSlice<f32>,
    ) -> Result<(), KernelError> {
        let dim = out.len();
        if dim == 0 || timesteps.is_empty() || step.len() != 1 {
            return Err(invalid(format!(
                "time_embedding: {dim} frequencies, {} timesteps, a counter of {}",
                timesteps.len(),
                step.len()
            )));
        }
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (row_threads(dim / 2), 1, 1),
            shared_mem_bytes: 0,
        };
        let (count, dim, period) = (timesteps.len() as u64, int(dim, "freq_dim")?, log_period());
        let mut l = self
            .stream
            .launch_builder(self.kernel("wan_time_embedding"));
        l.arg(timesteps).arg(&count).arg(step).arg(out);
        l.arg(&dim).arg(&period);
        // SAFETY: one block writing out[..dim]; the kernel reads timesteps only below count
        // and the one counter; argument types match the kernel.
        check(unsafe { l.launch(cfg) }, "wan_time_embedding");
        Ok(())
    }

    /// `step[0] += 1` on the device: the counter [`WanCuda::time_embedding`] reads.
    pub fn advance_step(&self, step: &mut CudaSlice<u32>) -> Result<(), KernelError> {
        if step.len() != 1 {
            return Err(invalid(format!(
                "advance_step: a counter of {}",
                step.len()
            )));
        }
        let cfg = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.stream.launch_builder(self.kernel("wan_advance_step"));
        l.arg(step);
        // SAFETY: one thread incrementing the one element.
        check(unsafe { l.launch(cfg) }, "wan_advance_step");
        Ok(())
    }

    /// `out = bf16(silu(x))` (f32 in, bf16 out, equal lengths): the time MLP's activations
    /// before `linear_2` and `time_proj`.
    pub fn silu_bf16(
        &self,
        x: &CudaSlice<f32>,
        out: &mut CudaSlice<u16>,
    ) -> Result<(), KernelError> {
        let n = same_len("silu_bf16", x.len(), out.len())?;
        if n == 0 {
            return Ok(());
        }
        let len = n as u64;
        let mut l = self.stream.launch_builder(self.kernel("wan_silu_bf16"));
        l.arg(x).arg(out).arg(&len);
        // SAFETY: grid-stride over n elements of both buffers (equal lengths checked).
        check(unsafe { l.launch(grid_config(n)) }, "wan_silu_bf16");
        Ok(())
    }

    /// Classifier-free guidance: `out = u + scale (c - u)` (f32), `pred` the batch of two
    /// predictions `[2, n]`, the prompt's (`c`) first and the negative prompt's (`u`) second,
    /// `out` `[n]`. Bit-identical to pipeline.rs.
    pub fn cfg_combine(
        &self,
        pred: &CudaSlice<f32>,
        scale: f32,
        out: &mut CudaSlice<f32>,
    ) -> Result<(), KernelError> {
        let n = out.len();
        if pred.len() != 2 * n {
            return Err(invalid(format!(
                "cfg_combine: {} predictions for an output of {n}",
                pred.len()
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let len = n as u64;
        let mut l = self.stream.launch_builder(self.kernel("wan_cfg_combine"));
        l.arg(pred).arg(out).arg(&scale).arg(&len);
        // SAFETY: grid-stride over n outputs, reading pred[i] and pred[n + i] (2n checked).
        check(unsafe { l.launch(grid_config(n)) }, "wan_cfg_combine");
        Ok(())
    }

    /// `out = beta out + sum_i c_i x_i` for `terms` `(x_i, c_i)` (f32, all of `out`'s
    /// length, at least one), left to right with one rounding per product and per sum; `out`
    /// is read only when `beta != 0`. More than four terms take several launches, the later
    /// ones accumulating.
    pub fn combine(
        &self,
        out: &mut CudaSlice<f32>,
        beta: f32,
        terms: &[(&CudaSlice<f32>, f32)],
    ) -> Result<(), KernelError> {
        let n = out.len();
        if terms.is_empty() || terms.iter().any(|(x, _)| x.len() != n) {
            return Err(invalid(format!(
                "combine: {} terms of lengths {:?} into {n}",
                terms.len(),
                terms.iter().map(|(x, _)| x.len()).collect::<Vec<_>>()
            )));
        }
        if n == 0 {
            return Ok(());
        }
        let len = n as u64;
        for (beta, start, end) in combine_launches(beta, terms.len()) {
            let chunk = &terms[start..end];
            // Unused inputs point at the first: valid, never read.
            let x = |i: usize| chunk.get(i).unwrap_or(&chunk[0]);
            let count = (end - start) as i32;
            let mut l = self.stream.launch_builder(self.kernel("wan_combine"));
            l.arg(&mut *out);
            l.arg(x(0).0).arg(x(1).0).arg(x(2).0).arg(x(3).0);
            l.arg(&beta);
            l.arg(&x(0).1).arg(&x(1).1).arg(&x(2).1).arg(&x(3).1);
            l.arg(&count).arg(&len);
            // SAFETY: grid-stride over n elements; out and every input hold n (checked
            // above), inputs past `count` are never read; argument types match the kernel.
            check(unsafe { l.launch(grid_config(n)) }, "wan_combine");
        }
        Ok(())
    }

    /// Runs `ops` (a [`StepPlan::step`]) in order on `buffers`, indexed by
    /// [`StepBuffer::index`] (at least [`StepPlan::buffers`] of them, one length).
    pub fn run_combines(
        &self,
        ops: &[Combine],
        buffers: &mut [CudaSlice<f32>],
    ) -> Result<(), KernelError> {
        for op in ops {
            let (out, terms) = operands(op, buffers)?;
            self.combine(out, op.beta, &terms)?;
        }
        Ok(())
    }

    /// The next step of `plan` on `buffers` ([`WanCuda::run_combines`]): call it once
    /// `Velocity` holds the model's guided output for `Sample`; `Sample` then holds the next
    /// sample.
    pub fn scheduler_step(
        &self,
        plan: &mut StepPlan,
        buffers: &mut [CudaSlice<f32>],
    ) -> Result<(), KernelError> {
        if buffers.len() < plan.buffers() {
            return Err(invalid(format!(
                "scheduler_step: {} buffers, the plan needs {}",
                buffers.len(),
                plan.buffers()
            )));
        }
        self.run_combines(&plan.step(), buffers)
    }

    /// `dst = bf16(src)` (nearest-even, NaN kept), equal lengths.
    pub fn f32_to_bf16(
        &self,
        src: &CudaSlice<f32>,
        dst: &mut CudaSlice<u16>,
    ) -> Result<(), KernelError> {
        let n = same_len("f32_to_bf16", src.len(), dst.len())?;
        self.f32_to_bf16_rows(src, (0, n), 1, n, dst, (0, n))
    }

    /// `bf16(src)` of `rows x cols` f32 at `src_at` into `dst_at`, both `(offset, ld)` (e.g.
    /// the v columns `(2C, 3C)` of a stacked QKV GEMM's f32 output into a dense bf16 v).
    pub fn f32_to_bf16_rows(
        &self,
        src: &CudaSlice<f32>,
        src_at: (usize, usize),
        rows: usize,
        cols: usize,
        dst: &mut CudaSlice<u16>,
        dst_at: (usize, usize),
    ) -> Result<(), KernelError> {
        RowLayout::from(src_at).check_fits("f32_to_bf16 input", src.len(), rows, cols)?;
        RowLayout::from(dst_at).check_fits("f32_to_bf16 output", dst.len(), rows, cols)?;
        if rows * cols == 0 {
            return Ok(());
        }
        let (src_off, src_ld) = (src_at.0 as u64, src_at.1 as u64);
        let (dst_off, dst_ld) = (dst_at.0 as u64, dst_at.1 as u64);
        let (r, c) = (rows as u64, cols as u64);
        let mut l = self.stream.launch_builder(self.kernel("wan_f32_to_bf16"));
        l.arg(src).arg(&src_off).arg(&src_ld);
        l.arg(dst).arg(&dst_off).arg(&dst_ld);
        l.arg(&r).arg(&c);
        // SAFETY: grid-stride over rows * cols; every row lies inside src and dst (checked).
        check(
            unsafe { l.launch(grid_config(rows * cols)) },
            "wan_f32_to_bf16",
        );
        Ok(())
    }

    /// `dst = f32(src)` (exact), equal lengths.
    pub fn bf16_to_f32(
        &self,
        src: &CudaSlice<u16>,
        dst: &mut CudaSlice<f32>,
    ) -> Result<(), KernelError> {
        let n = same_len("bf16_to_f32", src.len(), dst.len())?;
        if n == 0 {
            return Ok(());
        }
        let len = n as u64;
        let mut l = self.stream.launch_builder(self.kernel("wan_bf16_to_f32"));
        l.arg(src).arg(dst).arg(&len);
        // SAFETY: grid-stride over n elements of both buffers (equal lengths checked).
        check(unsafe { l.launch(grid_config(n)) }, "wan_bf16_to_f32");
        Ok(())
    }
}

/// An update's output (mutable) and its terms with their coefficients.
type Operands<'b, T> = (&'b mut T, Vec<(&'b T, f32)>);

/// `op`'s output (mutable) and its terms with their coefficients, out of `buffers`; an error
/// if an index is out of range or a term is the output.
fn operands<'b, T>(op: &Combine, buffers: &'b mut [T]) -> Result<Operands<'b, T>, KernelError> {
    let o = op.out.index();
    let n = buffers.len();
    if o >= n
        || op
            .terms
            .iter()
            .any(|(b, _)| b.index() >= n || b.index() == o)
    {
        return Err(invalid(format!("combine {op:?} over {n} buffers")));
    }
    let (head, rest) = buffers.split_at_mut(o);
    let (out, tail) = rest.split_first_mut().expect("o < buffers.len()");
    let (head, tail) = (&*head, &*tail);
    let terms = op
        .terms
        .iter()
        .map(|&(b, c)| {
            let i = b.index();
            (if i < o { &head[i] } else { &tail[i - o - 1] }, c)
        })
        .collect();
    Ok((out, terms))
}

/// The common length of an input and an output, or an error.
fn same_len(what: &str, a: usize, b: usize) -> Result<usize, KernelError> {
    if a != b {
        return Err(invalid(format!("{what}: input of {a}, output of {b}")));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wan::FlowMatchEulerConfig;

    /// What `run_combines` computes, on the host: the same operands, the kernel's
    /// arithmetic launch by launch.
    fn apply(ops: &[Combine], bufs: &mut [Vec<f32>]) {
        for op in ops {
            let (out, terms) = operands(op, bufs).expect("valid operands");
            assert!(terms.iter().all(|(x, _)| x.len() == out.len()));
            for (beta, start, end) in combine_launches(op.beta, terms.len()) {
                for (e, o) in out.iter_mut().enumerate() {
                    let mut acc = if beta != 0.0 { beta * *o } else { 0.0 };
                    for &(x, c) in &terms[start..end] {
                        acc += c * x[e];
                    }
                    *o = acc;
                }
            }
        }
    }

    /// A reproducible uniform value in [-1, 1) (SplitMix64).
    fn uniform(state: &mut u64) -> f32 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn random(len: usize, state: &mut u64) -> Vec<f32> {
        (0..len).map(|_| 2.0 * uniform(state)).collect()
    }

    fn unipc_config(extra: &str) -> UniPcConfig {
        serde_json::from_str(&format!(
            r#"{{"prediction_type": "flow_prediction", "use_flow_sigmas": true,
                "flow_shift": 3.0{extra}}}"#
        ))
        .expect("UniPC config")
    }

    /// Runs the CPU scheduler and the plan side by side on random velocities, returning the
    /// largest |plan - cpu| / max |cpu| over every step.
    fn unipc_gap(config: &UniPcConfig, steps: usize) -> f64 {
        let len = 997;
        let mut state = 7u64;
        let mut cpu = UniPcScheduler::new(config, steps);
        let mut plan = StepPlan::new(&WanScheduler::UniPc(config.clone()), steps);
        let mut bufs = vec![vec![f32::NAN; len]; plan.buffers()];
        let mut sample = random(len, &mut state);
        bufs[StepBuffer::Sample.index()] = sample.clone();
        let mut worst = 0.0f64;
        for _ in 0..steps {
            let v = random(len, &mut state);
            sample = cpu.step(&v, &sample);
            bufs[StepBuffer::Velocity.index()] = v;
            let ops = plan.step();
            for op in &ops {
                let n = op.terms.len() + usize::from(op.beta != 0.0);
                assert!(n <= COMBINE_TERMS + 1, "{op:?}");
            }
            apply(&ops, &mut bufs);
            let got = &bufs[StepBuffer::Sample.index()];
            let scale = sample.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
            let diff = got
                .iter()
                .zip(&sample)
                .fold(0.0f64, |m, (&a, &b)| m.max((a as f64 - b as f64).abs()));
            assert!(diff.is_finite(), "non-finite plan output");
            worst = worst.max(diff / scale);
        }
        worst
    }

    /// The expanded sums round differently from unipc.rs's `D_i` form: a few f32 ulps
    /// (2^-24 = 6e-8) of the sample's magnitude per step, compounding over a run (measured:
    /// 2e-7 to 5e-7 over 4 to 12 steps, 9e-7 over 50). 4e-6 is 25 times below the CPU
    /// scheduler's own tolerance against diffusers (1e-4), while a wrong coefficient shows
    /// at 1e-3 or more.
    const UNIPC_TOL: f64 = 4e-6;

    #[test]
    fn unipc_plan_matches_the_cpu_scheduler() {
        let cases = [
            ("", 10),                                            // Wan2.1: order 2, bh2
            ("", 2),                                             // the tiny test runs
            (r#", "solver_order": 1"#, 6),                       // first order
            (r#", "solver_order": 3, "solver_type": "bh1""#, 9), // order 3 solves rho systems
            (r#", "solver_order": 3"#, 12),
            (r#", "disable_corrector": [0, 3]"#, 7),
            (r#", "final_sigmas_type": "sigma_min""#, 5),
            (r#", "lower_order_final": false, "solver_order": 1"#, 4),
            ("", 50), // Wan2.1's default run
        ];
        for (extra, steps) in cases {
            let gap = unipc_gap(&unipc_config(extra), steps);
            assert!(
                gap <= UNIPC_TOL,
                "config{extra}, {steps} steps: gap {gap:e}"
            );
        }
    }

    #[test]
    fn unipc_plan_uses_free_slots_and_never_reads_its_output() {
        let config = unipc_config(r#", "solver_order": 3"#);
        let mut plan = UniPcPlan::new(&config, 8);
        assert_eq!(plan.buffers(), 3 + 4);
        let mut written = Vec::new();
        for k in 0..8 {
            let ops = plan.step();
            assert_eq!(ops.len(), 3, "x0, corrector or copy, predictor");
            let StepBuffer::History(slot) = ops[0].out else {
                panic!("step {k} writes x0 to {:?}", ops[0].out);
            };
            assert!(slot <= 3);
            written.push(slot);
            assert_eq!(ops[1].out, StepBuffer::Last);
            assert_eq!(ops[2].out, StepBuffer::Sample);
            for op in &ops {
                assert!(op.terms.iter().all(|(b, _)| *b != op.out));
                assert!(op.terms.iter().all(|(b, _)| b.index() < plan.buffers()));
            }
            // The corrector reads this step's x0 and the `order` before it: all distinct.
            let mut read: Vec<usize> = ops[1].terms.iter().map(|(b, _)| b.index()).collect();
            read.sort_unstable();
            read.dedup();
            assert_eq!(read.len(), ops[1].terms.len());
        }
        // Four slots in rotation once three are live.
        assert_eq!(written, [0, 1, 2, 3, 0, 1, 2, 3]);
    }

    #[test]
    #[should_panic(expected = "past the last step")]
    fn unipc_plan_stops_after_the_last_step() {
        let mut plan = UniPcPlan::new(&unipc_config(""), 1);
        plan.step();
        plan.step();
    }

    #[test]
    fn euler_plan_is_bit_identical_to_the_cpu_scheduler() {
        let config: FlowMatchEulerConfig = serde_json::from_str(r#"{"shift": 3.0}"#).unwrap();
        let steps = 5;
        let mut cpu = FlowMatchEulerScheduler::new(&config, steps);
        let mut plan = StepPlan::new(&WanScheduler::FlowMatchEuler(config), steps);
        assert_eq!(plan.buffers(), 2);
        let mut state = 3u64;
        let mut sample = random(501, &mut state);
        let mut bufs = vec![sample.clone(), vec![f32::NAN; 501]];
        for _ in 0..steps {
            let v = random(501, &mut state);
            sample = cpu.step(&v, &sample);
            bufs[1] = v;
            apply(&plan.step(), &mut bufs);
            assert_eq!(bufs[0], sample);
        }
    }

    #[test]
    fn unipc_x0_is_bit_identical() {
        // 0 + 1 x is x and x + (-sigma) v is x - sigma v: the CPU's x0 exactly.
        let mut plan = UniPcPlan::new(&unipc_config(""), 4);
        let ops = plan.step();
        let mut state = 11u64;
        let (x, v) = (random(64, &mut state), random(64, &mut state));
        let mut bufs = vec![vec![f32::NAN; 64]; plan.buffers()];
        bufs[0] = x.clone();
        bufs[1] = v.clone();
        apply(&ops[..1], &mut bufs);
        let sigma = plan.sigmas[0];
        let want: Vec<f32> = x.iter().zip(&v).map(|(&x, &v)| x - sigma * v).collect();
        assert_eq!(bufs[ops[0].out.index()], want);
    }

    #[test]
    fn long_updates_split_into_accumulating_launches() {
        assert_eq!(combine_launches(0.5, 1), [(0.5, 0, 1)]);
        assert_eq!(combine_launches(0.5, 4), [(0.5, 0, 4)]);
        assert_eq!(combine_launches(0.5, 5), [(0.5, 0, 4), (1.0, 4, 5)]);
        assert_eq!(
            combine_launches(0.0, 9),
            [(0.0, 0, 4), (1.0, 4, 8), (1.0, 8, 9)]
        );
        assert!(combine_launches(1.0, 0).is_empty());
    }

    #[test]
    fn operands_are_picked_by_index_and_checked() {
        let mut bufs: Vec<Vec<f32>> = (0..5).map(|i| vec![i as f32]).collect();
        let op = Combine {
            out: StepBuffer::History(0),
            beta: 0.0,
            terms: vec![(StepBuffer::History(1), 1.0), (StepBuffer::Sample, 2.0)],
        };
        let (out, terms) = operands(&op, &mut bufs).unwrap();
        assert_eq!(out[0], 3.0);
        assert_eq!(terms, [(&vec![4.0], 1.0), (&vec![0.0], 2.0)]);
        let reads_itself = Combine {
            terms: vec![(StepBuffer::History(0), 1.0)],
            ..op.clone()
        };
        assert!(operands(&reads_itself, &mut bufs).is_err());
        let beyond = Combine {
            out: StepBuffer::History(2),
            ..op
        };
        assert!(operands(&beyond, &mut bufs).is_err());
    }

    #[test]
    fn buffer_indices_are_distinct() {
        let all = [
            StepBuffer::Sample,
            StepBuffer::Velocity,
            StepBuffer::Last,
            StepBuffer::History(0),
            StepBuffer::History(1),
        ];
        let idx: Vec<usize> = all.iter().map(|b| b.index()).collect();
        assert_eq!(idx, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn log_period_is_embed_times() {
        assert_eq!(log_period(), -9.2103405f32);
    }
}
