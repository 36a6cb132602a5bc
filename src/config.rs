//! Server settings, layered by figment: flags beat environment variables (`REEL_*`, read by
//! clap into the same flags), which beat an optional TOML file (`--config`), which beats the
//! defaults written once, in [`Resolved`]'s serde defaults.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use pipeline::cluster::Cluster;
use serde::{Deserialize, Serialize};

/// Every setting of `reel serve` / `reel generate` as given on the command line or in the
/// environment; `None` means "not given here".
#[derive(Args, Debug, Default, Clone, Serialize)]
pub struct Settings {
    /// Address to listen on; a non-loopback one needs API keys (or --insecure) [default: 127.0.0.1]
    #[arg(long, env = "REEL_HOST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<IpAddr>,
    /// HTTP port [default: 8000]
    #[arg(long, env = "REEL_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Where sled and the artifacts live [default: ./data]
    #[arg(long, env = "REEL_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The model: a directory of reel's format (config.json + model.safetensors), or wan:DIR for a Wan2.1 text-to-video checkpoint in the diffusers layout (CPU) [default: the model built into the binary]
    #[arg(long, env = "REEL_MODEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// Timely worker threads running the dataflow [default: 1]
    #[arg(long, env = "REEL_WORKERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Threads for the model's and post-processing's parallel math [default: all cores]
    #[arg(long, env = "REEL_COMPUTE_THREADS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_threads: Option<usize>,
    /// Most scenes denoised together in one batched forward pass [default: 8]
    #[arg(long, env = "REEL_MAX_BATCH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<usize>,
    /// How far a task's scene is denoised before its next scene starts, as a share of its steps: 0 starts them together, 1 one after another, so the first scene's frames come first [default: 1]
    #[arg(long, env = "REEL_SCENE_STAGGER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scene_stagger: Option<f32>,
    /// Send watchers previews of each scene mid-run (SSE `preview`): --previews=false turns them off [default: true]
    #[arg(long, env = "REEL_PREVIEWS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previews: Option<bool>,
    /// Most tasks accepted and unfinished; beyond it POST answers 429 [default: 256]
    #[arg(long, env = "REEL_QUEUE_BOUND")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_bound: Option<usize>,
    /// Entries of the in-memory result cache in front of sled [default: 1024]
    #[arg(long, env = "REEL_CACHE_SIZE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<usize>,
    /// Seconds an in-memory cache entry lives [default: 3600]
    #[arg(long, env = "REEL_CACHE_TTL_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_ttl_secs: Option<u64>,
    /// Hours a finished task is kept (record, video, frames), then deleted [default: 168]
    #[arg(long, env = "REEL_RETENTION_HOURS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_hours: Option<u64>,
    /// Post-processing: auto, wgpu or cpu [default: auto]
    #[arg(long, env = "REEL_POST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post: Option<String>,
    /// Model device: auto (CUDA when a GPU works), cpu or cuda [default: auto]
    #[arg(long, env = "REEL_DEVICE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// CPU ceiling for the compute threads, percent of all cores; 100 lifts it [default: 80]
    #[arg(long, env = "REEL_MAX_CPU_PERCENT", value_parser = clap::value_parser!(u32).range(1..=100))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cpu_percent: Option<u32>,
    /// Requests slower than this many milliseconds are logged as warnings [default: 100]
    #[arg(long, env = "REEL_SLOW_REQUEST_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_request_ms: Option<u64>,
    /// Serve without API keys on a non-loopback address (anyone who reaches it may do anything)
    #[arg(long, env = "REEL_INSECURE")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Let webhooks point at loopback, private and link-local addresses (receivers on this
    /// machine or network); without it only public addresses receive them
    #[arg(long, env = "REEL_WEBHOOK_PRIVATE")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub webhook_private: bool,
    /// An origin allowed by CORS (repeat for more); none: CORS off
    #[arg(long = "cors-origin", env = "REEL_CORS_ORIGINS", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cors_origins: Vec<String>,
    /// Serve /metrics here, unauthenticated, instead of on the API port for admin keys
    #[arg(long, env = "REEL_METRICS_ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<SocketAddr>,
    /// Below this many MiB free under the data dir, new tasks are refused (507) [default: 256]
    #[arg(long, env = "REEL_MIN_FREE_DISK_MB")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_free_disk_mb: Option<u64>,
    /// Most unfinished tasks per API key [default: 16]
    #[arg(long, env = "REEL_KEY_MAX_IN_FLIGHT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_max_in_flight: Option<usize>,
    /// Most tasks an API key may create per hour [default: 500]
    #[arg(long, env = "REEL_KEY_MAX_PER_HOUR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_max_per_hour: Option<usize>,
    /// Most pixels one task may deliver, frames x width x height [default: 201326592, 768 frames of 512 x 512]
    #[arg(long, env = "REEL_MAX_TASK_PIXELS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_task_pixels: Option<u64>,
    /// Scene planner: rule (built-in rules) or openai (an OpenAI-compatible chat endpoint,
    /// falling back to the rules) [default: rule]
    #[arg(long, env = "REEL_PLANNER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
    /// The LLM planner's endpoint, e.g. http://127.0.0.1:8080/v1 (llama.cpp's server, vLLM,
    /// Ollama at :11434/v1); /chat/completions is appended
    #[arg(long, env = "REEL_PLANNER_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planner_url: Option<String>,
    /// The model the LLM planner asks
    #[arg(long, env = "REEL_PLANNER_MODEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planner_model: Option<String>,
    /// Most milliseconds one plan waits on the LLM, retry included, before the rule planner
    /// answers [default: 10000]
    #[arg(long, env = "REEL_PLANNER_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planner_timeout_ms: Option<u64>,
    /// Bearer token for the LLM planner's endpoint (prefer the environment variable)
    #[arg(long, env = "REEL_PLANNER_API_KEY", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planner_api_key: Option<String>,
    /// Wan2.1 only: step caching, a transformer pass reusing the last computed one's residual while its modulated input changed by less than this (relative L1, summed); 0 is off, 0.05-0.2 trade detail for speed (docs/WAN.md) [default: 0]
    #[arg(long, env = "REEL_STEP_CACHE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step_cache: Option<f32>,
    /// Built-in model: keep each scene's latents on the backend between steps and run the sampler there (on the CPU the host path's arithmetic bit for bit, a few percent faster; on CUDA the device sampler, no host round trip per step) [default: true on the CPU, false on CUDA until measured on a GPU]
    #[arg(long, env = "REEL_RESIDENT_STEPS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resident_steps: Option<bool>,
    /// Processes in the cluster (timely's -n): more than 1 joins the processes of --hostfile into one computation [default: 1]
    #[arg(long, env = "REEL_PROCESSES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<usize>,
    /// This process's index in the cluster (timely's -p): 0 serves HTTP and owns the store; the others only compute [default: 0]
    #[arg(long, env = "REEL_PROCESS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<usize>,
    /// The cluster's addresses (timely's -h): one host:port per line, line i for process i
    #[arg(long, env = "REEL_HOSTFILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostfile: Option<PathBuf>,
    /// Seconds a cluster process waits for its peers at each (re)start before giving up [default: 30]
    #[arg(long, env = "REEL_PEER_TIMEOUT_SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_timeout_secs: Option<u64>,
    /// Tests only: a prompt with the fault marker kills a worker on purpose
    #[arg(long, hide = true, env = "REEL_FAULT_INJECTION")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fault_injection: bool,
    /// Optional TOML file with any of these settings (kebab-case keys)
    #[arg(long, env = "REEL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Settings with every default applied: the one place the defaults are written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Resolved {
    #[serde(default = "defaults::host")]
    pub host: IpAddr,
    #[serde(default = "defaults::port")]
    pub port: u16,
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub model: Option<PathBuf>,
    #[serde(default = "defaults::one")]
    pub workers: usize,
    #[serde(default = "cores")]
    pub compute_threads: usize,
    #[serde(default = "defaults::max_batch")]
    pub max_batch: usize,
    #[serde(default = "defaults::scene_stagger")]
    pub scene_stagger: f32,
    #[serde(default = "defaults::yes")]
    pub previews: bool,
    #[serde(default = "defaults::queue_bound")]
    pub queue_bound: usize,
    #[serde(default = "defaults::cache_size")]
    pub cache_size: usize,
    #[serde(default = "defaults::cache_ttl_secs")]
    pub cache_ttl_secs: u64,
    #[serde(default = "defaults::retention_hours")]
    pub retention_hours: u64,
    #[serde(default = "defaults::auto")]
    pub post: String,
    #[serde(default = "defaults::auto")]
    pub device: String,
    #[serde(default = "defaults::max_cpu_percent")]
    pub max_cpu_percent: u32,
    #[serde(default = "defaults::slow_request_ms")]
    pub slow_request_ms: u64,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub webhook_private: bool,
    #[serde(default)]
    pub cors_origins: Vec<String>,
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    #[serde(default = "defaults::min_free_disk_mb")]
    pub min_free_disk_mb: u64,
    #[serde(default = "defaults::key_max_in_flight")]
    pub key_max_in_flight: usize,
    #[serde(default = "defaults::key_max_per_hour")]
    pub key_max_per_hour: usize,
    #[serde(default = "defaults::max_task_pixels")]
    pub max_task_pixels: u64,
    #[serde(default = "defaults::planner")]
    pub planner: String,
    #[serde(default)]
    pub planner_url: Option<String>,
    #[serde(default)]
    pub planner_model: Option<String>,
    #[serde(default = "defaults::planner_timeout_ms")]
    pub planner_timeout_ms: u64,
    #[serde(default)]
    pub planner_api_key: Option<String>,
    #[serde(default)]
    pub fault_injection: bool,
    #[serde(default)]
    pub step_cache: f32,
    /// None: the device's default (`runtime::load_model`).
    #[serde(default)]
    pub resident_steps: Option<bool>,
    #[serde(default = "defaults::one")]
    pub processes: usize,
    #[serde(default)]
    pub process: usize,
    #[serde(default)]
    pub hostfile: Option<PathBuf>,
    #[serde(default = "defaults::peer_timeout_secs")]
    pub peer_timeout_secs: u64,
    /// The cluster these settings describe (`None`: one process), from the four above.
    #[serde(skip)]
    pub cluster: Option<Cluster>,
}

mod defaults {
    use std::net::{IpAddr, Ipv4Addr};
    use std::path::PathBuf;

    pub fn host() -> IpAddr {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
    pub fn port() -> u16 {
        8000
    }
    pub fn data_dir() -> PathBuf {
        PathBuf::from("./data")
    }
    pub fn one() -> usize {
        1
    }
    pub fn max_batch() -> usize {
        8
    }
    pub fn scene_stagger() -> f32 {
        1.0
    }
    pub fn yes() -> bool {
        true
    }
    pub fn queue_bound() -> usize {
        256
    }
    pub fn cache_size() -> usize {
        1024
    }
    pub fn cache_ttl_secs() -> u64 {
        3600
    }
    pub fn retention_hours() -> u64 {
        168
    }
    pub fn auto() -> String {
        "auto".into()
    }
    pub fn max_cpu_percent() -> u32 {
        80
    }
    pub fn slow_request_ms() -> u64 {
        100
    }
    pub fn min_free_disk_mb() -> u64 {
        256
    }
    pub fn key_max_in_flight() -> usize {
        api::quota::Limits::default().in_flight_per_key
    }
    pub fn key_max_per_hour() -> usize {
        api::quota::Limits::default().per_hour_per_key
    }
    pub fn planner() -> String {
        "rule".into()
    }
    pub fn planner_timeout_ms() -> u64 {
        10_000
    }
    pub fn peer_timeout_secs() -> u64 {
        30
    }
    pub fn max_task_pixels() -> u64 {
        api::quota::Limits::default().max_task_pixels
    }
}

impl Settings {
    /// Layers these settings over the TOML file (if any) over the defaults.
    pub fn resolve(self) -> anyhow::Result<Resolved> {
        let mut figment = Figment::new();
        if let Some(path) = &self.config {
            if !path.exists() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        // Flags are snake_case fields; the file's keys, kebab-case.
        let flags = serde_json::to_value(&self)?;
        let flags: serde_json::Map<String, serde_json::Value> = flags
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.replace('_', "-"), v.clone()))
            .collect();
        let mut r: Resolved = figment
            .merge(Serialized::defaults(flags))
            .extract()
            .context("reading the settings")?;
        r.workers = r.workers.max(1);
        r.compute_threads = r.compute_threads.max(1);
        r.max_batch = r.max_batch.max(1);
        r.queue_bound = r.queue_bound.max(1);
        if !(0.0..=1.0).contains(&r.scene_stagger) {
            anyhow::bail!("scene-stagger must be 0 to 1, not {}", r.scene_stagger);
        }
        match (r.planner.as_str(), &r.planner_url, &r.planner_model) {
            ("rule", ..) | ("openai", Some(_), Some(_)) => {}
            ("openai", ..) => {
                anyhow::bail!("--planner openai needs --planner-url and --planner-model")
            }
            (other, ..) => anyhow::bail!("--planner must be rule or openai, not {other:?}"),
        }
        if !(1..=100).contains(&r.max_cpu_percent) {
            anyhow::bail!(
                "max-cpu-percent must be 1 to 100, not {}",
                r.max_cpu_percent
            );
        }
        if !(r.step_cache >= 0.0 && r.step_cache.is_finite()) {
            anyhow::bail!("step-cache must be 0 (off) or a positive threshold");
        }
        r.cluster = match (r.processes, &r.hostfile) {
            (0, _) => anyhow::bail!("processes must be at least 1"),
            (1, _) if r.process != 0 => {
                anyhow::bail!("--process {} needs --processes above 1", r.process)
            }
            (1, _) => None,
            (_, None) => anyhow::bail!("--processes above 1 needs --hostfile"),
            (n, Some(file)) => Some(Cluster::from_hostfile(
                file,
                n,
                r.process,
                Duration::from_secs(r.peer_timeout_secs.max(1)),
            )?),
        };
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_which_beats_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reel.toml");
        std::fs::write(&file, "port = 9000\nworkers = 3\nhost = \"0.0.0.0\"\n").unwrap();
        let r = Settings {
            port: Some(9100),
            config: Some(file.clone()),
            ..Settings::default()
        }
        .resolve()
        .unwrap();
        assert_eq!((r.port, r.workers), (9100, 3));
        assert_eq!(r.host.to_string(), "0.0.0.0");
        assert_eq!((r.max_cpu_percent, r.min_free_disk_mb), (80, 256));
        assert_eq!((r.scene_stagger, r.previews), (1.0, true));
        let plain = Settings::default().resolve().unwrap();
        assert_eq!(plain.host.to_string(), "127.0.0.1");
        assert_eq!(plain.data_dir, PathBuf::from("./data"));
        std::fs::write(&file, "previews = false\nscene-stagger = 0.5\n").unwrap();
        let r = Settings {
            config: Some(file.clone()),
            scene_stagger: Some(0.0),
            ..Settings::default()
        }
        .resolve()
        .unwrap();
        assert_eq!((r.scene_stagger, r.previews), (0.0, false));
        let err = Settings {
            scene_stagger: Some(1.5),
            ..Settings::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("scene-stagger"), "{err:#}");
        std::fs::write(&file, "prot = 1\n").unwrap();
        let err = Settings {
            config: Some(file),
            ..Settings::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{err:#}").contains("prot"), "{err:#}");
    }

    #[test]
    fn a_cluster_needs_a_hostfile_naming_every_process_and_step_caching_a_threshold() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(
            &hosts,
            "# three\n127.0.0.1:7100\n127.0.0.1:7101\n\n127.0.0.1:7102\n",
        )
        .unwrap();
        let resolve = |processes: usize, process: usize, hostfile: Option<&PathBuf>| {
            Settings {
                processes: Some(processes),
                process: Some(process),
                hostfile: hostfile.cloned(),
                ..Settings::default()
            }
            .resolve()
        };
        let c = resolve(3, 2, Some(&hosts)).unwrap().cluster.unwrap();
        assert_eq!((c.processes(), c.process), (3, 2));
        assert_eq!(c.addresses[2], "127.0.0.1:7102");
        assert!(Settings::default().resolve().unwrap().cluster.is_none());
        for (n, i, file, why) in [
            (3, 0, None, "needs --hostfile"),
            (4, 0, Some(&hosts), "names 3 processes"),
            (3, 3, Some(&hosts), "not below"),
            (1, 1, None, "needs --processes above 1"),
        ] {
            let err = format!("{:#}", resolve(n, i, file).unwrap_err());
            assert!(err.contains(why), "{err}");
        }
        let cache = |t: f32| {
            Settings {
                step_cache: Some(t),
                ..Settings::default()
            }
            .resolve()
        };
        assert_eq!(cache(0.1).unwrap().step_cache, 0.1);
        assert!(cache(-1.0).is_err() && cache(f32::NAN).is_err());
    }

    #[test]
    fn the_llm_planner_needs_its_endpoint_and_model() {
        let plain = Settings::default().resolve().unwrap();
        assert_eq!(
            (plain.planner.as_str(), plain.planner_timeout_ms),
            ("rule", 10_000)
        );
        let openai = |url: Option<&str>| Settings {
            planner: Some("openai".into()),
            planner_url: url.map(Into::into),
            planner_model: Some("qwen".into()),
            ..Settings::default()
        };
        assert!(openai(None).resolve().is_err());
        let r = openai(Some("http://127.0.0.1:8080/v1")).resolve().unwrap();
        assert_eq!(r.planner_model.as_deref(), Some("qwen"));
        let bad = Settings {
            planner: Some("gpt".into()),
            ..Settings::default()
        };
        assert!(bad.resolve().is_err());
    }
}
