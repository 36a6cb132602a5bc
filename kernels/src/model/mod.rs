//! reel's network on a `Backend`, module for module as `model/net.py` (the PyTorch state_dict
//! names are the lookup keys, so a renamed or missing parameter fails loading instead of
//! drifting): `TextEncoder` (text.rs) and `Denoiser` (denoiser.rs). Turning cells back into
//! pixels needs no weights (cells.rs). `Networks` erases the backend type so `Model` stays
//! one type whatever it computes on; `ResidentLatents` does the same for a scene's latents
//! kept on the backend between steps (`Model::with_resident_steps`).

mod denoiser;
mod layers;
mod text;
mod weights;

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::error::KernelError;
use crate::scene_step::SceneStep;
use crate::tensor::Tensor;
pub(crate) use weights::Weights;

/// The three inference networks behind one object-safe face; host tensors in and out.
pub(crate) trait Networks: Send + Sync {
    fn backend_name(&self) -> String;
    /// Token id rows -> conditions `[rows, emb]`.
    fn text(&self, ids: &[Vec<usize>]) -> Tensor;
    /// `z [B, F, L, H, W]`, `t [B]`, `cond [B, emb]` -> the prediction `[B, F, L, H, W]`.
    fn denoise(&self, z: &Tensor, t: &[f32], cond: &Tensor) -> Tensor;
    /// A scene's latent (`[F, L, h, w]`, host) moved to the backend, channels-last, with a
    /// zero x0 estimate beside it (no step reads it before writing it).
    fn resident(&self, latent: &Tensor) -> Box<dyn ResidentLatents>;
    /// One sampler step of `scenes` (kept by [`Networks::resident`] of this backend) without
    /// their latents leaving the backend: one denoiser pass over `2 n` clips (every scene's
    /// latent with its condition from `cond [2n, emb]`, then every latent again with the
    /// unconditional rows), `t [2n]`, then [`Backend::guided_step`] with `steps`.
    fn step_resident(
        &self,
        scenes: &mut [&mut dyn ResidentLatents],
        t: &[f32],
        cond: &Tensor,
        steps: &[SceneStep],
    );
}

/// A scene's latent and x0 estimate kept on a backend, behind a face without its type.
pub(crate) trait ResidentLatents: Send + Sync {
    /// The latent, downloaded, in the host path's `[F, L, h, w]` order.
    fn latent(&self) -> Vec<f32>;
    /// The x0 estimate of the last step, likewise (zeros before the first).
    fn estimate(&self) -> Vec<f32>;
    /// A copy, on the same backend.
    fn duplicate(&self) -> Box<dyn ResidentLatents>;
    /// The backend, in words.
    fn backend_name(&self) -> String;
    /// For [`Networks::step_resident`] to find its own tensor type again.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// [`ResidentLatents`] on `B`: both `[F, h, w, L]` (channels-last, as the denoiser reads
/// them).
struct BackendLatents<B: Backend> {
    backend: Arc<B>,
    latent: B::Tensor,
    x0: B::Tensor,
}

/// `[F, h, w, L]` on the backend -> `[F, L, h, w]` values on the host.
fn channels_first<B: Backend>(be: &B, t: &B::Tensor) -> Vec<f32> {
    be.download(t).permute(&[0, 3, 1, 2]).data
}

impl<B: Backend> ResidentLatents for BackendLatents<B> {
    fn latent(&self) -> Vec<f32> {
        channels_first(&*self.backend, &self.latent)
    }

    fn estimate(&self) -> Vec<f32> {
        channels_first(&*self.backend, &self.x0)
    }

    fn duplicate(&self) -> Box<dyn ResidentLatents> {
        let be = &*self.backend;
        Box::new(BackendLatents {
            backend: Arc::clone(&self.backend),
            latent: be.concat(&[&self.latent]),
            x0: be.concat(&[&self.x0]),
        })
    }

    fn backend_name(&self) -> String {
        self.backend.name()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

pub(crate) struct Reel<B: Backend> {
    /// Shared with the scenes' [`BackendLatents`], which download through it.
    backend: Arc<B>,
    text: text::TextEncoder<B>,
    denoiser: denoiser::Denoiser<B>,
    frames: usize,
}

impl<B: Backend> Reel<B> {
    pub(crate) fn load(
        backend: B,
        mut w: Weights,
        cfg: &ModelConfig,
        path: &Path,
    ) -> Result<Self, KernelError> {
        let be = &backend;
        let text = text::TextEncoder::load(be, &mut w, cfg.vocab.len(), cfg.max_tokens, cfg.emb)?;
        let denoiser = denoiser::Denoiser::load(be, &mut w, cfg)?;
        w.finish()
            .map_err(|e| KernelError::Weights(format!("{}: {e}", path.display())))?;
        Ok(Reel {
            backend: Arc::new(backend),
            text,
            denoiser,
            frames: cfg.frames,
        })
    }
}

impl<B: Backend> Networks for Reel<B> {
    fn backend_name(&self) -> String {
        self.backend.name()
    }

    fn text(&self, ids: &[Vec<usize>]) -> Tensor {
        self.backend.run(|| self.text.forward(&self.backend, ids))
    }

    fn denoise(&self, z: &Tensor, t: &[f32], cond: &Tensor) -> Tensor {
        self.backend
            .run(|| self.denoiser.forward(&self.backend, z, t, cond))
    }

    fn resident(&self, latent: &Tensor) -> Box<dyn ResidentLatents> {
        let be = &*self.backend;
        let x = latent.permute(&[0, 2, 3, 1]);
        Box::new(BackendLatents {
            backend: Arc::clone(&self.backend),
            latent: be.upload(&x),
            x0: be.upload(&Tensor::zeros(&x.shape)),
        })
    }

    fn step_resident(
        &self,
        scenes: &mut [&mut dyn ResidentLatents],
        t: &[f32],
        cond: &Tensor,
        steps: &[SceneStep],
    ) {
        let mut scenes: Vec<&mut BackendLatents<B>> = scenes
            .iter_mut()
            .map(|s| {
                s.as_any_mut()
                    .downcast_mut()
                    .expect("a scene kept on another kind of backend")
            })
            .collect();
        let (be, f) = (&*self.backend, self.frames);
        be.run(|| {
            let latents: Vec<&B::Tensor> = scenes.iter().map(|s| &s.latent).collect();
            let x0s: Vec<&B::Tensor> = scenes.iter().map(|s| &s.x0).collect();
            // The conditional clips, then the same latents again for the unconditional ones.
            let input = be.concat(&[&latents[..], &latents[..]].concat());
            let out = self.denoiser.forward_channels_last(be, &input, t, cond);
            let (mut z, mut x0) = (be.concat(&latents), be.concat(&x0s));
            be.guided_step(&mut z, &mut x0, &out, steps)
                .unwrap_or_else(|e| panic!("the sampler step of a resident batch: {e}"));
            for (i, s) in scenes.iter_mut().enumerate() {
                s.latent = be.slice(&z, i * f..(i + 1) * f);
                s.x0 = be.slice(&x0, i * f..(i + 1) * f);
            }
        })
    }
}
