//! Start-up shared by `serve` and `generate`: compute threads, model, storage, engine.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kernels::Model;
use pipeline::engine::{Engine, EngineConfig};
use pipeline::planner::RulePlanner;
use pipeline::post::{PostChoice, PostProcessor};
use storage::{CacheConfig, Store};

use crate::config::Resolved;

/// The model shipped inside the binary (model/checkpoint, trained by model/train.py).
const SHIPPED_CONFIG: &str = include_str!("../model/checkpoint/config.json");
const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../model/checkpoint/model.safetensors");

pub struct Runtime {
    pub store: Arc<Store>,
    pub engine: Arc<Engine>,
    pub model: Arc<Model>,
    pub post: Arc<PostProcessor>,
}

pub fn start(s: &Resolved) -> anyhow::Result<Runtime> {
    // Must precede the first parallel op: both pools read their size once.
    std::env::set_var("MATMUL_NUM_THREADS", s.compute_threads.to_string());
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(s.compute_threads)
        .build_global();

    let model = Arc::new(match &s.model {
        Some(dir) => {
            Model::load(dir).with_context(|| format!("loading model from {}", dir.display()))?
        }
        None => Model::from_bytes(SHIPPED_CONFIG, SHIPPED_WEIGHTS)
            .context("loading the shipped model")?,
    });
    tracing::info!(model = model.id(), "model loaded");

    let choice: PostChoice = s.post.parse().map_err(|e| anyhow::anyhow!("--post: {e}"))?;
    let post = Arc::new(PostProcessor::new(choice).context("starting post-processing")?);
    tracing::info!(post = %post.describe(), "post-processing ready");

    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("creating {}", s.data_dir.display()))?;
    let cache = CacheConfig {
        capacity: s.cache_size,
        ttl: Duration::from_secs(s.cache_ttl_secs),
    };
    let store = Arc::new(Store::open_with(&s.data_dir, cache).context("opening storage")?);

    let engine = Engine::start(
        EngineConfig {
            workers: s.workers,
            max_batch: s.max_batch,
            queue_bound: s.queue_bound,
            data_dir: s.data_dir.clone(),
        },
        store.clone(),
        model.clone(),
        post.clone(),
        Arc::new(RulePlanner),
    )?;
    Ok(Runtime {
        store,
        engine: Arc::new(engine),
        model,
        post,
    })
}
