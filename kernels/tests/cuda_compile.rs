//! Every CUDA source of the backend compiles with NVRTC, for the architectures reel runs on.
//! NVRTC needs libnvrtc only (no driver, no GPU), so this runs on CI: it fails, not skips,
//! when libnvrtc cannot be loaded. Without NVRTC, `REEL_SKIP_NVRTC=1` skips it explicitly.
//! CI gets libnvrtc from PyPI: `pip install nvidia-cuda-nvrtc-cu12`, with its `lib` directory
//! on `LD_LIBRARY_PATH` (see .ci/run).

use kernels::cuda::{compile_all_sources, nvrtc_available, nvrtc_version, SOURCES};

/// A100 / A10 (sm_80) and H100 (sm_90).
const ARCHES: [&str; 2] = ["compute_80", "compute_90"];

/// False when the test must be skipped on purpose; panics when NVRTC is merely missing.
fn nvrtc_required() -> bool {
    if nvrtc_available() {
        return true;
    }
    if std::env::var("REEL_SKIP_NVRTC").is_ok_and(|v| v == "1") {
        eprintln!("skipped: libnvrtc cannot be loaded and REEL_SKIP_NVRTC=1");
        return false;
    }
    panic!(
        "libnvrtc cannot be loaded: `pip install nvidia-cuda-nvrtc-cu12` and put its nvidia/cuda_nvrtc/lib \
         directory on LD_LIBRARY_PATH, or set REEL_SKIP_NVRTC=1 to skip this test"
    );
}

#[test]
fn every_source_compiles_for_every_arch() {
    if !nvrtc_required() {
        return;
    }
    let (major, minor) = nvrtc_version().expect("NVRTC version");
    eprintln!("NVRTC {major}.{minor}");
    for arch in ARCHES {
        let compiled = compile_all_sources(arch).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(compiled.len(), SOURCES.len());
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
            if c.file == "sampler.cu" {
                // Bit-identity with the host solver: every operation explicitly rounded.
                assert!(
                    !c.ptx.contains("fma."),
                    "sampler.cu for {arch}: the compiler fused an FMA"
                );
            }
            eprintln!("{arch} {}: {} bytes of PTX", c.file, c.ptx.len());
        }
    }
}

#[test]
fn compile_errors_and_bad_arches_are_errors() {
    if !nvrtc_required() {
        return;
    }
    assert!(
        compile_all_sources("sm_90").is_err(),
        "a real architecture is not a virtual one"
    );
    assert!(
        compile_all_sources("compute_9999").is_err(),
        "NVRTC must reject an unknown architecture"
    );
}
