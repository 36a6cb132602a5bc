//! Server settings: flags beat environment variables (`REEL_*`), which beat an optional TOML
//! file (`--config`), which beats the embedded defaults.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;

/// Every setting of `reel serve` / `reel generate`; None means "not given here".
#[derive(Args, Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// HTTP port [default: 8000]
    #[arg(long, env = "REEL_PORT")]
    pub port: Option<u16>,
    /// Where sled and the artifacts live [default: ./data]
    #[arg(long, env = "REEL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Model directory (config.json + model.safetensors) [default: the model built into the binary]
    #[arg(long, env = "REEL_MODEL")]
    pub model: Option<PathBuf>,
    /// Timely worker threads running the dataflow [default: 1]
    #[arg(long, env = "REEL_WORKERS")]
    pub workers: Option<usize>,
    /// Threads for the model's and post-processing's parallel math [default: all cores]
    #[arg(long, env = "REEL_COMPUTE_THREADS")]
    pub compute_threads: Option<usize>,
    /// Most scenes denoised together in one batched forward pass [default: 8]
    #[arg(long, env = "REEL_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Most tasks accepted and unfinished; beyond it POST answers 429 [default: 256]
    #[arg(long, env = "REEL_QUEUE_BOUND")]
    pub queue_bound: Option<usize>,
    /// Entries of the in-memory result cache in front of sled [default: 1024]
    #[arg(long, env = "REEL_CACHE_SIZE")]
    pub cache_size: Option<usize>,
    /// Seconds an in-memory cache entry lives [default: 3600]
    #[arg(long, env = "REEL_CACHE_TTL_SECS")]
    pub cache_ttl_secs: Option<u64>,
    /// Hours a finished task's video and frames are kept [default: 168]
    #[arg(long, env = "REEL_RETENTION_HOURS")]
    pub retention_hours: Option<u64>,
    /// Post-processing: auto, wgpu or cpu [default: auto]
    #[arg(long, env = "REEL_POST")]
    pub post: Option<String>,
    /// Model device: auto (CUDA when a GPU works), cpu or cuda [default: auto]
    #[arg(long, env = "REEL_DEVICE")]
    pub device: Option<String>,
    /// CPU ceiling for the compute threads, percent of all cores; 100 lifts it [default: 80]
    #[arg(long, env = "REEL_MAX_CPU_PERCENT", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_cpu_percent: Option<u32>,
    /// Requests slower than this many milliseconds are logged as warnings [default: 100]
    #[arg(long, env = "REEL_SLOW_REQUEST_MS")]
    pub slow_request_ms: Option<u64>,
    /// Optional TOML file with any of these settings (kebab-case keys)
    #[arg(long, env = "REEL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// Settings with every default applied.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub port: u16,
    pub data_dir: PathBuf,
    pub model: Option<PathBuf>,
    pub workers: usize,
    pub compute_threads: usize,
    pub max_batch: usize,
    pub queue_bound: usize,
    pub cache_size: usize,
    pub cache_ttl_secs: u64,
    pub retention_hours: u64,
    pub post: String,
    pub device: String,
    pub max_cpu_percent: u32,
    pub slow_request_ms: u64,
}

impl Settings {
    fn or(self, other: Settings) -> Settings {
        Settings {
            port: self.port.or(other.port),
            data_dir: self.data_dir.or(other.data_dir),
            model: self.model.or(other.model),
            workers: self.workers.or(other.workers),
            compute_threads: self.compute_threads.or(other.compute_threads),
            max_batch: self.max_batch.or(other.max_batch),
            queue_bound: self.queue_bound.or(other.queue_bound),
            cache_size: self.cache_size.or(other.cache_size),
            cache_ttl_secs: self.cache_ttl_secs.or(other.cache_ttl_secs),
            retention_hours: self.retention_hours.or(other.retention_hours),
            post: self.post.or(other.post),
            device: self.device.or(other.device),
            max_cpu_percent: self.max_cpu_percent.or(other.max_cpu_percent),
            slow_request_ms: self.slow_request_ms.or(other.slow_request_ms),
            config: self.config.or(other.config),
        }
    }

    /// Merges the TOML file (if any) under these settings and fills in defaults.
    pub fn resolve(self) -> anyhow::Result<Resolved> {
        let file = match &self.config {
            Some(path) => read_toml(path)?,
            None => Settings::default(),
        };
        let s = self.or(file);
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Ok(Resolved {
            port: s.port.unwrap_or(8000),
            data_dir: s.data_dir.unwrap_or_else(|| PathBuf::from("./data")),
            model: s.model,
            workers: s.workers.unwrap_or(1).max(1),
            compute_threads: s.compute_threads.unwrap_or(cores).max(1),
            max_batch: s.max_batch.unwrap_or(8).max(1),
            queue_bound: s.queue_bound.unwrap_or(256).max(1),
            cache_size: s.cache_size.unwrap_or(1024),
            cache_ttl_secs: s.cache_ttl_secs.unwrap_or(3600),
            retention_hours: s.retention_hours.unwrap_or(168),
            post: s.post.unwrap_or_else(|| "auto".into()),
            device: s.device.unwrap_or_else(|| "auto".into()),
            max_cpu_percent: match s.max_cpu_percent.unwrap_or(80) {
                p @ 1..=100 => p,
                p => anyhow::bail!("max-cpu-percent must be 1 to 100, not {p}"),
            },
            slow_request_ms: s.slow_request_ms.unwrap_or(100),
        })
    }
}

fn read_toml(path: &Path) -> anyhow::Result<Settings> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}
