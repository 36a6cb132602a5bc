//! `Model`: a loaded checkpoint directory (`config.json` + `model.safetensors`, written by
//! model/export.py) on a backend, with its tokenizer and a stable id for cache keys. The
//! scene-level API the pipeline drives (start / step / decode) is in scene.rs; the lower-level
//! calls here (text, denoise) serve tests and benchmarks.

use std::fmt::Write as _;
use std::path::Path;

use sha1::{Digest, Sha1};

use crate::backend::Backend;
use crate::config::ModelConfig;
use crate::cpu::CpuBackend;
use crate::error::KernelError;
use crate::model::{Networks, Reel, Weights};
use crate::tensor::Tensor;
use crate::tokenizer::Tokenizer;

/// Decoded frames: `data` is `[frame][y][x][rgb]`, values in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    /// Number of frames.
    pub frames: usize,
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// `frames * height * width * 3` values, RGB in [0, 1].
    pub data: Vec<f32>,
}

/// A loaded model: weights on a backend, its configuration, tokenizer and id.
///
/// One scene of the shipped checkpoint (`model/checkpoint`), sampled in a few steps:
///
/// ```
/// use std::path::Path;
///
/// use kernels::{Method, Model};
///
/// let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/checkpoint");
/// let model = Model::load(&dir)?;
/// let caption = "a small red circle moving left on a black background";
/// let mut scene = model.start(caption, 7, 0, 3, 4.0, Method::DpmPP2M)?;
/// while !scene.done() {
///     // Any number of scenes, of any tasks, can share one batched step.
///     model.step(&mut [&mut scene]);
/// }
/// let clip = model.decode(&scene);
/// assert_eq!(clip.frames, model.config().frames);
/// assert_eq!(clip.data.len(), clip.frames * clip.width * clip.height * 3);
/// assert!(clip.data.iter().all(|v| (0.0..=1.0).contains(v)));
/// # Ok::<(), kernels::KernelError>(())
/// ```
pub struct Model {
    pub(crate) config: ModelConfig,
    id: String,
    tokenizer: Tokenizer,
    pub(crate) nets: Box<dyn Networks>,
    /// The unconditional condition (text encoder of an all-padding caption).
    pub(crate) null_cond: Vec<f32>,
    /// What it serves, for the engine and the API (see `reel_video.rs`).
    pub(crate) spec: contract::ModelSpec,
    /// Whether scenes it starts keep their latents on the backend (`with_resident_steps`).
    pub(crate) resident: bool,
}

impl Model {
    /// Loads a checkpoint directory onto the CPU backend, one thread per CPU.
    pub fn load(dir: &Path) -> Result<Model, KernelError> {
        Model::load_with(dir, CpuBackend::default())
    }

    /// Loads a checkpoint directory onto `backend`.
    pub fn load_with<B: Backend>(dir: &Path, backend: B) -> Result<Model, KernelError> {
        let path = dir.join("config.json");
        let config =
            std::fs::read_to_string(&path).map_err(|source| KernelError::Io { path, source })?;
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).map_err(|source| KernelError::Io {
            path: path.clone(),
            source,
        })?;
        Model::from_parts(
            ModelConfig::parse(&config, &dir.join("config.json"))?,
            &bytes,
            &path,
            backend,
        )
    }

    /// Loads a checkpoint held in memory (e.g. built into the binary) onto `backend`.
    pub fn from_bytes_with<B: Backend>(
        config_json: &str,
        weights: &[u8],
        backend: B,
    ) -> Result<Model, KernelError> {
        let origin = Path::new("<built-in checkpoint>");
        Model::from_parts(
            ModelConfig::parse(config_json, origin)?,
            weights,
            origin,
            backend,
        )
    }

    fn from_parts<B: Backend>(
        config: ModelConfig,
        bytes: &[u8],
        path: &Path,
        backend: B,
    ) -> Result<Model, KernelError> {
        let id = format!("{}-{}", config.architecture, &weights_hash(bytes)[..12]);
        let spec = crate::reel_video::builtin_spec(&id, bytes, path)?;
        let nets = Reel::load(backend, Weights::from_bytes(bytes, path)?, &config, path)?;
        let tokenizer = Tokenizer::new(&config.vocab, config.max_tokens);
        let null_cond = nets.text(&[tokenizer.null()]).data;
        Ok(Model {
            config,
            id,
            tokenizer,
            nets: Box::new(nets),
            null_cond,
            spec,
            resident: false,
        })
    }

    /// The checkpoint's `config.json`.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// `<architecture>-<first 12 hex digits of the weights file's SHA-1>`: changes whenever
    /// the weights do, so cached outputs keyed by it never outlive their model.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The backend in words ([`Backend::name`]), for logs.
    pub fn backend_name(&self) -> String {
        self.nets.backend_name()
    }

    /// Caption -> `max_tokens` ids (0-padded); unknown words and overlong captions are errors.
    pub fn tokenize(&self, caption: &str) -> Result<Vec<usize>, KernelError> {
        self.tokenizer.encode(caption)
    }

    /// Text conditions `[rows, emb]` of token id rows as `tokenize` returns them.
    pub fn text(&self, ids: &[Vec<usize>]) -> Result<Tensor, KernelError> {
        let (vocab, max) = (self.config.vocab.len(), self.config.max_tokens);
        if let Some(row) = ids
            .iter()
            .find(|r| r.len() != max || r.iter().any(|&i| i >= vocab))
        {
            return Err(KernelError::InvalidArgument(format!(
                "token row {row:?} is not {max} ids below {vocab}"
            )));
        }
        Ok(self.nets.text(ids))
    }

    /// One denoiser forward pass: `z [B, F, L, h, w]` (cell clips), `t [B]`, `cond [B, emb]`
    /// -> the prediction (x0 or v, `config().prediction`) `[B, F, L, h, w]`.
    pub fn denoise(&self, z: &Tensor, t: &[f32], cond: &Tensor) -> Result<Tensor, KernelError> {
        let c = &self.config;
        let b = t.len();
        let want = [
            b,
            c.frames,
            c.latent_channels,
            c.latent_size(),
            c.latent_size(),
        ];
        if z.shape != want || cond.shape != [b, c.emb] {
            return Err(KernelError::InvalidArgument(format!(
                "denoise wants z {want:?} and cond {:?}, got {:?} and {:?}",
                [b, c.emb],
                z.shape,
                cond.shape
            )));
        }
        Ok(self.nets.denoise(z, t, cond))
    }
}

fn weights_hash(bytes: &[u8]) -> String {
    Sha1::digest(bytes).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
