//! Wan2.1's ops on an NVIDIA GPU (issue #18): bf16 storage with f32 accumulation, the
//! precision split of the reference (diffusers keeps norms, modulation tables, the time
//! embedding, RoPE and the residual stream in f32; weights and activations entering GEMMs and
//! attention are bf16).
//!
//! Each file here pairs one `.cu` source (compiled with `wan_common.cuh`, the bf16 helpers
//! and tensor-core instructions they share, before it) with the typed launches of its kernels, as methods
//! of [`WanCuda`]: `gemm` (tensor-core GEMMs with fused epilogues), `attention` (fused
//! attention with an online softmax), `norm` (LayerNorm + modulation, RMSNorm + RoPE, gated
//! residual adds, GELU), `vae` (the causal 3D convolutions as implicit GEMMs over a feature
//! cache kept on the device, and the VAE's norms and resampling) and `step` (time
//! embedding, classifier-free guidance, the scheduler update, casts).
//!
//! Status: every kernel is compiled by NVRTC in CI (tests/cuda_compile.rs), for sm_80 and
//! sm_90. Their parity tests against f32 references on the host (tests/wan_cuda_*.rs) need a
//! GPU and are `#[ignore]`d, run by bench/gpu.sh; until they have run on one, nothing serves
//! Wan2.1 through these kernels (`WanModel` runs on the CPU backend). docs/WAN.md has the plan
//! that puts them together: the step as one CUDA graph, and its memory arithmetic.
//!
//! bf16 values live on the device as `u16` bit patterns (`CudaSlice<u16>`); the host side
//! rounds to nearest-even with `half::bf16`, as PyTorch's `.to(torch.bfloat16)` does.

/// The text of `wan_*.cu` file `$file` with `wan_common.cuh` (what every Wan kernel file
/// shares) before it, as NVRTC compiles it.
macro_rules! wan_source {
    ($file:literal) => {
        concat!(include_str!("wan_common.cuh"), include_str!($file))
    };
}

mod attention;
mod gemm;
mod norm;
mod step;
mod vae;

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaSlice, CudaStream};

use super::ptx::Source;
use super::{check, cuda_error, device_arch, load_kernels, open_device};
use crate::error::KernelError;

pub use gemm::Epilogue;
pub use step::{Combine, StepBuffer, StepPlan, UniPcPlan};
pub use vae::{VaeConv, VAE_ATTENTION_MAX_CHANNELS};

/// Every CUDA source of Wan2.1's ops.
pub const WAN_SOURCES: &[Source] = &[
    gemm::SOURCE,
    attention::SOURCE,
    norm::SOURCE,
    vae::SOURCE,
    step::SOURCE,
];

/// Wan2.1's kernels, loaded on one device, with the stream everything is queued on.
pub struct WanCuda {
    stream: Arc<CudaStream>,
    kernels: HashMap<&'static str, CudaFunction>,
    arch: String,
}

impl WanCuda {
    /// Opens GPU `ordinal` and loads every kernel of [`WAN_SOURCES`] (compiled by NVRTC for
    /// its architecture, or found in the PTX cache). Errors, never panics, where CUDA is
    /// missing or the card predates bf16 tensor cores (sm_80).
    pub fn try_new(ordinal: usize) -> Result<WanCuda, KernelError> {
        let ctx = open_device(ordinal)?;
        let arch = device_arch(&ctx)?;
        let sm: u32 = arch
            .trim_start_matches("compute_")
            .parse()
            .map_err(cuda_error("compute capability"))?;
        if sm < 80 {
            return Err(KernelError::Cuda(format!(
                "Wan2.1's CUDA kernels need bf16 tensor cores (sm_80 or newer); this card is {arch}"
            )));
        }
        let kernels = load_kernels(&ctx, WAN_SOURCES, &arch)?;
        Ok(WanCuda {
            stream: ctx.default_stream(),
            kernels,
            arch,
        })
    }

    /// The virtual architecture the kernels were compiled for, e.g. `compute_90`.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The stream every launch is queued on, in call order.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits until every queued launch has finished.
    pub fn synchronize(&self) {
        check(self.stream.synchronize(), "synchronize");
    }

    /// `host` on the device, in f32.
    pub fn upload_f32(&self, host: &[f32]) -> CudaSlice<f32> {
        check(self.stream.clone_htod(host), "upload")
    }

    /// `host` on the device, rounded to bf16 (nearest-even).
    pub fn upload_bf16(&self, host: &[f32]) -> CudaSlice<u16> {
        let bits: Vec<u16> = host
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_bits())
            .collect();
        check(self.stream.clone_htod(&bits), "upload")
    }

    /// An f32 buffer back on the host (waits for the queued work).
    pub fn download_f32(&self, dev: &CudaSlice<f32>) -> Vec<f32> {
        let host = check(self.stream.clone_dtoh(dev), "download");
        self.synchronize();
        host
    }

    /// A bf16 buffer back on the host, widened to f32 (waits for the queued work).
    pub fn download_bf16(&self, dev: &CudaSlice<u16>) -> Vec<f32> {
        let bits = check(self.stream.clone_dtoh(dev), "download");
        self.synchronize();
        bits.into_iter()
            .map(|b| half::bf16::from_bits(b).to_f32())
            .collect()
    }

    /// `len` zeroed f32 values on the device.
    pub fn zeros_f32(&self, len: usize) -> CudaSlice<f32> {
        check(self.stream.alloc_zeros(len), "alloc")
    }

    /// `len` zeroed bf16 values on the device.
    pub fn zeros_bf16(&self, len: usize) -> CudaSlice<u16> {
        check(self.stream.alloc_zeros(len), "alloc")
    }

    fn kernel(&self, name: &str) -> &CudaFunction {
        self.kernels
            .get(name)
            .unwrap_or_else(|| panic!("kernel {name} is not in WAN_SOURCES"))
    }
}
