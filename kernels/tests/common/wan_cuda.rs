//! What the Wan2.1 CUDA parity tests (tests/wan_cuda_*.rs) share: the device and their
//! inputs.

use std::borrow::Borrow;
use std::sync::OnceLock;

use kernels::cuda::wan::WanCuda;

use super::randn;

/// The shared GPU; panics where there is none (these tests only run when asked for).
pub fn gpu() -> &'static WanCuda {
    static GPU: OnceLock<WanCuda> = OnceLock::new();
    GPU.get_or_init(|| {
        WanCuda::try_new(0)
            .unwrap_or_else(|e| panic!("this test needs a CUDA GPU (sm_80 or newer): {e}"))
    })
}

/// `v` rounded to bf16 (nearest-even, as the upload does) and widened back: the values the
/// device holds.
pub fn bf16<T: Borrow<f32>>(v: impl IntoIterator<Item = T>) -> Vec<f32> {
    v.into_iter()
        .map(|x| half::bf16::from_f32(*x.borrow()).to_f32())
        .collect()
}

/// A reproducible normal vector times `scale`.
pub fn normal(n: usize, stream: u64, scale: f32) -> Vec<f32> {
    randn(&[n], stream)
        .data
        .into_iter()
        .map(|v| v * scale)
        .collect()
}
