//! What opening a Wan2.1 checkpoint can fail with. Every variant names the file, and those
//! about one tensor name the tensor too, so an operator can find the culprit from the log line
//! alone.

use std::path::PathBuf;

/// Why [`super::WanCheckpoint::open`] refused a checkpoint directory.
#[derive(Debug, thiserror::Error)]
pub enum WanLoadError {
    /// A file is missing or cannot be read (or mapped).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A JSON file does not parse, or lacks a key, or has a key of the wrong type.
    #[error("bad JSON in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde_json says (it names the key and the line).
        source: serde_json::Error,
    },
    /// A config parses but describes something this crate does not serve: another pipeline,
    /// class or architecture, or dimensions that do not fit together.
    #[error("unsupported config {path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `tokenizer.json` is valid JSON but not a tokenizer the `tokenizers` crate can build.
    #[error("bad tokenizer {path}: {message}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// What the `tokenizers` crate says.
        message: String,
    },
    /// A weights file is not a well-formed safetensors file, or a shard index does not agree
    /// with its shards.
    #[error("bad weights file {path}: {message}")]
    Weights {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A tensor the component's config calls for is absent.
    #[error("{path}: missing tensor {tensor} (expected shape {expected:?})")]
    MissingTensor {
        /// The weights file (the index, for a sharded component).
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The shape the config implies.
        expected: Vec<usize>,
    },
    /// A tensor the component's config does not account for: a checkpoint of another model
    /// (or another variant of this one) that would otherwise load half-used.
    #[error("{path}: unexpected tensor {tensor} (shape {shape:?}) for this config")]
    UnexpectedTensor {
        /// The file that holds it.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A tensor whose shape is not the one its config implies.
    #[error("{path}: tensor {tensor} has shape {found:?}, expected {expected:?}")]
    WrongShape {
        /// The file that holds it.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor stored in a type other than f32, bf16 or f16.
    #[error("{path}: tensor {tensor} has dtype {dtype}, only F32, BF16 and F16 are supported")]
    UnsupportedDtype {
        /// The file that holds it.
        path: PathBuf,
        /// The tensor's name.
        tensor: String,
        /// The type in the file, as safetensors spells it.
        dtype: String,
    },
}
