//! The CUDA backend against the CPU backend: every `Backend` op, then whole sampling runs of
//! the exported checkpoint, each with an explicit tolerance (the relative error of
//! tests/common: max |cuda - cpu| / max |cpu|).
//! These need a GPU, so they are `#[ignore]`d: run them with `--include-ignored` on a machine
//! with one (bench/gpu.sh does), where they fail, not skip, if the backend cannot start.
//! `try_new_agrees_with_cuda_available` runs everywhere.
//!
//! The opt-in paths of `CudaOptions`, the device sampler (`Backend::guided_step`) and resident
//! sampling (`Model::with_resident_steps`) are checked here too, each with its own tolerance
//! (TF32 products are not f32 products).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{randn, rel_err};
use kernels::cuda::{ConvPath, CudaOptions, SceneStep};
use kernels::sampler::timesteps;
use kernels::{
    cuda_available, philox, Backend, CpuBackend, CudaBackend, GpuMonitor, KernelError, Method,
    Model, Norm, SceneState, Tensor,
};

/// Ops summing products in f32 (cuBLAS and the CPU GEMM sum in different orders).
const SUM_TOL: f64 = 1e-5;
/// Elementwise ops (one or two roundings; the GPU may fuse a multiply-add).
const ELEMENTWISE_TOL: f64 = 1e-6;
/// Whole denoiser passes and sampling runs: the tolerance of the CPU backend against PyTorch
/// (tests/golden.rs).
const MODEL_TOL: f64 = 1e-4;
/// The implicit TF32 convolutions against the f32 CPU backend. Both operands are rounded to
/// TF32 (10-bit mantissa, round to nearest: relative error uniform in +-2^-11), so each
/// product is off by a relative 2^-11 * sqrt(2/3) ~ 4e-4 (rms), independently per term; over K
/// terms of random sign the sum's error is ~4e-4 * sqrt(sum of squared products), the same
/// sqrt(K) scale as the output itself: ~4e-4 of the output's rms, at most ~5 sigma = 2e-3 of
/// it over ~1e5 outputs, and max |output| is 3.5-5x its rms. So the max error is ~5e-4 of
/// max |ref|; 2e-3 leaves a 4x margin, and any indexing error is O(1).
const TF32_TOL: f64 = 2e-3;
/// Whole denoiser passes and sampling runs with both convolutions in TF32: the FP32 paths'
/// model tolerance is 10x their per-op one (MODEL_TOL / SUM_TOL), so 10x TF32_TOL. An
/// estimate, not a measurement: the first GPU run prints the errors it saw.
const TF32_MODEL_TOL: f64 = 2e-2;
/// The device sampler against `Solver::advance`: the kernel rounds every operation as the host
/// does (no fused multiply-adds), so it should agree bit for bit; 1e-6 would still catch any
/// misplaced coefficient (those change results at the 1e-3 level or more).
const SAMPLER_TOL: f64 = 1e-6;

const RED: &str = "a small red circle moving left on a black background";
const BLUE: &str = "a large blue square growing on a beige background";

/// The shared GPU backend; panics where there is none (these tests only run when asked for).
fn gpu() -> &'static CudaBackend {
    static GPU: OnceLock<CudaBackend> = OnceLock::new();
    GPU.get_or_init(|| {
        CudaBackend::try_new(0).unwrap_or_else(|e| panic!("this test needs a CUDA GPU: {e}"))
    })
}

/// Both convolutions as implicit TF32 GEMMs.
const TF32: CudaOptions = CudaOptions {
    conv: ConvPath::ImplicitTf32,
    temporal_conv: ConvPath::ImplicitTf32,
};

/// A shared GPU backend with both convolutions in TF32.
fn gpu_tf32() -> &'static CudaBackend {
    static GPU: OnceLock<CudaBackend> = OnceLock::new();
    GPU.get_or_init(|| {
        CudaBackend::with_options(0, TF32)
            .unwrap_or_else(|e| panic!("this test needs a CUDA GPU with TF32: {e}"))
    })
}

/// Evaluates `$body` (which builds a host `Tensor` through the backend `$be`) on the CPU
/// backend and on the GPU, and asserts they agree within `$tol`.
macro_rules! parity {
    ($name:expr, $tol:expr, |$be:ident| $body:expr) => {
        parity!(gpu(), $name, $tol, |$be| $body)
    };
    ($gpu:expr, $name:expr, $tol:expr, |$be:ident| $body:expr) => {{
        let gpu: &CudaBackend = $gpu;
        let want: Tensor = {
            let $be = &CpuBackend::new(2);
            $body
        };
        let got: Tensor = {
            let $be = gpu;
            $body
        };
        assert_eq!(got.shape, want.shape, "{}: shape", $name);
        let err = rel_err(&got.data, &want.data);
        eprintln!("{}: relative error {err:e}", $name);
        assert!(
            err <= $tol,
            "{}: relative error {err:e} > {:e}",
            $name,
            $tol
        );
    }};
}

#[test]
fn try_new_agrees_with_cuda_available() {
    match CudaBackend::try_new(0) {
        Ok(be) => {
            assert!(cuda_available());
            assert!(
                be.name().starts_with("cuda:0 (") && be.arch().starts_with("compute_"),
                "{}",
                be.name()
            );
            assert!(
                matches!(CudaBackend::try_new(100_000), Err(KernelError::Cuda(_))),
                "a device that does not exist"
            );
        }
        Err(e) => {
            assert!(
                !cuda_available(),
                "cuda_available() but try_new(0) failed: {e}"
            );
            assert!(matches!(e, KernelError::Cuda(_)), "{e}");
            eprintln!("no GPU here: {e}");
        }
    }
}

fn conv2d(shape: [usize; 5]) {
    let [n, h, w, cin, cout] = shape;
    let (x, wt, b) = (
        randn(&[n, h, w, cin], 1),
        randn(&[3, 3, cin, cout], 2),
        randn(&[cout], 3),
    );
    parity!(format!("conv2d {shape:?}"), SUM_TOL, |be| be.download(
        &be.conv2d(&be.upload(&x), &be.upload(&wt), &be.upload(&b))
    ));
}

/// `t` with every value rounded to TF32 as `cvt.rna.tf32.f32` does (nearest, ties away from
/// zero, 13 low mantissa bits cleared; the values here are finite and far from overflow).
fn tf32_rounded(t: &Tensor) -> Tensor {
    let round = |v: f32| f32::from_bits(v.to_bits().wrapping_add(0x1000) & !0x1fff);
    Tensor::new(&t.shape, t.data.iter().map(|&v| round(v)).collect())
}

/// The implicit TF32 conv2d, twice: on inputs already rounded to TF32, where the kernel's
/// rounding is exact and only the f32 summation order differs from the CPU's (SUM_TOL: this
/// checks the gather, the tiling and the fragments exactly), and on raw inputs (TF32_TOL).
fn conv2d_tf32(shape: [usize; 5]) {
    let [n, h, w, cin, cout] = shape;
    let (x, wt, b) = (
        randn(&[n, h, w, cin], 1),
        randn(&[3, 3, cin, cout], 2),
        randn(&[cout], 3),
    );
    let (xr, wr) = (tf32_rounded(&x), tf32_rounded(&wt));
    for (what, x, wt, tol) in [
        ("TF32-exact inputs", &xr, &wr, SUM_TOL),
        ("raw inputs", &x, &wt, TF32_TOL),
    ] {
        let name = format!("conv2d TF32 {shape:?}, {what}");
        parity!(gpu_tf32(), name, tol, |be| be.download(&be.conv2d(
            &be.upload(x),
            &be.upload(wt),
            &be.upload(&b)
        )));
    }
}

#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn conv2d_tf32_shapes() {
    // Odd sizes: fewer than 4 channels (several taps per K-step), K = 9 * 5 not a multiple
    // of 16, rows not a multiple of 64, more than 128 output channels (two column blocks).
    conv2d_tf32([1, 4, 6, 1, 3]);
    conv2d_tf32([2, 7, 5, 5, 6]);
    conv2d_tf32([3, 5, 9, 20, 130]);
    // The checkpoint's conv_in (108 -> 128), a block's conv (128 -> 128) and conv_out
    // (128 -> 108) on 2 clips of 8 frames, then a block's conv at 4 scenes (8 clips).
    conv2d_tf32([16, 8, 8, 108, 128]);
    conv2d_tf32([16, 8, 8, 128, 128]);
    conv2d_tf32([16, 8, 8, 128, 108]);
    conv2d_tf32([64, 8, 8, 128, 128]);
}

#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn nvml_reads_the_backend_s_gpu() {
    let be = gpu();
    let monitor = GpuMonitor::open(be.uuid()).unwrap_or_else(|e| panic!("{e}"));
    let usage = monitor.sample().unwrap();
    assert!(usage.memory_total_bytes > 0 && usage.memory_used_bytes <= usage.memory_total_bytes);
    assert!(usage.utilization_percent <= 100);
    assert!(
        be.name().contains(&usage.name),
        "NVML names {:?}, CUDA {}",
        usage.name,
        be.name()
    );
}

#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn conv2d_small() {
    conv2d([2, 7, 5, 5, 6]);
}

#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn conv2d_model_shapes() {
    // conv_in (108 -> 96), a block's conv (96 -> 96) and conv_out (96 -> 108) on 2 clips.
    conv2d([16, 8, 8, 108, 96]);
    conv2d([16, 8, 8, 96, 96]);
    conv2d([16, 8, 8, 96, 108]);
}

fn temporal_conv(clips: usize, frames: usize, [h, w, c]: [usize; 3]) {
    let shape = [clips * frames, h, w, c];
    let (x, wt, b, r) = (
        randn(&shape, 4),
        randn(&[3, c, c], 5),
        randn(&[c], 6),
        randn(&shape, 7),
    );
    let name = format!("temporal_conv_residual {clips} clips of {frames} frames");
    parity!(name, SUM_TOL, |be| {
        let mut residual = be.upload(&r);
        be.temporal_conv_residual(
            &mut residual,
            &be.upload(&x),
            &be.upload(&wt),
            &be.upload(&b),
            frames,
        );
        be.download(&residual)
    });
}

#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn temporal_conv_shapes() {
    temporal_conv(2, 5, [3, 4, 12]);
    temporal_conv(4, 8, [8, 8, 96]);
    // One frame: only the centre tap, the batched side-tap GEMMs are skipped.
    temporal_conv(3, 1, [2, 2, 8]);
}

/// The implicit TF32 temporal conv, on TF32-exact and raw inputs as `conv2d_tf32`.
fn temporal_conv_tf32(clips: usize, frames: usize, [h, w, c]: [usize; 3]) {
    let shape = [clips * frames, h, w, c];
    let (x, wt, b, r) = (
        randn(&shape, 4),
        randn(&[3, c, c], 5),
        randn(&[c], 6),
        randn(&shape, 7),
    );
    let (xr, wr) = (tf32_rounded(&x), tf32_rounded(&wt));
    for (what, x, wt, tol) in [
        ("TF32-exact inputs", &xr, &wr, SUM_TOL),
        ("raw inputs", &x, &wt, TF32_TOL),
    ] {
        let name = format!("temporal conv TF32, {clips} clips of {frames} frames, {what}");
        parity!(gpu_tf32(), name, tol, |be| {
            let mut residual = be.upload(&r);
            be.temporal_conv_residual(
                &mut residual,
                &be.upload(x),
                &be.upload(wt),
                &be.upload(&b),
                frames,
            );
            be.download(&residual)
        });
    }
}

#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn temporal_conv_tf32_shapes() {
    temporal_conv_tf32(2, 5, [3, 4, 12]);
    temporal_conv_tf32(3, 1, [2, 2, 8]);
    temporal_conv_tf32(1, 3, [1, 1, 3]);
    // The checkpoint's 128 channels: 2 scenes (4 clips), then 16 scenes (32 clips).
    temporal_conv_tf32(4, 8, [8, 8, 128]);
    temporal_conv_tf32(32, 8, [8, 8, 128]);
}

#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn linear() {
    for (n, k, m) in [(5, 33, 17), (6, 64, 128), (6, 128, 192)] {
        let (x, w, b) = (randn(&[n, k], 7), randn(&[m, k], 8), randn(&[m], 9));
        parity!(format!("linear {n}x{k} -> {m}"), SUM_TOL, |be| be.download(
            &be.linear(&be.upload(&x), &be.upload(&w), &be.upload(&b))
        ));
    }
}

/// Offset and scaled so that a one-pass f32 variance would fail.
fn norm_input(shape: &[usize]) -> Tensor {
    let x = randn(shape, 10);
    Tensor::new(shape, x.data.iter().map(|v| 3.0 * v + 20.0).collect())
}

#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn norm_silu() {
    let cases = [
        ([3, 5, 6, 16], 8, 1),
        ([16, 8, 8, 96], 8, 8),
        ([2, 4, 4, 300], 3, 2),
    ];
    for (shape, groups, frames) in cases {
        let c = shape[3];
        let (x, g, b) = (norm_input(&shape), randn(&[c], 11), randn(&[c], 12));
        let ss = randn(&[shape[0] / frames, 2 * c], 13);
        let norm = Norm { groups, eps: 1e-5 };
        for film in [false, true] {
            parity!(
                format!("norm_silu {shape:?} (FiLM {film})"),
                SUM_TOL,
                |be| {
                    let ssd = be.upload(&ss);
                    be.download(&be.norm_silu(
                        &be.upload(&x),
                        &be.upload(&g),
                        &be.upload(&b),
                        norm,
                        film.then_some((&ssd, frames)),
                    ))
                }
            );
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn elementwise() {
    let (frames, c) = (4, 6);
    let (x, y) = (
        randn(&[2 * frames, 3, 5, c], 13),
        randn(&[2 * frames, 3, 5, c], 14),
    );
    let emb = randn(&[frames, c], 16);
    let in_place = |name: &str| format!("{name} in place");
    parity!(in_place("silu"), ELEMENTWISE_TOL, |be| {
        let mut t = be.upload(&x);
        be.silu(&mut t);
        be.download(&t)
    });
    parity!(in_place("add"), ELEMENTWISE_TOL, |be| {
        let mut t = be.upload(&x);
        be.add(&mut t, &be.upload(&y));
        be.download(&t)
    });
    parity!(in_place("add_frame_embedding"), ELEMENTWISE_TOL, |be| {
        let mut t = be.upload(&x);
        be.add_frame_embedding(&mut t, &be.upload(&emb));
        be.download(&t)
    });
}

/// The copies that batch resident scenes: exact (they move values, nothing is computed).
#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn concat_and_slice() {
    let (a, b) = (randn(&[2, 3, 4, 5], 17), randn(&[3, 3, 4, 5], 18));
    parity!("concat", 0.0, |be| {
        let (ad, bd) = (be.upload(&a), be.upload(&b));
        be.download(&be.concat(&[&ad, &bd, &ad]))
    });
    parity!("slice", 0.0, |be| {
        let whole = be.concat(&[&be.upload(&a), &be.upload(&b)]);
        be.download(&be.slice(&whole, 1..4))
    });
}

/// model/checkpoint, or `$REEL_CHECKPOINT` (bench/gpu.sh runs this test binary on another
/// machine, away from the path it was built at).
fn checkpoint() -> PathBuf {
    std::env::var_os("REEL_CHECKPOINT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/checkpoint"),
        PathBuf::from,
    )
}

/// One guided denoiser pass and whole sampling runs of the checkpoint, CUDA against CPU.
#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn sampling_runs_match_the_cpu_backend() {
    sampling_runs(CudaOptions::default(), MODEL_TOL);
}

/// The same with both convolutions as implicit TF32 GEMMs.
#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn sampling_runs_with_tf32_convolutions_match_the_cpu_backend() {
    sampling_runs(TF32, TF32_MODEL_TOL);
}

fn sampling_runs(options: CudaOptions, tol: f64) {
    let cpu = Model::load_with(&checkpoint(), CpuBackend::new(2)).expect("load on CPU");
    let cuda = Model::load_with(
        &checkpoint(),
        CudaBackend::with_options(0, options).expect("CUDA backend"),
    )
    .expect("load on CUDA");
    assert_eq!(cpu.id(), cuda.id());

    let c = cpu.config();
    let z = Tensor::new(
        &[
            2,
            c.frames,
            c.latent_channels,
            c.latent_size(),
            c.latent_size(),
        ],
        randn(&[2 * c.latent_len()], 40).data,
    );
    let cond = cpu
        .text(&[cpu.tokenize(RED).unwrap(), cpu.tokenize(BLUE).unwrap()])
        .unwrap();
    let (want, got) = (
        cpu.denoise(&z, &[0.9, 0.3], &cond).unwrap(),
        cuda.denoise(&z, &[0.9, 0.3], &cond).unwrap(),
    );
    let err = rel_err(&got.data, &want.data);
    eprintln!("{options:?} denoiser pass: relative error {err:e}");
    assert!(err <= tol, "denoiser pass: relative error {err:e}");

    for method in [Method::DpmPP2M, Method::Ddim] {
        let want = cpu.generate(&[RED, BLUE], 7, 4, 4.0, method).unwrap();
        let got = cuda.generate(&[RED, BLUE], 7, 4, 4.0, method).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let err = rel_err(&g.data, &w.data);
            eprintln!("{options:?} {method:?} scene {i}: relative error {err:e}");
            assert!(err <= tol, "{method:?} scene {i}: frames differ by {err:e}");
        }
    }
}

/// `guided_step` against the host solver (tests/common/guided_step.rs: scenes of every
/// method and prediction, step counts and guidance in one batch, scenes finishing and
/// leaving, bad arguments), latents and x0 estimates after every step.
#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn guided_step_matches_the_host_solver() {
    common::guided_step::check(gpu(), SAMPLER_TOL);
}

/// Whole sampling runs of the checkpoint with the sampler on the device: each step the
/// denoiser pass (host tensors in and out, FP32 paths), then `guided_step` on latents that
/// stay on the device, against the CPU backend's `Model::generate`. The device sampler is
/// exact (see SAMPLER_TOL), so the FP32 model tolerance applies.
#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn sampling_with_the_device_sampler_matches_the_cpu_backend() {
    let be = gpu();
    let cpu = Model::load_with(&checkpoint(), CpuBackend::new(2)).expect("load on CPU");
    let cuda = Model::load_with(
        &checkpoint(),
        CudaBackend::try_new(0).expect("CUDA backend"),
    )
    .expect("load on CUDA");
    let c = cuda.config().clone();
    let (len, steps, guidance, seed) = (c.latent_len(), 4, 4.0, 7);
    let captions = [RED, BLUE];
    let n = captions.len();
    let mut conds = Vec::new();
    for caption in captions {
        conds.extend(cuda.text(&[cuda.tokenize(caption).unwrap()]).unwrap().data);
    }
    let null = cuda.text(&[vec![0; c.max_tokens]]).unwrap().data;
    let cond = Tensor::new(&[2 * n, c.emb], [conds, null.repeat(n)].concat());
    let shape = [
        2 * n,
        c.frames,
        c.latent_channels,
        c.latent_size(),
        c.latent_size(),
    ];
    for method in [Method::DpmPP2M, Method::Ddim] {
        let noise: Vec<f32> = (0..n)
            .flat_map(|i| philox::gaussian(seed, i as u64, len))
            .collect();
        let mut z = be.upload(&Tensor::new(&[n * len], noise));
        let mut x0 = be.upload(&Tensor::new(&[n * len], vec![0.0; n * len]));
        for step in 0..steps {
            let latents = be.download(&z).data;
            let input = Tensor::new(&shape, [latents.clone(), latents].concat());
            let t = vec![timesteps(steps)[step] as f32; 2 * n];
            let out = be.upload(&cuda.denoise(&input, &t, &cond).unwrap());
            let scenes = vec![
                SceneStep {
                    method,
                    prediction: c.prediction,
                    steps,
                    step,
                    guidance,
                };
                n
            ];
            be.guided_step(&mut z, &mut x0, &out, &scenes)
                .expect("guided_step");
        }
        let latents = be.download(&z).data;
        let want = cpu
            .generate(&captions, seed, steps, guidance, method)
            .unwrap();
        for (i, w) in want.iter().enumerate() {
            let got = cuda
                .decode_cells(&latents[i * len..(i + 1) * len])
                .expect("cells of the model's shape");
            let err = rel_err(&got.data, &w.data);
            eprintln!("device sampler {method:?} scene {i}: relative error {err:e}");
            assert!(
                err <= MODEL_TOL,
                "{method:?} scene {i}: frames differ by {err:e}"
            );
        }
    }
}

/// `Model::with_resident_steps` on CUDA (latents and x0 estimates on the device from start to
/// finish, the sampler as `guided_step`) against the CPU backend's host path: one batch of
/// DPM-Solver++(2M) and DDIM scenes of 2, 3 and 4 steps, the 2-step one finishing mid-batch, a
/// scene cancelled after its first step; latents and estimates after every step, then the
/// decoded frames. The device sampler is exact (SAMPLER_TOL), so the FP32 model tolerance
/// applies; every step compounds the passes' differences, as in `sampling_runs`.
#[test]
#[ignore = "needs a CUDA GPU; run with --ignored on one"]
fn resident_sampling_matches_the_cpu_backend() {
    let cpu = Model::load_with(&checkpoint(), CpuBackend::new(2)).expect("load on CPU");
    let cuda = Model::load_with(
        &checkpoint(),
        CudaBackend::try_new(0).expect("CUDA backend"),
    )
    .expect("load on CUDA")
    .with_resident_steps(true);
    let runs = [
        (RED, 2, 4.0, Method::DpmPP2M),
        (BLUE, 3, 2.5, Method::Ddim),
        (RED, 4, 7.0, Method::DpmPP2M),
        (BLUE, 4, 3.0, Method::DpmPP2M), // cancelled after one step
    ];
    let mut pairs: Vec<(SceneState, SceneState)> = runs
        .iter()
        .enumerate()
        .map(|(i, &(caption, steps, guidance, method))| {
            let start = |m: &Model| m.start(caption, 7, i as u64, steps, guidance, method);
            (start(&cpu).unwrap(), start(&cuda).unwrap())
        })
        .collect();
    assert!(pairs
        .iter()
        .all(|(w, g)| !w.is_resident() && g.is_resident()));
    for step in 0..4 {
        if step == 1 {
            pairs.remove(3);
        }
        let (mut want, mut got): (Vec<_>, Vec<_>) = pairs.iter_mut().map(|(w, g)| (w, g)).unzip();
        cpu.step(&mut want);
        cuda.step(&mut got);
        for (i, (w, g)) in pairs.iter().enumerate() {
            assert_eq!(w.step_index(), g.step_index());
            let what = format!("step {step} scene {i}");
            for (part, got, want) in [
                ("latent", g.latent(), w.latent()),
                ("estimate", g.estimate().unwrap(), w.estimate().unwrap()),
            ] {
                let err = rel_err(got, want);
                eprintln!("resident {what} {part}: relative error {err:e}");
                assert!(err <= MODEL_TOL, "{what} {part}: relative error {err:e}");
            }
        }
    }
    for (i, (w, g)) in pairs.iter().enumerate() {
        assert!(w.done() && g.done());
        let err = rel_err(&cuda.decode(g).data, &cpu.decode(w).data);
        eprintln!("resident scene {i} frames: relative error {err:e}");
        assert!(err <= MODEL_TOL, "scene {i}: frames differ by {err:e}");
    }
}
