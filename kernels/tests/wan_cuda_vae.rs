//! Wan2.1's VAE decoder kernels (kernels/src/cuda/wan/wan_vae.cu) against naive references
//! on the host, on the same bf16-rounded inputs: the causal conv as an implicit GEMM with its
//! device feature cache, the RMS norm + SiLU, the upsampler's reshuffle, the mid block's
//! attention and the final clamp. Shapes are the tiny checkpoint's odd widths
//! (model/wan/tiny/vae/config.json: z_dim 5, widths 12, 9, 6, 4, 3) and the real VAE's
//! (z_dim 16, widths 96, 192, 384), at small odd frame sizes (9 x 13).
//!
//! These need a GPU, so they are `#[ignore]`d: bench/gpu.sh runs them with
//! `--include-ignored`, where they fail, not skip, if `WanCuda::try_new(0)` fails.

mod common;

use common::wan_cuda::{bf16, gpu, normal};
use kernels::KernelError;

/// max |got - want| / max |want|.
fn rel(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "compared tensors differ in size");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (&g, w)| m.max((g as f64 - w).abs()));
    assert!(scale > 0.0 && diff.is_finite(), "degenerate comparison");
    diff / scale
}

/// A bf16 output against an f64 reference: each value within one rounding to bf16 (half an
/// ulp, 2^-9 of the value; 2^-8 allows the f32 arithmetic before it to push a value across a
/// rounding boundary) plus `abs` of the largest reference value.
fn assert_bf16_close(what: &str, got: &[f32], want: &[f64], abs: f64) {
    assert_eq!(got.len(), want.len(), "{what}: size");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let bound = w.abs() / 256.0 + abs * scale;
        assert!(
            (g as f64 - w).abs() <= bound,
            "{what}: element {i}: {g} vs {w} (bound {bound:e})"
        );
    }
}

/// The conv's tolerance, relative to the largest output. The inputs are the same bf16 values
/// on both sides and bf16 x bf16 products are exact in f32, so the only difference is the
/// GPU's f32 accumulation: each of the ceil(K / 16) mma steps rounds the running sum once,
/// by at most 2^-23 of it (2^-24 rounding to nearest; 2^-23 allows the tensor cores to
/// truncate), and running sums stay below the largest output for these zero-mean inputs; the
/// bias and residual adds are two more f32 roundings. Summed linearly this is a bound, not the
/// random-walk estimate (sqrt of it): 7.7e-5 for K = 27 x 384, 1e-5 (the floor) for the tiny
/// VAE's K <= 27 x 12.
fn conv_tol(k_len: usize) -> f64 {
    (k_len.div_ceil(16) as f64 * 2f64.powi(-23)).max(1e-5)
}

/// One conv of the decoder, run over a sequence of chunks through its device cache.
struct ConvCase {
    name: &'static str,
    cin: usize,
    cout: usize,
    kt: usize,
    k: usize,
    height: usize,
    width: usize,
    /// Frames per call, in order (the first latent frame gives chunks of 1; after a temporal
    /// upsampler 2, then 4).
    chunks: &'static [usize],
}

/// The conv of `case` on the GPU, chunk by chunk with its cache on the device (a residual on
/// every chunk but the first, to test both epilogues), against the formula over the whole
/// stream on the host: zeros (the causal padding before the first chunk, the CPU decoder's
/// `Slot::Empty`), then every chunk's frames. Also checks the bf16 copy of the output and the
/// cache left after the last chunk.
fn check_conv(case: &ConvCase, seed: u64) {
    let gpu = gpu();
    let &ConvCase {
        name,
        cin,
        cout,
        kt,
        k,
        height,
        width,
        chunks,
    } = case;
    let keep = kt - 1;
    let hw = height * width;
    let taps = kt * k * k;
    let k_len = taps * cin;
    // Weights scaled by 1 / sqrt(K) so outputs stay O(1) whatever the width.
    let weight = bf16(normal(cout * k_len, seed, 1.0 / (k_len as f32).sqrt()));
    let bias = normal(cout, seed + 1, 0.1);
    let conv = gpu
        .upload_vae_conv(cin, cout, kt, k, &weight, &bias)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    // [tap, ci, n] for the reference's inner loop over output channels.
    let mut wt = vec![0.0f64; k_len * cout];
    for n in 0..cout {
        for ci in 0..cin {
            for tap in 0..taps {
                wt[(tap * cin + ci) * cout + n] = weight[(n * cin + ci) * taps + tap] as f64;
            }
        }
    }

    let mut cache = gpu.vae_conv_cache(&conv, height, width);
    assert_eq!(cache.is_some(), kt > 1, "{name}: cache");
    // The stream of input frames, bf16-rounded: the zero padding, then the chunks.
    let mut stream: Vec<Vec<f32>> = vec![vec![0.0; hw * cin]; keep];
    for (i, &frames) in chunks.iter().enumerate() {
        let seed = seed + 10 * (i as u64 + 1);
        let x = bf16(normal(frames * hw * cin, seed, 1.0));
        let residual = (i > 0).then(|| normal(frames * hw * cout, seed + 1, 1.0));
        let first = stream.len() - keep;
        stream.extend(x.chunks(hw * cin).map(<[f32]>::to_vec));

        let x_dev = gpu.upload_bf16(&x);
        let res_dev = residual.as_ref().map(|r| gpu.upload_f32(r));
        let mut out = gpu.zeros_f32(frames * hw * cout);
        let mut out_bf16 = gpu.zeros_bf16(frames * hw * cout);
        gpu.vae_conv(
            &conv,
            &x_dev,
            (frames, height, width),
            cache.as_mut(),
            res_dev.as_ref(),
            &mut out,
            Some(&mut out_bf16),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = gpu.download_f32(&out);
        let got_bf16 = gpu.download_bf16(&out_bf16);

        let mut want = vec![0.0f64; frames * hw * cout];
        let pad = k / 2;
        for t in 0..frames {
            for y in 0..height {
                for x in 0..width {
                    let p = (t * height + y) * width + x;
                    let acc = &mut want[p * cout..][..cout];
                    for (a, &b) in acc.iter_mut().zip(&bias) {
                        *a = b as f64;
                    }
                    for dt in 0..kt {
                        let frame = &stream[first + t + dt];
                        for dy in 0..k {
                            for dx in 0..k {
                                let (yy, xx) = (y + dy, x + dx);
                                if yy < pad || xx < pad || yy - pad >= height || xx - pad >= width {
                                    continue;
                                }
                                let src = &frame[((yy - pad) * width + xx - pad) * cin..][..cin];
                                let tap = (dt * k + dy) * k + dx;
                                for (ci, &v) in src.iter().enumerate() {
                                    let w = &wt[(tap * cin + ci) * cout..][..cout];
                                    for (a, &w) in acc.iter_mut().zip(w) {
                                        *a += v as f64 * w;
                                    }
                                }
                            }
                        }
                    }
                    if let Some(r) = &residual {
                        for (a, &r) in acc.iter_mut().zip(&r[p * cout..][..cout]) {
                            *a += r as f64;
                        }
                    }
                }
            }
        }
        let err = rel(&got, &want);
        let tol = conv_tol(k_len);
        assert!(
            err <= tol,
            "{name} chunk {i} ({frames} frames): relative error {err:e} > {tol:e}"
        );
        // The bf16 copy is the f32 output rounded, exactly.
        assert_eq!(got_bf16, bf16(&got), "{name} chunk {i}: bf16 output");
    }
    if let Some(cache) = &cache {
        let got = gpu.download_bf16(cache);
        let want: Vec<f32> = stream[stream.len() - keep..].concat();
        assert_eq!(
            got, want,
            "{name}: the cache is the stream's last {keep} frames"
        );
    }
}

/// The tiny VAE's convs (channels from model/wan/tiny/vae/config.json, base 3 x [1, 2, 3, 4]:
/// z_dim 5, widths 12, 9, 6, and the upsamplers' halvings 6, 4, 3), 9 x 13 frames.
#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn conv_tiny_channels() {
    let cases = [
        ("post_quant_conv 1x1x1", 5, 5, 1, 1),
        ("conv_in 3x3x3", 5, 12, 3, 3),
        ("resnet conv 3x3x3", 9, 9, 3, 3),
        ("resnet conv 12 -> 9", 12, 9, 3, 3),
        ("shortcut 1x1x1", 6, 9, 1, 1),
        ("time_conv 3x1x1", 12, 24, 3, 1),
        ("upsample conv 1x3x3", 9, 4, 1, 3),
        ("conv_out 3x3x3", 3, 3, 3, 3),
    ];
    for (i, (name, cin, cout, kt, k)) in cases.into_iter().enumerate() {
        check_conv(
            &ConvCase {
                name,
                cin,
                cout,
                kt,
                k,
                height: 9,
                width: 13,
                chunks: &[1, 2, 1, 4],
            },
            100 * i as u64,
        );
    }
}

/// The real VAE's widths (96, 192, 384; z_dim 16): 9 x 13 frames at 96 and 192 (the vector
/// path: Cin a multiple of 8; Cout over several 64-wide tiles, 3 in one partial tile), the
/// 384-wide convs on 5 x 7 frames to keep the host reference quick.
#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn conv_real_channels() {
    let cases = [
        ("post_quant_conv 1x1x1", 16, 16, 1, 1, 9, 13),
        ("conv_in 16 -> 384", 16, 384, 3, 3, 5, 7),
        ("resnet conv 96", 96, 96, 3, 3, 9, 13),
        ("resnet conv 192", 192, 192, 3, 3, 9, 13),
        ("resnet conv 384", 384, 384, 3, 3, 5, 7),
        ("shortcut 192 -> 384", 192, 384, 1, 1, 9, 13),
        ("time_conv 192 -> 384", 192, 384, 3, 1, 9, 13),
        ("upsample conv 192 -> 96", 192, 96, 1, 3, 9, 13),
        ("conv_out 96 -> 3", 96, 3, 3, 3, 9, 13),
    ];
    for (i, (name, cin, cout, kt, k, height, width)) in cases.into_iter().enumerate() {
        check_conv(
            &ConvCase {
                name,
                cin,
                cout,
                kt,
                k,
                height,
                width,
                chunks: &[1, 2, 1],
            },
            1000 + 100 * i as u64,
        );
    }
}

/// The conv's validation: wrong lengths, a missing or superfluous cache, a bad kernel size.
#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn conv_rejects_bad_arguments() {
    let gpu = gpu();
    let bad = |r: Result<(), KernelError>, what: &str| {
        assert!(
            matches!(r, Err(KernelError::InvalidArgument(_))),
            "{what}: {r:?}"
        );
    };
    assert!(matches!(
        gpu.upload_vae_conv(4, 4, 3, 2, &[0.0; 4 * 4 * 3 * 4], &[0.0; 4]),
        Err(KernelError::InvalidArgument(_))
    ));
    assert!(matches!(
        gpu.upload_vae_conv(4, 4, 3, 3, &[0.0; 10], &[0.0; 4]),
        Err(KernelError::InvalidArgument(_))
    ));
    let causal = gpu
        .upload_vae_conv(4, 4, 3, 3, &[0.0; 4 * 4 * 27], &[0.0; 4])
        .unwrap();
    let per_frame = gpu
        .upload_vae_conv(4, 4, 1, 1, &[0.0; 16], &[0.0; 4])
        .unwrap();
    let x = gpu.zeros_bf16(2 * 3 * 5 * 4);
    let mut out = gpu.zeros_f32(2 * 3 * 5 * 4);
    let mut cache = gpu.vae_conv_cache(&causal, 3, 5);
    let shape = (2, 3, 5);
    bad(
        gpu.vae_conv(&causal, &x, shape, None, None, &mut out, None),
        "no cache",
    );
    bad(
        gpu.vae_conv(&per_frame, &x, shape, cache.as_mut(), None, &mut out, None),
        "a cache for kt = 1",
    );
    bad(
        gpu.vae_conv(&causal, &x, (2, 3, 4), cache.as_mut(), None, &mut out, None),
        "wrong shape",
    );
    let mut short_cache = gpu.zeros_bf16(3 * 5 * 4);
    bad(
        gpu.vae_conv(
            &causal,
            &x,
            shape,
            Some(&mut short_cache),
            None,
            &mut out,
            None,
        ),
        "a one-frame cache",
    );
    let residual = gpu.zeros_f32(7);
    bad(
        gpu.vae_conv(
            &causal,
            &x,
            shape,
            cache.as_mut(),
            Some(&residual),
            &mut out,
            None,
        ),
        "residual length",
    );
    gpu.vae_conv(&causal, &x, shape, cache.as_mut(), None, &mut out, None)
        .expect("valid arguments");
}

/// The norm (+ SiLU) over tiny and real widths, 2 frames of 9 x 13. Input f32, as the
/// kernel reads it; reference in f64; output bf16, so each value is within one bf16
/// rounding (see `assert_bf16_close`) plus 1e-6 of the largest for the f32 sum of squares.
#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn rms_norm_silu() {
    let gpu = gpu();
    let pixels = 2 * 9 * 13;
    for (i, c) in [3usize, 4, 9, 12, 96, 192, 384].into_iter().enumerate() {
        let x = normal(pixels * c, 7000 + i as u64, 2.0);
        let gamma = normal(c, 7100 + i as u64, 1.0);
        let x_dev = gpu.upload_f32(&x);
        let g_dev = gpu.upload_f32(&gamma);
        for silu in [false, true] {
            let mut out = gpu.zeros_bf16(pixels * c);
            gpu.vae_rms_norm(&x_dev, c, &g_dev, silu, &mut out).unwrap();
            let got = gpu.download_bf16(&out);
            let mut want = vec![0.0f64; pixels * c];
            for (o, x) in want.chunks_mut(c).zip(x.chunks(c)) {
                let norm = x
                    .iter()
                    .map(|&v| v as f64 * v as f64)
                    .sum::<f64>()
                    .sqrt()
                    .max(1e-12);
                for ((o, &v), &g) in o.iter_mut().zip(x).zip(&gamma) {
                    let y = v as f64 / norm * (c as f64).sqrt() * g as f64;
                    *o = if silu { y / (1.0 + (-y).exp()) } else { y };
                }
            }
            assert_bf16_close(&format!("norm c {c} silu {silu}"), &got, &want, 1e-6);
        }
    }
    let mut out = gpu.zeros_bf16(10);
    let x = gpu.zeros_f32(10);
    let gamma = gpu.zeros_f32(3);
    assert!(matches!(
        gpu.vae_rms_norm(&x, 3, &gamma, true, &mut out),
        Err(KernelError::InvalidArgument(_))
    ));
}

/// The upsampler's reshuffle and 2x nearest upsampling: a pure copy, so the output is
/// exactly the bf16 rounding of the input element it reads.
#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn upsample_reshuffles_and_repeats() {
    let gpu = gpu();
    for (frames, height, width, c, split) in [
        (1, 9, 13, 12, 1),
        (1, 9, 13, 9, 2),
        (2, 5, 7, 4, 2),
        (2, 9, 13, 96, 2),
        (1, 5, 7, 384, 1),
    ] {
        let ld = split * c;
        let x = normal(frames * height * width * ld, 9000 + c as u64, 1.0);
        let x_dev = gpu.upload_f32(&x);
        let mut out = gpu.zeros_bf16(4 * frames * split * height * width * c);
        gpu.vae_upsample(&x_dev, (frames, height, width), c, split, &mut out)
            .unwrap();
        let got = gpu.download_bf16(&out);
        let mut want = Vec::with_capacity(got.len());
        for t in 0..frames {
            for s in 0..split {
                for y in 0..2 * height {
                    for xo in 0..2 * width {
                        let p = (t * height + y / 2) * width + xo / 2;
                        want.extend(bf16(&x[p * ld + s * c..][..c]));
                    }
                }
            }
        }
        assert_eq!(
            got, want,
            "upsample {frames}x{height}x{width}x{c} split {split}"
        );
    }
}

/// The mid block's attention at the tiny width (12) and the real one (384), over 9 x 13
/// pixels and 17 x 19 (two chunks of 256 keys: the online softmax's rescaling), 2 frames.
/// qkv f32 (to_qkv's output), reference in f64, output bf16: each value within one bf16
/// rounding plus 1e-5 of the largest (f32 dot products over C <= 384 and sums over <= 323
/// keys).
#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn attention_per_frame() {
    let gpu = gpu();
    for (c, pixels) in [(12usize, 117usize), (12, 323), (96, 117), (384, 323)] {
        let frames = 2;
        let qkv = normal(frames * pixels * 3 * c, 11_000 + c as u64, 1.0);
        let qkv_dev = gpu.upload_f32(&qkv);
        let mut out = gpu.zeros_bf16(frames * pixels * c);
        gpu.vae_attention(&qkv_dev, frames, pixels, c, &mut out)
            .unwrap();
        let got = gpu.download_bf16(&out);
        let mut want = vec![0.0f64; frames * pixels * c];
        let scale = 1.0 / (c as f64).sqrt();
        for f in 0..frames {
            let frame = &qkv[f * pixels * 3 * c..][..pixels * 3 * c];
            for i in 0..pixels {
                let q = &frame[i * 3 * c..][..c];
                let scores: Vec<f64> = (0..pixels)
                    .map(|j| {
                        let key = &frame[j * 3 * c + c..][..c];
                        q.iter()
                            .zip(key)
                            .map(|(&a, &b)| a as f64 * b as f64)
                            .sum::<f64>()
                            * scale
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                let o = &mut want[(f * pixels + i) * c..][..c];
                for (j, &p) in e.iter().enumerate() {
                    let v = &frame[j * 3 * c + 2 * c..][..c];
                    for (o, &v) in o.iter_mut().zip(v) {
                        *o += p / sum * v as f64;
                    }
                }
            }
        }
        assert_bf16_close(&format!("attention c {c} n {pixels}"), &got, &want, 1e-5);
    }
}

/// The final clamp, exact, NaN kept.
#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn clamp_to_unit_range() {
    let gpu = gpu();
    let x: Vec<f32> = normal(1000, 12_000, 3.0)
        .into_iter()
        .chain([f32::NAN, f32::INFINITY, -1.0, 1.0])
        .collect();
    let mut dev = gpu.upload_f32(&x);
    gpu.vae_clamp(&mut dev);
    let got = gpu.download_f32(&dev);
    for (g, v) in got.iter().zip(&x) {
        if v.is_nan() {
            assert!(g.is_nan());
        } else {
            assert_eq!(*g, v.clamp(-1.0, 1.0));
        }
    }
}

/// `rel` is the metric the conv tests use; sanity of the tolerance formula (runs anywhere).
#[test]
fn conv_tolerance_grows_with_depth() {
    assert_eq!(conv_tol(27 * 12), 1e-5);
    let deep = conv_tol(27 * 384);
    assert!(deep > 7e-5 && deep < 8e-5, "{deep}");
    assert_eq!(rel(&[1.0, 2.0], &[1.0, 2.5]), 0.2);
}
