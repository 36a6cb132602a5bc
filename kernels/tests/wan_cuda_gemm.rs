//! Wan2.1's tensor-core GEMM (`WanCuda::gemm`, `wan_gemm.cu`) against a naive reference on
//! the host: every epilogue, at the tiny checkpoint's odd sizes (dim 28, FFN 45, text dim 24,
//! time frequencies 18) and the 1.3B's (dim 1536, FFN 8960, text dim 4096, time frequencies
//! 256), with a few dozen rows so the reference stays quick.
//!
//! The inputs are rounded to bf16 on the host first (the device holds exactly these values),
//! and the reference sums their exact products in f64, so the measured error is the GPU's
//! alone. Metric: tests/common's `rel_err`, max |gpu - ref| / max |ref|.
//!
//! These need a GPU, so they are `#[ignore]`d: run them with `--include-ignored` on a machine
//! with one (bench/gpu.sh), where they fail, not skip, if `WanCuda` cannot start.

mod common;

use common::wan_cuda::{bf16, gpu};
use common::{randn, rel_err};
use cudarc::driver::CudaSlice;
use kernels::cuda::wan::{Epilogue, WanCuda};
use kernels::KernelError;

/// Rows of most cases: a few dozen tokens, not a multiple of the 128-row tile.
const M: usize = 37;

/// (in_features K, out_features N) of the tiny checkpoint's layers: time embedder (18 -> 28),
/// its 6-way projection (28 -> 168), attention projections (28 -> 28), text embedder
/// (24 -> 28), FFN (28 -> 45 -> 28).
const TINY_F32: &[(usize, usize)] = &[(18, 28), (28, 168)];
const TINY_BF16: &[(usize, usize)] = &[(28, 28), (24, 28)];
const TINY_GELU: &[(usize, usize)] = &[(28, 45)];
const TINY_RESIDUAL: &[(usize, usize)] = &[(28, 28), (45, 28)];
/// The same layers of the 1.3B: dim 1536, FFN 8960, text dim 4096, 256 time frequencies.
const BIG_F32: &[(usize, usize)] = &[(256, 1536), (1536, 9216)];
const BIG_BF16: &[(usize, usize)] = &[(1536, 1536), (4096, 1536)];
const BIG_GELU: &[(usize, usize)] = &[(1536, 8960)];
const BIG_RESIDUAL: &[(usize, usize)] = &[(1536, 1536), (8960, 1536)];

/// One bf16 rounding (nearest-even) is within 2^-8 of the value it rounds: bf16 keeps 8
/// significant bits. Relative to max |ref|, a bf16 output's rounding adds at most this.
const BF16_ROUNDING: f64 = 1.0 / 256.0;

/// The tolerance of an f32 result summed over `k` products: the tensor cores add each
/// k-step of 16 products into the f32 accumulator with one rounding, which truncates (Fasi
/// et al., "Numerical behavior of NVIDIA tensor cores", 2021), and align the 16 products by
/// truncation too: allow 2 ulps (2^-22 relative) of a partial sum per step, partial sums
/// being of the size of the outputs (W is scaled by 1/sqrt(K): outputs are about N(0, 1)).
/// Floor 1e-5, the f32 summation-order tolerance of the repository's other GEMM tests.
/// K = 1536: 1.1e-5; K = 8960: 1.3e-4. An indexing or layout mistake errs by O(1).
fn sum_tol(k: usize) -> f64 {
    (k.div_ceil(16) as f64 * (2.0f64).powi(-22)).max(1e-5)
}

/// A GEMM's inputs, already bf16-exact where the device stores bf16.
struct Inputs {
    m: usize,
    n: usize,
    k: usize,
    /// `[m, k]`, bf16-exact.
    a: Vec<f32>,
    /// `[n, k]`, bf16-exact, scaled by 1/sqrt(k) so the outputs are about N(0, 1).
    w: Vec<f32>,
    /// `[n]`, f32.
    bias: Vec<f32>,
}

fn inputs(m: usize, n: usize, k: usize, stream: u64) -> Inputs {
    let scale = 1.0 / (k as f32).sqrt();
    Inputs {
        m,
        n,
        k,
        a: bf16(randn(&[m, k], stream).data),
        w: bf16(randn(&[n, k], stream + 1).data.iter().map(|v| v * scale)),
        bias: randn(&[n], stream + 2)
            .data
            .iter()
            .map(|v| 0.1 * v)
            .collect(),
    }
}

/// `A · W^T + bias`, exact products summed in f64.
fn reference(x: &Inputs) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.m * x.n);
    for i in 0..x.m {
        let row = &x.a[i * x.k..(i + 1) * x.k];
        for j in 0..x.n {
            let col = &x.w[j * x.k..(j + 1) * x.k];
            let dot: f64 = row
                .iter()
                .zip(col)
                .map(|(&p, &q)| p as f64 * q as f64)
                .sum();
            out.push(dot + x.bias[j] as f64);
        }
    }
    out
}

/// PyTorch's `gelu(approximate="tanh")`.
fn gelu_tanh(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Asserts `got` is within `tol` of `want` (relative to max |want|), naming the case.
fn assert_close(what: &str, (k, n): (usize, usize), got: &[f32], want: &[f64], tol: f64) {
    let err = rel_err(got, &to_f32(want));
    eprintln!("{what} K={k} N={n}: relative error {err:.3e} (tolerance {tol:.3e})");
    assert!(
        err <= tol,
        "{what} K={k} N={n}: relative error {err:e} > {tol:e}"
    );
}

/// Runs every (K, N) of `cases` at `m` rows through `run` (which returns the GPU's output
/// and the reference) and checks them against `tol(k)`.
fn check_cases(
    what: &str,
    m: usize,
    cases: &[(usize, usize)],
    tol: impl Fn(usize) -> f64,
    run: impl Fn(&WanCuda, &Inputs) -> (Vec<f32>, Vec<f64>),
) {
    let gpu = gpu();
    for (i, &(k, n)) in cases.iter().enumerate() {
        let x = inputs(m, n, k, 100 + 10 * i as u64);
        let (got, want) = run(gpu, &x);
        assert_close(what, (k, n), &got, &want, tol(k));
    }
}

fn bias_f32(gpu: &WanCuda, x: &Inputs) -> (Vec<f32>, Vec<f64>) {
    let (a, w, bias) = (
        gpu.upload_bf16(&x.a),
        gpu.upload_bf16(&x.w),
        gpu.upload_f32(&x.bias),
    );
    let mut out = gpu.zeros_f32(x.m * x.n);
    gpu.gemm(&a, &w, &bias, x.m, x.n, x.k, Epilogue::BiasF32(&mut out))
        .expect("gemm");
    (gpu.download_f32(&out), reference(x))
}

/// The bf16 epilogues: `bf16(acc + bias)`, or `bf16(gelu_tanh(acc + bias))` when `gelu`.
fn bf16_out(gpu: &WanCuda, x: &Inputs, gelu: bool) -> (Vec<f32>, Vec<f64>) {
    let (a, w, bias) = (
        gpu.upload_bf16(&x.a),
        gpu.upload_bf16(&x.w),
        gpu.upload_f32(&x.bias),
    );
    let mut out = gpu.zeros_bf16(x.m * x.n);
    let epilogue = if gelu {
        Epilogue::BiasGeluBf16(&mut out)
    } else {
        Epilogue::BiasBf16(&mut out)
    };
    gpu.gemm(&a, &w, &bias, x.m, x.n, x.k, epilogue)
        .expect("gemm");
    let mut want = reference(x);
    if gelu {
        want.iter_mut().for_each(|v| *v = gelu_tanh(*v));
    }
    (gpu.download_bf16(&out), want)
}

/// Items of the gated-residual cases: `m` rows are `ITEMS` items of `m / ITEMS` tokens.
const ITEMS: usize = 2;
/// Rows of the modulation table per item (Wan's 6 chunks: shift, scale, gate, twice).
const CHUNKS: usize = 6;
/// The chunk holding the gate used (Wan's `gate_msa` is chunk 2).
const GATE_CHUNK: usize = 2;

/// `residual += gate[item] * (A · W^T + bias)`, the gate read in place from a per-item
/// `[ITEMS, 6, n]` table (a view from chunk 2 of item 0, stride 6 n), as the transformer's
/// modulation table will be passed.
fn gated_residual(gpu: &WanCuda, x: &Inputs) -> (Vec<f32>, Vec<f64>) {
    let rows_per_batch = x.m / ITEMS;
    assert_eq!(rows_per_batch * ITEMS, x.m);
    let residual0 = randn(&[x.m, x.n], 7).data;
    let table: Vec<f32> = randn(&[ITEMS, CHUNKS, x.n], 8).data;
    let (a, w, bias, table_dev) = (
        gpu.upload_bf16(&x.a),
        gpu.upload_bf16(&x.w),
        gpu.upload_f32(&x.bias),
        gpu.upload_f32(&table),
    );
    let mut residual = gpu.upload_f32(&residual0);
    gpu.gemm(
        &a,
        &w,
        &bias,
        x.m,
        x.n,
        x.k,
        Epilogue::GatedResidual {
            residual: &mut residual,
            gate: table_dev.slice(GATE_CHUNK * x.n..),
            gate_stride: CHUNKS * x.n,
            rows_per_batch,
        },
    )
    .expect("gemm");
    let want: Vec<f64> = reference(x)
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (m, n) = (i / x.n, i % x.n);
            let gate = table[(m / rows_per_batch) * CHUNKS * x.n + GATE_CHUNK * x.n + n];
            residual0[i] as f64 + gate as f64 * v
        })
        .collect();
    (gpu.download_f32(&residual), want)
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn bias_f32_tiny_and_1_3b() {
    check_cases("bias f32", M, TINY_F32, sum_tol, bias_f32);
    check_cases("bias f32", M, BIG_F32, sum_tol, bias_f32);
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn bias_bf16_tiny_and_1_3b() {
    // One bf16 rounding of the output on top of the f32 sum.
    let tol = |k| sum_tol(k) + BF16_ROUNDING;
    let run = |gpu: &WanCuda, x: &Inputs| bf16_out(gpu, x, false);
    check_cases("bias bf16", M, TINY_BF16, tol, run);
    check_cases("bias bf16", M, BIG_BF16, tol, run);
    // Several row tiles and a partial last one (300 = 2 x 128 + 44), with the 1.3B's dim.
    check_cases("bias bf16, 300 rows", 300, &[(1536, 1536)], tol, run);
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn bias_gelu_bf16_tiny_and_1_3b() {
    // GELU-tanh's slope is at most 1.13, so the sum's error passes through at most doubled;
    // f32 tanhf is within a few ulps; then one bf16 rounding.
    let tol = |k| 2.0 * sum_tol(k) + BF16_ROUNDING;
    let run = |gpu: &WanCuda, x: &Inputs| bf16_out(gpu, x, true);
    check_cases("bias gelu bf16", M, TINY_GELU, tol, run);
    check_cases("bias gelu bf16", M, BIG_GELU, tol, run);
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn gated_residual_tiny_and_1_3b() {
    // Gates and residual are about N(0, 1) like the sums: the gate scales the sum's error
    // by a few at most, and the add is one f32 rounding. 2 items of 37 rows each.
    let tol = |k| 4.0 * sum_tol(k);
    check_cases(
        "gated residual",
        ITEMS * M,
        TINY_RESIDUAL,
        tol,
        gated_residual,
    );
    check_cases(
        "gated residual",
        ITEMS * M,
        BIG_RESIDUAL,
        tol,
        gated_residual,
    );
}

/// The gated epilogue over all of `gate`.
fn gated<'a>(
    residual: &'a mut CudaSlice<f32>,
    gate: &'a CudaSlice<f32>,
    gate_stride: usize,
    rows_per_batch: usize,
) -> Epilogue<'a> {
    Epilogue::GatedResidual {
        residual,
        gate: gate.slice(..),
        gate_stride,
        rows_per_batch,
    }
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn bad_arguments_are_errors_and_launch_nothing() {
    let gpu = gpu();
    let (m, n, k) = (37, 28, 45);
    let a = gpu.zeros_bf16(m * k);
    let w = gpu.zeros_bf16(n * k);
    let bias = gpu.zeros_f32(n);
    let mut out = gpu.zeros_f32(m * n);
    let invalid = |r: Result<(), KernelError>| matches!(r, Err(KernelError::InvalidArgument(_)));
    // A, W, bias or output too short for the sizes given.
    assert!(invalid(gpu.gemm(
        &a,
        &w,
        &bias,
        m + 1,
        n,
        k,
        Epilogue::BiasF32(&mut out)
    )));
    assert!(invalid(gpu.gemm(
        &a,
        &w,
        &bias,
        m,
        n,
        k + 1,
        Epilogue::BiasF32(&mut out)
    )));
    assert!(invalid(gpu.gemm(
        &a,
        &w,
        &bias,
        m,
        n + 1,
        k,
        Epilogue::BiasF32(&mut out)
    )));
    let mut short = gpu.zeros_bf16(m * n - 1);
    assert!(invalid(gpu.gemm(
        &a,
        &w,
        &bias,
        m,
        n,
        k,
        Epilogue::BiasBf16(&mut short)
    )));
    // Gates: 0 rows per item, and a table too short for the last item's gates.
    let gate = gpu.zeros_f32(2 * n);
    assert!(invalid(gpu.gemm(
        &a,
        &w,
        &bias,
        m,
        n,
        k,
        gated(&mut out, &gate, n, 0)
    )));
    // Rows 0..=36 in items of 12 rows: item 3 reads gates 3n..4n of a 2n table.
    assert!(invalid(gpu.gemm(
        &a,
        &w,
        &bias,
        m,
        n,
        k,
        gated(&mut out, &gate, n, 12)
    )));
    // ... which fit with 19 rows per item (items 0 and 1).
    gpu.gemm(&a, &w, &bias, m, n, k, gated(&mut out, &gate, n, 19))
        .expect("two items of gates");
    // Nothing to compute is not an error.
    gpu.gemm(&a, &w, &bias, 0, n, k, Epilogue::BiasF32(&mut out))
        .expect("0 rows");
    gpu.synchronize();
}
