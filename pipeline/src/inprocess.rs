//! [`Pipeline`]: the whole pipeline in-process, with no HTTP in front of it: the store (sled
//! under a data dir), the [`TaskService`] and the [`Engine`], owned together, with submit, a
//! blocking stream of a task's events, its frames and cancel. The binary's `serve` and
//! `generate` build their engine through it; the Python package (`python/`) wraps it.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use contract::{TaskEvent, TaskStatus};
//! use pipeline::engine::EngineConfig;
//! use pipeline::inprocess::{task_params, Pipeline, PipelineConfig};
//! use pipeline::planner::RulePlanner;
//! use pipeline::post::{PostChoice, PostProcessor};
//!
//! # fn main() -> anyhow::Result<()> {
//! let model = Arc::new(kernels::Model::load("model/checkpoint".as_ref())?);
//! let post = Arc::new(PostProcessor::new(PostChoice::Cpu)?);
//! let config = PipelineConfig::new(EngineConfig::in_dir("data".into()));
//! let pipeline = Pipeline::start(config, model, post, Arc::new(RulePlanner))?;
//!
//! let mut params = task_params("a red circle moving left, then it grows");
//! params.steps = 4;
//! let task = pipeline.submit(params)?;
//! for event in task.events {
//!     match event {
//!         TaskEvent::Frame { index } => {
//!             let frame = pipeline.frame(task.id, index)?; // RGB, 8 bits, as stored
//!             println!("frame {index}: {}x{}", frame.width, frame.height);
//!         }
//!         TaskEvent::Done(status) => assert_eq!(status, TaskStatus::Completed),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The doctest that runs is [`Pipeline::with_engine`]'s (`pipeline/tests/inprocess.rs` runs
//! the real dataflow end to end).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use contract::{SubmitError, TaskEvent, TaskStatus};
use kernels::VideoModel;
use storage::{
    frame_file, inside, task_dir, CacheConfig, NewTask, Store, StoreError, TaskParams, TaskRecord,
};
use tasks::{Subscription, TaskService};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use crate::engine::{Engine, EngineConfig};
use crate::plan::Planner;
use crate::post::PostProcessor;

/// Why a call of the in-process API failed. Its message is the one shown to users (the
/// Python package raises it as the exception's text).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The store holds no such task.
    #[error("no task {0}")]
    NotFound(u64),
    /// The parameters are not valid for the served model ([`TaskParams::validate_for`]'s
    /// reason).
    #[error("invalid task: {0}")]
    Invalid(String),
    /// The engine did not take the task (queue full, engine restarting); the task was failed
    /// with this reason.
    #[error("not accepted: {0}")]
    Submit(#[from] SubmitError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored frame could not be read or decoded.
    #[error("frame {index} of task {task}: {why}")]
    Frame {
        /// The task.
        task: u64,
        /// The frame's index.
        index: usize,
        /// What went wrong.
        why: String,
    },
}

/// How a [`Pipeline`] runs: the engine's settings (its `data_dir` holds the store and the
/// artifacts) and the result cache's.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Workers, batching, queue bound, data dir...
    pub engine: EngineConfig,
    /// The result cache in front of the store.
    pub cache: CacheConfig,
}

impl PipelineConfig {
    /// `engine` with the default result cache.
    pub fn new(engine: EngineConfig) -> PipelineConfig {
        PipelineConfig {
            engine,
            cache: CacheConfig::default(),
        }
    }
}

impl EngineConfig {
    /// The server's defaults (`reel serve --help`) with artifacts and the store under
    /// `data_dir`: one worker, batches of 8, scenes one after another, previews on, 256
    /// tasks queued at most, no CPU ceiling, no fault injection, one process.
    pub fn in_dir(data_dir: PathBuf) -> EngineConfig {
        EngineConfig {
            workers: 1,
            max_batch: 8,
            scene_stagger: 1.0,
            previews: true,
            queue_bound: 256,
            data_dir,
            max_cpu_percent: 100,
            fault_injection: false,
            cluster: None,
        }
    }
}

/// `prompt` with every other parameter at its default (as the API fills them in).
pub fn task_params(prompt: impl Into<String>) -> TaskParams {
    TaskParams {
        prompt: prompt.into(),
        num_scenes: TaskParams::DEFAULT_NUM_SCENES,
        seed: 0,
        steps: TaskParams::DEFAULT_STEPS,
        guidance: TaskParams::DEFAULT_GUIDANCE,
        seconds_per_scene: TaskParams::DEFAULT_SECONDS_PER_SCENE,
        fps: TaskParams::DEFAULT_FPS,
        size: TaskParams::DEFAULT_SIZE,
        free_form: None,
    }
}

/// One delivered frame as stored: `rgb` is `[y][x][rgb]`, 8 bits per channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub rgb: Vec<u8>,
}

/// A task just submitted: its id and its events from before the engine saw it, so none is
/// missed.
pub struct Submitted {
    /// The task's id (as the HTTP API names it).
    pub id: u64,
    /// Everything that happens to it, up to its final `Done`.
    pub events: Events,
}

/// A task's events, as a blocking iterator that ends after [`TaskEvent::Done`]. A watcher
/// that falls more than the channel's capacity behind misses some events (progress is
/// cumulative, frames stay on disk: [`Pipeline::frame`]); the end is never missed.
pub struct Events {
    id: u64,
    tasks: Arc<TaskService>,
    state: EventsState,
    /// Waits with a timeout on the channel (made at the first wait).
    timer: Option<tokio::runtime::Runtime>,
}

enum EventsState {
    Live(broadcast::Receiver<TaskEvent>),
    /// Only `Done(status)` is left to tell.
    Ending(TaskStatus),
    Ended,
}

/// [`Events::next_timeout`] waited its whole timeout without an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

impl Events {
    fn new(id: u64, tasks: Arc<TaskService>, subscription: Subscription) -> Events {
        let state = match subscription {
            Subscription::Live { events, .. } => EventsState::Live(events),
            Subscription::Ended(record) => EventsState::Ending(record.status),
        };
        Events {
            id,
            tasks,
            state,
            timer: None,
        }
    }

    /// The task these events are about.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next event, waiting at most `timeout`: `Ok(None)` once the stream has ended (after
    /// `Done`), `Err(TimedOut)` when nothing came in time (a caller that must stay responsive,
    /// such as Python checking for Ctrl-C, loops on it). Not for async code: it blocks the
    /// thread (and panics inside a tokio runtime).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<TaskEvent>, TimedOut> {
        loop {
            let rx = match &mut self.state {
                EventsState::Live(rx) => rx,
                EventsState::Ending(status) => {
                    let status = *status;
                    self.state = EventsState::Ended;
                    return Ok(Some(TaskEvent::Done(status)));
                }
                EventsState::Ended => return Ok(None),
            };
            let got = match rx.try_recv() {
                Ok(event) => Ok(event),
                Err(broadcast::error::TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(broadcast::error::TryRecvError::Closed) => Err(RecvError::Closed),
                Err(broadcast::error::TryRecvError::Empty) => {
                    let timer = self.timer.get_or_insert_with(|| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_time()
                            .build()
                            .expect("a current-thread runtime with only a timer builds")
                    });
                    let waited =
                        timer.block_on(async { tokio::time::timeout(timeout, rx.recv()).await });
                    match waited {
                        Ok(got) => got,
                        Err(_) => return Err(TimedOut),
                    }
                }
            };
            match got {
                Ok(event) => {
                    if let TaskEvent::Done(_) = event {
                        self.state = EventsState::Ended;
                    }
                    return Ok(Some(event));
                }
                Err(RecvError::Lagged(_)) => continue,
                // The live state went without a `Done` (it should not): the store knows how
                // the task ended.
                Err(RecvError::Closed) => {
                    let status = self
                        .tasks
                        .store()
                        .get(self.id)
                        .ok()
                        .flatten()
                        .map_or(TaskStatus::Failed, |r| r.status);
                    self.state = EventsState::Ending(status);
                }
            }
        }
    }
}

impl Iterator for Events {
    type Item = TaskEvent;

    /// Blocks until the next event; `None` after `Done`.
    fn next(&mut self) -> Option<TaskEvent> {
        loop {
            if let Ok(next) = self.next_timeout(Duration::from_secs(3600)) {
                return next;
            }
        }
    }
}

/// The pipeline in-process: store, task service and engine. Dropping it stops the engine's
/// threads (and flushes the store); unfinished tasks are taken up again by the next
/// `Pipeline` (or server) over the same data dir.
pub struct Pipeline {
    // Field order is drop order: the engine stops before the service and store go.
    engine: Arc<Engine>,
    tasks: Arc<TaskService>,
    data_dir: PathBuf,
}

impl Pipeline {
    /// Opens the store under `config.engine.data_dir` (created if missing) and starts the
    /// engine on `model`, `post` and `planner`.
    pub fn start(
        config: PipelineConfig,
        model: Arc<dyn VideoModel>,
        post: Arc<PostProcessor>,
        planner: Arc<dyn Planner>,
    ) -> anyhow::Result<Pipeline> {
        let data_dir = config.engine.data_dir.clone();
        Pipeline::with_engine(&data_dir, config.cache, |tasks| {
            Engine::start(config.engine, tasks, model, post, planner)
        })
    }

    /// Opens the store under `data_dir` (created if missing) and starts the engine `start`
    /// builds over its task service, so a caller can build the engine itself. The engine's
    /// data dir should be `data_dir` ([`Pipeline::frame`] reads its files there).
    ///
    /// ```
    /// use pipeline::engine::{Engine, EngineConfig};
    /// use pipeline::inprocess::Pipeline;
    ///
    /// // No engine: nothing to run tasks, but a store and a task service are opened.
    /// let dir = std::env::temp_dir().join(format!("reel-doctest-{}", std::process::id()));
    /// let failed = Pipeline::with_engine(&dir, Default::default(), |tasks| {
    ///     assert_eq!(tasks.live_count(), 0);
    ///     anyhow::bail!("no engine in this example")
    /// });
    /// assert_eq!(failed.err().unwrap().to_string(), "no engine in this example");
    /// assert!(dir.join("db").exists(), "the store was opened before the engine");
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn with_engine(
        data_dir: &Path,
        cache: CacheConfig,
        start: impl FnOnce(Arc<TaskService>) -> anyhow::Result<Engine>,
    ) -> anyhow::Result<Pipeline> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| anyhow::anyhow!("creating {}: {e}", data_dir.display()))?;
        let store = Store::open_with(data_dir, cache)
            .map_err(|e| anyhow::anyhow!("opening storage: {e}"))?;
        let tasks = Arc::new(TaskService::new(Arc::new(store)));
        let engine = start(tasks.clone())?;
        Ok(Pipeline {
            engine: Arc::new(engine),
            tasks,
            data_dir: data_dir.to_owned(),
        })
    }

    /// The task service (and through it the store), for what this API does not cover.
    pub fn tasks(&self) -> &Arc<TaskService> {
        &self.tasks
    }

    /// The engine (health, queue depth and bound).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Where the store and the artifacts are.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Validates, stores and runs a task with no owner at the default priority.
    pub fn submit(&self, params: TaskParams) -> Result<Submitted, PipelineError> {
        self.submit_task(NewTask::anonymous(params))
    }

    /// Validates, stores and runs `new`. Refused (nothing stored) when the engine's queue is
    /// at its bound or the engine is unavailable; a task the engine refuses after it was
    /// stored is failed with the reason.
    pub fn submit_task(&self, new: NewTask) -> Result<Submitted, PipelineError> {
        new.params
            .validate_for(self.engine.model().spec())
            .map_err(PipelineError::Invalid)?;
        self.engine.health().map_err(SubmitError::Unavailable)?;
        let depth = self.engine.queue_depth();
        if depth >= self.engine.queue_bound() {
            return Err(SubmitError::QueueFull(depth).into());
        }
        let record = self.tasks.create(new)?;
        let events = self.events(record.id)?;
        if let Err(e) = self.engine.submit(&record) {
            self.tasks.fail(record.id, &format!("not accepted: {e}"));
            return Err(e.into());
        }
        Ok(Submitted {
            id: record.id,
            events,
        })
    }

    /// The task's events from now on (only `Done` for one that has ended).
    pub fn events(&self, id: u64) -> Result<Events, PipelineError> {
        let subscription = self
            .tasks
            .subscribe(id)?
            .ok_or(PipelineError::NotFound(id))?;
        Ok(Events::new(id, self.tasks.clone(), subscription))
    }

    /// Cancels the task (the engine drops its work at its next check); an ended task is left
    /// as it is. Returns its status after the call.
    pub fn cancel(&self, id: u64) -> Result<TaskStatus, PipelineError> {
        let record = self.tasks.cancel(id)?.ok_or(PipelineError::NotFound(id))?;
        Ok(record.status)
    }

    /// The task's stored record (status, plan, timings, artifact, error).
    pub fn record(&self, id: u64) -> Result<TaskRecord, PipelineError> {
        self.tasks
            .store()
            .get(id)?
            .ok_or(PipelineError::NotFound(id))
    }

    /// Delivered frame `index` of task `id`, read from the PNG the engine stored (readable
    /// from its [`TaskEvent::Frame`] on). A task completed from the result cache reads the
    /// frames its artifact names (the earlier task's).
    pub fn frame(&self, id: u64, index: usize) -> Result<Frame, PipelineError> {
        let record = self.record(id)?;
        let dir = record
            .artifact
            .and_then(|a| inside(&self.data_dir, a.frames_dir))
            .unwrap_or_else(|| self.data_dir.join(task_dir(id)).join("frames"));
        read_png_rgb(&dir.join(frame_file(index))).map_err(|why| PipelineError::Frame {
            task: id,
            index,
            why,
        })
    }
}

/// An 8-bit RGB PNG (as [`crate::encode::png_rgb`] writes them).
fn read_png_rgb(path: &Path) -> Result<Frame, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rgb = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut rgb)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if info.color_type != png::ColorType::Rgb || info.bit_depth != png::BitDepth::Eight {
        return Err(format!(
            "{}: {:?} {:?}, not 8-bit RGB",
            path.display(),
            info.color_type,
            info.bit_depth
        ));
    }
    rgb.truncate(info.buffer_size());
    Ok(Frame {
        width: info.width as usize,
        height: info.height as usize,
        rgb,
    })
}
