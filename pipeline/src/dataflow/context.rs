//! What every operator of the dataflow shares: storage, the hub, the model, post-processing,
//! the CPU ceiling.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kernels::Model;
use storage::{Store, TaskRecord, TaskStatus};

use crate::governor::CpuGovernor;
use crate::hub::Hub;
use crate::plan::Planner;
use crate::post::PostProcessor;

pub struct Context {
    pub store: Arc<Store>,
    pub hub: Arc<Hub>,
    pub model: Arc<Model>,
    pub post: Arc<PostProcessor>,
    pub planner: Arc<dyn Planner>,
    pub data_dir: PathBuf,
    pub max_batch: usize,
    /// The CPU ceiling the compute (denoise steps, post-processing threads) keeps to.
    pub governor: Arc<CpuGovernor>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Context {
    /// Applies `f` to the stored task unless it was cancelled meanwhile; logs storage errors
    /// (a worker must keep going: the task is retried from storage after a restart).
    pub fn update(&self, id: u64, f: impl FnOnce(&mut TaskRecord)) -> Option<TaskRecord> {
        let result = self.store.update(id, |r| {
            if r.status != TaskStatus::Cancelled {
                f(r)
            }
        });
        match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(task = id, error = %e, "storage update failed");
                None
            }
        }
    }

    /// Moves the task to `status` and tells its watchers.
    pub fn set_status(&self, id: u64, status: TaskStatus) {
        self.update(id, |r| r.status = status);
        metrics::counter!("reel_task_transitions_total", "status" => status.name()).increment(1);
        self.hub.status(id, status);
    }

    /// Adds `ms` to the task's timing for `stage`.
    pub fn add_timing(&self, id: u64, stage: &str, ms: u64) {
        self.update(id, |r| {
            *r.timings_ms.entry(stage.to_string()).or_insert(0) += ms
        });
    }

    pub fn cancelled(&self, id: u64) -> bool {
        self.hub.is_cancelled(id)
    }

    /// Relative path of a task's artifact directory under the data dir.
    pub fn artifact_dir(id: u64) -> String {
        format!("artifacts/{id}")
    }
}
