//! The `storage` scenario: reel's task store ([`storage::Store`], sled on disk) driven
//! directly, without HTTP, by concurrent clients doing reads, writes or a mix, with the store
//! holding growing numbers of tasks. It answers whether the store stays fast as it fills.
//!
//! One store in a temporary directory is filled with the store's own `create_task` up to each
//! size in turn (smallest first); at each size every (workload, clients) pair runs once,
//! bounded by an operation count and a time limit. Clients are OS threads, because the
//! store's API is blocking. The CPU and RSS reported are this process's (store plus clients).
//!
//! - read: `get` of a spread of stored ids (twice as often), a `list` page of 20 at a spread
//!   cursor, and a result-cache lookup;
//! - write: `create_task` (flushed), a progress `update` (no status change, not flushed) and a
//!   status-changing `update` (index, counters and a flush);
//! - mixed: 80% reads, 20% writes.
//!
//! A `get` that finds nothing for an id that was stored counts as an error (status 404).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use storage::{NewTask, Store, StoreError, TaskParams, TaskStatus};

use crate::monitor::{Monitor, ProcessUsage};
use crate::tally::{Outcome, Summary, Tally};

/// What the clients of a storage run do (see the module's description).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Gets of stored tasks, list pages and result-cache lookups.
    Read,
    /// Task creations, progress updates and status changes.
    Write,
    /// 80% reads, 20% writes.
    Mixed,
}

/// Sizes and bounds of a storage run.
#[derive(Clone, Debug)]
pub struct StorageConfig {
    /// Stored tasks at which the workloads run, in increasing order.
    pub sizes: Vec<usize>,
    /// Client threads, each count a run of its own.
    pub clients: Vec<usize>,
    /// Workloads, each a run of its own.
    pub workloads: Vec<Workload>,
    /// Operations per (size, workload, clients) run.
    pub ops: usize,
    /// Time limit per run: no new operation after it.
    pub max_secs: f64,
}

/// How long filling the store up to `stored` tasks took.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Preload {
    /// The size filled up to.
    pub stored: usize,
    /// Seconds filling took, from the previous size.
    pub secs: f64,
    /// Tasks added per second.
    pub tasks_per_s: f64,
}

/// One (size, workload, clients) run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StorageRun {
    /// The size the store was filled to (earlier write and mixed runs added more tasks); the
    /// ids read and updated are spread over `1..=stored`.
    pub stored: usize,
    /// What the clients did.
    pub workload: Workload,
    /// Client threads.
    pub clients: usize,
    /// The operations: status 200 for success, 404 for a stored id not found, and
    /// [`Outcome::Failed`] for a store error.
    pub summary: Summary,
    /// This process's CPU and memory (the store and its clients) during the run.
    pub process: ProcessUsage,
}

/// Result of the `storage` scenario.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StorageResult {
    /// The filling up to each size, smallest first.
    pub preload: Vec<Preload>,
    /// Every run, in the order run: by size, then workload, then clients.
    pub runs: Vec<StorageRun>,
}

/// The parameters every stored task gets (what the API fills in for a default request).
fn params(seed: u64) -> TaskParams {
    TaskParams {
        prompt: "a small red circle moving left on a black background".into(),
        num_scenes: TaskParams::DEFAULT_NUM_SCENES,
        seed,
        steps: TaskParams::DEFAULT_STEPS,
        guidance: TaskParams::DEFAULT_GUIDANCE,
        seconds_per_scene: TaskParams::DEFAULT_SECONDS_PER_SCENE,
        fps: TaskParams::DEFAULT_FPS,
        size: TaskParams::DEFAULT_SIZE,
        free_form: None,
    }
}

/// An id in `1..=n` for operation `i`, spread over the range by a multiplicative hash so that
/// consecutive operations touch unrelated records.
fn spread(i: usize, n: usize) -> u64 {
    1 + (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) % n.max(1) as u64
}

/// Runs operation `i` of `workload` against a store of `stored` tasks.
fn operation(store: &Store, workload: Workload, i: usize, stored: usize) -> Outcome {
    let write = match workload {
        Workload::Read => false,
        Workload::Write => true,
        Workload::Mixed => i % 10 >= 8,
    };
    let id = spread(i, stored);
    let result = if write {
        match i % 3 {
            0 => store
                .create_task(NewTask::anonymous(params(i as u64)))
                .map(|_| true),
            1 => store
                .update(id, |r| r.scenes_done = (r.scenes_done + 1) % 4)
                .map(|r| r.is_some()),
            // A flushed status change: back and forth between two statuses the transition
            // table links both ways.
            _ => {
                let to = match store.get(id) {
                    Ok(Some(r)) if r.status == TaskStatus::Planning => TaskStatus::Queued,
                    _ => TaskStatus::Planning,
                };
                match store.transition(id, to, |_| {}) {
                    // Another writer moved it first: still one write attempted and answered.
                    Err(StoreError::IllegalTransition { .. }) => Ok(true),
                    other => other.map(|r| r.is_some()),
                }
            }
        }
    } else {
        match i % 4 {
            0 | 1 => store.get(id).map(|r| r.is_some()),
            2 => store.list(None, 20, Some(id)).map(|_| true),
            _ => store.cache_get(&format!("key-{id}")).map(|_| true),
        }
    };
    match result {
        Ok(true) => Outcome::Status(200),
        Ok(false) => Outcome::Status(404),
        Err(_) => Outcome::Failed,
    }
}

/// `clients` threads share `ops` operations of `workload` until the time limit.
fn run_one(
    store: &Arc<Store>,
    stored: usize,
    workload: Workload,
    clients: usize,
    cfg: &StorageConfig,
) -> Result<StorageRun> {
    let monitor = Monitor::start(std::process::id(), Duration::from_millis(100))?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(cfg.max_secs);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (store, next, ops) = (store.clone(), next.clone(), cfg.ops);
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops || Instant::now() >= deadline {
                        break tally;
                    }
                    let t = Instant::now();
                    let outcome = operation(&store, workload, i, stored);
                    tally.record(t.elapsed(), outcome);
                }
            })
        })
        .collect();
    let mut tally = Tally::default();
    for t in threads {
        tally.merge(
            t.join()
                .map_err(|_| anyhow::anyhow!("a storage client panicked"))?,
        );
    }
    let wall = started.elapsed();
    Ok(StorageRun {
        stored,
        workload,
        clients,
        summary: tally.summary(wall),
        process: monitor.finish(),
    })
}

/// Fills a fresh store under `dir` to each size and runs every workload there; `each` sees
/// every run as it finishes (for printing).
pub fn run(
    dir: &Path,
    cfg: &StorageConfig,
    mut each: impl FnMut(&StorageRun),
) -> Result<StorageResult> {
    let store = Arc::new(Store::open(dir).context("opening the store")?);
    let mut stored = 0;
    let mut result = StorageResult {
        preload: Vec::new(),
        runs: Vec::new(),
    };
    let mut sizes = cfg.sizes.clone();
    sizes.sort_unstable();
    for size in sizes {
        let t = Instant::now();
        let added = size.saturating_sub(stored);
        for seed in stored..size {
            store.create_task(NewTask::anonymous(params(seed as u64)))?;
        }
        stored = stored.max(size);
        let secs = t.elapsed().as_secs_f64();
        result.preload.push(Preload {
            stored: size,
            secs,
            tasks_per_s: added as f64 / secs.max(1e-9),
        });
        for &workload in &cfg.workloads {
            for &clients in &cfg.clients {
                let r = run_one(&store, size, workload, clients, cfg)?;
                each(&r);
                result.runs.push(r);
            }
        }
    }
    Ok(result)
}
