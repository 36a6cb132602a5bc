//! Wan2.1's fused attention (`WanCuda::attention`, `wan_attention.cu`) against a naive
//! `softmax(Q K^T / sqrt(D)) V` on the host, at the tiny checkpoint's shape (2 heads of 14)
//! and the 1.3B's (12 heads of 128), with token counts that are not multiples of the 64-row
//! tiles (77, 130) and the cross-attention's 512 text rows.
//!
//! The inputs are rounded to bf16 on the host first (the device holds exactly these values)
//! and the reference computes in f64, so the measured error is the GPU's alone.
//!
//! Tolerance, per element, from the kernel's two bf16 roundings (each within 2^-8 of the
//! value rounded: bf16 keeps 8 significant bits):
//! - the probabilities P are rounded to bf16 before the product with V, while the row sum
//!   they are divided by is summed from the unrounded f32 values (as FlashAttention does), so
//!   the output moves by at most 2^-8 * A, with A = sum_j p_j |v_j| / sum_j p_j, the average
//!   magnitude of the values under the attention weights;
//! - the output is rounded to bf16: at most 2^-8 * |out|.
//!
//! Beyond those: rounding an output that already carries P's error adds 2^-16 A (1.5e-5 A),
//! and f32 arithmetic about 1e-5 A (scores are sums of up to 128 products, a few ulps each
//! per 16-product step, which exp2 turns into relative errors of p of a few 1e-6; exp2f is
//! within 2 ulps; the products with V and the row sums add in f32 over up to 512 keys).
//! So each element must satisfy |gpu - ref| <= 2^-8 (|ref| + A) + 5e-5 A, which any layout,
//! indexing or masking mistake breaks by far. As a summary the tests also print and bound
//! tests/common's `rel_err` (max |gpu - ref| / max |ref|) by 2^-6: random errors put it
//! near 2^-8 (the output's rounding) plus a few 1e-4 from P's, but A can exceed the largest
//! output where attention spreads over many keys, so the bound leaves a factor of 4.
//!
//! These need a GPU, so they are `#[ignore]`d: run them with `--include-ignored` on a machine
//! with one (bench/gpu.sh), where they fail, not skip, if `WanCuda` cannot start.

mod common;

use common::wan_cuda::{bf16, gpu};
use common::{randn, rel_err};
use kernels::KernelError;

/// Within 2^-8 of the value: one bf16 rounding.
const BF16_ROUNDING: f64 = 1.0 / 256.0;
/// The output's rounding of P's error, and f32 arithmetic, relative to A (see the module doc).
const F32_SLACK: f64 = 5e-5;
/// The summary bound on `rel_err` (see the module doc).
const SUMMARY_TOL: f64 = 1.0 / 64.0;

/// One attention problem: `batch` items, `heads` heads of `head_dim`.
#[derive(Clone, Copy, Debug)]
struct Shape {
    batch: usize,
    q_len: usize,
    kv_len: usize,
    heads: usize,
    head_dim: usize,
}

/// The reference output `[batch, q_len, heads, head_dim]` and, per element, A (the
/// attention-weighted average of |v| over its row and column).
fn reference(s: Shape, q: &[f32], k: &[f32], v: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let Shape {
        batch,
        q_len,
        kv_len,
        heads,
        head_dim: d,
    } = s;
    let scale = 1.0 / (d as f64).sqrt();
    let at = |len: usize, b: usize, l: usize, h: usize| ((b * len + l) * heads + h) * d;
    let mut out = vec![0.0; batch * q_len * heads * d];
    let mut avg_abs = vec![0.0; out.len()];
    let mut p = vec![0.0f64; kv_len];
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..q_len {
                let qi = &q[at(q_len, b, i, h)..][..d];
                for (j, pj) in p.iter_mut().enumerate() {
                    let kj = &k[at(kv_len, b, j, h)..][..d];
                    let dot: f64 = qi.iter().zip(kj).map(|(&x, &y)| x as f64 * y as f64).sum();
                    *pj = dot * scale;
                }
                let max = p.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                p.iter_mut().for_each(|x| *x = (*x - max).exp());
                let sum: f64 = p.iter().sum();
                let o = at(q_len, b, i, h);
                for (j, &pj) in p.iter().enumerate() {
                    let vj = &v[at(kv_len, b, j, h)..][..d];
                    for c in 0..d {
                        out[o + c] += pj * vj[c] as f64 / sum;
                        avg_abs[o + c] += pj * (vj[c] as f64).abs() / sum;
                    }
                }
            }
        }
    }
    (out, avg_abs)
}

/// Runs `shape` on the GPU and checks it element by element and in summary.
fn check(what: &str, shape: Shape, stream: u64) {
    let gpu = gpu();
    let Shape {
        batch,
        q_len,
        kv_len,
        heads,
        head_dim,
    } = shape;
    let q = bf16(randn(&[batch, q_len, heads, head_dim], stream).data);
    let k = bf16(randn(&[batch, kv_len, heads, head_dim], stream + 1).data);
    let v = bf16(randn(&[batch, kv_len, heads, head_dim], stream + 2).data);
    let (qd, kd, vd) = (
        gpu.upload_bf16(&q),
        gpu.upload_bf16(&k),
        gpu.upload_bf16(&v),
    );
    let mut out = gpu.zeros_bf16(q.len());
    gpu.attention(
        &qd, &kd, &vd, &mut out, batch, q_len, kv_len, heads, head_dim,
    )
    .expect("attention");
    let got = gpu.download_bf16(&out);
    let (want, avg_abs) = reference(shape, &q, &k, &v);

    for (i, ((&g, &r), &a)) in got.iter().zip(&want).zip(&avg_abs).enumerate() {
        let bound = BF16_ROUNDING * (r.abs() + a) + F32_SLACK * a;
        let diff = (g as f64 - r).abs();
        assert!(
            diff <= bound,
            "{what} {shape:?}: element {i} (row {}, column {}) is {g}, reference {r}: \
             |diff| {diff:e} > bound {bound:e}",
            i / (heads * head_dim),
            i % (heads * head_dim)
        );
    }
    let want32: Vec<f32> = want.iter().map(|&x| x as f32).collect();
    let err = rel_err(&got, &want32);
    eprintln!("{what} {shape:?}: relative error {err:.3e} (summary tolerance {SUMMARY_TOL:e})");
    assert!(
        err <= SUMMARY_TOL,
        "{what} {shape:?}: relative error {err:e} > {SUMMARY_TOL:e}"
    );
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn tiny_self_and_cross_attention() {
    // Head dim 14: padded to 16 in the 64-wide kernel, staged by scalar loads (14 % 8 != 0).
    let tiny = |batch, q_len, kv_len| Shape {
        batch,
        q_len,
        kv_len,
        heads: 2,
        head_dim: 14,
    };
    check("tiny self-attention", tiny(1, 77, 77), 10);
    check("tiny, more keys than queries", tiny(1, 77, 130), 20);
    check("tiny, 2 items", tiny(2, 130, 77), 30);
    check("tiny cross-attention", tiny(1, 77, 512), 40);
    // Fewer rows than one tile of queries and of keys.
    check("tiny, single rows", tiny(1, 1, 1), 50);
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn wan_1_3b_self_and_cross_attention() {
    // Head dim 128: the 128-wide kernel, staged by 16-byte cp.async copies.
    let big = |batch, q_len, kv_len| Shape {
        batch,
        q_len,
        kv_len,
        heads: 12,
        head_dim: 128,
    };
    check("1.3B self-attention", big(1, 130, 130), 60);
    check("1.3B, partial tiles", big(1, 77, 130), 70);
    check("1.3B cross-attention, CFG batch", big(2, 77, 512), 80);
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn head_dims_between_the_kernels_widths() {
    // 64 fills the narrow kernel exactly; 72 pads to 128 (vector path, 72 % 8 == 0); 100
    // pads to 128 through the scalar path (100 % 8 != 0).
    for (i, head_dim) in [64, 72, 100].into_iter().enumerate() {
        let shape = Shape {
            batch: 1,
            q_len: 70,
            kv_len: 90,
            heads: 3,
            head_dim,
        };
        check("head dim", shape, 90 + 10 * i as u64);
    }
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn bad_arguments_are_errors_and_launch_nothing() {
    let gpu = gpu();
    let (batch, len, heads, d) = (1, 77, 2, 14);
    let q = gpu.zeros_bf16(batch * len * heads * d);
    let mut out = gpu.zeros_bf16(q.len());
    let invalid = |r: Result<(), KernelError>| matches!(r, Err(KernelError::InvalidArgument(_)));
    let short = gpu.zeros_bf16(q.len() - 1);
    assert!(invalid(
        gpu.attention(&q, &short, &q, &mut out, batch, len, len, heads, d)
    ));
    assert!(invalid(gpu.attention(
        &q,
        &q,
        &q,
        &mut out,
        batch,
        len + 1,
        len,
        heads,
        d
    )));
    // Head dims outside 1..=128 (the buffers are large enough for 129 x 2 heads x 1 row).
    assert!(invalid(
        gpu.attention(&q, &q, &q, &mut out, batch, 1, 1, heads, 129)
    ));
    assert!(invalid(
        gpu.attention(&q, &q, &q, &mut out, batch, 1, 1, heads, 0)
    ));
    // No keys: the softmax is undefined.
    assert!(invalid(
        gpu.attention(&q, &q, &q, &mut out, batch, len, 0, heads, d)
    ));
    // No queries: nothing to do.
    gpu.attention(&q, &q, &q, &mut out, batch, 0, len, heads, d)
        .expect("0 queries");
    gpu.synchronize();
}
