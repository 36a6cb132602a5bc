//! `Denoiser` and `Block` of net.py: a (2+1)D residual stack predicting x0 (or v, per the
//! config) on cell clips.
//! Each block: GroupNorm -> SiLU -> 3x3 conv, FiLM from the time + text embedding, GroupNorm
//! -> FiLM -> SiLU -> temporal conv, residual add. Host tensors in and out are in PyTorch's
//! `[B, F, L, h, w]` (L = the cell channels); inside, activations are channels-last `[B * F, H, W, C]`.

use super::layers::{parameter, Conv2d, GroupNorm, Linear, TemporalConv};
use super::weights::Weights;
use crate::backend::{Backend, Norm};
use crate::config::ModelConfig;
use crate::error::KernelError;
use crate::tensor::Tensor;

/// Width of the sinusoidal time embedding (net.py's `timestep_embedding(t, 64)`).
const TIME_DIM: usize = 64;

struct Block<B: Backend> {
    norm1: GroupNorm<B>,
    conv: Conv2d<B>,
    film: Linear<B>,
    norm2: GroupNorm<B>,
    tconv: TemporalConv<B>,
}

impl<B: Backend> Block<B> {
    fn load(be: &B, w: &mut Weights, name: &str, cfg: &ModelConfig) -> Result<Self, KernelError> {
        let (ch, norm) = (cfg.channels, norm_of(cfg));
        Ok(Block {
            norm1: GroupNorm::load(be, w, &format!("{name}.norm1"), ch, norm)?,
            conv: Conv2d::load(be, w, &format!("{name}.conv"), ch, ch)?,
            film: Linear::load(be, w, &format!("{name}.film"), cfg.emb, 2 * ch)?,
            norm2: GroupNorm::load(be, w, &format!("{name}.norm2"), ch, norm)?,
            tconv: TemporalConv::load(be, w, &format!("{name}.tconv"), ch)?,
        })
    }

    /// `h [B*F, H, W, C]` updated in place; `silu_e` is SiLU(embedding) `[B, emb]`.
    fn forward(&self, be: &B, h: &mut B::Tensor, silu_e: &B::Tensor, frames: usize) {
        let a = self.conv.forward(be, &self.norm1.forward_silu(be, h, None));
        let scale_shift = self.film.forward(be, silu_e);
        let a = self
            .norm2
            .forward_silu(be, &a, Some((&scale_shift, frames)));
        self.tconv.forward_residual(be, h, &a, frames);
    }
}

fn norm_of(cfg: &ModelConfig) -> Norm {
    Norm {
        groups: cfg.gn_groups,
        eps: cfg.gn_eps,
    }
}

pub(crate) struct Denoiser<B: Backend> {
    conv_in: Conv2d<B>,
    frame_emb: B::Tensor,
    t_fc1: Linear<B>,
    t_fc2: Linear<B>,
    blocks: Vec<Block<B>>,
    norm_out: GroupNorm<B>,
    conv_out: Conv2d<B>,
    frames: usize,
}

impl<B: Backend> Denoiser<B> {
    pub(crate) fn load(be: &B, w: &mut Weights, cfg: &ModelConfig) -> Result<Self, KernelError> {
        let (l, ch, emb) = (cfg.latent_channels, cfg.channels, cfg.emb);
        Ok(Denoiser {
            conv_in: Conv2d::load(be, w, "denoiser.conv_in", l, ch)?,
            frame_emb: parameter(be, w, "denoiser.frame_emb", &[cfg.frames, ch])?,
            t_fc1: Linear::load(be, w, "denoiser.t_fc1", TIME_DIM, emb)?,
            t_fc2: Linear::load(be, w, "denoiser.t_fc2", emb, emb)?,
            blocks: (0..cfg.blocks)
                .map(|i| Block::load(be, w, &format!("denoiser.blocks.{i}"), cfg))
                .collect::<Result<_, _>>()?,
            norm_out: GroupNorm::load(be, w, "denoiser.norm_out", ch, norm_of(cfg))?,
            conv_out: Conv2d::load(be, w, "denoiser.conv_out", ch, l)?,
            frames: cfg.frames,
        })
    }

    /// The prediction: `z [B, F, L, H, W]`, `t [B]`, `cond [B, emb]` -> `[B, F, L, H, W]`, host
    /// tensors in PyTorch's layout around [`Denoiser::forward_channels_last`].
    pub(crate) fn forward(&self, be: &B, z: &Tensor, t: &[f32], cond: &Tensor) -> Tensor {
        let [b, f, l, hh, ww] = match z.shape[..] {
            [b, f, l, h, w] => [b, f, l, h, w],
            _ => panic!("denoiser input must be [B, F, L, H, W], got {:?}", z.shape),
        };
        assert!(f == self.frames && t.len() == b, "denoiser batch mismatch");
        let x = z
            .clone()
            .reshape(&[b * f, l, hh, ww])
            .permute(&[0, 2, 3, 1]);
        let out = be.download(&self.forward_channels_last(be, &be.upload(&x), t, cond));
        out.permute(&[0, 3, 1, 2]).reshape(&[b, f, l, hh, ww])
    }

    /// The prediction on the backend, channels-last as the ops want it: `x [B * F, H, W, L]`
    /// (clip `i`'s frames consecutive), `t [B]`, `cond [B, emb]` -> `[B * F, H, W, L]`. What
    /// `Model::with_resident_steps` runs on latents kept on the backend.
    pub(crate) fn forward_channels_last(
        &self,
        be: &B,
        x: &B::Tensor,
        t: &[f32],
        cond: &Tensor,
    ) -> B::Tensor {
        assert!(cond.shape[0] == t.len(), "denoiser batch mismatch");
        let mut e = self.t_fc1.forward(be, &be.upload(&timestep_embedding(t)));
        be.silu(&mut e);
        let mut e = self.t_fc2.forward(be, &e);
        be.add(&mut e, &be.upload(cond));
        be.silu(&mut e); // every block's FiLM reads SiLU(e)

        let mut h = self.conv_in.forward(be, x);
        be.add_frame_embedding(&mut h, &self.frame_emb);
        for blk in &self.blocks {
            blk.forward(be, &mut h, &e, self.frames);
        }
        self.conv_out
            .forward(be, &self.norm_out.forward_silu(be, &h, None))
    }
}

/// net.py's `timestep_embedding(t, 64)` with its float32 rounding: `[B]` -> `[B, 64]`,
/// cosines first. Transcendentals in f64, rounded once.
fn timestep_embedding(t: &[f32]) -> Tensor {
    let half = TIME_DIM / 2;
    let neg_log = (-(10000.0f64.ln())) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (((neg_log * i as f32) / half as f32) as f64).exp() as f32)
        .collect();
    let mut out = Vec::with_capacity(t.len() * TIME_DIM);
    for &ti in t {
        let args: Vec<f64> = freqs
            .iter()
            .map(|&fr| ((ti * 1000.0) * fr) as f64)
            .collect();
        out.extend(args.iter().map(|a| a.cos() as f32));
        out.extend(args.iter().map(|a| a.sin() as f32));
    }
    Tensor::new(&[t.len(), TIME_DIM], out)
}
