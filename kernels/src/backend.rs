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
//!
//! Besides the network, a backend runs the sampler's step ([`Backend::guided_step`]) and the
//! two copies that batch scenes kept apart ([`Backend::concat`], [`Backend::slice`]), so a
//! caller can keep latents where the backend computes between steps (`Model::with_resident_steps`).

use std::ops::Range;

use crate::error::KernelError;
use crate::scene_step::SceneStep;
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
    type Tensor: Send + Sync + 'static;

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

    /// `parts` stacked along their first axis (`torch.cat(parts, 0)`), a copy; every part
    /// has the same trailing dimensions, and there is at least one.
    fn concat(&self, parts: &[&Self::Tensor]) -> Self::Tensor;
    /// Indices `rows` of `x`'s first axis (`x[rows]`), a copy.
    fn slice(&self, x: &Self::Tensor, rows: Range<usize>) -> Self::Tensor;

    /// One sampler step of a batch of scenes, what `Model::step` does on the host after its
    /// denoiser pass: for scene `i` of `scenes`, the classifier-free guidance combine of its
    /// conditional and unconditional outputs (`u + g * (c - u)`), then its solver's update of
    /// its latent (DDIM or DPM-Solver++(2M), `sampler.rs`), every operation rounded as the
    /// host rounds it, so the result equals `Model::step`'s given the same denoiser output.
    ///
    /// `latents` and `x0` hold `scenes.len()` equal slabs, one per scene in order, `out` twice
    /// as many (the denoiser's output: every scene's conditional slab, then every scene's
    /// unconditional one); only the sizes matter, and any layout of a slab works if the three
    /// share it. `latents` is advanced in place; `x0` must hold the previous step's estimate
    /// for a scene taking a second-order DPM-Solver++ step (what this op left there), and
    /// receives this step's. Errors (`InvalidArgument`, nothing written) on sizes that do not
    /// split that way, more than 65535 scenes, or a scene that cannot take its step.
    fn guided_step(
        &self,
        latents: &mut Self::Tensor,
        x0: &mut Self::Tensor,
        out: &Self::Tensor,
        scenes: &[SceneStep],
    ) -> Result<(), KernelError>;
}

/// The shape of [`Backend::concat`] of parts of `shapes`; panics on no parts, or parts of
/// different trailing dimensions (or none).
pub(crate) fn concat_shape(shapes: &[&[usize]]) -> Vec<usize> {
    let first = shapes.first().expect("concat of no tensors");
    assert!(
        !first.is_empty()
            && shapes
                .iter()
                .all(|s| s.len() == first.len() && s[1..] == first[1..]),
        "concat of tensors of shapes {shapes:?}: the dimensions after the first must agree"
    );
    let mut shape = first.to_vec();
    shape[0] = shapes.iter().map(|s| s[0]).sum();
    shape
}

/// The shape of [`Backend::slice`] of `rows` of a `shape` tensor, and the range of its values
/// (row-major) that it copies; panics on rows out of bounds.
pub(crate) fn slice_shape(shape: &[usize], rows: Range<usize>) -> (Vec<usize>, Range<usize>) {
    assert!(
        !shape.is_empty() && rows.start <= rows.end && rows.end <= shape[0],
        "rows {rows:?} of a tensor of shape {shape:?}"
    );
    let row: usize = shape[1..].iter().product();
    let mut out = shape.to_vec();
    out[0] = rows.len();
    (out, rows.start * row..rows.end * row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_and_slice_shapes() {
        assert_eq!(concat_shape(&[&[2, 3, 4], &[1, 3, 4]]), [3, 3, 4]);
        assert_eq!(slice_shape(&[5, 3, 4], 1..3), (vec![2, 3, 4], 12..36));
        assert_eq!(slice_shape(&[5, 3], 5..5), (vec![0, 3], 15..15));
    }

    #[test]
    #[should_panic(expected = "must agree")]
    fn concat_of_different_rows_panics() {
        concat_shape(&[&[2, 3], &[2, 4]]);
    }

    #[test]
    #[should_panic(expected = "rows")]
    fn slice_out_of_bounds_panics() {
        slice_shape(&[2, 3], 1..3);
    }
}
