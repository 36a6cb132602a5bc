//! The CUDA backend against the CPU backend: every `Backend` op, then whole sampling runs of
//! the exported checkpoint, each with an explicit tolerance (the relative error of
//! tests/common: max |cuda - cpu| / max |cpu|).
//! These need a GPU, so they are `#[ignore]`d: run them with `--include-ignored` on a machine
//! with one (bench/gpu.sh does), where they fail, not skip, if the backend cannot start.
//! `try_new_agrees_with_cuda_available` runs everywhere.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{randn, rel_err};
use kernels::{
    cuda_available, Backend, CpuBackend, CudaBackend, GpuMonitor, KernelError, Method, Model, Norm,
    Tensor,
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

/// The shared GPU backend; panics where there is none (these tests only run when asked for).
fn gpu() -> &'static CudaBackend {
    static GPU: OnceLock<CudaBackend> = OnceLock::new();
    GPU.get_or_init(|| {
        CudaBackend::try_new(0).unwrap_or_else(|e| panic!("this test needs a CUDA GPU: {e}"))
    })
}

/// Evaluates `$body` (which builds a host `Tensor` through the backend `$be`) on the CPU
/// backend and on the GPU, and asserts they agree within `$tol`.
macro_rules! parity {
    ($name:expr, $tol:expr, |$be:ident| $body:expr) => {{
        let gpu = gpu();
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
