//! kernels: inference of reel's own diffusion model (model/net.py), bit-faithful to its
//! PyTorch code, on pluggable compute backends.
//!
//! - `backend`: the `Backend` trait (every op the network needs); `cpu`: its CPU
//!   implementation (Winograd convs on a packed-weight GEMM, rayon threads); `cuda`: its CUDA
//!   implementation (cudarc: NVRTC-compiled kernels, cuBLAS), loaded at run time so it builds
//!   without CUDA.
//! - `model` (crate-private): TextEncoder and Denoiser, loaded by PyTorch parameter name;
//!   `cells`: the fixed cells <-> pixels rearrangement that stands in for an autoencoder.
//! - `philox`, `sampler`: the noise and the DDIM / DPM-Solver++(2M) arithmetic of
//!   model/noise.py and model/sampler.py.
//! - `Model` / `SceneState` / `Clip`: what the pipeline drives: `Model::load` a checkpoint
//!   written by model/export.py, `start` scenes, `step` any set of them together in one batched
//!   forward pass, `decode` to frames.
//! - `VideoModel` / `SceneRun`: the one trait the engine drives, whichever model is served;
//!   `Model` implements it (`reel_video.rs`), and so does `wan::WanModel`.
//! - `wan`: Wan2.1 text-to-video checkpoints in the diffusers layout: loading, validation, the
//!   umT5 encoder, the transformer, the samplers and the VAE decoder, served as `WanModel`.
//! - `GpuMonitor`: utilisation and memory of the CUDA backend's GPU (NVML), for monitoring.

#![warn(missing_docs)]

pub mod backend;
pub mod cells;
pub mod config;
pub mod cpu;
pub mod cuda;
mod error;
mod gpu_usage;
mod model;
pub mod philox;
mod priority;
mod reel;
mod reel_video;
pub mod sampler;
mod scene;
mod scene_step;
mod shapes;
mod tensor;
mod tokenizer;
mod video_model;
pub mod wan;

pub use backend::{Backend, Norm};
pub use config::{ModelConfig, SamplerDefaults};
pub use cpu::CpuBackend;
pub use cuda::{cuda_available, CudaBackend};
pub use error::KernelError;
pub use gpu_usage::{GpuMonitor, GpuUsage};
pub use priority::lower_current_thread_priority;
pub use reel::{Clip, Model};
pub use sampler::{Method, Prediction};
pub use scene::SceneState;
pub use scene_step::SceneStep;
pub use tensor::Tensor;
pub use video_model::{FreeFormScene, Latent, SceneRequest, SceneRun, VideoModel};
