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
//!
//! Cluster mode ([`EngineConfig::cluster`], [`crate::cluster`]): the same graph runs on every
//! worker of every process; this engine is process 0's (HTTP, store, task service), and
//! [`run_member`] is the other processes'. Worker 0 also tells every denoiser, through the
//! dataflow's control input, which of its tasks ended and which are watched. When the
//! dataflow dies there, the likely cause is another process dying (timely has no recovery: a
//! lost peer fails every process's communication), which is no task's fault: process 0 queues
//! the tasks it held again (a task caught in [`MAX_REQUEUES`] failures is failed instead, as it
//! may be the cause), waits for the processes to form the mesh again (unavailable meanwhile),
//! and feeds them to the fresh dataflow. A task is completed only by process 0's `encode_video`
//! through the store's transition table, once, whichever attempt finishes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::TcpStream;
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
use timely::{CommunicationConfig, WorkerConfig};

use crate::cluster::{self, Cluster};
use crate::dataflow::{self, Context, Control, Controlled, Home, Layout, TaskIn};
use crate::governor::CpuGovernor;
use crate::health::{panic_message, Health};
use crate::plan::Planner;
use crate::post::PostProcessor;

/// With fault injection on (`EngineConfig::fault_injection`, tests only), a prompt containing
/// this makes the worker that plans it panic: how the tests kill a worker on purpose.
pub const FAULT_PANIC_PROMPT: &str = "#reel-fault:panic-worker#";

/// How long the engine stays unavailable after a thread died, before a fresh dataflow starts.
pub const RECOVERY_DELAY: Duration = Duration::from_secs(2);

/// In cluster mode, how many times a task is queued again after the dataflow died while it
/// ran; caught in one more failure, it is failed (it may be what kills the processes).
pub const MAX_REQUEUES: u32 = 2;

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
    /// `Some` when this process is one of a cluster (each with `workers` workers).
    pub cluster: Option<Cluster>,
}

impl EngineConfig {
    fn layout(&self) -> Layout {
        Layout {
            processes: self.cluster.as_ref().map_or(1, Cluster::processes),
            workers: self.workers.max(1),
        }
    }

    /// The context every worker of this process shares; `home` in process 0 only.
    fn context(
        &self,
        home: Option<Arc<Home>>,
        model: Arc<dyn VideoModel>,
        health: Health,
    ) -> Arc<Context> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let governor = CpuGovernor::new(self.max_cpu_percent, cores);
        match governor.ceiling_percent() {
            Some(p) => tracing::info!(percent = p, cores, "CPU ceiling for the compute"),
            None => tracing::info!("no CPU ceiling for the compute"),
        }
        if self.fault_injection {
            tracing::warn!("fault injection is on: a test may kill a worker on purpose");
        }
        Arc::new(Context {
            home,
            layout: self.layout(),
            model,
            max_batch: self.max_batch.max(1),
            scene_stagger: self.scene_stagger.clamp(0.0, 1.0),
            previews: self.previews,
            governor: Arc::new(governor),
            health: Arc::new(health),
            fault_injection: self.fault_injection,
        })
    }
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
    home: Arc<Home>,
    cfg: EngineConfig,
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
    /// Starts the workers (in cluster mode, once every process is reached) and queues again
    /// every task a previous run left unfinished.
    pub fn start(
        cfg: EngineConfig,
        tasks: Arc<TaskService>,
        model: Arc<dyn VideoModel>,
        post: Arc<PostProcessor>,
        planner: Arc<dyn Planner>,
    ) -> anyhow::Result<Engine> {
        if let Some(c) = &cfg.cluster {
            anyhow::ensure!(
                c.process == 0,
                "process {} of a cluster runs no engine: it is a member (run_member)",
                c.process
            );
        }
        let (health, deaths) = Health::new();
        let home = Arc::new(Home {
            tasks: tasks.clone(),
            post,
            planner,
            data_dir: cfg.data_dir.clone(),
            load: Default::default(),
            placement: Default::default(),
        });
        let ctx = cfg.context(Some(home.clone()), model, health);
        let ledger = Arc::new(Ledger::default());
        let (input, dataflow) = start_fed(&cfg, ctx.clone(), ledger.clone())?;
        let shared = Arc::new(Shared {
            ctx,
            home,
            cfg: cfg.clone(),
            ledger,
            input: Mutex::new(input),
            shutdown: AtomicBool::new(false),
        });
        let supervisor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("reel-supervisor".into())
                .spawn(move || supervise(shared, dataflow, deaths))?
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
        enqueue(&self.shared, record)
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

    /// Every denoiser's scenes (waiting, running, following), as each last reported them.
    pub fn denoisers(&self) -> Vec<contract::DenoiserLoad> {
        self.shared.home.denoisers()
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

/// Hands a stored task to the current dataflow (once: a task it holds already is left as it
/// is, so a submission racing a restart that queued it again does not run it twice).
fn enqueue(s: &Shared, record: &TaskRecord) -> Result<(), SubmitError> {
    let task = TaskIn {
        id: record.id,
        params: record.params.clone(),
        owner: record.owner.clone(),
        priority: record.priority,
    };
    let input = lock(&s.input);
    if lock(&s.ledger.held).contains(&record.id) {
        return Ok(());
    }
    // Fails once the dataflow behind it has died (its receiver is gone with its workers).
    input
        .send(task)
        .map_err(|_| SubmitError::Unavailable("the engine is restarting".into()))?;
    lock(&s.ledger.held).insert(record.id);
    s.ledger.depth.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// One running dataflow: its worker threads, the flag that stops them and, in a cluster, the
/// sockets to the other processes.
struct Dataflow {
    guards: timely::communication::WorkerGuards<()>,
    stop: Arc<AtomicBool>,
    sockets: Arc<Vec<TcpStream>>,
}

/// What worker 0 of process 0 feeds into the graph from: the tasks handed over, and the
/// ledger it retires them from.
struct Feed {
    tasks: Receiver<TaskIn>,
    ledger: Arc<Ledger>,
}

/// Starts process 0's dataflow; tasks sent to the returned input enter it at worker 0.
fn start_fed(
    cfg: &EngineConfig,
    ctx: Arc<Context>,
    ledger: Arc<Ledger>,
) -> anyhow::Result<(Sender<TaskIn>, Dataflow)> {
    let (tx, tasks) = crossbeam::channel::unbounded::<TaskIn>();
    let feed = Feed { tasks, ledger };
    Ok((tx, run_dataflow(cfg, ctx, Some(feed))?))
}

/// Starts this process's timely workers running the graph: `cfg.workers` threads, joined to
/// the other processes first in cluster mode (a bounded wait: see [`crate::cluster`]).
fn run_dataflow(
    cfg: &EngineConfig,
    ctx: Arc<Context>,
    feed: Option<Feed>,
) -> anyhow::Result<Dataflow> {
    let workers = cfg.workers.max(1);
    let (builders, others, sockets) = match &cfg.cluster {
        None => {
            let (builders, others) = CommunicationConfig::Process(workers)
                .try_build()
                .map_err(|e| anyhow::anyhow!("cannot start timely workers: {e}"))?;
            (builders, others, Arc::new(Vec::new()))
        }
        Some(cluster) => {
            let mesh = cluster.connect(workers)?;
            (mesh.builders, mesh.guard, mesh.sockets)
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stop_w = stop.clone();
    let feed = feed.map(Mutex::new);
    let guards =
        timely::execute::execute_from(builders, others, WorkerConfig::default(), move |worker| {
            let index = worker.index();
            let ctx = ctx.clone();
            let run = AssertUnwindSafe(|| {
                let feed = (index == 0).then_some(feed.as_ref()).flatten().map(lock);
                work(worker, &ctx, feed.as_deref(), &stop_w)
            });
            if let Err(panic) = std::panic::catch_unwind(run) {
                let why = panic_message(panic.as_ref());
                ctx.health
                    .report_death(format!("timely worker {index} panicked: {why}"));
            }
            // Timely would otherwise step the graph until it completes, which a stopped
            // engine's (or a lost peer's) graph never does.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                for id in worker.installed_dataflows() {
                    worker.drop_dataflow(id);
                }
            }));
        })
        .map_err(|e| anyhow::anyhow!("cannot start timely workers: {e}"))?;
    Ok(Dataflow {
        guards,
        stop,
        sockets,
    })
}

/// One worker's life: build the graph, then step it until told to stop. Worker 0 of process
/// 0 (the one with the `feed`) feeds tasks in, tells every denoiser which of them ended or
/// are watched, and retires them when the probe passes their epoch.
fn work(
    worker: &mut timely::worker::Worker,
    ctx: &Arc<Context>,
    feed: Option<&Feed>,
    stop: &AtomicBool,
) {
    // The workers encode and drive the compute: below the request threads' priority.
    kernels::lower_current_thread_priority();
    let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<TaskIn>>>::new();
    let mut control = InputHandle::<u64, CapacityContainerBuilder<Vec<Control>>>::new();
    let probe = ProbeHandle::new();
    worker.dataflow::<u64, _, _>(|scope| {
        let tasks = scope.input_from(&mut input);
        let told = scope.input_from(&mut control);
        dataflow::build(tasks, told, ctx.clone(), &probe);
    });
    let (Some(feed), Some(home)) = (feed, ctx.home.as_deref()) else {
        // Only worker 0 of process 0 feeds; the others give up their inputs' capabilities.
        drop((input, control));
        while !stop.load(Ordering::Relaxed) {
            worker.step_or_park(Some(IDLE_PARK));
        }
        return;
    };
    let mut in_flight = BTreeMap::<u64, Flight>::new();
    while !stop.load(Ordering::Relaxed) {
        while let Ok(task) = feed.tasks.try_recv() {
            let epoch = *input.time();
            in_flight.insert(epoch, Flight::new(task.id));
            input.send(task);
            input.advance_to(epoch + 1);
            control.advance_to(epoch + 1);
        }
        for (&epoch, flight) in in_flight.iter_mut() {
            if let Some(what) = flight.news(home) {
                control.send(Control {
                    task: flight.id,
                    epoch,
                    what,
                });
            }
        }
        // Sent now, not when the input next advances (with the next task).
        control.flush();
        worker.step_or_park(Some(IDLE_PARK));
        while let Some((&epoch, flight)) = in_flight.first_key_value() {
            if probe.less_equal(&epoch) {
                break;
            }
            let id = flight.id;
            in_flight.pop_first();
            retire(home, id);
            feed.ledger.retire(id);
        }
    }
}

/// A task in the graph, and what the denoisers were last told of it.
struct Flight {
    id: u64,
    ended: bool,
    watched: bool,
}

impl Flight {
    fn new(id: u64) -> Flight {
        Flight {
            id,
            ended: false,
            watched: false,
        }
    }

    /// What the denoisers should now be told of the task, if anything changed.
    fn news(&mut self, home: &Home) -> Option<Controlled> {
        if self.ended {
            return None;
        }
        if !home.live(self.id) {
            self.ended = true;
            return Some(Controlled::Ended);
        }
        let watched = home.tasks.watched(self.id);
        (watched != self.watched).then(|| {
            self.watched = watched;
            Controlled::Watched(watched)
        })
    }
}

/// A task left the graph. It should have ended on the way; if it did not (a write that
/// failed, a bug), it is failed here rather than left live forever.
fn retire(home: &Home, id: u64) {
    if home.tasks.is_live(id) {
        home.tasks
            .fail(id, "the task left the pipeline without finishing");
    }
}

/// Runs dataflows one after another: watches for a dying thread, then deals with what the
/// dead dataflow held (fails it on one process; queues it again in a cluster), waits
/// [`RECOVERY_DELAY`] and starts a fresh one (in a cluster, once the processes are back).
fn supervise(shared: Arc<Shared>, mut current: Dataflow, deaths: Receiver<String>) {
    let mut requeues: HashMap<u64, u32> = HashMap::new();
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
        let again = settle(&shared, &reason, held, &mut requeues);
        std::thread::sleep(RECOVERY_DELAY);
        // Reports from the dead dataflow's other threads are about the same death.
        while deaths.try_recv().is_ok() {}
        current = loop {
            if shared.shutdown.load(Ordering::Relaxed) {
                return;
            }
            let (tx, tasks) = crossbeam::channel::unbounded::<TaskIn>();
            let feed = Feed {
                tasks,
                ledger: shared.ledger.clone(),
            };
            match run_dataflow(&shared.cfg, shared.ctx.clone(), Some(feed)) {
                Ok(dataflow) => {
                    // The fresh denoisers report afresh, and hold nothing yet.
                    lock(&shared.home.load).clear();
                    lock(&shared.home.placement).clear();
                    *lock(&shared.input) = tx;
                    break dataflow;
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "the engine cannot restart yet");
                    shared.ctx.health.set_down(format!("cannot restart: {e:#}"));
                    std::thread::sleep(RECOVERY_DELAY);
                }
            }
        };
        for record in again {
            if let Err(e) = enqueue(&shared, &record) {
                shared.home.tasks.fail(record.id, &e.to_string());
            }
        }
        shared.ctx.health.set_up();
        tracing::info!("the engine recovered: a fresh dataflow runs");
    }
}

/// What becomes of the tasks a dead dataflow held: on one process they are failed (the task
/// may be what killed it); in a cluster, where a lost process is the likely cause, each is
/// moved back to queued and returned, to be fed to the next dataflow, unless it was already
/// queued again [`MAX_REQUEUES`] times.
fn settle(
    shared: &Shared,
    reason: &str,
    held: Vec<u64>,
    requeues: &mut HashMap<u64, u32>,
) -> Vec<TaskRecord> {
    let tasks = &shared.home.tasks;
    requeues.retain(|id, _| tasks.is_live(*id));
    let mut again = Vec::new();
    for id in held {
        if shared.cfg.cluster.is_some() {
            let n = requeues.entry(id).or_insert(0);
            *n += 1;
            if *n <= MAX_REQUEUES {
                match tasks.requeue(id) {
                    Ok(Some(record)) => {
                        tracing::info!(task = id, "queued again after the cluster failed");
                        again.push(record);
                        continue;
                    }
                    Ok(None) => continue,
                    Err(_) => {}
                }
            }
        }
        let error = format!(
            "the engine stopped while running this task ({reason}); it was not retried, as it \
             may be what stopped the engine: submit it again"
        );
        tasks.fail(id, &error);
    }
    again
}

/// Stops a dataflow's workers and waits for them. In a cluster the sockets are severed
/// first, so the peers notice now, and so that no communication thread waits on a peer that
/// will not speak again; timely's threads then end failing, which is expected here.
fn stop(dataflow: Dataflow) {
    dataflow.stop.store(true, Ordering::Relaxed);
    cluster::sever(&dataflow.sockets);
    let guards = dataflow.guards;
    // Joins every worker (`join` takes a worker's panic as a value: a worker of a lost mesh
    // panics as it drops its poisoned queues), then timely's communication threads, whose
    // guard panics once, when one of them failed on a severed socket.
    let joined = std::panic::catch_unwind(AssertUnwindSafe(|| guards.join()));
    if joined.is_err() {
        tracing::debug!("timely's communication threads ended with the severed sockets");
    }
}

/// Runs a process other than 0 of a cluster: the same graph on `cfg.workers` workers, with
/// no store, HTTP or task service (those are process 0's; its scenes come and go through the
/// dataflow). When the dataflow dies (a peer was lost, or process 0 restarted the
/// computation), it severs its sockets and joins the cluster again; it returns an error when
/// the peers cannot be reached within the cluster's timeout, at the start or after a failure,
/// so that whatever started the process starts it again.
pub fn run_member(cfg: EngineConfig, model: Arc<dyn VideoModel>) -> anyhow::Result<()> {
    let Some(cluster) = &cfg.cluster else {
        anyhow::bail!("run_member needs a cluster");
    };
    let process = cluster.process;
    let (health, deaths) = Health::new();
    let ctx = cfg.context(None, model, health);
    loop {
        let dataflow = run_dataflow(&cfg, ctx.clone(), None)?;
        ctx.health.set_up();
        let reason = deaths
            .recv()
            .map_err(|_| anyhow::anyhow!("the health channel closed"))?;
        tracing::warn!(process, reason = %reason, "the dataflow stopped; joining the cluster again");
        stop(dataflow);
        std::thread::sleep(RECOVERY_DELAY / 4);
        while deaths.try_recv().is_ok() {}
    }
}
