//! The one error type of the crate: everything a caller (the pipeline, a test, the benchmark)
//! can get wrong or meet on disk ends up here, with a message that names the culprit.

use std::path::PathBuf;

/// Everything the crate can fail with.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A checkpoint file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `config.json` does not parse or describes a model this crate does not implement.
    #[error("bad model config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `model.safetensors` is malformed or lacks a tensor of the right shape.
    #[error("bad weights file: {0}")]
    Weights(String),
    /// A caption word outside the model's vocabulary.
    #[error("unknown word {word:?} in caption (the model knows only its vocabulary)")]
    UnknownWord {
        /// The word.
        word: String,
    },
    /// A caption longer than the text encoder reads.
    #[error("caption has {count} words, the model takes at most {max}")]
    TooManyTokens {
        /// Words in the caption.
        count: usize,
        /// Words the model reads ([`crate::ModelConfig::max_tokens`]).
        max: usize,
    },
    /// A caller's argument out of range (e.g. zero steps, a non-finite guidance, a shape).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The CUDA backend cannot start: a library, the device, or a kernel compilation failed.
    #[error("CUDA: {0}")]
    Cuda(String),
}
