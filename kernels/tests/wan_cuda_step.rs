//! Wan2.1's per-step kernels on the GPU (kernels/src/cuda/wan/wan_step.cu) against the CPU's
//! arithmetic: the time embedding's sinusoid and its device step counter, the time MLP's
//! SiLU, classifier-free guidance, the scheduler update's linear combination, and the
//! f32 <-> bf16 casts. Sizes: the tiny checkpoint's (freq_dim 18, latent 5 x 3 x 4 x 6) and
//! the 1.3B's (freq_dim 256, latent 16 x 2 x 8 x 12).
//!
//! Guidance and the linear combination round every product and sum exactly as the host's f32
//! code (no FMA), so those compare bit for bit. How the UniPC and Euler updates map onto the
//! combination is tested without a GPU, against the CPU schedulers (step.rs's unit tests).
//!
//! These need a GPU, so they are `#[ignore]`d: bench/gpu.sh runs them with
//! `--include-ignored`, where they fail, not skip, if `WanCuda::try_new(0)` fails.

mod common;

use common::wan_cuda::{gpu, normal};
use kernels::wan::{FlowMatchEulerConfig, FlowMatchEulerScheduler};

/// Latent sizes: the tiny model's 5 x 3 x 4 x 6 and the 1.3B's 16 x 2 x 8 x 12.
const LATENTS: [usize; 2] = [5 * 3 * 4 * 6, 16 * 2 * 8 * 12];

/// `embed_time`'s sinusoid of `t`, in f32 exactly as transformer.rs computes it, with each
/// value's argument `t w_j`.
fn sinusoid(t: f32, dim: usize) -> (Vec<f32>, Vec<f32>) {
    let half = dim / 2;
    let mut s = vec![0.0f32; dim];
    let mut args = vec![0.0f32; dim];
    let log_period = -(10000f64.ln() as f32);
    for j in 0..half {
        let arg = t * ((log_period * j as f32) / half as f32).exp();
        s[j] = arg.cos();
        s[half + j] = arg.sin();
        args[j] = arg;
        args[half + j] = arg;
    }
    (s, args)
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn time_embedding_follows_the_step_counter() {
    let gpu = gpu();
    // UniPC's integer timesteps and Euler's fractional ones, and 0.
    let timesteps = [999.0f32, 937.0, 500.5, 13.333_33, 0.0];
    let table = gpu.upload_f32(&timesteps);
    let stream = gpu.stream();
    // The tiny model's 18, the 1.3B's 256, and an odd width (a 0 last).
    for dim in [18, 256, 19] {
        let mut step = stream.clone_htod(&[0u32][..]).unwrap();
        let mut out = gpu.zeros_f32(dim);
        for (k, &t) in timesteps.iter().enumerate() {
            gpu.time_embedding(&table, &step, &mut out).unwrap();
            gpu.advance_step(&mut step).unwrap();
            let got = gpu.download_f32(&out);
            let (want, args) = sinusoid(t, dim);
            for j in 0..dim {
                // The argument of exp and t w_j are rounded as on the host; exp, cos and sin
                // are evaluated in double and rounded once, where the host's libm is within
                // its last bit. So w_j may be one ulp (2^-23 relative) apart, which moves
                // t w_j by up to 1.5 ulps of itself after its own rounding, and each side's
                // cos or sin rounds once more (2^-24): 2^-22 (1 + |arg|) bounds it all.
                let bound = 2f64.powi(-22) * (1.0 + args[j].abs() as f64);
                assert!(
                    (got[j] as f64 - want[j] as f64).abs() <= bound,
                    "dim {dim}, step {k}, t {t}: s[{j}] {} vs {} (bound {bound:e})",
                    got[j],
                    want[j]
                );
            }
            if dim % 2 == 1 {
                assert_eq!(got[dim - 1], 0.0);
            }
        }
        let counter = stream.clone_dtoh(&step).unwrap();
        gpu.synchronize();
        assert_eq!(counter, [timesteps.len() as u32]);
        // Past the table: NaNs, not a read out of bounds.
        gpu.time_embedding(&table, &step, &mut out).unwrap();
        assert!(gpu.download_f32(&out)[..2 * (dim / 2)]
            .iter()
            .all(|v| v.is_nan()));
    }
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn silu_bf16_matches_the_reference() {
    let gpu = gpu();
    for d in [28, 1536] {
        let x = normal(d, 1, 4.0);
        let mut out = gpu.zeros_bf16(d);
        gpu.silu_bf16(&gpu.upload_f32(&x), &mut out).unwrap();
        let got = gpu.download_bf16(&out);
        for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
            let want = v as f64 / (1.0 + (-v as f64).exp());
            // One rounding to bf16 (2^-9 of the value, 2^-8 with the f32 arithmetic before
            // it) plus the f32 expf and division (a few ulps: 1e-6 of 1 absolute).
            let bound = want.abs() / 256.0 + 1e-6;
            assert!(
                (g as f64 - want).abs() <= bound,
                "d {d}, {i}: silu({v}) = {g} vs {want}"
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn cfg_combine_is_bit_identical_to_the_pipeline() {
    let gpu = gpu();
    for n in LATENTS {
        let pred = normal(2 * n, 2, 1.0);
        for g in [5.0f32, 1.5, 0.0] {
            let mut out = gpu.zeros_f32(n);
            gpu.cfg_combine(&gpu.upload_f32(&pred), g, &mut out)
                .unwrap();
            let want: Vec<f32> = (0..n)
                .map(|i| {
                    let (c, u) = (pred[i], pred[n + i]);
                    u + g * (c - u)
                })
                .collect();
            assert_eq!(gpu.download_f32(&out), want, "n {n}, g {g}");
        }
    }
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn euler_step_is_bit_identical_to_the_cpu_scheduler() {
    let gpu = gpu();
    let config: FlowMatchEulerConfig = serde_json::from_str(r#"{"shift": 3.0}"#).unwrap();
    for n in LATENTS {
        let steps = 3;
        let mut cpu = FlowMatchEulerScheduler::new(&config, steps);
        let sigmas = cpu.sigmas().to_vec();
        let mut sample = normal(n, 3, 1.0);
        let mut dev = gpu.upload_f32(&sample);
        for i in 0..steps {
            let v = normal(n, 10 + i as u64, 1.0);
            sample = cpu.step(&v, &sample);
            // step.rs's plan: Sample = 1 Sample + (sigma_{i+1} - sigma_i) Velocity.
            let dt = sigmas[i + 1] - sigmas[i];
            gpu.combine(&mut dev, 1.0, &[(&gpu.upload_f32(&v), dt)])
                .unwrap();
            assert_eq!(gpu.download_f32(&dev), sample, "n {n}, step {i}");
        }
    }
}

/// `beta out + sum c_i x_i` as the kernel rounds it, in f32 on the host: left to right, in
/// launches of at most four terms, the later ones accumulating.
fn combine_host(out: &[f32], beta: f32, terms: &[(&[f32], f32)]) -> Vec<f32> {
    let mut acc: Vec<f32> = out.to_vec();
    for (k, chunk) in terms.chunks(4).enumerate() {
        let b = if k == 0 { beta } else { 1.0 };
        for (e, a) in acc.iter_mut().enumerate() {
            let mut s = if b != 0.0 { b * *a } else { 0.0 };
            for &(x, c) in chunk {
                s += c * x[e];
            }
            *a = s;
        }
    }
    acc
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn combine_is_bit_identical_to_its_host_arithmetic() {
    let gpu = gpu();
    for n in LATENTS {
        let xs: Vec<Vec<f32>> = (0..6).map(|i| normal(n, 20 + i, 1.0)).collect();
        let dev: Vec<_> = xs.iter().map(|x| gpu.upload_f32(x)).collect();
        // UniPC-like coefficients: an x0 (2 terms), a predictor (3), a corrector in place
        // (beta and 4), and 6 terms (two launches).
        let coeffs = [0.93f32, -0.071, 0.5, -1.25, 0.031, 2.0];
        for (beta, count) in [(0.0f32, 2), (0.0, 3), (0.87, 4), (0.0, 6), (1.0, 1)] {
            // The output starts as NaNs where beta is 0: the kernel must not read it.
            let start = if beta == 0.0 {
                vec![f32::NAN; n]
            } else {
                normal(n, 30, 1.0)
            };
            let mut out = gpu.upload_f32(&start);
            let terms: Vec<_> = (0..count).map(|i| (&dev[i], coeffs[i])).collect();
            gpu.combine(&mut out, beta, &terms).unwrap();
            let host: Vec<(&[f32], f32)> = (0..count).map(|i| (&xs[i][..], coeffs[i])).collect();
            let start = if beta == 0.0 { vec![0.0; n] } else { start };
            assert_eq!(
                gpu.download_f32(&out),
                combine_host(&start, beta, &host),
                "n {n}, beta {beta}, {count} terms"
            );
        }
        // Mismatched lengths and no terms are refused.
        let mut out = gpu.zeros_f32(n + 1);
        assert!(gpu.combine(&mut out, 0.0, &[(&dev[0], 1.0)]).is_err());
        assert!(gpu.combine(&mut out, 1.0, &[]).is_err());
    }
}

#[test]
#[ignore = "needs a GPU: bench/gpu.sh runs it with --include-ignored"]
fn casts_round_to_nearest_even_and_keep_nan() {
    let gpu = gpu();
    let one = 1.0f32.to_bits();
    let mut values = vec![
        0.0,
        -0.0,
        1.0,
        f32::from_bits(one + 0x8000), // halfway between 1 and the next bf16: to 1 (even)
        f32::from_bits(one + 0x18000), // halfway above an odd bf16: up to the even one
        f32::from_bits(one + 0x8001), // just past halfway: up
        f32::MAX,                     // rounds to infinity
        f32::MIN_POSITIVE,
        1e-40, // subnormal
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001), // signalling NaN: must stay NaN, not become infinity
    ];
    values.extend(normal(1536, 40, 100.0));
    let n = values.len();
    let mut bits = gpu.zeros_bf16(n);
    gpu.f32_to_bf16(&gpu.upload_f32(&values), &mut bits)
        .unwrap();
    let got = gpu.stream().clone_dtoh(&bits).unwrap();
    gpu.synchronize();
    for (i, (&g, &v)) in got.iter().zip(&values).enumerate() {
        let want = half::bf16::from_f32(v);
        if v.is_nan() {
            let g = half::bf16::from_bits(g);
            assert!(
                g.is_nan() && g.is_sign_negative() == v.is_sign_negative(),
                "{i}: {v}"
            );
        } else {
            assert_eq!(g, want.to_bits(), "{i}: {v} ({:#x})", v.to_bits());
        }
    }
    // bf16 -> f32 is exact.
    let mut back = gpu.zeros_f32(n);
    gpu.bf16_to_f32(&bits, &mut back).unwrap();
    let back = gpu.download_f32(&back);
    for (i, (&b, &g)) in back.iter().zip(&got).enumerate() {
        assert_eq!(b.to_bits(), (g as u32) << 16, "{i}");
    }

    // The v columns of a stacked QKV output [rows, 3C] into a dense [rows, C].
    for c in [28, 1536] {
        let rows = 5;
        let qkv = normal(rows * 3 * c, 41, 1.0);
        let mut v = gpu.zeros_bf16(rows * c);
        gpu.f32_to_bf16_rows(
            &gpu.upload_f32(&qkv),
            (2 * c, 3 * c),
            rows,
            c,
            &mut v,
            (0, c),
        )
        .unwrap();
        let want: Vec<f32> = (0..rows * c)
            .map(|i| half::bf16::from_f32(qkv[(i / c) * 3 * c + 2 * c + i % c]).to_f32())
            .collect();
        assert_eq!(gpu.download_bf16(&v), want, "v columns, c {c}");
        let mut short = gpu.zeros_bf16(rows * c - 1);
        assert!(gpu
            .f32_to_bf16_rows(
                &gpu.upload_f32(&qkv),
                (2 * c, 3 * c),
                rows,
                c,
                &mut short,
                (0, c)
            )
            .is_err());
    }
}
