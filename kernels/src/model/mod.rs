//! reel's network on a `Backend`, module for module as `model/net.py` (the PyTorch state_dict
//! names are the lookup keys, so a renamed or missing parameter fails loading instead of
//! drifting): `TextEncoder` (text.rs) and `Denoiser` (denoiser.rs). Turning cells back into
//! pixels needs no weights (cells.rs). `Networks` erases the backend type so `Model` stays
//! one type whatever it computes on.

mod denoiser;
mod layers;
mod text;
mod weights;

use std::path::Path;

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::error::KernelError;
use crate::tensor::Tensor;
pub(crate) use weights::Weights;

/// The three inference networks behind one object-safe face; host tensors in and out.
pub(crate) trait Networks: Send + Sync {
    fn backend_name(&self) -> String;
    /// Token id rows -> conditions `[rows, emb]`.
    fn text(&self, ids: &[Vec<usize>]) -> Tensor;
    /// `z [B, F, L, H, W]`, `t [B]`, `cond [B, emb]` -> the prediction `[B, F, L, H, W]`.
    fn denoise(&self, z: &Tensor, t: &[f32], cond: &Tensor) -> Tensor;
}

pub(crate) struct Reel<B: Backend> {
    backend: B,
    text: text::TextEncoder<B>,
    denoiser: denoiser::Denoiser<B>,
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
            backend,
            text,
            denoiser,
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
}
