//! The CUDA backend against the CPU backend: every `Backend` op, the fused sampler step,
//! then whole sampling runs of the exported checkpoint, each with an explicit tolerance
//! (the relative error of tests/common: max |cuda - cpu| / max |cpu|).
//! These need a GPU: where `cuda_available()` is false each test prints why and returns
//! (unless `REEL_REQUIRE_CUDA` is set: then it fails).
//! `try_new_agrees_with_cuda_available` runs everywhere.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{randn, rel_err};
use kernels::cuda::StepCoefficients;
use kernels::sampler::Solver;
use kernels::{
    cuda_available, Backend, CpuBackend, CudaBackend, GpuMonitor, KernelError, Method, Model, Norm,
    Prediction, Tensor,
};

/// Ops summing products in f32 (cuBLAS and the CPU GEMM sum in different orders).
const SUM_TOL: f64 = 1e-5;
/// Elementwise ops (one or two roundings; the GPU may fuse a multiply-add).
const ELEMENTWISE_TOL: f64 = 1e-6;
/// Whole denoiser passes and sampling runs: the tolerance of the CPU backend against PyTorch
/// (tests/golden.rs).
const MODEL_TOL: f64 = 1e-4;

const RED: &str = "a small red circle moving left on a black background";
const BLUE: &str = "a large blue square growing on a beige background";

/// The shared GPU backend, or None (with the reason printed) where there is no GPU.
fn gpu() -> Option<&'static CudaBackend> {
    static GPU: OnceLock<Option<CudaBackend>> = OnceLock::new();
    let gpu = GPU.get_or_init(|| {
        cuda_available().then(|| {
            CudaBackend::try_new(0)
                .unwrap_or_else(|e| panic!("cuda_available() but try_new(0) failed: {e}"))
        })
    });
    if gpu.is_none() {
        // bench/gpu.sh sets this on the GPU machine, where a skip would hide a broken setup.
        assert!(
            std::env::var_os("REEL_REQUIRE_CUDA").is_none(),
            "REEL_REQUIRE_CUDA is set but cuda_available() is false"
        );
        eprintln!("skipped: no CUDA device here (cuda_available() is false)");
    }
    gpu.as_ref()
}

/// Evaluates `$body` (which builds a host `Tensor` through the backend `$be`) on the CPU
/// backend and on the GPU, and asserts they agree within `$tol`.
macro_rules! parity {
    ($name:expr, $tol:expr, |$be:ident| $body:expr) => {{
        let Some(gpu) = gpu() else { return };
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

#[test]
fn nvml_reads_the_backend_s_gpu() {
    let Some(be) = gpu() else { return };
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
fn conv2d_small() {
    conv2d([2, 7, 5, 5, 6]);
}

#[test]
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
fn temporal_conv_shapes() {
    temporal_conv(2, 5, [3, 4, 12]);
    temporal_conv(4, 8, [8, 8, 96]);
    // One frame: only the centre tap, the batched side-tap GEMMs are skipped.
    temporal_conv(3, 1, [2, 2, 8]);
}

#[test]
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

/// Scenes of every method and prediction, with their own guidance, stepped together by the
/// fused kernel and one by one by the host `Solver`: identical bit for bit at every step.
#[test]
fn guided_step_matches_the_host_solver_exactly() {
    let Some(gpu) = gpu() else { return };
    let (len, steps) = (1000, 6);
    let scenes = [
        (Method::Ddim, Prediction::X0, 4.0f32),
        (Method::DpmPP2M, Prediction::X0, 2.5),
        (Method::DpmPP2M, Prediction::V, 7.0),
    ];
    let n = scenes.len();
    let mut solvers: Vec<Solver> = scenes
        .iter()
        .map(|&(m, p, _)| Solver::new(m, p, steps))
        .collect();
    let mut host: Vec<Vec<f32>> = (0..n as u64).map(|i| randn(&[len], 20 + i).data).collect();
    let mut z = gpu.upload(&Tensor::new(&[n, len], host.concat()));
    let mut prev = gpu.upload(&Tensor::zeros(&[n, len]));
    for k in 0..steps {
        let out = randn(&[2 * n, len], 30 + k as u64);
        let (cond, uncond) = out.data.split_at(n * len);
        for (i, s) in solvers.iter_mut().enumerate() {
            let g = scenes[i].2;
            let (c, u) = (
                &cond[i * len..(i + 1) * len],
                &uncond[i * len..(i + 1) * len],
            );
            let guided: Vec<f32> = c.iter().zip(u).map(|(&c, &u)| u + g * (c - u)).collect();
            s.advance(&mut host[i], &guided);
        }
        let coeffs: Vec<StepCoefficients> = scenes
            .iter()
            .map(|&(m, p, g)| StepCoefficients::at_step(m, p, steps, k, g))
            .collect();
        gpu.guided_step(&mut z, &mut prev, &gpu.upload(&out), &coeffs);
        assert_eq!(
            gpu.download(&z).data,
            host.concat(),
            "latents after step {k}"
        );
    }
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
fn sampling_runs_match_the_cpu_backend() {
    if gpu().is_none() {
        return;
    }
    let cpu = Model::load_with(&checkpoint(), CpuBackend::new(2)).expect("load on CPU");
    let cuda = Model::load_with(
        &checkpoint(),
        CudaBackend::try_new(0).expect("CUDA backend"),
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
    assert!(err <= MODEL_TOL, "denoiser pass: relative error {err:e}");

    for method in [Method::DpmPP2M, Method::Ddim] {
        let want = cpu.generate(&[RED, BLUE], 7, 4, 4.0, method).unwrap();
        let got = cuda.generate(&[RED, BLUE], 7, 4, 4.0, method).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let err = rel_err(&g.data, &w.data);
            assert!(
                err <= MODEL_TOL,
                "{method:?} scene {i}: frames differ by {err:e}"
            );
        }
    }
}
