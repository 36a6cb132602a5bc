//! The ops reel's network needs (the list in model/net.py's docstring), as one trait that every
//! compute backend implements (the CPU backend in `cpu/`, the CUDA one in `cuda/`). `model/`
//! composes these ops into the PyTorch modules of `model/net.py`, so a backend never sees a
//! module, only tensors.
//!
//! Layout contract (all backends):
//! - images are channels-last `[N, H, W, C]` (PyTorch uses NCHW; the model permutes at its
//!   boundaries, so a backend only ever sees channels-last);
//! - a clip batch is `[B * F, H, W, C]`, the `F` frames of a clip consecutive;
//! - conv2d weights are `[3, 3, Cin, Cout]` (tap row, tap column, in, out) and temporal conv
//!   weights `[3, Cin, Cout]`: the model reorders PyTorch's `[Cout, Cin, ...]` once at load;
//! - linear weights stay in PyTorch's `[out, in]`.
//!
//! Elementwise ops work in place; the others return a new tensor.

use crate::tensor::Tensor;

/// Group norm hyper-parameters (net.py: 8 groups, eps 1e-5).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Norm {
    /// Channel groups normalised together; the channel count must be a multiple of it.
    pub groups: usize,
    /// Added to the variance before its square root.
    pub eps: f32,
}

/// A compute backend: every op of the network on its own tensor type. The model uploads its
/// weights once ([`Backend::upload`]), runs a pass of ops and downloads the result.
pub trait Backend: Send + Sync + 'static {
    /// A tensor living where this backend computes.
    type Tensor: Send + Sync;

    /// Human-readable description (device, threads), for logs and benchmarks.
    fn name(&self) -> String;
    /// Runs a whole forward pass; a backend may set up its execution context once around it
    /// (the CPU backend enters its thread pool, so the ops inside need no hand-off each).
    fn run<R: Send>(&self, pass: impl FnOnce() -> R + Send) -> R {
        pass()
    }
    /// Copies a host tensor to where this backend computes.
    fn upload(&self, host: &Tensor) -> Self::Tensor;
    /// Copies a tensor back to the host, waiting for the ops that produce it.
    fn download(&self, t: &Self::Tensor) -> Tensor;

    /// 3x3 convolution, padding 1, stride 1, plus bias: `[N, H, W, Cin]` -> `[N, H, W, Cout]`.
    fn conv2d(&self, x: &Self::Tensor, w: &Self::Tensor, bias: &Self::Tensor) -> Self::Tensor;
    /// `residual += tconv(x) + bias`, where tconv is the kernel-3, padding-1 convolution along
    /// the frame axis of `[B * F, H, W, C]`, independently at every clip and pixel (the
    /// residual branch of a block ends here, so the sum is fused into the GEMM).
    fn temporal_conv_residual(
        &self,
        residual: &mut Self::Tensor,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: &Self::Tensor,
        frames: usize,
    );
    /// `x [N, in] @ w[out, in]^T + bias` -> `[N, out]`.
    fn linear(&self, x: &Self::Tensor, w: &Self::Tensor, bias: &Self::Tensor) -> Self::Tensor;

    /// The prologue of every conv in net.py, fused: group norm over each image of
    /// `[N, H, W, C]` (biased variance) with `* gamma + beta`; then, if `film` is
    /// `Some((scale_shift, frames))`, FiLM `x * (1 + scale) + shift` with each clip's scale
    /// (first C) and shift (last C) from `scale_shift [N / frames, 2C]`; then SiLU.
    fn norm_silu(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        norm: Norm,
        film: Option<(&Self::Tensor, usize)>,
    ) -> Self::Tensor;
    /// `x * sigmoid(x)`.
    fn silu(&self, x: &mut Self::Tensor);
    /// `x += y`, same shapes.
    fn add(&self, x: &mut Self::Tensor, y: &Self::Tensor);
    /// `x[b * F + f, .., c] += emb[f, c]` on `[B * F, H, W, C]`.
    fn add_frame_embedding(&self, x: &mut Self::Tensor, emb: &Self::Tensor);
}
