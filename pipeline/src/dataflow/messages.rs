//! The records that flow between the dataflow's operators, in stage order.

use std::sync::Arc;

use kernels::Clip;
use serde::{Deserialize, Serialize};
use storage::TaskParams;

use crate::plan::Plan;
use crate::post::Processed;

/// A stored task entering the dataflow (its own epoch). Exchanged by id across workers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskIn {
    pub id: u64,
    pub params: TaskParams,
}

/// A task with its scene plan and result-cache key.
#[derive(Clone, Debug)]
pub struct PlannedTask {
    pub id: u64,
    pub params: Arc<TaskParams>,
    pub plan: Plan,
    pub cache_key: String,
}

/// One scene of one task, waiting for or under denoising.
#[derive(Clone, Debug)]
pub struct SceneJob {
    pub task: u64,
    pub index: usize,
    pub count: usize,
    pub caption: String,
    pub params: Arc<TaskParams>,
    pub cache_key: Arc<str>,
}

impl SceneJob {
    /// Delivered frames per scene: the requested duration at the requested rate.
    pub fn out_frames(&self) -> usize {
        ((self.params.seconds_per_scene * self.params.fps as f32).round() as usize).max(2)
    }
}

/// A scene whose latent has been denoised and decoded to the model's base frames.
#[derive(Clone, Debug)]
pub struct DenoisedScene {
    pub job: SceneJob,
    pub clip: Arc<Clip>,
}

/// A scene at delivered size and rate, ready for the encoder.
#[derive(Clone)]
pub struct ProcessedScene {
    pub job: SceneJob,
    pub frames: Arc<Processed>,
}
