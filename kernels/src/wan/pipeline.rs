//! `WanPipeline`'s denoising loop: for each timestep of the sampler, the transformer's
//! prediction for the prompt and (with guidance) for the negative prompt, combined by
//! classifier-free guidance, then one sampler step.
//!
//! Guidance is on when the scale `g > 1` (as diffusers'
//! `do_classifier_free_guidance`): `v = v_neg + g (v_cond - v_neg)`. diffusers makes the two
//! predictions as two transformer calls; here they are one batch of 2
//! ([`WanTransformer::forward_batch`]), whose predictions equal the two single calls. The
//! latent starts as the caller gives it (diffusers draws it from torch's generator; Wan's
//! initial noise sigma is 1, so no scaling) and ends as the denoised latent, before the VAE's
//! de-normalisation.

use rayon::prelude::*;

use super::{
    FlowMatchEulerScheduler, UniPcScheduler, WanInput, WanScheduler, WanTextContext, WanTransformer,
};

/// The sampler of a denoising run: the checkpoint's scheduler with its step count.
#[derive(Debug, Clone)]
pub enum WanSampler {
    /// UniPC multistep (Wan2.1's default).
    UniPc(UniPcScheduler),
    /// Flow-matching Euler.
    FlowMatchEuler(FlowMatchEulerScheduler),
}

impl WanSampler {
    /// The sampler `config` describes, for `steps` steps.
    ///
    /// Panics if `steps` is 0 or the config is unsupported (see the schedulers' `new`).
    pub fn new(config: &WanScheduler, steps: usize) -> WanSampler {
        match config {
            WanScheduler::UniPc(c) => WanSampler::UniPc(UniPcScheduler::new(c, steps)),
            WanScheduler::FlowMatchEuler(c) => {
                WanSampler::FlowMatchEuler(FlowMatchEulerScheduler::new(c, steps))
            }
        }
    }

    /// The timestep the transformer is given at each step.
    pub fn timesteps(&self) -> Vec<f32> {
        match self {
            WanSampler::UniPc(s) => s.timesteps().iter().map(|&t| t as f32).collect(),
            WanSampler::FlowMatchEuler(s) => s.timesteps().to_vec(),
        }
    }

    /// One step from the model's (guided) output for `sample`.
    pub fn step(&mut self, model_output: &[f32], sample: &[f32]) -> Vec<f32> {
        match self {
            WanSampler::UniPc(s) => s.step(model_output, sample),
            WanSampler::FlowMatchEuler(s) => s.step(model_output, sample),
        }
    }
}

/// What conditions a denoising run.
#[derive(Debug, Clone, Copy)]
pub struct Guidance<'a> {
    /// The prompt.
    pub prompt: &'a WanTextContext,
    /// The negative prompt (the empty prompt by default in `WanPipeline`); used only when
    /// `scale > 1`.
    pub negative: &'a WanTextContext,
    /// The guidance scale (5.0 for Wan2.1).
    pub scale: f32,
}

/// Runs every step of `sampler` on `latents` (`[C, F, H, W]` as `shape`), returning the
/// denoised latent; `on_step(i, latents)` sees the latent after each step.
pub fn denoise(
    transformer: &WanTransformer,
    mut latents: Vec<f32>,
    shape: [usize; 4],
    sampler: &mut WanSampler,
    guidance: Guidance<'_>,
    mut on_step: impl FnMut(usize, &[f32]),
) -> Vec<f32> {
    for (i, t) in sampler.timesteps().into_iter().enumerate() {
        let item = |context| WanInput {
            latent: &latents,
            shape,
            timestep: t,
            context,
        };
        let v = if guidance.scale > 1.0 {
            let mut out =
                transformer.forward_batch(&[item(guidance.prompt), item(guidance.negative)]);
            let (uncond, mut v) = (out.pop().expect("2 outputs"), out.pop().expect("2 outputs"));
            let g = guidance.scale;
            v.par_iter_mut()
                .zip(&uncond)
                .for_each(|(c, &u)| *c = u + g * (*c - u));
            v
        } else {
            transformer.forward(&latents, shape, t, guidance.prompt)
        };
        latents = sampler.step(&v, &latents);
        on_step(i, &latents);
    }
    latents
}
