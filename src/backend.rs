//! The engine as the API sees it: `api::Backend` over `pipeline::engine::Engine`.

use std::sync::Arc;

use contract::{GpuUsage, ModelSpec, SubmitError};
use kernels::GpuMonitor;
use pipeline::engine::Engine;
use storage::TaskRecord;

/// The engine, what it serves with, and its GPU's monitor.
pub struct EngineBackend {
    engine: Arc<Engine>,
    ready: serde_json::Value,
    model: ModelSpec,
    /// The model's GPU, when it runs on one and NVML opened.
    gpu: Option<GpuMonitor>,
}

impl EngineBackend {
    pub fn new(
        engine: Arc<Engine>,
        ready: serde_json::Value,
        model: ModelSpec,
        gpu: Option<GpuMonitor>,
    ) -> Self {
        EngineBackend {
            engine,
            ready,
            model,
            gpu,
        }
    }
}

impl api::Backend for EngineBackend {
    fn submit(&self, record: &TaskRecord) -> Result<(), SubmitError> {
        self.engine.submit(record)
    }
    fn health(&self) -> Result<(), String> {
        self.engine.health()
    }
    fn queue_depth(&self) -> usize {
        self.engine.queue_depth()
    }
    fn queue_bound(&self) -> usize {
        self.engine.queue_bound()
    }
    fn denoisers(&self) -> Vec<contract::DenoiserLoad> {
        self.engine.denoisers()
    }
    fn ready(&self) -> serde_json::Value {
        self.ready.clone()
    }
    fn model(&self) -> &ModelSpec {
        &self.model
    }
    fn gpu(&self) -> Option<GpuUsage> {
        let sample = self.gpu.as_ref()?.sample();
        sample
            .inspect_err(|e| tracing::warn!(error = %e, "cannot read the GPU"))
            .ok()
    }
}
