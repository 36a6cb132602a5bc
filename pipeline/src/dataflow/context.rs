//! What every operator of the dataflow shares: the task service, the model, post-processing,
//! the CPU ceiling, the engine's health.

use std::path::PathBuf;
use std::sync::Arc;

use kernels::VideoModel;
use tasks::TaskService;

use crate::governor::CpuGovernor;
use crate::health::Health;
use crate::plan::Planner;
use crate::post::PostProcessor;

/// Shared by every operator of every worker.
pub struct Context {
    /// The one owner of a task's life: every status change, record write and event goes
    /// through it, and `is_live` tells operators to drop a cancelled or failed task's work.
    pub tasks: Arc<TaskService>,
    /// The diffusion model being served (the built-in one or Wan2.1), behind one trait.
    pub model: Arc<dyn VideoModel>,
    /// Upscaling and interpolation (wgpu or CPU).
    pub post: Arc<PostProcessor>,
    /// Prompt -> scenes.
    pub planner: Arc<dyn Planner>,
    /// Where artifacts are written (`storage::task_dir` below it).
    pub data_dir: PathBuf,
    /// Most scenes in one batched forward pass.
    pub max_batch: usize,
    /// How far a task's scene runs before the next starts, as a share of its steps
    /// (`--scene-stagger`, see `schedule.rs`): 0 all together, 1 one after another.
    pub scene_stagger: f32,
    /// Whether watched tasks get previews of their scenes mid-run (`--previews`).
    pub previews: bool,
    /// The CPU ceiling the compute (denoise steps, post-processing threads) keeps to.
    pub governor: Arc<CpuGovernor>,
    /// Where a dying worker or post thread reports, so the engine notices.
    pub health: Arc<Health>,
    /// Test-only faults ([`crate::engine::FAULT_PANIC_PROMPT`]); off in production.
    pub fault_injection: bool,
}

impl Context {
    /// False once the task has ended (cancelled, failed elsewhere): drop its work.
    pub fn live(&self, id: u64) -> bool {
        self.tasks.is_live(id)
    }

    /// Adds `ms` to the task's timing for `stage`.
    pub fn add_timing(&self, id: u64, stage: &str, ms: u64) {
        let _ = self.tasks.patch(id, |r| {
            *r.timings_ms.entry(stage.to_string()).or_insert(0) += ms
        });
    }
}
