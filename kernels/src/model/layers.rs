//! The parameterised layers of net.py (Conv2d, temporal Conv1d, Linear, GroupNorm) on a
//! backend: each loads its PyTorch parameters by name, reorders them into the backend's
//! layout once, and runs the matching `Backend` op.

use super::weights::Weights;
use crate::backend::Backend;
use crate::error::KernelError;

/// `nn.Conv2d(cin, cout, 3, padding=1)`.
pub(crate) struct Conv2d<B: Backend> {
    weight: B::Tensor,
    bias: B::Tensor,
}

impl<B: Backend> Conv2d<B> {
    pub(crate) fn load(be: &B, w: &mut Weights, name: &str, cin: usize, cout: usize) -> Result<Self, KernelError> {
        // PyTorch [Cout, Cin, ky, kx] -> [ky, kx, Cin, Cout].
        let weight = w.take(&format!("{name}.weight"), &[cout, cin, 3, 3])?.permute(&[2, 3, 1, 0]);
        let bias = w.take(&format!("{name}.bias"), &[cout])?;
        Ok(Conv2d { weight: be.upload(&weight), bias: be.upload(&bias) })
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
        let weight = w.take(&format!("{name}.weight"), &[c, c, 3])?.permute(&[2, 1, 0]);
        let bias = w.take(&format!("{name}.bias"), &[c])?;
        Ok(TemporalConv { weight: be.upload(&weight), bias: be.upload(&bias) })
    }

    pub(crate) fn forward(&self, be: &B, x: &B::Tensor, frames: usize) -> B::Tensor {
        be.temporal_conv(x, &self.weight, &self.bias, frames)
    }
}

/// `nn.Linear(cin, cout)`.
pub(crate) struct Linear<B: Backend> {
    weight: B::Tensor,
    bias: B::Tensor,
}

impl<B: Backend> Linear<B> {
    pub(crate) fn load(be: &B, w: &mut Weights, name: &str, cin: usize, cout: usize) -> Result<Self, KernelError> {
        let weight = w.take(&format!("{name}.weight"), &[cout, cin])?;
        let bias = w.take(&format!("{name}.bias"), &[cout])?;
        Ok(Linear { weight: be.upload(&weight), bias: be.upload(&bias) })
    }

    pub(crate) fn forward(&self, be: &B, x: &B::Tensor) -> B::Tensor {
        be.linear(x, &self.weight, &self.bias)
    }
}

/// `nn.GroupNorm(groups, c, eps)`.
pub(crate) struct GroupNorm<B: Backend> {
    weight: B::Tensor,
    bias: B::Tensor,
    groups: usize,
    eps: f32,
}

impl<B: Backend> GroupNorm<B> {
    pub(crate) fn load(be: &B, w: &mut Weights, name: &str, c: usize, groups: usize, eps: f32) -> Result<Self, KernelError> {
        let weight = w.take(&format!("{name}.weight"), &[c])?;
        let bias = w.take(&format!("{name}.bias"), &[c])?;
        Ok(GroupNorm { weight: be.upload(&weight), bias: be.upload(&bias), groups, eps })
    }

    pub(crate) fn forward(&self, be: &B, x: &B::Tensor) -> B::Tensor {
        be.group_norm(x, &self.weight, &self.bias, self.groups, self.eps)
    }
}

/// A free parameter (`nn.Parameter`) uploaded as is.
pub(crate) fn parameter<B: Backend>(be: &B, w: &mut Weights, name: &str, shape: &[usize]) -> Result<B::Tensor, KernelError> {
    Ok(be.upload(&w.take(name, shape)?))
}
