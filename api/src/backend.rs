//! What the API needs from the engine, as a trait so the routes can be tested without one.
//! A task's life itself belongs to the `tasks` crate's service, which the API calls directly.

use contract::{DenoiserLoad, GpuUsage, ModelSpec, SubmitError};
use storage::TaskRecord;

/// The engine as the API sees it. All methods but [`Backend::gpu`] are cheap and
/// non-blocking.
pub trait Backend: Send + Sync + 'static {
    /// Starts work on a task just created (queued, in the store).
    fn submit(&self, record: &TaskRecord) -> Result<(), SubmitError>;
    /// `Err(reason)` while the engine cannot run tasks (a worker died; it is recovering).
    fn health(&self) -> Result<(), String>;
    /// Tasks accepted and not finished.
    fn queue_depth(&self) -> usize;
    /// Most tasks accepted and not finished; the API answers 429 beyond it.
    fn queue_bound(&self) -> usize;
    /// What is serving (model id, device, post-processing adapter...), shown in `/readyz`.
    fn ready(&self) -> serde_json::Value;
    /// The served model: what requests take, their defaults and rules.
    fn model(&self) -> &ModelSpec;
    /// Scenes in each denoiser (every timely worker of every process), as last reported.
    fn denoisers(&self) -> Vec<DenoiserLoad> {
        Vec::new()
    }
    /// The GPU the model runs on, read now; `None` on the CPU backend or where NVML is
    /// absent. The one method that may block (briefly): call it off the async workers.
    fn gpu(&self) -> Option<GpuUsage> {
        None
    }
}
