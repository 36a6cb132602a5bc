//! Every CUDA source of the backend compiles with NVRTC, for the architectures reel runs on.
//! NVRTC needs libnvrtc only (no driver, no GPU), so this runs everywhere: it fails, not skips,
//! when libnvrtc cannot be loaded. ./test.sh gets libnvrtc from PyPI
//! (`nvidia-cuda-nvrtc-cu12`) and puts its `lib` directory on `LD_LIBRARY_PATH`
//! (scripts/deps.sh).

use kernels::cuda::{all_sources, compile_all_sources, nvrtc_available, nvrtc_version};

/// A100 / A10 (sm_80) and H100 / H200 (sm_90). Wan2.1's kernels use bf16 tensor-core
/// instructions (`mma.sync ... bf16`), which need sm_80 or newer.
const ARCHES: [&str; 2] = ["compute_80", "compute_90"];

/// Panics, saying how to get it, when libnvrtc cannot be loaded.
fn require_nvrtc() {
    assert!(
        nvrtc_available(),
        "libnvrtc cannot be loaded: run the tests through ./test.sh, which installs it, or \
         `pip install nvidia-cuda-nvrtc-cu12` and put its nvidia/cuda_nvrtc/lib directory on \
         LD_LIBRARY_PATH"
    );
}

#[test]
fn every_source_compiles_for_every_arch() {
    require_nvrtc();
    let (major, minor) = nvrtc_version().expect("NVRTC version");
    eprintln!("NVRTC {major}.{minor}");
    for arch in ARCHES {
        let compiled = compile_all_sources(arch).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(compiled.len(), all_sources().count());
        let target = format!(".target sm_{}", arch.trim_start_matches("compute_"));
        for c in &compiled {
            assert!(
                c.ptx.contains(&target),
                "{} for {arch}: PTX lacks `{target}`",
                c.file
            );
            for k in c.kernels {
                assert!(
                    c.ptx.contains(&format!(".entry {k}(")),
                    "{} for {arch}: no kernel {k} in the PTX",
                    c.file
                );
            }
            eprintln!("{arch} {}: {} bytes of PTX", c.file, c.ptx.len());
        }
    }
}

#[test]
fn compile_errors_and_bad_arches_are_errors() {
    require_nvrtc();
    assert!(
        compile_all_sources("sm_90").is_err(),
        "a real architecture is not a virtual one"
    );
    assert!(
        compile_all_sources("compute_9999").is_err(),
        "NVRTC must reject an unknown architecture"
    );
}
