//! Wan2.1's transformer norms and layouts on the GPU (kernels/src/cuda/wan/wan_norm.cu)
//! against naive references on the host: the modulation rows, LayerNorm + modulation, the
//! affine LayerNorm, RMSNorm across heads with and without 3D RoPE, patchify and unpatchify.
//! Shapes are the tiny checkpoint's (model/wan/tiny/transformer/config.json: dim 28, 2 heads
//! of 14, patch 1 x 2 x 3) and the 1.3B's (dim 1536, 12 heads of 128, patch 1 x 2 x 2), a
//! batch of two items (the guidance pair) of a few tokens each.
//!
//! The references compute in f64 from the same f32 inputs, the formulas of transformer.rs
//! and rope.rs. These need a GPU, so they are `#[ignore]`d: bench/gpu.sh runs them with
//! `--include-ignored`, where they fail, not skip, if `WanCuda::try_new(0)` fails.

mod common;

use common::wan_cuda::{self, gpu};

/// A reproducible normal vector times `scale` plus `offset`.
fn normal(n: usize, stream: u64, scale: f32, offset: f32) -> Vec<f32> {
    wan_cuda::normal(n, stream, scale)
        .into_iter()
        .map(|v| v + offset)
        .collect()
}

/// The transformer shapes tested: (dim, heads, head_dim).
const SHAPES: [(usize, usize, usize); 2] = [(28, 2, 14), (1536, 12, 128)];
/// The config's eps (both checkpoints).
const EPS: f32 = 1e-6;
/// Items of a batch (the guidance pair).
const ITEMS: usize = 2;

/// The tolerance of a bf16 output against its f64 reference: one rounding to bf16 (at most
/// half an ulp, 2^-9 of the value; 2^-8 lets the f32 arithmetic before it push a value across
/// a rounding boundary) plus `F32_SUMS` of the largest reference value for the f32
/// statistics summed in another order than the reference (means and sums of squares over
/// at most 1536 values: about 1e-6 relative; 1e-5 leaves a margin).
fn assert_bf16_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: size");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "{what}: all-zero reference");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let bound = w.abs() / 256.0 + F32_SUMS * scale;
        assert!(
            (g as f64 - w).abs() <= bound,
            "{what}: element {i}: {g} vs {w} (bound {bound:e})"
        );
    }
}

/// See [`assert_bf16_close`].
const F32_SUMS: f64 = 1e-5;

/// Mean and 1 / sqrt(var + eps) (biased) of `row`, in f64.
fn moments(row: &[f32]) -> (f64, f64) {
    let n = row.len() as f64;
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, 1.0 / (var + EPS as f64).sqrt())
}

/// rope.rs's tables for `grid` and heads `head_dim` wide: `[tokens, head_dim / 2]` each.
fn rope_tables(head_dim: usize, grid: [usize; 3]) -> (Vec<f32>, Vec<f32>) {
    let hw = 2 * (head_dim / 6);
    let dims = [head_dim - 2 * hw, hw, hw];
    let mut axis_freq = Vec::new();
    for (axis, &d) in dims.iter().enumerate() {
        for j in 0..d / 2 {
            axis_freq.push((axis, 1.0 / 10000f64.powf((2 * j) as f64 / d as f64)));
        }
    }
    let [_, h, w] = grid;
    let tokens: usize = grid.iter().product();
    let (mut cos, mut sin) = (Vec::new(), Vec::new());
    for t in 0..tokens {
        let pos = [t / (h * w), (t / w) % h, t % w];
        for &(axis, inv) in &axis_freq {
            let angle = pos[axis] as f64 * inv;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn modulation_rows_are_table_plus_embedding() {
    let gpu = gpu();
    for (c, _, _) in SHAPES {
        // A block: table [6C] + proj [B, 6C]; the head: table [2C] + temb [B, C] twice.
        for (rows, emb_len) in [(6, 6 * c), (2, c)] {
            let table = normal(rows * c, 1, 0.02, 0.0);
            let emb = normal(ITEMS * emb_len, 2, 1.0, 0.0);
            let mut out = gpu.zeros_f32(ITEMS * rows * c);
            gpu.modulation(
                &gpu.upload_f32(&table),
                &gpu.upload_f32(&emb),
                emb_len,
                &mut out,
            )
            .unwrap();
            let got = gpu.download_f32(&out);
            for b in 0..ITEMS {
                for j in 0..rows * c {
                    // One f32 addition on both sides: bit-identical.
                    let want = table[j] + emb[b * emb_len + j % emb_len];
                    assert_eq!(got[b * rows * c + j], want, "c {c}, item {b}, {j}");
                }
            }
        }
    }
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn modulated_layer_norm_matches_the_reference() {
    let gpu = gpu();
    for (c, _, _) in SHAPES {
        let tokens = 6;
        let rows = ITEMS * tokens;
        // A residual stream with an offset, so the two-pass variance matters.
        let x = normal(rows * c, 3, 2.0, 0.75);
        let mods = normal(ITEMS * 6 * c, 4, 0.5, 0.0);
        let xd = gpu.upload_f32(&x);
        let md = gpu.upload_f32(&mods);
        for mod_rows in [[0, 1], [3, 4]] {
            let mut out = gpu.zeros_bf16(rows * c);
            gpu.modulated_layer_norm(&xd, c, tokens, &md, mod_rows, EPS, &mut out)
                .unwrap();
            let mut want = Vec::with_capacity(rows * c);
            for r in 0..rows {
                let row = &x[r * c..(r + 1) * c];
                let (mean, rstd) = moments(row);
                let m = &mods[(r / tokens) * 6 * c..];
                for (i, &v) in row.iter().enumerate() {
                    let (shift, scale) = (m[mod_rows[0] * c + i], m[mod_rows[1] * c + i]);
                    want.push((v as f64 - mean) * rstd * (1.0 + scale as f64) + shift as f64);
                }
            }
            let what = format!("modulated LN, c {c}, rows {mod_rows:?}");
            assert_bf16_close(&what, &gpu.download_bf16(&out), &want);
        }
        // The output head: [B, 2, C].
        let head = normal(ITEMS * 2 * c, 5, 0.5, 0.0);
        let mut out = gpu.zeros_bf16(rows * c);
        gpu.modulated_layer_norm(
            &xd,
            c,
            tokens,
            &gpu.upload_f32(&head),
            [0, 1],
            EPS,
            &mut out,
        )
        .unwrap();
        let mut want = Vec::with_capacity(rows * c);
        for r in 0..rows {
            let row = &x[r * c..(r + 1) * c];
            let (mean, rstd) = moments(row);
            let m = &head[(r / tokens) * 2 * c..];
            for (i, &v) in row.iter().enumerate() {
                want.push((v as f64 - mean) * rstd * (1.0 + m[c + i] as f64) + m[i] as f64);
            }
        }
        assert_bf16_close(&format!("head LN, c {c}"), &gpu.download_bf16(&out), &want);
    }
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn affine_layer_norm_matches_the_reference() {
    let gpu = gpu();
    for (c, _, _) in SHAPES {
        let rows = 7;
        let x = normal(rows * c, 6, 3.0, -1.5);
        let w = normal(c, 7, 0.2, 1.0);
        let b = normal(c, 8, 0.1, 0.0);
        let mut out = gpu.zeros_bf16(rows * c);
        gpu.layer_norm_affine(
            &gpu.upload_f32(&x),
            &gpu.upload_f32(&w),
            &gpu.upload_f32(&b),
            EPS,
            &mut out,
        )
        .unwrap();
        let mut want = Vec::with_capacity(rows * c);
        for r in 0..rows {
            let row = &x[r * c..(r + 1) * c];
            let (mean, rstd) = moments(row);
            for (i, &v) in row.iter().enumerate() {
                want.push((v as f64 - mean) * rstd * w[i] as f64 + b[i] as f64);
            }
        }
        assert_bf16_close(
            &format!("affine LN, c {c}"),
            &gpu.download_bf16(&out),
            &want,
        );
    }
}

/// The RMSNorm (and RoPE) of columns `col0..col0 + c` of `x` (rows `ld` apart), in f64.
fn rms_rope_reference(
    x: &[f32],
    ld: usize,
    col0: usize,
    rows: usize,
    w: &[f32],
    head_dim: usize,
    rope: Option<(&[f32], &[f32], usize)>,
) -> Vec<f64> {
    let c = w.len();
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(rows * c);
    for r in 0..rows {
        let row = &x[r * ld + col0..r * ld + col0 + c];
        let ss: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum();
        let inv = 1.0 / (ss / c as f64 + EPS as f64).sqrt();
        let y: Vec<f64> = row
            .iter()
            .zip(w)
            .map(|(&v, &w)| v as f64 * inv * w as f64)
            .collect();
        match rope {
            None => out.extend(y),
            Some((cos, sin, tokens)) => {
                let t = r % tokens;
                for (p, pair) in y.chunks_exact(2).enumerate() {
                    let j = p % half;
                    let (cs, sn) = (cos[t * half + j] as f64, sin[t * half + j] as f64);
                    out.push(pair[0] * cs - pair[1] * sn);
                    out.push(pair[0] * sn + pair[1] * cs);
                }
            }
        }
    }
    out
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn rms_norm_rope_matches_the_reference() {
    let gpu = gpu();
    for (c, heads, head_dim) in SHAPES {
        assert_eq!(heads * head_dim, c);
        // Two items of a 2 x 3 x 4 patch grid; q, k and v stacked as the QKV GEMM writes them.
        let grid = [2, 3, 4];
        let tokens: usize = grid.iter().product();
        let rows = ITEMS * tokens;
        let ld = 3 * c;
        let qkv = normal(rows * ld, 9, 1.5, 0.1);
        let wq = normal(c, 10, 0.1, 1.0);
        let wk = normal(c, 11, 0.1, 1.0);
        let (cos, sin) = rope_tables(head_dim, grid);
        let qkv_d = gpu.upload_f32(&qkv);
        let (cos_d, sin_d) = (gpu.upload_f32(&cos), gpu.upload_f32(&sin));
        for (col0, w) in [(0, &wq), (c, &wk)] {
            let mut out = gpu.zeros_bf16(rows * c);
            gpu.rms_norm_rope(
                &qkv_d,
                (col0, ld),
                rows,
                &gpu.upload_f32(w),
                head_dim,
                EPS,
                Some((&cos_d, &sin_d)),
                &mut out,
            )
            .unwrap();
            let want = rms_rope_reference(
                &qkv,
                ld,
                col0,
                rows,
                w,
                head_dim,
                Some((&cos, &sin, tokens)),
            );
            let what = format!("RMS + RoPE, c {c}, columns from {col0}");
            assert_bf16_close(&what, &gpu.download_bf16(&out), &want);
        }
        // Cross-attention: q of a dense [rows, C] projection, no rotation.
        let q = normal(rows * c, 12, 0.7, 0.0);
        let mut out = gpu.zeros_bf16(rows * c);
        gpu.rms_norm_rope(
            &gpu.upload_f32(&q),
            (0, c),
            rows,
            &gpu.upload_f32(&wq),
            head_dim,
            EPS,
            None,
            &mut out,
        )
        .unwrap();
        let want = rms_rope_reference(&q, c, 0, rows, &wq, head_dim, None);
        assert_bf16_close(&format!("RMS, c {c}"), &gpu.download_bf16(&out), &want);
    }
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn rms_norm_rope_rejects_bad_shapes() {
    let gpu = gpu();
    let (c, head_dim, rows) = (28, 14, 6);
    let x = gpu.zeros_f32(rows * 3 * c);
    let w = gpu.zeros_f32(c);
    let mut out = gpu.zeros_bf16(rows * c);
    // Rows past the end of x, an odd head, tables not a whole grid.
    assert!(gpu
        .rms_norm_rope(
            &x,
            (2 * c + 1, 3 * c),
            rows,
            &w,
            head_dim,
            EPS,
            None,
            &mut out
        )
        .is_err());
    assert!(gpu
        .rms_norm_rope(&x, (0, 3 * c), rows, &w, 7, EPS, None, &mut out)
        .is_err());
    let table = gpu.zeros_f32(5 * head_dim / 2);
    assert!(gpu
        .rms_norm_rope(
            &x,
            (0, 3 * c),
            rows,
            &w,
            head_dim,
            EPS,
            Some((&table, &table)),
            &mut out
        )
        .is_err());
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn patchify_and_unpatchify_move_every_value() {
    let gpu = gpu();
    // (channels, frames, height, width, patch): the tiny model's, the 1.3B's.
    for (ch, f, h, w, patch) in [(5, 3, 4, 6, [1, 2, 3]), (16, 2, 4, 6, [1, 2, 2])] {
        let [pt, ph, pw] = patch;
        let grid = [f / pt, h / ph, w / pw];
        let tokens: usize = grid.iter().product();
        let pv = ch * pt * ph * pw;
        let latent = normal(ch * f * h * w, 13, 1.0, 0.0);
        let mut patches = gpu.zeros_bf16(tokens * pv);
        gpu.patchify(&gpu.upload_f32(&latent), [ch, f, h, w], patch, &mut patches)
            .unwrap();
        let got = gpu.download_bf16(&patches);
        for t in 0..tokens {
            let (gf, gh, gw) = (
                t / (grid[1] * grid[2]),
                (t / grid[2]) % grid[1],
                t % grid[2],
            );
            for i in 0..pv {
                let (ci, a, b, e) = (
                    i / (pt * ph * pw),
                    (i / (ph * pw)) % pt,
                    (i / pw) % ph,
                    i % pw,
                );
                let v = latent[((ci * f + gf * pt + a) * h + gh * ph + b) * w + gw * pw + e];
                // One rounding to bf16 on both sides (nearest-even): bit-identical.
                assert_eq!(
                    got[t * pv + i],
                    half::bf16::from_f32(v).to_f32(),
                    "patchify {ch}x{f}x{h}x{w}: token {t}, column {i}"
                );
            }
        }

        // The head's rows for two items, with padding columns (ldy > pv).
        let ldy = pv + 3;
        let y = normal(ITEMS * tokens * ldy, 14, 1.0, 0.0);
        let mut out = gpu.zeros_f32(ITEMS * ch * f * h * w);
        gpu.unpatchify(&gpu.upload_f32(&y), ldy, [ch, f, h, w], patch, &mut out)
            .unwrap();
        let got = gpu.download_f32(&out);
        for item in 0..ITEMS {
            let y = &y[item * tokens * ldy..];
            for (idx, &g) in got[item * ch * f * h * w..(item + 1) * ch * f * h * w]
                .iter()
                .enumerate()
            {
                let (ci, fi, hi, wi) = (
                    idx / (f * h * w),
                    (idx / (h * w)) % f,
                    (idx / w) % h,
                    idx % w,
                );
                let t = ((fi / pt) * grid[1] + hi / ph) * grid[2] + wi / pw;
                let col = (((fi % pt) * ph + hi % ph) * pw + wi % pw) * ch + ci;
                assert_eq!(g, y[t * ldy + col], "unpatchify item {item}, element {idx}");
            }
        }
    }
}
