//! The parameterised layers of net.py (Conv2d, temporal Conv1d, Linear, GroupNorm) on a
//! backend: each loads its PyTorch parameters by name, reorders them into the backend's
//! layout once, and runs the matching `Backend` op.

use super::weights::Weights;
use crate::backend::{Backend, Norm};
use crate::error::KernelError;

/// `nn.Conv2d(cin, cout, 3, padding=1)`.
pub(crate) struct Conv2d<B: Backend> {
    weight: B::Tensor,
    bias: B::Tensor,
}

impl<B: Backend> Conv2d<B> {
    pub(crate) fn load(
        be: &B,
        w: &mut Weights,
        name: &str,
        cin: usize,
        cout: usize,
    ) -> Result<Self, KernelError> {
        // PyTorch [Cout, Cin, ky, kx] -> [ky, kx, Cin, Cout].
        let weight = w
            .take(&format!("{name}.weight"), &[cout, cin, 3, 3])?
            .permute(&[2, 3, 1, 0]);
        let bias = w.take(&format!("{name}.bias"), &[cout])?;
        Ok(Conv2d {
            weight: be.upload(&weight),
            bias: be.upload(&bias),
        })
    }

    pub(crate) fn forward(&self, be: &B, x: &B::Tensor) -> B::Tensor {
        be.conv2d(x, &self.weight, &self.bias)
    }
}

/// `nn.Conv1d(c, c, 3, padding=1)` applied over the frames of each pixel.
pub(crate) struct TemporalConv<B: Backend> {
    weight: B::Tensor,
    bias: B::Tensor,
}

impl<B: Backend> TemporalConv<B> {
    pub(crate) fn load(be: &B, w: &mut Weights, name: &str, c: usize) -> Result<Self, KernelError> {
        // PyTorch [Cout, Cin, k] -> [k, Cin, Cout].
        let weight = w
            .take(&format!("{name}.weight"), &[c, c, 3])?
            .permute(&[2, 1, 0]);
        let bias = w.take(&format!("{name}.bias"), &[c])?;
        Ok(TemporalConv {
            weight: be.upload(&weight),
            bias: be.upload(&bias),
        })
    }

    /// `residual += tconv(x)`.
    pub(crate) fn forward_residual(
        &self,
        be: &B,
        residual: &mut B::Tensor,
        x: &B::Tensor,
        frames: usize,
    ) {
        be.temporal_conv_residual(residual, x, &self.weight, &self.bias, frames)
    }
}

/// `nn.Linear(cin, cout)`.
pub(crate) struct Linear<B: Backend> {
    weight: B::Tensor,
    bias: B::Tensor,
}

impl<B: Backend> Linear<B> {
    pub(crate) fn load(
        be: &B,
        w: &mut Weights,
        name: &str,
        cin: usize,
        cout: usize,
    ) -> Result<Self, KernelError> {
        let weight = w.take(&format!("{name}.weight"), &[cout, cin])?;
        let bias = w.take(&format!("{name}.bias"), &[cout])?;
        Ok(Linear {
            weight: be.upload(&weight),
            bias: be.upload(&bias),
        })
    }

    pub(crate) fn forward(&self, be: &B, x: &B::Tensor) -> B::Tensor {
        be.linear(x, &self.weight, &self.bias)
    }
}

/// `nn.GroupNorm(groups, c, eps)`; in net.py a SiLU (after an optional FiLM) always follows,
/// so it runs as the backend's fused `norm_silu`.
pub(crate) struct GroupNorm<B: Backend> {
    weight: B::Tensor,
    bias: B::Tensor,
    norm: Norm,
}

impl<B: Backend> GroupNorm<B> {
    pub(crate) fn load(
        be: &B,
        w: &mut Weights,
        name: &str,
        c: usize,
        norm: Norm,
    ) -> Result<Self, KernelError> {
        let weight = w.take(&format!("{name}.weight"), &[c])?;
        let bias = w.take(&format!("{name}.bias"), &[c])?;
        Ok(GroupNorm {
            weight: be.upload(&weight),
            bias: be.upload(&bias),
            norm,
        })
    }

    /// `silu(film(norm(x)))`, FiLM only when `film` is given (see `Backend::norm_silu`).
    pub(crate) fn forward_silu(
        &self,
        be: &B,
        x: &B::Tensor,
        film: Option<(&B::Tensor, usize)>,
    ) -> B::Tensor {
        be.norm_silu(x, &self.weight, &self.bias, self.norm, film)
    }
}

/// A free parameter (`nn.Parameter`) uploaded as is.
pub(crate) fn parameter<B: Backend>(
    be: &B,
    w: &mut Weights,
    name: &str,
    shape: &[usize],
) -> Result<B::Tensor, KernelError> {
    Ok(be.upload(&w.take(name, shape)?))
}
