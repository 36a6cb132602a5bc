//! Placeholder: filled in by the gemm kernels.

use crate::cuda::ptx::Source;

/// The `wan_gemm.cu` source and its kernels.
pub(crate) const SOURCE: Source = Source {
    file: "wan_gemm.cu",
    code: include_str!("wan_gemm.cu"),
    kernels: &[],
};

/// What a GEMM does with its f32 accumulator before storing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Epilogue {
    /// Adds the bias.
    Bias,
}
