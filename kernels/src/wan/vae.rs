//! The Wan2.1 VAE decoder (diffusers' `AutoencoderKLWan.decode`) on the CPU in f32, one latent
//! frame at a time, and what `WanPipeline` does around it.
//!
//! The math, for a latent `z` `[z_dim, F, h, w]` as the transformer leaves it (normalised):
//!
//! - De-normalisation, as the pipeline writes it: `z / (1 / std[c]) + mean[c]` per channel
//!   (`latents_mean` / `latents_std` of the VAE config, in f32).
//! - `post_quant_conv`, a 1x1x1 conv.
//! - The decoder, with widths `dims = base * [m_last, m_last, ..., m_0]` (the config's
//!   `dim_mult` reversed, its last entry first): a causal 3x3x3 `conv_in` to `dims[0]`; the mid
//!   block (residual block, per-frame attention, residual block); one up block per level,
//!   each `num_res_blocks + 1` residual blocks to `dims[i + 1]` and, except the last, an
//!   upsampler that doubles height and width, halves the width in channels, and doubles time
//!   where the encoder halved it (`temperal_downsample` reversed); then the RMS norm, SiLU
//!   and a causal 3x3x3 `conv_out` to RGB. See `vae_blocks.rs` for each block's math.
//! - `clamp(-1, 1)`.
//! - The pipeline's postprocess ([`postprocess_video`]): `(x / 2 + 0.5).clamp(0, 1)`, frames
//!   `[F, H, W, 3]`.
//!
//! Causal convolutions pad only in the past along time. diffusers runs the decoder on one
//! latent frame at a time, each causal conv carrying the last 2 frames of its input over to
//! the next call; [`WanVaeDecoder::decode_frame`] does the same with a [`WanVaeState`], so the
//! first latent frame decodes to one video frame (the temporal upsamplers skip it) and every
//! later one to `2^(temporal upsamplings)` (4 for Wan2.1), `8 h x 8 w` each.

use std::path::Path;

use rayon::prelude::*;

use super::conv3d::Conv;
use super::vae_blocks::{
    causal, per_frame, rms_norm, Attention, Frames, Params, Residual, Slot, Upsample,
};
use super::{WanCheckpoint, WanLoadError, WanTensor, WanVaeConfig};

/// One decoder level: residual blocks, then (except at the last level) an upsampler.
struct UpBlock {
    resnets: Vec<Residual>,
    upsample: Option<Upsample>,
}

/// The decoding half of a Wan2.1 VAE, weights widened to f32 and packed once at load.
pub struct WanVaeDecoder {
    z_dim: usize,
    out_channels: usize,
    mean: Vec<f32>,
    /// `1 / latents_std`, in f32 as the pipeline computes it.
    inv_std: Vec<f32>,
    post_quant_conv: Conv,
    conv_in: Conv,
    mid: (Residual, Attention, Residual),
    up_blocks: Vec<UpBlock>,
    norm_out: Vec<f32>,
    conv_out: Conv,
    /// Feature cache entries: one per causal conv with a time extent.
    slots: usize,
}

impl std::fmt::Debug for WanVaeDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WanVaeDecoder")
            .field("z_dim", &self.z_dim)
            .field("levels", &self.up_blocks.len())
            .field("spatial_scale", &self.spatial_scale())
            .field("temporal_scale", &self.temporal_scale())
            .finish_non_exhaustive()
    }
}

/// Where a decode stands: the feature cache of every causal conv, for one video of one
/// latent size. Made by [`WanVaeDecoder::start`], advanced by
/// [`WanVaeDecoder::decode_frame`].
pub struct WanVaeState {
    height: usize,
    width: usize,
    frames: usize,
    slots: Vec<Slot>,
}

impl std::fmt::Debug for WanVaeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WanVaeState")
            .field("height", &self.height)
            .field("width", &self.width)
            .field("frames_decoded", &self.frames)
            .finish_non_exhaustive()
    }
}

impl WanVaeState {
    /// Latent frames decoded so far.
    pub fn frames_decoded(&self) -> usize {
        self.frames
    }
}

/// Tensors by name from a lookup, checked for shape and widened to f32.
struct Lookup<'p, F> {
    source: &'p Path,
    tensor: F,
}

impl<'a, F: Fn(&str) -> Option<WanTensor<'a>>> Params for Lookup<'_, F> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WanLoadError> {
        match (self.tensor)(name) {
            Some(t) if t.shape == shape => Ok(t.to_f32()),
            Some(t) => Err(WanLoadError::WrongShape {
                path: self.source.to_path_buf(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape.to_vec(),
            }),
            None => Err(WanLoadError::MissingTensor {
                path: self.source.to_path_buf(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
            }),
        }
    }
}

impl WanVaeDecoder {
    /// Reads the VAE decoder's weights from `ckpt`, widened to f32 and packed once.
    pub fn from_checkpoint(ckpt: &WanCheckpoint) -> Result<WanVaeDecoder, WanLoadError> {
        let weights = ckpt.vae();
        WanVaeDecoder::from_tensors(ckpt.vae_config(), &ckpt.dir.join("vae"), |name| {
            weights.tensor(name)
        })
    }

    /// Builds the decoder `config` describes from `tensor`, which maps diffusers' parameter
    /// names (`decoder.conv_in.weight`, ...) to tensors in any supported type; `source` names
    /// where they come from in errors. A checkpoint's VAE is read by
    /// [`WanVaeDecoder::from_checkpoint`]; this also serves weights held elsewhere.
    pub fn from_tensors<'a>(
        config: &WanVaeConfig,
        source: &Path,
        tensor: impl Fn(&str) -> Option<WanTensor<'a>>,
    ) -> Result<WanVaeDecoder, WanLoadError> {
        config.validate(&source.join("config.json"))?;
        let p = Lookup { source, tensor };
        let base = config.decoder_dim();
        let levels = config.dim_mult.len();
        let dims: Vec<usize> = std::iter::once(config.dim_mult[levels - 1])
            .chain(config.dim_mult.iter().rev().copied())
            .map(|m| m * base)
            .collect();
        let temporal: Vec<bool> = config.temperal_downsample.iter().rev().copied().collect();
        let z = config.z_dim;
        let mid = "decoder.mid_block";
        let mut up_blocks = Vec::with_capacity(levels);
        for i in 0..levels {
            let out = dims[i + 1];
            // Each upsampler halves the width, so every level after the first starts at half.
            let mut width = if i == 0 { dims[0] } else { dims[i] / 2 };
            let b = format!("decoder.up_blocks.{i}");
            let mut resnets = Vec::with_capacity(config.num_res_blocks + 1);
            for j in 0..=config.num_res_blocks {
                resnets.push(Residual::load(&p, &format!("{b}.resnets.{j}"), width, out)?);
                width = out;
            }
            let upsample = (i + 1 < levels)
                .then(|| Upsample::load(&p, &format!("{b}.upsamplers.0"), out, temporal[i]))
                .transpose()?;
            up_blocks.push(UpBlock { resnets, upsample });
        }
        let last = dims[levels];
        let slots = 2 // conv_in, conv_out
            + 2 * Residual::SLOTS
            + up_blocks
                .iter()
                .map(|b| {
                    b.resnets.len() * Residual::SLOTS + b.upsample.as_ref().map_or(0, |u| u.slots())
                })
                .sum::<usize>();
        Ok(WanVaeDecoder {
            z_dim: z,
            out_channels: config.out_channels,
            mean: config.latents_mean.iter().map(|&m| m as f32).collect(),
            inv_std: config.latents_std.iter().map(|&s| 1.0 / s as f32).collect(),
            post_quant_conv: p.conv("post_quant_conv", z, z, 1, 1)?,
            conv_in: p.conv("decoder.conv_in", z, dims[0], 3, 3)?,
            mid: (
                Residual::load(&p, &format!("{mid}.resnets.0"), dims[0], dims[0])?,
                Attention::load(&p, &format!("{mid}.attentions.0"), dims[0])?,
                Residual::load(&p, &format!("{mid}.resnets.1"), dims[0], dims[0])?,
            ),
            up_blocks,
            norm_out: p.get("decoder.norm_out.gamma", &[last, 1, 1, 1])?,
            conv_out: p.conv("decoder.conv_out", last, config.out_channels, 3, 3)?,
            slots,
        })
    }

    /// Latent channels.
    pub fn z_dim(&self) -> usize {
        self.z_dim
    }

    /// Pixels per latent pixel along height and width (8 for Wan2.1).
    pub fn spatial_scale(&self) -> usize {
        1 << self
            .up_blocks
            .iter()
            .filter(|b| b.upsample.is_some())
            .count()
    }

    /// Video frames per latent frame after the first, which gives one (4 for Wan2.1).
    pub fn temporal_scale(&self) -> usize {
        self.up_blocks
            .iter()
            .filter_map(|b| b.upsample.as_ref())
            .map(Upsample::time_factor)
            .product()
    }

    /// Video frames that `latent_frames` latent frames decode to: `1 + 4 (F - 1)` for Wan2.1.
    pub fn video_frames(&self, latent_frames: usize) -> usize {
        if latent_frames == 0 {
            0
        } else {
            1 + self.temporal_scale() * (latent_frames - 1)
        }
    }

    /// A fresh decode of a video whose latent frames are `height x width`.
    pub fn start(&self, height: usize, width: usize) -> WanVaeState {
        WanVaeState {
            height,
            width,
            frames: 0,
            slots: (0..self.slots).map(|_| Slot::Empty).collect(),
        }
    }

    /// Decodes the next latent frame of `state`'s video: `latent` is that frame, normalised
    /// (as the transformer leaves it), `[z_dim, height, width]` row-major. Returns its video
    /// frames (1 for the first latent frame, [`WanVaeDecoder::temporal_scale`] for each later
    /// one) as `[n, H, W, out_channels]` row-major in `[-1, 1]`, `H = height * s`,
    /// `W = width * s` with `s` the [`WanVaeDecoder::spatial_scale`]. Frames are final when
    /// returned: later latent frames do not change them.
    ///
    /// Work is split over the rayon pool (run inside `ThreadPool::install` to choose the
    /// threads). The state holds 2 frames of input per causal conv at that conv's resolution
    /// and width, as diffusers' cache does. Panics if `latent` has the wrong size or `state`
    /// did not come from this decoder's [`WanVaeDecoder::start`].
    pub fn decode_frame(&self, state: &mut WanVaeState, latent: &[f32]) -> Vec<f32> {
        let (h, w, z) = (state.height, state.width, self.z_dim);
        assert_eq!(latent.len(), z * h * w, "latent frame is not [z_dim, h, w]");
        assert_eq!(state.slots.len(), self.slots, "a state of another decoder");
        // De-normalise and go channels-last.
        let mut x = Frames::zeros(1, h, w, z);
        for (p, px) in x.data.chunks_exact_mut(z).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                *v = latent[c * h * w + p] / self.inv_std[c] + self.mean[c];
            }
        }
        let x = per_frame(&self.post_quant_conv, &x);

        let mut slots = state.slots.iter_mut();
        let slots = &mut slots;
        let mut x = causal(&self.conv_in, &x, slots.next().expect("conv_in slot"));
        let (res0, attention, res1) = &self.mid;
        x = res0.forward(x, slots);
        x = attention.forward(x);
        x = res1.forward(x, slots);
        for block in &self.up_blocks {
            for resnet in &block.resnets {
                x = resnet.forward(x, slots);
            }
            if let Some(upsample) = &block.upsample {
                x = upsample.forward(x, slots);
            }
        }
        let y = x.with_data(rms_norm(&x.data, x.c, &self.norm_out, true));
        let mut out = causal(&self.conv_out, &y, slots.next().expect("conv_out slot"));
        debug_assert!(slots.next().is_none(), "every cache slot used");
        out.data
            .par_chunks_mut(4096)
            .for_each(|c| c.iter_mut().for_each(|v| *v = v.clamp(-1.0, 1.0)));
        state.frames += 1;
        debug_assert_eq!(out.c, self.out_channels);
        out.data
    }

    /// Decodes a whole normalised latent `[z_dim, frames, height, width]` (diffusers' layout
    /// without the batch) with [`WanVaeDecoder::decode_frame`], frame by frame as diffusers
    /// does: the video `[video_frames(frames), H, W, out_channels]` in `[-1, 1]`, the values of
    /// `AutoencoderKLWan.decode` after the pipeline's de-normalisation (whose layout is
    /// `[out_channels, F, H, W]`).
    pub fn decode(&self, latent: &[f32], frames: usize, height: usize, width: usize) -> Vec<f32> {
        let hw = height * width;
        assert_eq!(
            latent.len(),
            self.z_dim * frames * hw,
            "latent is not [z_dim, frames, h, w]"
        );
        let mut state = self.start(height, width);
        let mut video = Vec::new();
        let mut frame = vec![0.0f32; self.z_dim * hw];
        for f in 0..frames {
            for (c, dst) in frame.chunks_exact_mut(hw).enumerate() {
                dst.copy_from_slice(&latent[(c * frames + f) * hw..][..hw]);
            }
            video.extend(self.decode_frame(&mut state, &frame));
        }
        video
    }
}

/// The pipeline's `video_processor.postprocess_video` to numpy, in place: decoded values in
/// `[-1, 1]` to `(x / 2 + 0.5).clamp(0, 1)`. The layout is the decoder's already
/// (`[F, H, W, 3]`).
pub fn postprocess_video(video: &mut [f32]) {
    video.par_chunks_mut(4096).for_each(|c| {
        c.iter_mut()
            .for_each(|v| *v = (*v * 0.5 + 0.5).clamp(0.0, 1.0))
    });
}
