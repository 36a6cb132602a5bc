//! The engine: owns the timely dataflow workers and is the pipeline's face to the API.
//!
//! Tasks arrive as stored records from the API (or from the store after a restart), enter the
//! dataflow through worker 0's input, one epoch each, and leave when the probe passes their
//! epoch. Their life (statuses, events) belongs to the [`TaskService`]; the engine only runs
//! them.
//!
//! Liveness: a supervisor thread runs the dataflow. When a timely worker or a post-processing
//! thread dies (a panic: a CUDA error, a bug), the engine turns unavailable
//! ([`Engine::health`], so `/readyz` answers 503 and submissions are refused with Retry-After),
//! the tasks that dataflow held are failed with the reason, and a fresh dataflow starts after
//! [`RECOVERY_DELAY`]. The tasks are failed rather than queued again because the task may be
//! what killed the worker: taken again, it would kill the next one too. Their clients can
//! resubmit.

use std::collections::{BTreeMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use contract::SubmitError;
use crossbeam::channel::{Receiver, Sender};
use kernels::VideoModel;
use storage::TaskRecord;
use tasks::TaskService;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Input;
use timely::dataflow::{InputHandle, ProbeHandle};

use crate::dataflow::{self, Context, TaskIn};
use crate::governor::CpuGovernor;
use crate::health::{panic_message, Health};
use crate::plan::Planner;
use crate::post::PostProcessor;

/// With fault injection on (`EngineConfig::fault_injection`, tests only), a prompt containing
/// this makes the worker that plans it panic: how the tests kill a worker on purpose.
pub const FAULT_PANIC_PROMPT: &str = "#reel-fault:panic-worker#";

/// How long the engine stays unavailable after a thread died, before a fresh dataflow starts.
pub const RECOVERY_DELAY: Duration = Duration::from_secs(2);

/// How the engine runs.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Timely worker threads (each runs the whole graph on its share of tasks).
    pub workers: usize,
    /// Most scenes advanced together in one batched forward pass.
    pub max_batch: usize,
    /// How far a task's scene runs before its next scene starts, as a share of its steps: 0
    /// starts them all together, 1 one after another (the first scene's frames come first).
    pub scene_stagger: f32,
    /// Whether watched tasks get previews of their scenes mid-run.
    pub previews: bool,
    /// Most tasks accepted but not finished; the API answers 429 beyond it.
    pub queue_bound: usize,
    /// Where task artifacts (MP4, PNG frames) are written.
    pub data_dir: PathBuf,
    /// CPU ceiling of the compute, percent of all cores (100: none).
    pub max_cpu_percent: u32,
    /// Honour [`FAULT_PANIC_PROMPT`] (for tests; never in production).
    pub fault_injection: bool,
}

/// How long an idle worker sleeps before looking for new tasks again.
const IDLE_PARK: Duration = Duration::from_millis(5);

/// Tasks handed to the engine and not yet out of its dataflow.
#[derive(Default)]
struct Ledger {
    held: Mutex<HashSet<u64>>,
    depth: AtomicUsize,
}

impl Ledger {
    fn retire(&self, id: u64) {
        if lock(&self.held).remove(&id) {
            self.depth.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What the engine and its supervisor share.
struct Shared {
    ctx: Arc<Context>,
    ledger: Arc<Ledger>,
    /// Feeds worker 0 of the current dataflow; replaced when a fresh one starts. Its lock
    /// also orders handing a task over against the supervisor collecting what a dead
    /// dataflow held.
    input: Mutex<Sender<TaskIn>>,
    shutdown: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the dataflow on its own threads; cheap to share behind an `Arc`.
pub struct Engine {
    shared: Arc<Shared>,
    bound: usize,
    supervisor: Option<JoinHandle<()>>,
}

impl Engine {
    /// Starts the workers and queues again every task a previous run left unfinished.
    pub fn start(
        cfg: EngineConfig,
        tasks: Arc<TaskService>,
        model: Arc<dyn VideoModel>,
        post: Arc<PostProcessor>,
        planner: Arc<dyn Planner>,
    ) -> anyhow::Result<Engine> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (health, deaths) = Health::new();
        let ctx = Arc::new(Context {
            tasks: tasks.clone(),
            model,
            post,
            planner,
            data_dir: cfg.data_dir.clone(),
            max_batch: cfg.max_batch.max(1),
            scene_stagger: cfg.scene_stagger.clamp(0.0, 1.0),
            previews: cfg.previews,
            governor: Arc::new(CpuGovernor::new(cfg.max_cpu_percent, cores)),
            health: Arc::new(health),
            fault_injection: cfg.fault_injection,
        });
        match ctx.governor.ceiling_percent() {
            Some(p) => tracing::info!(percent = p, cores, "CPU ceiling for the compute"),
            None => tracing::info!("no CPU ceiling for the compute"),
        }
        if cfg.fault_injection {
            tracing::warn!("fault injection is on: a test may kill a worker on purpose");
        }
        let ledger = Arc::new(Ledger::default());
        let (input, dataflow) = run_dataflow(cfg.workers, ctx.clone(), ledger.clone())?;
        let shared = Arc::new(Shared {
            ctx,
            ledger,
            input: Mutex::new(input),
            shutdown: AtomicBool::new(false),
        });
        let supervisor = {
            let shared = shared.clone();
            let workers = cfg.workers;
            std::thread::Builder::new()
                .name("reel-supervisor".into())
                .spawn(move || supervise(shared, workers, dataflow, deaths))?
        };
        let engine = Engine {
            shared,
            bound: cfg.queue_bound,
            supervisor: Some(supervisor),
        };
        for record in tasks.resume()? {
            if let Err(e) = engine.enqueue(&record) {
                tasks.fail(record.id, &e.to_string());
            }
        }
        Ok(engine)
    }

    fn enqueue(&self, record: &TaskRecord) -> Result<(), SubmitError> {
        let s = &self.shared;
        let task = TaskIn {
            id: record.id,
            params: record.params.clone(),
            owner: record.owner.clone(),
            priority: record.priority,
        };
        let input = lock(&s.input);
        // Fails once the dataflow behind it has died (its receiver is gone with its workers).
        input
            .send(task)
            .map_err(|_| SubmitError::Unavailable("the engine is restarting".into()))?;
        lock(&s.ledger.held).insert(record.id);
        s.ledger.depth.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Runs a stored, queued task. The API checks the bound before storing (so a refused task
    /// leaves no trace); this only refuses when the queue is far past it, or while the engine
    /// is unavailable.
    pub fn submit(&self, record: &TaskRecord) -> Result<(), SubmitError> {
        self.health().map_err(SubmitError::Unavailable)?;
        let depth = self.queue_depth();
        if depth >= self.bound.saturating_mul(2).max(1) {
            return Err(SubmitError::QueueFull(depth));
        }
        self.enqueue(record)
    }

    /// `Err(reason)` while the engine cannot run tasks (a thread died; a fresh dataflow is
    /// starting).
    pub fn health(&self) -> Result<(), String> {
        self.shared.ctx.health.check()
    }

    /// The model it serves.
    pub fn model(&self) -> &dyn VideoModel {
        self.shared.ctx.model.as_ref()
    }

    /// Tasks accepted and not yet out of the graph.
    pub fn queue_depth(&self) -> usize {
        self.shared.ledger.depth.load(Ordering::Relaxed)
    }

    /// The most tasks accepted and unfinished ([`EngineConfig::queue_bound`]).
    pub fn queue_bound(&self) -> usize {
        self.bound
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // The supervisor looks at the flag between waits for a death, and stops the workers.
        self.shared.shutdown.store(true, Ordering::Relaxed);
        if let Some(supervisor) = self.supervisor.take() {
            let _ = supervisor.join();
        }
    }
}

/// One running dataflow: its worker threads and the flag that stops them.
struct Dataflow {
    guards: timely::communication::WorkerGuards<()>,
    stop: Arc<AtomicBool>,
}

/// Starts `workers` timely workers running the graph; tasks sent to the returned input
/// enter it at worker 0.
fn run_dataflow(
    workers: usize,
    ctx: Arc<Context>,
    ledger: Arc<Ledger>,
) -> anyhow::Result<(Sender<TaskIn>, Dataflow)> {
    let (tx, rx) = crossbeam::channel::unbounded::<TaskIn>();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_w = stop.clone();
    let guards = timely::execute(timely::Config::process(workers.max(1)), move |worker| {
        let index = worker.index();
        let ctx = ctx.clone();
        let run = AssertUnwindSafe(|| work(worker, &ctx, &ledger, &rx, &stop_w));
        if let Err(panic) = std::panic::catch_unwind(run) {
            let why = panic_message(panic.as_ref());
            ctx.health
                .report_death(format!("timely worker {index} panicked: {why}"));
        }
    })
    .map_err(|e| anyhow::anyhow!("cannot start timely workers: {e}"))?;
    Ok((tx, Dataflow { guards, stop }))
}

/// One worker's life: build the graph, then step it until told to stop. Worker 0 feeds
/// tasks in and retires them when the probe passes their epoch.
fn work(
    worker: &mut timely::worker::Worker,
    ctx: &Arc<Context>,
    ledger: &Ledger,
    rx: &Receiver<TaskIn>,
    stop: &AtomicBool,
) {
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
        while !stop.load(Ordering::Relaxed) {
            worker.step_or_park(Some(IDLE_PARK));
        }
        return;
    }
    // epoch -> task id, for tasks still somewhere in the graph
    let mut in_flight = BTreeMap::<u64, u64>::new();
    while !stop.load(Ordering::Relaxed) {
        while let Ok(task) = rx.try_recv() {
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
            retire(ctx, id);
            ledger.retire(id);
        }
    }
}

/// A task left the graph. It should have ended on the way; if it did not (a write that
/// failed, a bug), it is failed here rather than left live forever.
fn retire(ctx: &Context, id: u64) {
    if ctx.tasks.is_live(id) {
        ctx.tasks
            .fail(id, "the task left the pipeline without finishing");
    }
}

/// Runs dataflows one after another: watches for a dying thread, then fails what the dead
/// dataflow held, waits [`RECOVERY_DELAY`] and starts a fresh one.
fn supervise(shared: Arc<Shared>, workers: usize, mut current: Dataflow, deaths: Receiver<String>) {
    loop {
        let reason = loop {
            if shared.shutdown.load(Ordering::Relaxed) {
                stop(current);
                return;
            }
            if let Ok(reason) = deaths.recv_timeout(Duration::from_millis(100)) {
                break reason;
            }
        };
        stop(current);
        let held: Vec<u64> = {
            let _input = lock(&shared.input);
            shared.ledger.depth.store(0, Ordering::Relaxed);
            lock(&shared.ledger.held).drain().collect()
        };
        let error = format!(
            "the engine stopped while running this task ({reason}); it was not retried, as it \
             may be what stopped the engine: submit it again"
        );
        for id in held {
            shared.ctx.tasks.fail(id, &error);
        }
        std::thread::sleep(RECOVERY_DELAY);
        // Reports from the dead dataflow's other threads are about the same death.
        while deaths.try_recv().is_ok() {}
        current = loop {
            match run_dataflow(workers, shared.ctx.clone(), shared.ledger.clone()) {
                Ok((input, dataflow)) => {
                    *lock(&shared.input) = input;
                    break dataflow;
                }
                Err(e) => {
                    shared.ctx.health.set_down(format!("cannot restart: {e}"));
                    std::thread::sleep(RECOVERY_DELAY);
                }
            }
        };
        shared.ctx.health.set_up();
        tracing::info!("the engine recovered: a fresh dataflow runs");
    }
}

/// Stops a dataflow's workers and waits for them.
fn stop(dataflow: Dataflow) {
    dataflow.stop.store(true, Ordering::Relaxed);
    drop(dataflow.guards); // joins every worker
}
