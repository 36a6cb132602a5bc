//! The JSON files of a diffusers `WanPipeline` directory, as typed structs with the keys
//! diffusers and transformers write. Keys this crate has no use for are ignored (serde's
//! default) so that a newer diffusers' extra bookkeeping does not break loading; keys that
//! select a different model (class names, architectures, I2V extras, the Wan2.2 VAE) are
//! checked and refused.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::WanLoadError;

/// Reads and parses one JSON file, naming it in either error.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, WanLoadError> {
    let text = std::fs::read(path).map_err(|source| WanLoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| WanLoadError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn config_error(path: &Path, message: String) -> WanLoadError {
    WanLoadError::Config {
        path: path.to_path_buf(),
        message,
    }
}

/// Fails with a config error naming `what` unless `found` is one of `allowed`.
fn expect_class(
    path: &Path,
    what: &str,
    found: &str,
    allowed: &[&str],
) -> Result<(), WanLoadError> {
    if allowed.contains(&found) {
        Ok(())
    } else {
        Err(config_error(
            path,
            format!("{what} is {found:?}, expected one of {allowed:?}"),
        ))
    }
}

fn expect_positive(path: &Path, values: &[(&str, usize)]) -> Result<(), WanLoadError> {
    match values.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err(config_error(path, format!("{key} must be positive"))),
        None => Ok(()),
    }
}

/// `model_index.json`: the pipeline class and, per component, the library and class that
/// wrote it. diffusers stores each component as a `[library, class]` pair.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WanModelIndex {
    /// The pipeline class: `WanPipeline`.
    #[serde(rename = "_class_name")]
    pub class_name: String,
    /// The diffusers version that saved the pipeline, when it says.
    #[serde(rename = "_diffusers_version", default)]
    pub diffusers_version: Option<String>,
    /// `[library, class]` of the text encoder.
    pub text_encoder: (String, String),
    /// `[library, class]` of the tokenizer.
    pub tokenizer: (String, String),
    /// `[library, class]` of the denoising transformer.
    pub transformer: (String, String),
    /// `[library, class]` of the VAE.
    pub vae: (String, String),
    /// `[library, class]` of the scheduler.
    pub scheduler: (String, String),
    /// Wan2.2's second (low-noise) transformer: newer diffusers write `[null, null]` for
    /// Wan2.1, and a real one means a checkpoint this crate does not serve.
    #[serde(default)]
    pub transformer_2: Option<(Option<String>, Option<String>)>,
}

impl WanModelIndex {
    /// Checks the pipeline and every component class against what this crate serves.
    pub(crate) fn validate(&self, path: &Path) -> Result<(), WanLoadError> {
        expect_class(path, "_class_name", &self.class_name, &["WanPipeline"])?;
        expect_class(
            path,
            "text_encoder",
            &self.text_encoder.1,
            &["UMT5EncoderModel"],
        )?;
        // transformers 5 has one T5 tokenizer class; older ones wrote the fast one's name.
        expect_class(
            path,
            "tokenizer",
            &self.tokenizer.1,
            &["T5Tokenizer", "T5TokenizerFast"],
        )?;
        expect_class(
            path,
            "transformer",
            &self.transformer.1,
            &["WanTransformer3DModel"],
        )?;
        expect_class(path, "vae", &self.vae.1, &["AutoencoderKLWan"])?;
        expect_class(
            path,
            "scheduler",
            &self.scheduler.1,
            &["UniPCMultistepScheduler", "FlowMatchEulerDiscreteScheduler"],
        )?;
        if let Some((_, Some(class))) = &self.transformer_2 {
            return Err(config_error(
                path,
                format!("transformer_2 is {class:?}: two-expert (Wan2.2) pipelines are not served"),
            ));
        }
        Ok(())
    }
}

/// `transformer/config.json` of `WanTransformer3DModel`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WanTransformerConfig {
    /// Must be `WanTransformer3DModel`.
    #[serde(rename = "_class_name")]
    pub class_name: String,
    /// Patch size over (frames, height, width) of the latent: `[1, 2, 2]`.
    pub patch_size: [usize; 3],
    /// Attention heads (12 for 1.3B).
    pub num_attention_heads: usize,
    /// Width of one head (128); the model width is heads x this.
    pub attention_head_dim: usize,
    /// Latent channels in (16).
    pub in_channels: usize,
    /// Latent channels out (16).
    pub out_channels: usize,
    /// Width of the text encoder's output (4096 for umT5-xxl).
    pub text_dim: usize,
    /// Width of the sinusoidal timestep features (256).
    pub freq_dim: usize,
    /// Hidden width of each block's feed-forward network (8960).
    pub ffn_dim: usize,
    /// Transformer blocks (30).
    pub num_layers: usize,
    /// Whether the cross-attention has an affine LayerNorm (`norm2`) before it.
    pub cross_attn_norm: bool,
    /// The query/key norm; only `rms_norm_across_heads` is served.
    pub qk_norm: Option<String>,
    /// Epsilon of every norm.
    pub eps: f64,
    /// Image-embedding width of the I2V models: must be null here.
    #[serde(default)]
    pub image_dim: Option<usize>,
    /// I2V's extra key/value projections: must be null here.
    #[serde(default)]
    pub added_kv_proj_dim: Option<usize>,
    /// Longest RoPE position per axis.
    #[serde(default = "default_rope_max_seq_len")]
    pub rope_max_seq_len: usize,
}

impl WanTransformerConfig {
    /// Wan2.1-T2V-1.3B's transformer: the published `transformer/config.json` (FACTS.md), for
    /// full-size tests and benchmarks that build the model with random weights.
    pub fn wan21_t2v_1_3b() -> WanTransformerConfig {
        WanTransformerConfig {
            class_name: "WanTransformer3DModel".into(),
            patch_size: [1, 2, 2],
            num_attention_heads: 12,
            attention_head_dim: 128,
            in_channels: 16,
            out_channels: 16,
            text_dim: 4096,
            freq_dim: 256,
            ffn_dim: 8960,
            num_layers: 30,
            cross_attn_norm: true,
            qk_norm: Some("rms_norm_across_heads".into()),
            eps: 1e-6,
            image_dim: None,
            added_kv_proj_dim: None,
            rope_max_seq_len: 1024,
        }
    }
}

fn default_rope_max_seq_len() -> usize {
    1024
}

impl WanTransformerConfig {
    /// The model width, heads x head width.
    pub fn inner_dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    pub(crate) fn validate(&self, path: &Path) -> Result<(), WanLoadError> {
        expect_class(
            path,
            "_class_name",
            &self.class_name,
            &["WanTransformer3DModel"],
        )?;
        expect_positive(
            path,
            &[
                ("patch_size[0]", self.patch_size[0]),
                ("patch_size[1]", self.patch_size[1]),
                ("patch_size[2]", self.patch_size[2]),
                ("num_attention_heads", self.num_attention_heads),
                ("attention_head_dim", self.attention_head_dim),
                ("in_channels", self.in_channels),
                ("out_channels", self.out_channels),
                ("text_dim", self.text_dim),
                ("freq_dim", self.freq_dim),
                ("ffn_dim", self.ffn_dim),
                ("num_layers", self.num_layers),
            ],
        )?;
        if self.qk_norm.as_deref() != Some("rms_norm_across_heads") {
            return Err(config_error(
                path,
                format!(
                    "qk_norm is {:?}, only \"rms_norm_across_heads\" is served",
                    self.qk_norm
                ),
            ));
        }
        if !self.attention_head_dim.is_multiple_of(2) || self.freq_dim < 2 {
            return Err(config_error(
                path,
                format!(
                    "attention_head_dim {} must be even (RoPE rotates pairs) and freq_dim {} \
                     at least 2",
                    self.attention_head_dim, self.freq_dim
                ),
            ));
        }
        if self.image_dim.is_some() || self.added_kv_proj_dim.is_some() {
            return Err(config_error(
                path,
                "image_dim / added_kv_proj_dim are set: image-to-video models are not served"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// `text_encoder/config.json` of transformers' `UMT5EncoderModel`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Umt5Config {
    /// Must contain `UMT5EncoderModel`.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Must be `umt5`.
    pub model_type: String,
    /// Token vocabulary (256384 for umT5-xxl).
    pub vocab_size: usize,
    /// Model width (4096).
    pub d_model: usize,
    /// Width of one attention head (64).
    pub d_kv: usize,
    /// Hidden width of the gated-GELU feed-forward (10240).
    pub d_ff: usize,
    /// Encoder layers (24).
    pub num_layers: usize,
    /// Attention heads (64).
    pub num_heads: usize,
    /// Buckets of the relative position bias (32).
    pub relative_attention_num_buckets: usize,
    /// Distance past which relative positions share a bucket (128).
    pub relative_attention_max_distance: usize,
    /// Epsilon of the RMS layer norms.
    pub layer_norm_epsilon: f64,
    /// Must be `gated-gelu`.
    pub feed_forward_proj: String,
}

fn default_true() -> bool {
    true
}

impl Umt5Config {
    pub(crate) fn validate(&self, path: &Path) -> Result<(), WanLoadError> {
        if !self.architectures.iter().any(|a| a == "UMT5EncoderModel") {
            return Err(config_error(
                path,
                format!(
                    "architectures is {:?}, expected [\"UMT5EncoderModel\"]",
                    self.architectures
                ),
            ));
        }
        expect_class(path, "model_type", &self.model_type, &["umt5"])?;
        expect_class(
            path,
            "feed_forward_proj",
            &self.feed_forward_proj,
            &["gated-gelu"],
        )?;
        expect_positive(
            path,
            &[
                ("vocab_size", self.vocab_size),
                ("d_model", self.d_model),
                ("d_kv", self.d_kv),
                ("d_ff", self.d_ff),
                ("num_layers", self.num_layers),
                ("num_heads", self.num_heads),
                (
                    "relative_attention_num_buckets",
                    self.relative_attention_num_buckets,
                ),
            ],
        )
    }
}

/// `vae/config.json` of `AutoencoderKLWan` (the Wan2.1 VAE).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WanVaeConfig {
    /// Must be `AutoencoderKLWan`.
    #[serde(rename = "_class_name")]
    pub class_name: String,
    /// Base channel count of the encoder (96).
    pub base_dim: usize,
    /// Base channel count of the decoder; null means `base_dim`.
    #[serde(default)]
    pub decoder_base_dim: Option<usize>,
    /// Latent channels (16).
    pub z_dim: usize,
    /// Channel multipliers per resolution level (`[1, 2, 4, 4]`).
    pub dim_mult: Vec<usize>,
    /// Residual blocks per level (2; the decoder has one more).
    pub num_res_blocks: usize,
    /// Whether each encoder downsampling also halves time (`[false, true, true]`); the decoder
    /// upsamples in the reverse order.
    pub temperal_downsample: Vec<bool>,
    /// Per-channel latent mean (z_dim values).
    pub latents_mean: Vec<f64>,
    /// Per-channel latent standard deviation (z_dim values).
    pub latents_std: Vec<f64>,
    /// Wan2.2's residual up/down blocks: must be false.
    #[serde(default)]
    pub is_residual: bool,
    /// Pixel channels into the encoder (3).
    #[serde(default = "default_rgb")]
    pub in_channels: usize,
    /// Pixel channels out of the decoder (3).
    #[serde(default = "default_rgb")]
    pub out_channels: usize,
    /// Wan2.2's pixel patching: must be null (or 1).
    #[serde(default)]
    pub patch_size: Option<usize>,
}

fn default_rgb() -> usize {
    3
}

impl WanVaeConfig {
    /// The decoder's base channel count.
    pub fn decoder_dim(&self) -> usize {
        self.decoder_base_dim.unwrap_or(self.base_dim)
    }

    pub(crate) fn validate(&self, path: &Path) -> Result<(), WanLoadError> {
        expect_class(path, "_class_name", &self.class_name, &["AutoencoderKLWan"])?;
        expect_positive(
            path,
            &[
                ("base_dim", self.base_dim),
                ("decoder_base_dim", self.decoder_dim()),
                ("z_dim", self.z_dim),
                ("dim_mult.len()", self.dim_mult.len()),
                ("out_channels", self.out_channels),
            ],
        )?;
        if self.dim_mult.contains(&0) {
            return Err(config_error(path, "dim_mult has a zero".into()));
        }
        if self.temperal_downsample.len() + 1 != self.dim_mult.len() {
            return Err(config_error(
                path,
                format!(
                    "temperal_downsample has {} entries, dim_mult {}: expected one fewer",
                    self.temperal_downsample.len(),
                    self.dim_mult.len()
                ),
            ));
        }
        if self.latents_mean.len() != self.z_dim || self.latents_std.len() != self.z_dim {
            return Err(config_error(
                path,
                format!(
                    "latents_mean / latents_std have {} / {} values, z_dim is {}",
                    self.latents_mean.len(),
                    self.latents_std.len(),
                    self.z_dim
                ),
            ));
        }
        if self.is_residual || self.patch_size.is_some_and(|p| p > 1) {
            return Err(config_error(
                path,
                "is_residual / patch_size are set: the Wan2.2 VAE is not served".into(),
            ));
        }
        Ok(())
    }
}

/// `scheduler/scheduler_config.json`: the sampler the checkpoint was published with.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "_class_name")]
pub enum WanScheduler {
    /// diffusers' `UniPCMultistepScheduler` (what Wan2.1 ships with).
    #[serde(rename = "UniPCMultistepScheduler")]
    UniPc(UniPcConfig),
    /// diffusers' `FlowMatchEulerDiscreteScheduler`.
    #[serde(rename = "FlowMatchEulerDiscreteScheduler")]
    FlowMatchEuler(FlowMatchEulerConfig),
}

impl WanScheduler {
    /// The diffusers class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            WanScheduler::UniPc(_) => "UniPCMultistepScheduler",
            WanScheduler::FlowMatchEuler(_) => "FlowMatchEulerDiscreteScheduler",
        }
    }

    /// Reads the file, refusing any other `_class_name` with a message that names it (serde's
    /// own "unknown variant" message does, and names the allowed ones).
    /// Also refuses options the samplers here do not implement.
    pub(crate) fn read(path: &Path) -> Result<Self, WanLoadError> {
        let scheduler: WanScheduler = read_json(path)?;
        let unsupported = match &scheduler {
            WanScheduler::UniPc(c) => c.unsupported(),
            WanScheduler::FlowMatchEuler(c) => c.unsupported(),
        };
        match unsupported {
            Some(message) => Err(config_error(path, message)),
            None => Ok(scheduler),
        }
    }
}

/// The `UniPCMultistepScheduler` keys that shape Wan's sampling; defaults are diffusers'.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UniPcConfig {
    /// Training timesteps (1000).
    #[serde(default = "default_train_timesteps")]
    pub num_train_timesteps: usize,
    /// Multistep order (2).
    #[serde(default = "default_order")]
    pub solver_order: usize,
    /// `flow_prediction` for Wan.
    #[serde(default = "default_prediction")]
    pub prediction_type: String,
    /// Whether sigmas follow the flow-matching schedule (true for Wan).
    #[serde(default)]
    pub use_flow_sigmas: bool,
    /// The flow shift (3.0 at 480p).
    #[serde(default = "default_shift")]
    pub flow_shift: f64,
    /// `bh1` or `bh2`.
    #[serde(default = "default_solver_type")]
    pub solver_type: String,
    /// Whether the last steps drop to first order.
    #[serde(default = "default_true")]
    pub lower_order_final: bool,
    /// Whether the solver works on data (x0) predictions (true for Wan; only true is served).
    #[serde(default = "default_true")]
    pub predict_x0: bool,
    /// Steps (0-based) whose corrector is skipped.
    #[serde(default)]
    pub disable_corrector: Vec<usize>,
    /// The sigma after the last step: `zero` (Wan) or `sigma_min` (the last step's sigma).
    #[serde(default = "default_final_sigmas_type")]
    pub final_sigmas_type: String,
    /// Dynamic thresholding of x0 (not served).
    #[serde(default)]
    pub thresholding: bool,
    /// Resolution-dependent shifting (not served).
    #[serde(default)]
    pub use_dynamic_shifting: bool,
    /// Stretching the shifted sigmas to a terminal value (not served).
    #[serde(default)]
    pub shift_terminal: Option<f64>,
    /// Karras sigmas (not served).
    #[serde(default)]
    pub use_karras_sigmas: bool,
    /// Exponential sigmas (not served).
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    /// Beta sigmas (not served).
    #[serde(default)]
    pub use_beta_sigmas: bool,
}

impl UniPcConfig {
    /// Why the sampler here cannot follow this config, if it cannot: it implements the flow
    /// matching form Wan ships (flow sigmas with a fixed shift, flow prediction, data
    /// prediction, bh1/bh2, final sigma zero or sigma_min).
    pub fn unsupported(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.prediction_type != "flow_prediction" {
            why.push(format!(
                "prediction_type {:?} (only \"flow_prediction\")",
                self.prediction_type
            ));
        }
        if !self.use_flow_sigmas {
            why.push("use_flow_sigmas false".into());
        }
        if !self.predict_x0 {
            why.push("predict_x0 false".into());
        }
        if self.solver_order == 0 {
            why.push("solver_order 0".into());
        }
        if !matches!(self.solver_type.as_str(), "bh1" | "bh2") {
            why.push(format!("solver_type {:?}", self.solver_type));
        }
        if !matches!(self.final_sigmas_type.as_str(), "zero" | "sigma_min") {
            why.push(format!("final_sigmas_type {:?}", self.final_sigmas_type));
        }
        for (set, name) in [
            (self.thresholding, "thresholding"),
            (self.use_dynamic_shifting, "use_dynamic_shifting"),
            (self.shift_terminal.is_some(), "shift_terminal"),
            (self.use_karras_sigmas, "use_karras_sigmas"),
            (self.use_exponential_sigmas, "use_exponential_sigmas"),
            (self.use_beta_sigmas, "use_beta_sigmas"),
        ] {
            if set {
                why.push(name.into());
            }
        }
        (!why.is_empty()).then(|| format!("UniPC options not served: {}", why.join(", ")))
    }
}

/// The `FlowMatchEulerDiscreteScheduler` keys that shape Wan's sampling; defaults are
/// diffusers'.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FlowMatchEulerConfig {
    /// Training timesteps (1000).
    #[serde(default = "default_train_timesteps")]
    pub num_train_timesteps: usize,
    /// The flow shift.
    #[serde(default = "default_shift")]
    pub shift: f64,
    /// Resolution-dependent shifting (false for Wan; not served).
    #[serde(default)]
    pub use_dynamic_shifting: bool,
    /// Stretching the shifted sigmas to a terminal value (not served).
    #[serde(default)]
    pub shift_terminal: Option<f64>,
    /// Sigmas running from 0 to 1 (not served).
    #[serde(default)]
    pub invert_sigmas: bool,
    /// Re-noising each step (not served).
    #[serde(default)]
    pub stochastic_sampling: bool,
    /// Karras sigmas (not served).
    #[serde(default)]
    pub use_karras_sigmas: bool,
    /// Exponential sigmas (not served).
    #[serde(default)]
    pub use_exponential_sigmas: bool,
    /// Beta sigmas (not served).
    #[serde(default)]
    pub use_beta_sigmas: bool,
}

impl FlowMatchEulerConfig {
    /// Why the sampler here cannot follow this config, if it cannot: it implements the plain
    /// deterministic Euler step over shifted flow sigmas.
    pub fn unsupported(&self) -> Option<String> {
        let why: Vec<&str> = [
            (self.use_dynamic_shifting, "use_dynamic_shifting"),
            (self.shift_terminal.is_some(), "shift_terminal"),
            (self.invert_sigmas, "invert_sigmas"),
            (self.stochastic_sampling, "stochastic_sampling"),
            (self.use_karras_sigmas, "use_karras_sigmas"),
            (self.use_exponential_sigmas, "use_exponential_sigmas"),
            (self.use_beta_sigmas, "use_beta_sigmas"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect();
        (!why.is_empty()).then(|| format!("FlowMatchEuler options not served: {}", why.join(", ")))
    }
}

fn default_train_timesteps() -> usize {
    1000
}

fn default_order() -> usize {
    2
}

fn default_prediction() -> String {
    "epsilon".into()
}

fn default_shift() -> f64 {
    1.0
}

fn default_final_sigmas_type() -> String {
    "zero".into()
}

fn default_solver_type() -> String {
    "bh2".into()
}
