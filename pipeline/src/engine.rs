//! The engine: owns the timely dataflow workers and is the pipeline's face to the API.
//! Tasks arrive by id from the API (or from storage after a restart), enter the dataflow
//! through worker 0's input, one epoch each, and leave when the probe passes their epoch.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam::channel::Sender;
use kernels::Model;
use storage::{Store, TaskParams, TaskStatus};
use timely::communication::WorkerGuards;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Input;
use timely::dataflow::{InputHandle, ProbeHandle};
use tokio::sync::broadcast;

use crate::dataflow::{self, Context, TaskIn};
use crate::governor::CpuGovernor;
use crate::hub::Hub;
use crate::plan::Planner;
use crate::post::PostProcessor;

/// What a task's watchers receive, in order, as it advances.
#[derive(Clone, Debug)]
pub enum TaskEvent {
    /// The task entered a new status.
    Status(TaskStatus),
    /// One denoising step of one scene finished; `overall` is the task's progress in [0, 1].
    Step {
        /// Index of the scene in the task.
        scene: usize,
        /// Steps of that scene done so far.
        step: usize,
        /// Steps of that scene in all.
        steps: usize,
        /// The task's progress in [0, 1].
        overall: f32,
    },
    /// One delivered frame exists (global index across scenes); JPEG for live streaming.
    Frame {
        /// Index of the frame in the whole video.
        index: usize,
        /// The frame as JPEG.
        jpeg: Arc<Vec<u8>>,
    },
    /// Final status reached; no more events follow.
    Done(TaskStatus),
}

/// Live progress of a running task, kept in memory (sled holds state changes only).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Progress {
    /// The whole task, in [0, 1].
    pub overall: f32,
    /// Per scene, in [0, 1].
    pub scenes: Vec<f32>,
    /// Delivered frames made so far.
    pub frames_ready: usize,
}

/// Why a task was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// As many tasks as the queue bound are accepted and unfinished.
    #[error("queue is full ({0} tasks waiting)")]
    QueueFull(usize),
    /// No stored task has this id.
    #[error("task {0} is not in storage")]
    Unknown(u64),
}

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Timely worker threads (each runs the whole graph on its share of tasks).
    pub workers: usize,
    /// Most scenes advanced together in one batched forward pass.
    pub max_batch: usize,
    /// Most tasks accepted but not finished; the API answers 429 beyond it.
    pub queue_bound: usize,
    /// Where task artifacts (MP4, PNG frames) are written.
    pub data_dir: PathBuf,
    /// CPU ceiling of the compute, percent of all cores (100: none).
    pub max_cpu_percent: u32,
}

enum Command {
    Task(TaskIn),
}

/// Runs the dataflow on its own threads; cheap to share behind an `Arc`.
pub struct Engine {
    tx: Sender<Command>,
    hub: Arc<Hub>,
    depth: Arc<AtomicUsize>,
    bound: usize,
    store: Arc<Store>,
    shutdown: Arc<AtomicBool>,
    /// Joined on drop; behind a mutex only because the guards are not `Sync`.
    workers: Mutex<Option<WorkerGuards<()>>>,
}

/// How long an idle worker sleeps before looking for new tasks again.
const IDLE_PARK: Duration = Duration::from_millis(5);

impl Engine {
    /// Starts the workers and queues again every task a previous run left unfinished.
    pub fn start(
        cfg: EngineConfig,
        store: Arc<Store>,
        model: Arc<Model>,
        post: Arc<PostProcessor>,
        planner: Arc<dyn Planner>,
    ) -> anyhow::Result<Engine> {
        let hub = Arc::new(Hub::default());
        let (tx, rx) = crossbeam::channel::unbounded::<Command>();
        let depth = Arc::new(AtomicUsize::new(0));
        let shutdown = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ctx = Arc::new(Context {
            store: store.clone(),
            hub: hub.clone(),
            model,
            post,
            planner,
            data_dir: cfg.data_dir.clone(),
            max_batch: cfg.max_batch.max(1),
            governor: Arc::new(CpuGovernor::new(cfg.max_cpu_percent, cores)),
        });
        match ctx.governor.ceiling_percent() {
            Some(p) => tracing::info!(percent = p, cores, "CPU ceiling for the compute"),
            None => tracing::info!("no CPU ceiling for the compute"),
        }
        let (depth_w, shutdown_w) = (depth.clone(), shutdown.clone());
        let workers = timely::execute(timely::Config::process(cfg.workers.max(1)), move |worker| {
            // The workers encode and drive the compute: below the request threads' priority.
            kernels::lower_current_thread_priority();
            let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<TaskIn>>>::new();
            let probe = ProbeHandle::new();
            worker.dataflow::<u64, _, _>(|scope| {
                dataflow::build(scope.input_from(&mut input), ctx.clone(), &probe);
            });
            if worker.index() != 0 {
                // Only worker 0 feeds tasks; the others give up their input's capability.
                drop(input);
                while !shutdown_w.load(Ordering::Relaxed) {
                    worker.step_or_park(Some(IDLE_PARK));
                }
                return;
            }
            // epoch -> task id, for tasks still somewhere in the graph
            let mut in_flight = BTreeMap::<u64, u64>::new();
            while !shutdown_w.load(Ordering::Relaxed) {
                while let Ok(Command::Task(task)) = rx.try_recv() {
                    let epoch = *input.time();
                    in_flight.insert(epoch, task.id);
                    input.send(task);
                    input.advance_to(epoch + 1);
                }
                worker.step_or_park(Some(IDLE_PARK));
                while let Some((&epoch, &id)) = in_flight.first_key_value() {
                    if probe.less_equal(&epoch) {
                        break;
                    }
                    in_flight.pop_first();
                    ctx.hub.retire(id);
                    depth_w.fetch_sub(1, Ordering::Relaxed);
                }
                metrics::gauge!("reel_queue_depth").set(depth_w.load(Ordering::Relaxed) as f64);
            }
        })
        .map_err(|e| anyhow::anyhow!("cannot start timely workers: {e}"))?;
        let engine = Engine {
            tx,
            hub,
            depth,
            bound: cfg.queue_bound,
            store,
            shutdown,
            workers: Mutex::new(Some(workers)),
        };
        for record in engine.store.unfinished()? {
            tracing::info!(
                task = record.id,
                status = record.status.name(),
                "queued again after restart"
            );
            engine
                .store
                .update(record.id, |r| r.status = TaskStatus::Queued)?;
            engine.enqueue(record.id, record.params);
        }
        Ok(engine)
    }

    fn enqueue(&self, id: u64, params: TaskParams) {
        self.depth.fetch_add(1, Ordering::Relaxed);
        self.hub.admit(id);
        // The receiver lives as long as the workers, which live as long as `self`.
        let _ = self.tx.send(Command::Task(TaskIn { id, params }));
    }

    /// Queues a stored task. The API checks the bound before storing (so a refused task
    /// leaves no trace); this only refuses when the queue is far past it.
    pub fn submit(&self, id: u64) -> Result<(), SubmitError> {
        let depth = self.queue_depth();
        if depth >= self.bound.saturating_mul(2).max(1) {
            return Err(SubmitError::QueueFull(depth));
        }
        match self.store.get(id) {
            Ok(Some(record)) => {
                self.enqueue(id, record.params);
                Ok(())
            }
            _ => Err(SubmitError::Unknown(id)),
        }
    }

    /// Stops the task's work wherever it is (within one denoising step) and tells watchers.
    pub fn cancel(&self, id: u64) {
        if self.hub.cancel(id) {
            self.hub.done(id, TaskStatus::Cancelled);
        }
    }

    /// A receiver of the task's events from now on.
    pub fn subscribe(&self, id: u64) -> broadcast::Receiver<TaskEvent> {
        self.hub.subscribe(id)
    }

    /// The task's live progress; `None` when it is not running.
    pub fn progress(&self, id: u64) -> Option<Progress> {
        self.hub.progress(id)
    }

    /// The JPEG frames a running task has delivered so far, for a watcher joining late.
    pub fn frames_so_far(&self, id: u64) -> Vec<Arc<Vec<u8>>> {
        self.hub.frames_so_far(id)
    }

    /// Tasks accepted and not yet out of the graph.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// The most tasks accepted and unfinished ([`EngineConfig::queue_bound`]).
    pub fn queue_bound(&self) -> usize {
        self.bound
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        let workers = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(workers) = workers {
            let _ = workers.join();
        }
    }
}
