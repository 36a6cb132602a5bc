//! The records that flow between the dataflow's operators, in stage order.

use std::sync::Arc;

use kernels::SceneRun;
use serde::{Deserialize, Serialize};
use storage::TaskParams;

use crate::plan::Plan;
use crate::post::Processed;

/// A stored task entering the dataflow (its own epoch). Exchanged across workers by a hash of
/// its parameters, so identical tasks meet on one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskIn {
    /// The task's id in the store.
    pub id: u64,
    /// What was asked.
    pub params: TaskParams,
    /// The key that made it: denoising takes turns between keys.
    pub owner: Option<String>,
    /// Higher is admitted to denoising first.
    pub priority: u8,
}

/// A task with its scene plan and result-cache key.
#[derive(Clone, Debug)]
pub struct PlannedTask {
    /// The task as it entered.
    pub task: TaskIn,
    /// Its scenes.
    pub plan: Plan,
    /// Same key, same video: what the result cache is looked up by.
    pub cache_key: String,
}

/// One scene of one task, waiting for or under denoising.
#[derive(Clone, Debug)]
pub struct SceneJob {
    /// The task's id.
    pub task: u64,
    /// The scene's index within the task.
    pub index: usize,
    /// The task's scene count.
    pub count: usize,
    /// What the model is conditioned on: a WORLD.md caption for the built-in model, a
    /// scene prompt for a free-form one.
    pub caption: String,
    /// The task's parameters.
    pub params: Arc<TaskParams>,
    /// The task's result-cache key.
    pub cache_key: Arc<str>,
    /// The task's owner (turns are taken between owners).
    pub owner: Option<Arc<str>>,
    /// The task's priority.
    pub priority: u8,
}

impl SceneJob {
    /// Delivered frames per scene: the requested duration at the requested rate.
    pub fn out_frames(&self) -> usize {
        self.params.frames_per_scene()
    }
}

/// A scene whose latent has been denoised, still to be decoded to frames (by the
/// post-processing threads, piece by piece: see `post_pool.rs`).
#[derive(Clone, Debug)]
pub struct DenoisedScene {
    /// The scene.
    pub job: SceneJob,
    /// Its finished sampler run.
    pub run: Arc<SceneRun>,
}

/// A scene at delivered size and rate, ready for the encoder.
#[derive(Clone)]
pub struct ProcessedScene {
    /// The scene.
    pub job: SceneJob,
    /// Its delivered frames.
    pub frames: Arc<Processed>,
}
