//! The records that flow between the dataflow's operators, in stage order. Those that cross
//! workers (and, in a cluster, processes) are serializable: timely sends them as bytes between
//! processes.

use std::sync::Arc;

use contract::DenoiserLoad;
use kernels::Latent;
use serde::{Deserialize, Serialize};
use storage::TaskParams;

use crate::plan::Plan;
use crate::post::Processed;

/// A stored task entering the dataflow (its own epoch). Exchanged to a process 0 worker by
/// a hash of its parameters ([`TaskIn::route`]), so identical tasks meet on one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskIn {
    /// The task's id in the store.
    pub id: u64,
    /// What was asked.
    #[serde(with = "as_json")]
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
    /// Its route ([`super::plan_tasks::route`]): where its scenes are denoised.
    pub route: u64,
    /// Its scenes.
    pub plan: Plan,
    /// Same key, same video: what the result cache is looked up by.
    pub cache_key: String,
}

/// One scene of one task, waiting for or under denoising. Exchanged to `denoiser`, the worker
/// (of any process) that denoises the task's scenes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SceneJob {
    /// The task's id.
    pub task: u64,
    /// A hash of the task's parameters: modulo process 0's workers, its home worker.
    pub route: u64,
    /// The worker index (over the whole cluster) that denoises the task's scenes, chosen at
    /// home (`placement.rs`): a task's scenes, and identical tasks, meet on one.
    pub denoiser: u64,
    /// The scene's index within the task.
    pub index: usize,
    /// The task's scene count.
    pub count: usize,
    /// What the model is conditioned on: a WORLD.md caption for the built-in model, a
    /// scene prompt for a free-form one.
    pub caption: String,
    /// The task's parameters.
    #[serde(with = "as_json")]
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

/// What `denoise` sends home (to the task's process 0 worker), in the order it happened.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DenoiseOut {
    /// A scene finished sampling.
    Scene(DenoisedScene),
    /// Something for the task service: progress, a preview, a failure.
    Report(Report),
}

/// A scene whose latent has been denoised, still to be decoded to frames (by process 0's
/// post-processing threads, piece by piece: see `post_pool.rs`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DenoisedScene {
    /// The scene.
    pub job: SceneJob,
    /// Its finished latent (shared by the scenes of every task that asked for the same).
    pub latent: Arc<Latent>,
    /// Set on the task's last scene to leave denoising: the task's time there.
    pub task_done: Option<DenoiseTimes>,
    /// The process that denoised it (bytes from other processes are counted at home).
    pub process: usize,
}

/// A task's time in denoising, recorded when its last scene leaves.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct DenoiseTimes {
    /// From its first scene's start to its last scene's end.
    pub denoise_ms: u64,
    /// Spent making its previews.
    pub preview_ms: u64,
}

/// A message for the task service from `denoise`, wherever it ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// The route of the task it is for (or, for a step, of the run's leader).
    pub route: u64,
    /// The process that denoised: counted per process at home.
    pub process: usize,
    /// What happened.
    pub what: Reported,
}

/// What a [`Report`] says.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reported {
    /// One sampler step of one run, shared by the scenes of `scenes` (task, scene index).
    Step {
        /// Every (task, scene) the run is for, the leader first.
        scenes: Vec<(u64, usize)>,
        /// Steps taken.
        step: usize,
        /// Steps of the run.
        steps: usize,
    },
    /// A preview PNG of a run, for the watched (task, scene)s among those it is for.
    Preview {
        /// Who gets it.
        scenes: Vec<(u64, usize)>,
        /// Steps taken.
        step: usize,
        /// Steps of the run.
        steps: usize,
        /// The PNG.
        png: Vec<u8>,
    },
    /// A denoiser's scenes changed (sent when they do; to home worker 0).
    Load(DenoiserLoad),
    /// The task cannot go on (a scene the model cannot start).
    Failed {
        /// The task.
        task: u64,
        /// Why, for its record.
        reason: String,
    },
}

/// What process 0 tells every worker about the tasks in the graph, broadcast: whether each
/// is still wanted and watched. The denoisers in every process act on it, as they cannot ask
/// the task service.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Control {
    /// The task.
    pub task: u64,
    /// The task's epoch: once every scene of it has arrived, this is forgotten.
    pub epoch: u64,
    /// What changed.
    pub what: Controlled,
}

/// What a [`Control`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Controlled {
    /// Ended (cancelled, failed, deleted): drop its scenes.
    Ended,
    /// Somebody watches it now (previews are made), or no longer.
    Watched(bool),
}

/// A scene at delivered size and rate, ready for the encoder.
#[derive(Clone)]
pub struct ProcessedScene {
    /// The scene.
    pub job: SceneJob,
    /// Its delivered frames.
    pub frames: Arc<Processed>,
}

/// Counts, at home, the bytes of `message` when it came over the network from `process`
/// (`reel_cluster_bytes_in_total{kind}`): what a cluster exchanges per scene.
pub fn count_bytes_in<T: Serialize>(kind: &'static str, process: usize, message: &T) {
    if process != 0 {
        let bytes = bincode::serialized_size(message).unwrap_or(0);
        metrics::counter!("reel_cluster_bytes_in_total", "kind" => kind).increment(bytes);
    }
}

/// Task parameters cross processes as JSON text: their serde form leaves out absent fields
/// (for the API's sake), which bincode, timely's wire format, cannot read back.
mod as_json {
    use serde::de::{DeserializeOwned, Error as _};
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&serde_json::to_string(value).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        d: D,
    ) -> Result<T, D::Error> {
        serde_json::from_str(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}
