//! The ops reel's network needs (the list in model/net.py's docstring), as one trait that every compute backend implements (the CPU
//! backend in `cpu/` now; a CUDA one later). `model/` composes these ops into the PyTorch
//! modules of `model/net.py`, so a backend never sees a module, only tensors.
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

pub trait Backend: Send + Sync + 'static {
    /// A tensor living where this backend computes.
    type Tensor: Send + Sync;

    /// Human-readable description (device, threads), for logs and benchmarks.
    fn name(&self) -> String;
    fn upload(&self, host: &Tensor) -> Self::Tensor;
    fn download(&self, t: &Self::Tensor) -> Tensor;

    /// 3x3 convolution, padding 1, stride 1, plus bias: `[N, H, W, Cin]` -> `[N, H, W, Cout]`.
    fn conv2d(&self, x: &Self::Tensor, w: &Self::Tensor, bias: &Self::Tensor) -> Self::Tensor;
    /// Kernel-3, padding-1 convolution along the frame axis of `[B * F, H, W, C]`, independently
    /// at every clip and pixel, plus bias.
    fn temporal_conv(&self, x: &Self::Tensor, w: &Self::Tensor, bias: &Self::Tensor, frames: usize) -> Self::Tensor;
    /// `x [N, in] @ w[out, in]^T + bias` -> `[N, out]`.
    fn linear(&self, x: &Self::Tensor, w: &Self::Tensor, bias: &Self::Tensor) -> Self::Tensor;

    /// Group norm over each image of `[N, H, W, C]` (biased variance), then `* gamma + beta`.
    fn group_norm(&self, x: &Self::Tensor, gamma: &Self::Tensor, beta: &Self::Tensor, groups: usize, eps: f32) -> Self::Tensor;
    /// `x * sigmoid(x)`.
    fn silu(&self, x: &mut Self::Tensor);
    /// `x += y`, same shapes.
    fn add(&self, x: &mut Self::Tensor, y: &Self::Tensor);
    /// FiLM: `x * (1 + scale) + shift` on `[B * F, H, W, C]`, where `scale_shift [B, 2C]` holds
    /// each clip's scale (first C) and shift (last C).
    fn film(&self, x: &mut Self::Tensor, scale_shift: &Self::Tensor, frames: usize);
    /// `x[b * F + f, .., c] += emb[f, c]` on `[B * F, H, W, C]`.
    fn add_frame_embedding(&self, x: &mut Self::Tensor, emb: &Self::Tensor);
}
