//! What the operators share. [`Context`] is on every worker of every process: the model, the
//! CPU ceiling, the engine's health, the cluster's [`Layout`]. [`Home`] is only in process 0
//! (`Context::home`): the task service, post-processing, the planner and the data directory,
//! what a task's life and artifacts need. Operators that write a task's state run only on
//! process 0's workers; the ones that run everywhere (`denoise`) send what they have to say
//! back there through the dataflow (`messages::DenoiseOut`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use contract::DenoiserLoad;
use kernels::VideoModel;
use tasks::TaskService;

use super::placement::Placement;
use crate::governor::CpuGovernor;
use crate::health::Health;
use crate::plan::Planner;
use crate::post::PostProcessor;

/// Shared by every operator of every worker.
pub struct Context {
    /// Process 0's share: `None` in the other processes of a cluster.
    pub home: Option<Arc<Home>>,
    /// How many processes, and workers in each.
    pub layout: Layout,
    /// The diffusion model being served (the built-in one or Wan2.1), behind one trait.
    pub model: Arc<dyn VideoModel>,
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

/// Process 0's part of the context: what owns tasks and their artifacts.
pub struct Home {
    /// The one owner of a task's life: every status change, record write and event goes
    /// through it, and `is_live` tells operators to drop a cancelled or failed task's work.
    pub tasks: Arc<TaskService>,
    /// Upscaling and interpolation (wgpu or CPU).
    pub post: Arc<PostProcessor>,
    /// Prompt -> scenes.
    pub planner: Arc<dyn Planner>,
    /// Where artifacts are written (`storage::task_dir` below it).
    pub data_dir: PathBuf,
    /// Every denoiser's scenes as it last reported them, by worker (`/api/stats`).
    pub load: Mutex<BTreeMap<usize, DenoiserLoad>>,
    /// Which denoiser each task in denoising was sent to.
    pub placement: Mutex<Placement>,
}

impl Home {
    /// False once the task has ended (cancelled, failed elsewhere): drop its work.
    pub fn live(&self, id: u64) -> bool {
        self.tasks.is_live(id)
    }

    /// Every denoiser's scenes, by worker.
    pub fn denoisers(&self) -> Vec<DenoiserLoad> {
        self.load
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .copied()
            .collect()
    }

    /// The denoiser for a task's scenes ([`Placement::place`]) among the cluster's.
    pub fn place(&self, task: u64, route: u64, scenes: usize, layout: Layout) -> u64 {
        let denoisers = layout.processes * layout.workers;
        let mut placement = self.placement.lock().unwrap_or_else(|e| e.into_inner());
        placement.place(task, route, scenes, denoisers, |t| self.live(t)) as u64
    }

    /// One of `task`'s scenes is back from its denoiser.
    pub fn returned(&self, task: u64) {
        let mut placement = self.placement.lock().unwrap_or_else(|e| e.into_inner());
        placement.returned(task);
    }

    /// Adds `ms` to the task's timing for `stage`.
    pub fn add_timing(&self, id: u64, stage: &str, ms: u64) {
        let _ = self.tasks.patch(id, |r| {
            *r.timings_ms.entry(stage.to_string()).or_insert(0) += ms
        });
    }
}

/// The shape of the computation: `processes` processes (timely's cluster mode; 1 on one
/// machine) of `workers` timely workers each. Worker indexes `0..workers` are process 0's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Processes in the cluster.
    pub processes: usize,
    /// Timely workers in each process.
    pub workers: usize,
}

impl Layout {
    /// The process 0 worker that owns a task routed by `route`: where it is planned, and
    /// where its denoised scenes and progress come back to. A value below the worker count
    /// is its own worker index under timely's exchange (mask or modulo of the peer count).
    pub fn home_worker(&self, route: u64) -> u64 {
        route % self.workers as u64
    }
}
