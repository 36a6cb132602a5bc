//! What the API needs from the pipeline, as a trait so the routes can be tested alone.

use std::sync::Arc;

use kernels::GpuUsage;
use pipeline::engine::{Progress, SubmitError, TaskEvent};
use tokio::sync::broadcast;

/// The pipeline as the API sees it. All methods but [`Backend::gpu`] are cheap and
/// non-blocking.
pub trait Backend: Send + Sync + 'static {
    /// Starts work on a task already in storage; `QueueFull` becomes a 429.
    fn submit(&self, id: u64) -> Result<(), SubmitError>;
    /// Stops a queued or running task (its status is set by the API).
    fn cancel(&self, id: u64);
    /// Events of one task from now on.
    fn subscribe(&self, id: u64) -> broadcast::Receiver<TaskEvent>;
    /// Live progress of a running task; `None` when the engine holds none.
    fn progress(&self, id: u64) -> Option<Progress>;
    /// JPEG frames the running task has produced so far, for late stream joiners.
    fn frames_so_far(&self, id: u64) -> Vec<Arc<Vec<u8>>>;
    fn queue_depth(&self) -> usize;
    fn queue_bound(&self) -> usize;
    /// What is serving (model id, device, post-processing adapter...), shown in `/readyz`.
    fn ready(&self) -> serde_json::Value;
    /// The GPU the model runs on, read now; `None` on the CPU backend or where NVML is
    /// absent. The one method that may block (briefly): call it off the async workers.
    fn gpu(&self) -> Option<GpuUsage> {
        None
    }
}
