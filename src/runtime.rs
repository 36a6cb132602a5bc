//! Start-up shared by `serve` and `generate`: compute threads, model, and the in-process
//! pipeline (storage, task service, engine: `pipeline::inprocess`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kernels::wan::WanModel;
use kernels::{cuda_available, CpuBackend, CudaBackend, Model, VideoModel};
use pipeline::engine::{Engine, EngineConfig};
use pipeline::inprocess::{Pipeline, PipelineConfig};
use pipeline::plan::Planner;
use pipeline::planner::{FreeTextPlanner, LlmConfig, LlmPlanner, RulePlanner};
use pipeline::post::{PostChoice, PostProcessor};
use storage::CacheConfig;
use tasks::TaskService;

use crate::config::Resolved;

/// The model shipped inside the binary (model/checkpoint, trained by model/train.py).
const SHIPPED_CONFIG: &str = include_str!("../model/checkpoint/config.json");
const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../model/checkpoint/model.safetensors");

pub struct Runtime {
    /// "cpu" or "cuda": where the model runs.
    pub device: &'static str,
    /// The GPU's UUID (NVML's spelling) when the model runs on CUDA.
    pub gpu_uuid: Option<String>,
    /// The owner of every task's life (and, through it, the store).
    pub tasks: Arc<TaskService>,
    pub engine: Arc<Engine>,
    /// What owns the two above (with the store): submit, events, frames, cancel.
    pub pipeline: Pipeline,
    pub model: Arc<dyn VideoModel>,
    pub post: Arc<PostProcessor>,
}

/// Sizes rayon's global pool, where the model's and post-processing's parallel loops run.
/// Must precede the first parallel op: the pool reads its size once. Compute threads run at
/// background priority so that request threads stay responsive.
fn compute_pool(s: &Resolved) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(s.compute_threads)
        .start_handler(|_| kernels::lower_current_thread_priority())
        .build_global();
}

/// The engine's settings.
fn engine_config(s: &Resolved) -> EngineConfig {
    EngineConfig {
        workers: s.workers,
        max_batch: s.max_batch,
        scene_stagger: s.scene_stagger,
        previews: s.previews,
        queue_bound: s.queue_bound,
        data_dir: s.data_dir.clone(),
        max_cpu_percent: s.max_cpu_percent,
        fault_injection: s.fault_injection,
        cluster: s.cluster.clone(),
    }
}

/// Runs a cluster process other than 0: the model and the dataflow's workers, no store or
/// HTTP (`pipeline::engine::run_member`). Returns only on an error (peers unreachable).
pub fn member(s: &Resolved) -> anyhow::Result<()> {
    compute_pool(s);
    let (model, _) = load_model(s)?;
    let process = s.process;
    tracing::info!(process, model = model.spec().id, "cluster member ready");
    pipeline::engine::run_member(engine_config(s), model)
}

pub fn start(s: &Resolved) -> anyhow::Result<Runtime> {
    compute_pool(s);
    let (model, gpu_uuid) = load_model(s)?;
    let device = if gpu_uuid.is_some() { "cuda" } else { "cpu" };
    let spec = model.spec();
    tracing::info!(
        model = spec.id,
        kind = ?spec.kind,
        parameters = spec.parameters,
        weight_bytes = spec.weight_bytes,
        device,
        backend = model.backend_name(),
        "model loaded"
    );

    let choice: PostChoice = s.post.parse().map_err(|e| anyhow::anyhow!("--post: {e}"))?;
    let post = Arc::new(PostProcessor::new(choice).context("starting post-processing")?);
    tracing::info!(post = %post.describe(), "post-processing ready");

    let cache = CacheConfig {
        capacity: s.cache_size,
        ttl: Duration::from_secs(s.cache_ttl_secs),
    };
    let engine = engine_config(s);
    // The store, the task service and the engine, as the library's in-process pipeline.
    let pipeline = Pipeline::start(
        PipelineConfig { engine, cache },
        model.clone(),
        post.clone(),
        planner(s, model.spec().is_free_form())?,
    )?;
    Ok(Runtime {
        device,
        gpu_uuid,
        tasks: pipeline.tasks().clone(),
        engine: pipeline.engine().clone(),
        pipeline,
        model,
        post,
    })
}

/// The planner `--planner` names: the rules, or an OpenAI-compatible endpoint falling back to
/// them; for a free-form model (`free_form`), the free-text planner, or the endpoint writing
/// scene prompts and falling back to it.
pub fn planner(s: &Resolved, free_form: bool) -> anyhow::Result<Arc<dyn Planner>> {
    // `Settings::resolve` checked that openai comes with both.
    let (Some(url), Some(model), "openai") = (&s.planner_url, &s.planner_model, s.planner.as_str())
    else {
        return Ok(if free_form {
            Arc::new(FreeTextPlanner)
        } else {
            Arc::new(RulePlanner)
        });
    };
    let config = LlmConfig {
        url: url.clone(),
        model: model.clone(),
        timeout: Duration::from_millis(s.planner_timeout_ms),
        api_key: s.planner_api_key.clone(),
    };
    let planner = if free_form {
        LlmPlanner::free_form(config)
    } else {
        LlmPlanner::new(config)
    }
    .context("starting the LLM planner")?;
    tracing::info!(
        url,
        model,
        timeout_ms = s.planner_timeout_ms,
        scenes = if free_form { "free text" } else { "WORLD.md" },
        "LLM planner"
    );
    Ok(Arc::new(planner))
}

/// The directory of `--model wan:DIR`, when it names a Wan2.1 checkpoint.
pub fn wan_dir(s: &Resolved) -> Option<&str> {
    s.model.as_deref()?.to_str()?.strip_prefix("wan:")
}

/// The model `--model` names, on the device `--device` asks for (`auto` takes CUDA when a GPU
/// works), with the GPU's UUID when it runs on one. `wan:DIR` is a Wan2.1 checkpoint, which
/// runs on the CPU.
fn load_model(s: &Resolved) -> anyhow::Result<(Arc<dyn VideoModel>, Option<String>)> {
    if let Some(dir) = wan_dir(s) {
        if s.device == "cuda" {
            anyhow::bail!(
                "Wan2.1 runs on the CPU backend (its CUDA kernels are written but not yet verified on a GPU)"
            );
        }
        if s.resident_steps == Some(true) {
            anyhow::bail!("--resident-steps is for the built-in model; Wan2.1 has none");
        }
        let model = WanModel::load(std::path::Path::new(dir))
            .with_context(|| format!("loading the Wan2.1 checkpoint {dir}"))?
            .with_step_cache(s.step_cache);
        return Ok((Arc::new(model), None));
    }
    if s.step_cache > 0.0 {
        anyhow::bail!("--step-cache is for Wan2.1 (--model wan:DIR); the built-in model has none");
    }
    let cuda = match s.device.as_str() {
        "cpu" => false,
        "cuda" => true,
        "auto" => cuda_available(),
        other => anyhow::bail!("--device must be auto, cpu or cuda, not {other:?}"),
    };
    // Resident steps give the host path's results bit for bit on the CPU, a little faster
    // (docs/PERFORMANCE.md); on CUDA they stay opt-in until a GPU has run their parity tests.
    let resident = s.resident_steps.unwrap_or(!cuda);
    let (model, uuid) = if cuda {
        let backend = CudaBackend::try_new(0)?;
        let uuid = backend.uuid().to_owned();
        (with_weights(s, backend, resident), Some(uuid))
    } else {
        let backend = CpuBackend::background(s.compute_threads);
        (with_weights(s, backend, resident), None)
    };
    Ok((Arc::new(model.context("loading the model")?), uuid))
}

/// The `--model` checkpoint, or the shipped one, on `backend`, its scenes `resident` or not.
fn with_weights<B: kernels::Backend>(
    s: &Resolved,
    backend: B,
    resident: bool,
) -> Result<Model, kernels::KernelError> {
    let model = match &s.model {
        Some(dir) => Model::load_with(dir, backend),
        None => Model::from_bytes_with(SHIPPED_CONFIG, SHIPPED_WEIGHTS, backend),
    }?;
    Ok(model.with_resident_steps(resident))
}
