//! The contract between reel's HTTP API (`api`) and its engine (`pipeline`, `kernels`): the
//! plain types both sides speak, with no engine behind them, so that `api` builds and tests
//! without timely, wgpu, CUDA or the encoders.
//!
//! - [`TaskStatus`] and its transition table ([`TaskStatus::can_become`]).
//! - [`TaskEvent`] and [`Progress`]: what a task's watchers receive as it advances (published
//!   by the `tasks` crate's service, which owns a task's life), previews of scenes mid-run
//!   included.
//! - [`SubmitError`]: why the engine did not take a task.
//! - [`PlanView`], [`PlanOrigin`] and [`Attr`]: a stored plan as clients see it.
//! - [`GpuUsage`]: one reading of the GPU the model runs on.
//! - [`ModelSpec`]: the served model, what its requests take and their defaults.
//!
//! ```
//! use contract::{Progress, TaskEvent};
//! let p = Progress::new(3);
//! assert_eq!(p.scenes.len(), 3);
//! let ev = TaskEvent::Frame { index: 0 };
//! assert!(!ev.is_done());
//! ```
#![warn(missing_docs)]

use std::sync::Arc;

use serde::{Deserialize, Serialize};

mod model;
mod status;

pub use model::{FreeFormSpec, ModelKind, ModelSpec};
pub use status::TaskStatus;

/// What a task's watchers receive, in order, as it advances.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskEvent {
    /// The task entered a new status.
    Status(TaskStatus),
    /// One denoising step of one scene finished; `overall` is the task's progress in [0, 1].
    Step {
        /// Scene index within the task.
        scene: usize,
        /// Steps done in that scene.
        step: usize,
        /// Steps the scene takes in all.
        steps: usize,
        /// The whole task's progress in [0, 1].
        overall: f32,
    },
    /// A preview of one scene mid-run: a small PNG of the model's current estimate of the
    /// scene's clean frames after `step` of `steps`. Sent only while someone watches, a few
    /// times per scene (the engine's cadence), never after the scene's last step.
    Preview {
        /// Scene index within the task.
        scene: usize,
        /// Steps done in that scene when the estimate was taken.
        step: usize,
        /// Steps the scene takes in all.
        steps: usize,
        /// The PNG, shared: broadcasting it to many watchers copies a pointer, not the image.
        png: Arc<[u8]>,
    },
    /// Delivered frame `index` (global across scenes) is stored and can be read.
    Frame {
        /// Global frame index.
        index: usize,
    },
    /// A final status was reached; no more events follow.
    Done(TaskStatus),
}

impl TaskEvent {
    /// True for the last event of a task.
    pub fn is_done(&self) -> bool {
        matches!(self, TaskEvent::Done(_))
    }
}

/// Live progress of a running task, kept in memory (storage holds state changes only).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Progress {
    /// The whole task, in [0, 1].
    pub overall: f32,
    /// Per scene, in [0, 1].
    pub scenes: Vec<f32>,
    /// Delivered frames stored so far.
    pub frames_ready: usize,
}

impl Progress {
    /// Nothing done yet, of `scenes` scenes.
    pub fn new(scenes: usize) -> Progress {
        Progress {
            overall: 0.0,
            scenes: vec![0.0; scenes],
            frames_ready: 0,
        }
    }
}

/// Why the engine did not take a task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SubmitError {
    /// Too many tasks are waiting.
    #[error("queue is full ({0} tasks waiting)")]
    QueueFull(usize),
    /// The engine is not running (a worker died and it is recovering, or it shut down).
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
}

/// An attribute of a scene that the prompt left open and that was drawn from the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attr {
    /// The object's size.
    Size,
    /// The object's colour.
    Color,
    /// The object's shape.
    Shape,
    /// How the object moves.
    Motion,
    /// The background.
    Background,
}

/// One planned scene as clients see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneView {
    /// The canonical caption the model is conditioned on.
    pub caption: String,
    /// Attributes the prompt left open, drawn from the seed.
    pub guessed: Vec<Attr>,
}

/// A stored plan as clients see it: read from the plan's JSON, whose other fields (the
/// engine's own scene description) are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanView {
    /// In scene order.
    pub scenes: Vec<SceneView>,
    /// How the LLM planner fared, when one is configured.
    #[serde(default)]
    pub origin: Option<PlanOrigin>,
}

/// How a plan was made when an LLM planner is configured (`--planner openai`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanOrigin {
    /// `llm` (the model's answer), `cached` (its earlier answer to the same prompt and scene
    /// count), or, when the rule planner answered instead, `fallback_timeout`,
    /// `fallback_invalid` or `fallback_error`.
    pub outcome: String,
    /// The model asked.
    pub model: String,
    /// Why the rule planner answered, for a fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Scenes in one denoiser (one timely worker's `denoise`, in any process of a cluster), as
/// it last reported them to process 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenoiserLoad {
    /// The process it runs in (0 serves HTTP).
    pub process: usize,
    /// Its timely worker index (over the whole cluster).
    pub worker: usize,
    /// Scenes waiting for a batch slot.
    pub waiting: usize,
    /// Sampler runs in the batch.
    pub running: usize,
    /// Scenes riding on a running run with the same key (other tasks' identical scenes).
    pub following: usize,
}

/// One reading of the GPU the model runs on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GpuUsage {
    /// The device's name.
    pub name: String,
    /// Percent of the last sample period (about 1/6 s to 1 s, by model) in which a kernel ran.
    pub utilization_percent: u32,
    /// Device memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Device memory in all, bytes.
    pub memory_total_bytes: u64,
}
