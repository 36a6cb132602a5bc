//! Wan2.1 text-to-video checkpoints in the diffusers layout (`WanPipeline` as
//! `save_pretrained` writes it, e.g. Wan2.1-T2V-1.3B-Diffusers).
//!
//! Done: loading and validation. [`WanCheckpoint::open`] reads `model_index.json`, every
//! component's config into typed structs, the scheduler config and the umT5 tokenizer, and
//! memory-maps the safetensors weights (single file or sharded), checking every tensor's
//! name, shape and type against what the configs imply, so that a wrong or damaged
//! checkpoint fails at start-up with a message naming the file and tensor instead of
//! producing garbage later. [`WanCheckpoint::describe`] summarises it for logs and readiness.
//!
//! Model math, on the CPU in f32, at parity with diffusers / transformers:
//! - the umT5 text encoder ([`Umt5Encoder`], and [`prompt_embeds`] for the pipeline's zeroing
//!   of rows past the prompt);
//! - the denoising transformer ([`WanTransformer`]; a prompt's cross-attention keys and
//!   values made once as a [`WanTextContext`]), its weights kept in their stored precision
//!   and widened per GEMM panel;
//! - the samplers: UniPC multistep with its corrector ([`UniPcScheduler`]) and flow-matching
//!   Euler ([`FlowMatchEulerScheduler`]), both as [`WanSampler`];
//! - the denoising loop with classifier-free guidance ([`denoise`]);
//! - the VAE decoder ([`WanVaeDecoder`], one latent frame at a time with its feature cache in
//!   a [`WanVaeState`], and [`postprocess_video`] for the pipeline's frames in `[0, 1]`).
//!
//! Attention (umT5's and the transformer's) is tiled with an online softmax and never holds
//! a score matrix.
//!
//! Served: [`WanModel`] puts them together behind `kernels::VideoModel` (tokenizer, umT5,
//! transformer with guidance, sampler, VAE streaming one latent frame at a time), what
//! `reel serve --model wan:DIR` runs; with `--step-cache` a pass may reuse the residual of
//! the scene's last computed pass ([`step_cache`], in the manner of TeaCache).

mod attention;
mod config;
mod conv3d;
mod error;
mod euler;
mod expected;
mod linear;
mod pipeline;
mod rope;
mod served;
pub mod step_cache;
mod transformer;
mod umt5;
/// Shared with the CUDA scheduler plan (`cuda::wan::step`), which must not drift from it.
pub(crate) mod unipc;
mod vae;
mod vae_blocks;
mod weights;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use config::{
    FlowMatchEulerConfig, Umt5Config, UniPcConfig, WanModelIndex, WanScheduler,
    WanTransformerConfig, WanVaeConfig,
};
pub use error::WanLoadError;
pub use euler::FlowMatchEulerScheduler;
pub use pipeline::{denoise, Guidance, WanSampler};
pub use served::{WanModel, TEXT_LEN};
pub use step_cache::StepCache;
pub use transformer::{WanInput, WanTextContext, WanTransformer};
pub use umt5::{prompt_embeds, relative_position_bucket, Umt5Encoder};
pub use unipc::UniPcScheduler;
pub use vae::{postprocess_video, WanVaeDecoder, WanVaeState};
pub use weights::{WanDtype, WanTensor, WanWeights, WeightsSummary};

use config::read_json;

/// A validated Wan2.1 pipeline directory: configs, tokenizer and mapped weights.
#[derive(Debug)]
pub struct WanCheckpoint {
    dir: PathBuf,
    index: WanModelIndex,
    transformer_config: WanTransformerConfig,
    text_encoder_config: Umt5Config,
    vae_config: WanVaeConfig,
    scheduler: WanScheduler,
    tokenizer: tokenizers::Tokenizer,
    transformer: WanWeights,
    text_encoder: WanWeights,
    vae: WanWeights,
}

/// One component in [`WanSummary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentSummary {
    /// The component's directory name: `transformer`, `text_encoder` or `vae`.
    pub name: String,
    /// The class `model_index.json` gives for it.
    pub class: String,
    /// Counts, sizes and types of its weights.
    #[serde(flatten)]
    pub weights: WeightsSummary,
}

/// What [`WanCheckpoint::describe`] reports: enough to tell from a log line or `/readyz` which
/// checkpoint is loaded, how big it is and in what precision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WanSummary {
    /// The checkpoint directory.
    pub dir: PathBuf,
    /// The pipeline class (`WanPipeline`).
    pub pipeline: String,
    /// The scheduler class.
    pub scheduler: String,
    /// Tokens in the tokenizer's vocabulary, added tokens included.
    pub vocab_size: usize,
    /// The weighted components, in pipeline order: text encoder, transformer, VAE.
    pub components: Vec<ComponentSummary>,
}

impl WanCheckpoint {
    /// Opens and validates the pipeline directory `dir`. Reads every config, the tokenizer and
    /// the weights' headers; the weights' data is mapped, not read.
    pub fn open(dir: &Path) -> Result<WanCheckpoint, WanLoadError> {
        let index_path = dir.join("model_index.json");
        let index: WanModelIndex = read_json(&index_path)?;
        index.validate(&index_path)?;

        let path = dir.join("transformer/config.json");
        let transformer_config: WanTransformerConfig = read_json(&path)?;
        transformer_config.validate(&path)?;

        let path = dir.join("text_encoder/config.json");
        let text_encoder_config: Umt5Config = read_json(&path)?;
        text_encoder_config.validate(&path)?;

        let path = dir.join("vae/config.json");
        let vae_config: WanVaeConfig = read_json(&path)?;
        vae_config.validate(&path)?;

        let scheduler = WanScheduler::read(&dir.join("scheduler/scheduler_config.json"))?;

        let path = dir.join("tokenizer/tokenizer.json");
        let bytes = std::fs::read(&path).map_err(|source| WanLoadError::Io {
            path: path.clone(),
            source,
        })?;
        let tokenizer =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| WanLoadError::Tokenizer {
                path: path.clone(),
                message: e.to_string(),
            })?;

        // Every id the tokenizer can produce indexes umT5's embedding; a tokenizer from
        // another model would otherwise fail (or read garbage) at the first prompt.
        let tokens = tokenizer.get_vocab_size(true);
        if tokens > text_encoder_config.vocab_size {
            return Err(WanLoadError::Config {
                path,
                message: format!(
                    "{tokens} tokens, but text_encoder/config.json has vocab_size {}",
                    text_encoder_config.vocab_size
                ),
            });
        }

        let transformer = WanWeights::open(
            &dir.join("transformer"),
            &expected::transformer(&transformer_config),
        )?;
        let text_encoder = WanWeights::open(
            &dir.join("text_encoder"),
            &expected::text_encoder(&text_encoder_config),
        )?;
        let vae = WanWeights::open(&dir.join("vae"), &expected::vae(&vae_config))?;

        Ok(WanCheckpoint {
            dir: dir.to_path_buf(),
            index,
            transformer_config,
            text_encoder_config,
            vae_config,
            scheduler,
            tokenizer,
            transformer,
            text_encoder,
            vae,
        })
    }

    /// `model_index.json`.
    pub fn model_index(&self) -> &WanModelIndex {
        &self.index
    }

    /// `transformer/config.json`.
    pub fn transformer_config(&self) -> &WanTransformerConfig {
        &self.transformer_config
    }

    /// `text_encoder/config.json`.
    pub fn text_encoder_config(&self) -> &Umt5Config {
        &self.text_encoder_config
    }

    /// `vae/config.json`.
    pub fn vae_config(&self) -> &WanVaeConfig {
        &self.vae_config
    }

    /// `scheduler/scheduler_config.json`.
    pub fn scheduler(&self) -> &WanScheduler {
        &self.scheduler
    }

    /// The umT5 tokenizer from `tokenizer/tokenizer.json`.
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }

    /// The denoising transformer's weights.
    pub fn transformer(&self) -> &WanWeights {
        &self.transformer
    }

    /// The umT5 encoder's weights.
    pub fn text_encoder(&self) -> &WanWeights {
        &self.text_encoder
    }

    /// The VAE's decoder weights (the encoder's, if present, are ignored).
    pub fn vae(&self) -> &WanWeights {
        &self.vae
    }

    /// Components, parameter counts, types and sizes, for logs and readiness reports
    /// (`serde_json::to_value` of it is the JSON form).
    pub fn describe(&self) -> WanSummary {
        let component = |name: &str, class: &str, weights: &WanWeights| ComponentSummary {
            name: name.to_string(),
            class: class.to_string(),
            weights: weights.summary(),
        };
        WanSummary {
            dir: self.dir.clone(),
            pipeline: self.index.class_name.clone(),
            scheduler: self.scheduler.class_name().to_string(),
            vocab_size: self.tokenizer.get_vocab_size(true),
            components: vec![
                component(
                    "text_encoder",
                    &self.index.text_encoder.1,
                    &self.text_encoder,
                ),
                component("transformer", &self.index.transformer.1, &self.transformer),
                component("vae", &self.index.vae.1, &self.vae),
            ],
        }
    }
}
