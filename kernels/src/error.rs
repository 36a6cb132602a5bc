//! The one error type of the crate: everything a caller (the pipeline, a test, the benchmark)
//! can get wrong or meet on disk ends up here, with a message that names the culprit.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad model config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("bad weights file: {0}")]
    Weights(String),
    #[error("unknown word {word:?} in caption (the model knows only its vocabulary)")]
    UnknownWord { word: String },
    #[error("caption has {count} words, the model takes at most {max}")]
    TooManyTokens { count: usize, max: usize },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The CUDA backend cannot start: a library, the device, or a kernel compilation failed.
    #[error("CUDA: {0}")]
    Cuda(String),
}
