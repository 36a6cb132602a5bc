//! The engine as the API sees it: `api::Backend` over `pipeline::engine::Engine`.

use std::sync::Arc;

use kernels::{GpuMonitor, GpuUsage};
use pipeline::engine::{Engine, Progress, SubmitError, TaskEvent};
use tokio::sync::broadcast;

pub struct EngineBackend {
    engine: Arc<Engine>,
    ready: serde_json::Value,
    /// The model's GPU, when it runs on one and NVML opened.
    gpu: Option<GpuMonitor>,
}

impl EngineBackend {
    pub fn new(engine: Arc<Engine>, ready: serde_json::Value, gpu: Option<GpuMonitor>) -> Self {
        EngineBackend { engine, ready, gpu }
    }
}

impl api::Backend for EngineBackend {
    fn submit(&self, id: u64) -> Result<(), SubmitError> {
        self.engine.submit(id)
    }
    fn cancel(&self, id: u64) {
        self.engine.cancel(id)
    }
    fn subscribe(&self, id: u64) -> broadcast::Receiver<TaskEvent> {
        self.engine.subscribe(id)
    }
    fn progress(&self, id: u64) -> Option<Progress> {
        self.engine.progress(id)
    }
    fn frames_so_far(&self, id: u64) -> Vec<Arc<Vec<u8>>> {
        self.engine.frames_so_far(id)
    }
    fn queue_depth(&self) -> usize {
        self.engine.queue_depth()
    }
    fn queue_bound(&self) -> usize {
        self.engine.queue_bound()
    }
    fn ready(&self) -> serde_json::Value {
        self.ready.clone()
    }
    fn gpu(&self) -> Option<GpuUsage> {
        let sample = self.gpu.as_ref()?.sample();
        sample
            .inspect_err(|e| tracing::warn!(error = %e, "cannot read the GPU"))
            .ok()
    }
}
