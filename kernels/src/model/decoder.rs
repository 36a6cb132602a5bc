//! `Decoder` of net.py: latent frames `[N, L, h, w]` -> RGB frames in [-1, 1] (unclamped),
//! conv_in -> mid -> three (nearest 2x upsample, conv) -> conv_out, SiLU between. The result
//! stays channels-last `[N, 8h, 8w, 3]`, which is already the pixel order of a `Clip`.

use super::layers::Conv2d;
use super::weights::Weights;
use crate::backend::Backend;
use crate::error::KernelError;
use crate::tensor::Tensor;

/// Channel widths after conv_in / mid and after each upsampling stage (net.py's defaults).
const CH: [usize; 4] = [64, 64, 32, 16];

pub(crate) struct Decoder<B: Backend> {
    conv_in: Conv2d<B>,
    mid: Conv2d<B>,
    up: Vec<Conv2d<B>>,
    conv_out: Conv2d<B>,
}

impl<B: Backend> Decoder<B> {
    pub(crate) fn load(be: &B, w: &mut Weights, latent: usize) -> Result<Self, KernelError> {
        Ok(Decoder {
            conv_in: Conv2d::load(be, w, "decoder.conv_in", latent, CH[0], 1)?,
            mid: Conv2d::load(be, w, "decoder.mid", CH[0], CH[0], 1)?,
            up: (0..3)
                .map(|i| Conv2d::load(be, w, &format!("decoder.up.{i}"), CH[i], CH[i + 1], 1))
                .collect::<Result<_, _>>()?,
            conv_out: Conv2d::load(be, w, "decoder.conv_out", CH[3], 3, 1)?,
        })
    }

    /// `z [N, L, h, w]` (PyTorch layout) -> `[N, 8h, 8w, 3]`.
    pub(crate) fn forward(&self, be: &B, z: &Tensor) -> Tensor {
        assert_eq!(z.shape.len(), 4, "decoder input must be [N, L, H, W]");
        let mut h = self.conv_in.forward(be, &be.upload(&z.permute(&[0, 2, 3, 1])));
        be.silu(&mut h);
        let mut h = self.mid.forward(be, &h);
        be.silu(&mut h);
        for conv in &self.up {
            h = conv.forward(be, &be.upsample2x(&h));
            be.silu(&mut h);
        }
        be.download(&self.conv_out.forward(be, &h))
    }
}
