//! `config.json` of a checkpoint directory, as `model/export.py` writes it: the architecture
//! hyper-parameters of `model/train.py`, the vocabulary, the sampler defaults and what is
//! known about training. The pipeline reads sizes and defaults here.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::KernelError;
use crate::sampler::{Method, Prediction, T_MAX};

/// A checkpoint's `config.json`: architecture, vocabulary, sampler defaults, training facts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Name of the network design, part of the model id (e.g. `reel-cells-2p1d-v1`).
    pub architecture: String,
    /// Side of the square frames the model generates.
    pub base_size: usize,
    /// Side of the square pixel cell that one latent position holds (net.py's `to_cells`).
    pub patch: usize,
    /// Frames per generated clip.
    pub frames: usize,
    /// Frame rate of a generated clip (its duration is `frames / fps` seconds).
    pub fps: f32,
    /// Channels per latent position: `3 * patch^2` (RGB of a cell).
    pub latent_channels: usize,
    /// Width of the denoiser's feature maps.
    pub channels: usize,
    /// Residual blocks of the denoiser.
    pub blocks: usize,
    /// Width of the text and time embeddings.
    pub emb: usize,
    /// Caption tokens the text encoder reads (longer captions are an error).
    pub max_tokens: usize,
    /// Group norm groups.
    pub gn_groups: usize,
    /// Group norm epsilon.
    pub gn_eps: f32,
    /// What the denoiser predicts.
    pub prediction: Prediction,
    /// Noise schedule; only `cosine` is implemented.
    pub schedule: String,
    /// Time of the first sampling step; only [`T_MAX`] is implemented.
    pub t_max: f64,
    /// Caption words; index 0 is padding.
    pub vocab: Vec<String>,
    /// (colour, shape) pairs never shown together in training.
    #[serde(default)]
    pub held_out: Vec<[String; 2]>,
    /// Sampler settings the model was tuned with, used when a task gives none.
    pub sampler: SamplerDefaults,
    /// Training facts as train.py records them (command, device, steps, ...); absent for a
    /// randomly initialised export.
    #[serde(default)]
    pub training: Option<serde_json::Value>,
}

/// Default sampler settings of a checkpoint.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct SamplerDefaults {
    /// Solver.
    pub method: Method,
    /// Denoising steps.
    pub steps: usize,
    /// Classifier-free guidance scale.
    pub guidance: f32,
}

impl ModelConfig {
    /// Parses and checks a config; `path` only names its origin in errors.
    pub fn parse(text: &str, path: &Path) -> Result<ModelConfig, KernelError> {
        let bad = |message: String| KernelError::Config {
            path: path.into(),
            message,
        };
        let cfg: ModelConfig = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        // The Rust model implements exactly one architecture; refuse anything else loudly.
        if cfg.schedule != "cosine" || cfg.t_max != T_MAX {
            return Err(bad(format!(
                "unsupported schedule {} / t_max {}; kernels implement cosine / {T_MAX}",
                cfg.schedule, cfg.t_max
            )));
        }
        if cfg.vocab.is_empty()
            || cfg.frames == 0
            || cfg.gn_groups == 0
            || !cfg.channels.is_multiple_of(cfg.gn_groups)
        {
            return Err(bad(
                "empty vocabulary, no frames, or channels not divisible into groups".into(),
            ));
        }
        if cfg.patch == 0
            || !cfg.base_size.is_multiple_of(cfg.patch)
            || cfg.latent_channels != 3 * cfg.patch * cfg.patch
        {
            return Err(bad(format!(
                "base_size {} / patch {} / latent_channels {} do not describe RGB cells",
                cfg.base_size, cfg.patch, cfg.latent_channels
            )));
        }
        Ok(cfg)
    }

    /// Side of the latent grid of cells.
    pub fn latent_size(&self) -> usize {
        self.base_size / self.patch
    }

    /// Values in one clip latent, `[frames, latent_channels, latent_size, latent_size]`.
    pub fn latent_len(&self) -> usize {
        self.frames * self.latent_channels * self.latent_size() * self.latent_size()
    }
}
