//! `GET /api/stats`: the server at a glance, as JSON, and the [`Probe`] that samples the host.
//!
//! The probe wraps sysinfo: this process's CPU and resident memory, the machine's memory, the
//! disk holding the data dir, and network byte counters. CPU percentages are measured between
//! two samples, so they cover the time since the previous `/api/stats` or `/metrics` request
//! (the first one reads 0). Queue, task counts and cache figures come from the backend and the
//! store, as in `/readyz`; the GPU's utilisation and memory from the backend (NVML) when the
//! model runs on CUDA.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use storage::CacheStats;
use sysinfo::{Disks, Networks, ProcessRefreshKind, ProcessesToUpdate, System};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::handlers::AppState;

/// This process as last sampled.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ProcessSample {
    /// Percent of one core since the previous sample (above 100 when several cores are busy).
    pub cpu_percent: f32,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
}

/// Memory of this process and the machine.
#[derive(Debug, Serialize)]
pub struct Memory {
    /// This process, resident bytes.
    pub rss_bytes: u64,
    /// The machine's memory.
    pub total_bytes: u64,
    /// The machine's memory available to programs.
    pub available_bytes: u64,
}

/// CPU use.
#[derive(Debug, Serialize)]
pub struct Cpu {
    /// This process, percent of one core.
    pub process_percent: f32,
    /// The whole machine, percent of all cores.
    pub system_percent: f32,
    /// Logical cores.
    pub cores: usize,
}

/// The filesystem the data dir lives on.
#[derive(Debug, Serialize)]
pub struct Disk {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Bytes free for this process.
    pub free_bytes: u64,
    /// Its size.
    pub total_bytes: u64,
}

/// Bytes through every interface since each came up.
#[derive(Debug, Serialize)]
pub struct Network {
    /// Bytes in.
    pub received_bytes: u64,
    /// Bytes out.
    pub transmitted_bytes: u64,
}

/// What the host says, without the store's and the backend's parts.
#[derive(Debug, Serialize)]
pub struct HostStats {
    /// CPU use.
    pub cpu: Cpu,
    /// Memory.
    pub memory: Memory,
    /// The data dir's filesystem (if found).
    pub disk: Option<Disk>,
    /// Network counters.
    pub network: Network,
}

/// sysinfo's handles, kept between samples (CPU usage is a difference of two samples).
struct Handles {
    system: System,
    networks: Networks,
    disks: Disks,
}

/// Samples the host; shared by `/api/stats` and `/metrics`. Opened on first use.
pub struct Probe {
    data_dir: PathBuf,
    handles: Mutex<Option<Handles>>,
}

impl Probe {
    /// A probe of this process and the filesystem holding `data_dir`.
    pub fn new(data_dir: PathBuf) -> Probe {
        Probe {
            data_dir,
            handles: Mutex::new(None),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Handles) -> T) -> Result<T, sysinfo::Error> {
        let mut slot = self.handles.lock().unwrap_or_else(PoisonError::into_inner);
        let handles = match slot.as_mut() {
            Some(h) => h,
            None => slot.insert(Handles {
                system: System::new()?,
                networks: Networks::new_with_refreshed_list()?,
                disks: Disks::new_with_refreshed_list()?,
            }),
        };
        Ok(f(handles))
    }

    /// This process's CPU and resident memory (blocking: reads /proc).
    pub fn process(&self) -> Result<ProcessSample, sysinfo::Error> {
        self.with(|h| sample_process(&mut h.system))?
    }

    /// Everything (blocking: reads /proc and statfs).
    pub fn host(&self) -> Result<HostStats, sysinfo::Error> {
        let data_dir = std::fs::canonicalize(&self.data_dir).unwrap_or(self.data_dir.clone());
        self.with(|h| {
            let process = sample_process(&mut h.system)?;
            h.system.refresh_cpu_usage();
            h.system.refresh_memory();
            h.networks.refresh(true);
            h.disks.refresh(true);
            let (received_bytes, transmitted_bytes) =
                h.networks.values().fold((0, 0), |(r, t), n| {
                    (r + n.total_received(), t + n.total_transmitted())
                });
            Ok(HostStats {
                cpu: Cpu {
                    process_percent: process.cpu_percent,
                    system_percent: h.system.global_cpu_usage(),
                    cores: h.system.cpus().len(),
                },
                memory: Memory {
                    rss_bytes: process.rss_bytes,
                    total_bytes: h.system.total_memory(),
                    available_bytes: h.system.available_memory(),
                },
                disk: disk_of(&h.disks, &data_dir),
                network: Network {
                    received_bytes,
                    transmitted_bytes,
                },
            })
        })?
    }
}

fn sample_process(system: &mut System) -> Result<ProcessSample, sysinfo::Error> {
    let pid = sysinfo::get_current_pid()?;
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    let p = system
        .process(pid)
        .ok_or(sysinfo::Error::Other("own process not listed".into()))?;
    Ok(ProcessSample {
        cpu_percent: p.cpu_usage(),
        rss_bytes: p.memory(),
    })
}

/// The disk whose mount point is the longest prefix of `dir`.
fn disk_of(disks: &Disks, dir: &Path) -> Option<Disk> {
    disks
        .iter()
        .filter(|d| dir.starts_with(d.mount_point()))
        .max_by_key(|d| d.mount_point().as_os_str().len())
        .map(|d| Disk {
            mount_point: d.mount_point().to_path_buf(),
            free_bytes: d.available_space(),
            total_bytes: d.total_space(),
        })
}

/// The whole `/api/stats` document.
#[derive(Serialize)]
struct Stats {
    #[serde(flatten)]
    host: HostStats,
    queue: Queue,
    tasks: std::collections::BTreeMap<storage::TaskStatus, u64>,
    cache: CacheStats,
    /// The model's GPU; `null` on the CPU backend.
    gpu: Option<contract::GpuUsage>,
    /// Tasks whose live state (watchers' channel, step progress) the server holds: the
    /// unfinished ones, never more.
    live_tasks: usize,
    /// Scenes in each denoiser, in every process of a cluster, as each last reported.
    denoisers: Vec<contract::DenoiserLoad>,
}

#[derive(Serialize)]
struct Queue {
    depth: usize,
    bound: usize,
}

/// `GET /api/stats`.
pub async fn stats(_: Caller, st: AppState, probe: Arc<Probe>) -> Result<Response, Rejection> {
    let doc = st
        .blocking(move |st| {
            Ok(Stats {
                host: probe.host().map_err(ApiError::internal)?,
                queue: Queue {
                    depth: st.backend.queue_depth(),
                    bound: st.backend.queue_bound(),
                },
                tasks: st.tasks.store().counts()?,
                cache: st.tasks.store().cache_stats(),
                gpu: st.backend.gpu(),
                live_tasks: st.tasks.live_count(),
                denoisers: st.backend.denoisers(),
            })
        })
        .await?;
    Ok(warp::reply::with_status(warp::reply::json(&doc), StatusCode::OK).into_response())
}
