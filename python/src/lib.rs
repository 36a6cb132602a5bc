//! The `reel` Python package: reel's model, its in-process pipeline, its planner and its
//! evaluator, as a CPython extension module built with PyO3 (a wheel by maturin:
//! `scripts/python_test.sh --wheel-only`, see `docs/PYTHON.md`).
//!
//! It sits on the workspace's libraries and adds no behaviour of its own: `reel.Model` is a
//! `kernels::Model` (the checkpoint built into the binary by default), `reel.Pipeline` is a
//! `pipeline::inprocess::Pipeline` (store, task service and the timely engine, no HTTP),
//! `reel.plan` is `pipeline::planner::RulePlanner` and `reel.evaluate` is `eval::evaluate`.
//! Every call that computes or waits lets go of the GIL (`Python::detach`), so other Python
//! threads run meanwhile. Rust errors become Python exceptions with the Rust message:
//! `ValueError` for bad arguments (an unknown word, zero steps, an invalid task), `reel.ReelError`
//! for the rest. The stubs editors read are `python/reel.pyi`; the tests, `python/tests/`.

#![warn(missing_docs)]

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use contract::{TaskEvent, TaskStatus};
use kernels::wan::WanModel;
use kernels::{cuda_available, Clip, CpuBackend, CudaBackend, KernelError, Model, VideoModel};
use numpy::{
    PyArray1, PyArray3, PyArray4, PyArrayMethods, PyReadonlyArray4, PyUntypedArrayMethods,
};
use pipeline::engine::EngineConfig;
use pipeline::inprocess::{Events, Pipeline, PipelineConfig, PipelineError, TimedOut};
use pipeline::plan::Planner as _;
use pipeline::planner::{FreeTextPlanner, RulePlanner};
use pipeline::post::{PostChoice, PostProcessor};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use storage::{NewTask, TaskParams, TaskRequest};

create_exception!(
    reel,
    ReelError,
    PyRuntimeError,
    "An error of reel's Rust code; its message is the Rust error's."
);

/// The checkpoint shipped in the repository (model/checkpoint), built into the module as the
/// binary builds it in.
const SHIPPED_CONFIG: &str = include_str!("../../model/checkpoint/config.json");
const SHIPPED_WEIGHTS: &[u8] = include_bytes!("../../model/checkpoint/model.safetensors");

/// How often a waiting iterator looks up from the channel to let Python handle signals
/// (Ctrl-C raises `KeyboardInterrupt` within this).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

fn kernel_err(e: KernelError) -> PyErr {
    match e {
        KernelError::UnknownWord { .. }
        | KernelError::TooManyTokens { .. }
        | KernelError::InvalidArgument(_) => PyValueError::new_err(e.to_string()),
        other => ReelError::new_err(other.to_string()),
    }
}

fn pipeline_err(e: PipelineError) -> PyErr {
    match e {
        PipelineError::Invalid(_) => PyValueError::new_err(e.to_string()),
        PipelineError::NotFound(_) => pyo3::exceptions::PyKeyError::new_err(e.to_string()),
        other => ReelError::new_err(other.to_string()),
    }
}

fn reel_err(e: impl std::fmt::Display) -> PyErr {
    ReelError::new_err(e.to_string())
}

/// A Rust value as the Python object its JSON reads as (dicts, lists, numbers, strings).
fn to_python<'py>(py: Python<'py>, value: &impl serde::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(value).map_err(reel_err)?;
    py.import("json")?.call_method1("loads", (json,))
}

/// reel's diffusion model: a checkpoint on the CPU (or a CUDA GPU).
#[pyclass(name = "Model", module = "reel", frozen)]
struct PyModel {
    model: Arc<Model>,
}

#[pymethods]
impl PyModel {
    /// Loads the checkpoint directory `path` (`config.json` + `model.safetensors`), or the
    /// one built into the module when `path` is None, onto `device`: "cpu", "cuda" or "auto"
    /// (CUDA when a GPU works).
    #[staticmethod]
    #[pyo3(signature = (path=None, device="cpu"))]
    fn load(py: Python<'_>, path: Option<PathBuf>, device: &str) -> PyResult<PyModel> {
        let cuda = match device {
            "cpu" => false,
            "cuda" => true,
            "auto" => cuda_available(),
            other => {
                return Err(PyValueError::new_err(format!(
                    "device must be \"auto\", \"cpu\" or \"cuda\", not {other:?}"
                )))
            }
        };
        let model = py.detach(move || -> Result<Model, KernelError> {
            if cuda {
                let backend =
                    CudaBackend::try_new(0).map_err(|e| KernelError::Cuda(format!("{e:#}")))?;
                match &path {
                    Some(dir) => Model::load_with(dir, backend),
                    None => Model::from_bytes_with(SHIPPED_CONFIG, SHIPPED_WEIGHTS, backend),
                }
            } else {
                let backend = CpuBackend::default();
                match &path {
                    Some(dir) => Model::load_with(dir, backend),
                    None => Model::from_bytes_with(SHIPPED_CONFIG, SHIPPED_WEIGHTS, backend),
                }
            }
        });
        Ok(PyModel {
            model: Arc::new(model.map_err(kernel_err)?),
        })
    }

    /// `<architecture>-<12 hex digits of the weights' SHA-1>`.
    #[getter]
    fn id(&self) -> &str {
        self.model.id()
    }

    /// The backend in words.
    #[getter]
    fn backend(&self) -> String {
        self.model.backend_name()
    }

    /// Frames of one generated scene.
    #[getter]
    fn frames(&self) -> usize {
        self.model.config().frames
    }

    /// Side of a generated frame in pixels.
    #[getter]
    fn size(&self) -> usize {
        self.model.config().base_size
    }

    /// The checkpoint's default sampling steps.
    #[getter]
    fn default_steps(&self) -> usize {
        self.model.config().sampler.steps
    }

    /// The checkpoint's default guidance scale.
    #[getter]
    fn default_guidance(&self) -> f32 {
        self.model.config().sampler.guidance
    }

    /// The words captions may use.
    #[getter]
    fn vocabulary(&self) -> Vec<String> {
        self.model.config().vocab.clone()
    }

    /// One scene for `caption`: float32 RGB in [0, 1], shape (frames, height, width, 3). The
    /// array owns the model's output buffer (no copy).
    #[pyo3(signature = (caption, seed=0, steps=None, guidance=None))]
    fn generate<'py>(
        &self,
        py: Python<'py>,
        caption: String,
        seed: u64,
        steps: Option<usize>,
        guidance: Option<f32>,
    ) -> PyResult<Bound<'py, PyArray4<f32>>> {
        let clip = py.detach(|| self.generate_clip(&caption, seed, steps, guidance))?;
        let shape = [clip.frames, clip.height, clip.width, 3];
        PyArray1::from_vec(py, clip.data).reshape(shape)
    }

    /// Seconds the Rust call behind `generate` takes, timed inside Rust (for
    /// bench/python_overhead.py, which compares it with `generate` timed from Python).
    #[pyo3(signature = (caption, seed=0, steps=None, guidance=None))]
    fn _rust_generate_seconds(
        &self,
        py: Python<'_>,
        caption: String,
        seed: u64,
        steps: Option<usize>,
        guidance: Option<f32>,
    ) -> PyResult<f64> {
        py.detach(|| {
            let start = Instant::now();
            let clip = self.generate_clip(&caption, seed, steps, guidance)?;
            let seconds = start.elapsed().as_secs_f64();
            drop(clip);
            Ok(seconds)
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "reel.Model(id={:?}, backend={:?})",
            self.model.id(),
            self.model.backend_name()
        )
    }
}

impl PyModel {
    fn generate_clip(
        &self,
        caption: &str,
        seed: u64,
        steps: Option<usize>,
        guidance: Option<f32>,
    ) -> PyResult<Clip> {
        let s = &self.model.config().sampler;
        let (steps, guidance) = (steps.unwrap_or(s.steps), guidance.unwrap_or(s.guidance));
        let mut clips = self
            .model
            .generate(&[caption], seed, steps, guidance, s.method)
            .map_err(kernel_err)?;
        Ok(clips.remove(0))
    }
}

/// What a [`PyPipeline`] and its tasks share: the pipeline, then the temporary data dir it
/// may live in (dropped after it).
struct Shared {
    pipeline: Pipeline,
    _temp: Option<tempfile::TempDir>,
}

/// The whole pipeline in-process: planner, timely dataflow engine, post-processing, PNG frames
/// and MP4 under a data dir (a temporary one by default), no HTTP.
/// Wan2.1 text-to-video from a local diffusers checkpoint, on the CPU: for `reel.Pipeline`.
#[pyclass(name = "WanModel", module = "reel", frozen)]
struct PyWanModel {
    model: Arc<WanModel>,
}

#[pymethods]
impl PyWanModel {
    /// Loads and checks the diffusers checkpoint directory `path` (model_index.json, the
    /// text encoder, tokenizer, transformer, VAE and scheduler); ValueError naming the file
    /// and tensor when something is missing or wrong.
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<PyWanModel> {
        let model = py
            .detach(|| WanModel::load(&path))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyWanModel {
            model: Arc::new(model),
        })
    }

    /// `wan2.1-<12 hex digits of the checkpoint's SHA-1>`.
    #[getter]
    fn id(&self) -> String {
        self.model.spec().id.clone()
    }

    /// What requests take: parameters, weight bytes and the free-form defaults and rules
    /// (a dict, as `/readyz`'s `model_info` has it).
    #[getter]
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.model.spec())
    }

    fn __repr__(&self) -> String {
        let spec = self.model.spec();
        format!(
            "reel.WanModel({}, {} parameters, {})",
            spec.id,
            spec.parameters,
            self.model.backend_name()
        )
    }
}

#[pyclass(name = "Pipeline", module = "reel", frozen)]
struct PyPipeline {
    shared: Arc<Shared>,
}

#[pymethods]
impl PyPipeline {
    /// Starts the engine. `model`: a `reel.Model` (the built-in one on the CPU by default) or
    /// a `reel.WanModel` (scene prompts then come from the free-text planner);
    /// `data_dir`: where tasks and artifacts are kept (a temporary directory removed with the
    /// pipeline by default); `post`: "cpu", "wgpu" or "auto"; the rest as `reel serve`.
    #[new]
    #[pyo3(signature = (model=None, data_dir=None, workers=1, max_batch=8, scene_stagger=1.0,
                        previews=true, queue_bound=256, post="cpu"))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: Option<&Bound<'_, PyAny>>,
        data_dir: Option<PathBuf>,
        workers: usize,
        max_batch: usize,
        scene_stagger: f32,
        previews: bool,
        queue_bound: usize,
        post: &str,
    ) -> PyResult<PyPipeline> {
        let model: Arc<dyn VideoModel> = match model {
            None => PyModel::load(py, None, "cpu")?.model,
            Some(m) => {
                if let Ok(m) = m.cast::<PyModel>() {
                    m.get().model.clone()
                } else if let Ok(m) = m.cast::<PyWanModel>() {
                    m.get().model.clone()
                } else {
                    return Err(PyTypeError::new_err(
                        "model must be a reel.Model or a reel.WanModel",
                    ));
                }
            }
        };
        let planner: Arc<dyn pipeline::plan::Planner> = if model.spec().is_free_form() {
            Arc::new(FreeTextPlanner)
        } else {
            Arc::new(RulePlanner)
        };
        let choice: PostChoice = post
            .parse()
            .map_err(|e| PyValueError::new_err(format!("post: {e}")))?;
        let (dir, temp) = match data_dir {
            Some(dir) => (dir, None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("reel-pipeline-")
                    .tempdir()
                    .map_err(reel_err)?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        let config = PipelineConfig::new(EngineConfig {
            workers: workers.max(1),
            max_batch: max_batch.max(1),
            scene_stagger,
            previews,
            queue_bound: queue_bound.max(1),
            ..EngineConfig::in_dir(dir)
        });
        let pipeline = py.detach(move || -> anyhow::Result<Pipeline> {
            let post = Arc::new(PostProcessor::new(choice)?);
            Pipeline::start(config, model, post, planner)
        });
        Ok(PyPipeline {
            shared: Arc::new(Shared {
                pipeline: pipeline.map_err(|e| ReelError::new_err(format!("{e:#}")))?,
                _temp: temp,
            }),
        })
    }

    /// Stores and runs a task; its `Task` iterates over its events as they happen. Unset
    /// fields take the model's defaults (as `POST /api/tasks` does); `size` and
    /// `seconds_per_scene` are the built-in model's, `width`, `height`, `num_frames`,
    /// `negative_prompt` and `scheduler` a free-form model's. ValueError names a broken rule.
    #[pyo3(signature = (prompt, num_scenes=None, seed=0, steps=None, guidance=None,
                        seconds_per_scene=None, fps=None, size=None, priority=5, width=None,
                        height=None, num_frames=None, negative_prompt=None, scheduler=None))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        prompt: String,
        num_scenes: Option<usize>,
        seed: u64,
        steps: Option<usize>,
        guidance: Option<f32>,
        seconds_per_scene: Option<f32>,
        fps: Option<u32>,
        size: Option<u32>,
        priority: u8,
        width: Option<u32>,
        height: Option<u32>,
        num_frames: Option<usize>,
        negative_prompt: Option<String>,
        scheduler: Option<String>,
    ) -> PyResult<PyTask> {
        let request = TaskRequest {
            prompt,
            num_scenes,
            seed: Some(seed),
            steps,
            guidance,
            seconds_per_scene,
            fps,
            size,
            width,
            height,
            num_frames,
            negative_prompt,
            scheduler,
        };
        let params = request
            .resolve(self.shared.pipeline.engine().model().spec(), || seed)
            .map_err(PyValueError::new_err)?;
        let new = NewTask {
            priority,
            ..NewTask::anonymous(params)
        };
        let submitted = py
            .detach(|| self.shared.pipeline.submit_task(new))
            .map_err(pipeline_err)?;
        Ok(PyTask {
            id: submitted.id,
            shared: self.shared.clone(),
            events: Some(submitted.events),
            pending: VecDeque::new(),
            next_frame: 0,
        })
    }

    /// Watches a task already submitted (by id), from now on.
    fn task(&self, py: Python<'_>, id: u64) -> PyResult<PyTask> {
        let events = py
            .detach(|| self.shared.pipeline.events(id))
            .map_err(pipeline_err)?;
        Ok(PyTask {
            id,
            shared: self.shared.clone(),
            events: Some(events),
            pending: VecDeque::new(),
            next_frame: 0,
        })
    }

    /// Cancels task `id`; returns its status after the call ("cancelled", or how it ended).
    fn cancel(&self, py: Python<'_>, id: u64) -> PyResult<&'static str> {
        cancel(py, &self.shared, id)
    }

    /// Where tasks and artifacts are kept.
    #[getter]
    fn data_dir(&self) -> PathBuf {
        self.shared.pipeline.data_dir().to_owned()
    }

    /// Tasks accepted and not yet finished.
    #[getter]
    fn queue_depth(&self) -> usize {
        self.shared.pipeline.engine().queue_depth()
    }
}

fn cancel(py: Python<'_>, shared: &Shared, id: u64) -> PyResult<&'static str> {
    let status = py
        .detach(|| shared.pipeline.cancel(id))
        .map_err(pipeline_err)?;
    Ok(status.name())
}

/// One thing that happened to a task.
#[pyclass(name = "Event", module = "reel", frozen, get_all)]
struct PyEvent {
    /// "status", "step", "preview", "frame" or "done".
    kind: &'static str,
    /// The task's id.
    task: u64,
    /// "status" and "done": the status ("queued", "planning", ..., "completed", "failed",
    /// "cancelled").
    status: Option<&'static str>,
    /// "done" of a failed task: why.
    error: Option<String>,
    /// "step" and "preview": the scene (from 0).
    scene: Option<usize>,
    /// "step" and "preview": steps done.
    step: Option<usize>,
    /// "step" and "preview": steps of the scene.
    steps: Option<usize>,
    /// "step": the task's overall progress in [0, 1].
    overall: Option<f32>,
    /// "frame": the delivered frame's index (frames come in index order, none skipped).
    index: Option<usize>,
    /// "frame": the frame, uint8 RGB of shape (size, size, 3).
    frame: Option<Py<PyAny>>,
    /// "preview": a PNG of the model's current estimate of the scene's middle frame.
    png: Option<Py<PyBytes>>,
}

impl PyEvent {
    fn new(kind: &'static str, task: u64) -> PyEvent {
        PyEvent {
            kind,
            task,
            status: None,
            error: None,
            scene: None,
            step: None,
            steps: None,
            overall: None,
            index: None,
            frame: None,
            png: None,
        }
    }
}

#[pymethods]
impl PyEvent {
    fn __repr__(&self) -> String {
        let mut s = format!("reel.Event(kind={:?}", self.kind);
        if let Some(v) = self.status {
            s += &format!(", status={v:?}");
        }
        if let Some(v) = &self.error {
            s += &format!(", error={v:?}");
        }
        if let (Some(scene), Some(step), Some(steps)) = (self.scene, self.step, self.steps) {
            s += &format!(", scene={scene}, step={step}/{steps}");
        }
        if let Some(v) = self.index {
            s += &format!(", index={v}");
        }
        s + ")"
    }
}

/// A submitted task: iterate over it for its events (frames among them, as they are made),
/// up to "done"; `cancel()` stops it.
#[pyclass(name = "Task", module = "reel")]
struct PyTask {
    /// The task's id.
    #[pyo3(get)]
    id: u64,
    shared: Arc<Shared>,
    /// None once "done" was handed out.
    events: Option<Events>,
    /// Events due before the next one from the channel (frames read from disk, "done").
    pending: VecDeque<PyEvent>,
    /// The next frame index to hand out.
    next_frame: usize,
}

impl PyTask {
    /// The next event, `None` after "done". Waits without the GIL, looking up every
    /// [`SIGNAL_CHECK`] for Ctrl-C.
    fn next_event(&mut self, py: Python<'_>) -> PyResult<Option<PyEvent>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(Some(event));
            }
            let Some(events) = self.events.as_mut() else {
                return Ok(None);
            };
            let got = py.detach(|| events.next_timeout(SIGNAL_CHECK));
            match got {
                Err(TimedOut) => py.check_signals()?,
                Ok(None) => self.events = None,
                Ok(Some(event)) => self.take(py, event)?,
            }
        }
    }

    /// Turns a Rust event into the Python events it stands for, onto `pending`.
    fn take(&mut self, py: Python<'_>, event: TaskEvent) -> PyResult<()> {
        let id = self.id;
        let e = |kind| PyEvent::new(kind, id);
        match event {
            TaskEvent::Status(status) => {
                let mut ev = e("status");
                ev.status = Some(status.name());
                self.pending.push_back(ev);
            }
            TaskEvent::Step {
                scene,
                step,
                steps,
                overall,
            } => {
                let mut ev = e("step");
                (ev.scene, ev.step, ev.steps, ev.overall) =
                    (Some(scene), Some(step), Some(steps), Some(overall));
                self.pending.push_back(ev);
            }
            TaskEvent::Preview {
                scene,
                step,
                steps,
                png,
            } => {
                let mut ev = e("preview");
                (ev.scene, ev.step, ev.steps) = (Some(scene), Some(step), Some(steps));
                ev.png = Some(PyBytes::new(py, &png).unbind());
                self.pending.push_back(ev);
            }
            // Every frame up to this one, so a watcher that lagged misses none.
            TaskEvent::Frame { index } => self.frames_up_to(py, index + 1)?,
            TaskEvent::Done(status) => {
                let record = py
                    .detach(|| self.shared.pipeline.record(self.id))
                    .map_err(pipeline_err)?;
                if status == TaskStatus::Completed {
                    let count = record.artifact.as_ref().map_or(0, |a| a.frame_count);
                    self.frames_up_to(py, count)?;
                }
                let mut ev = e("done");
                ev.status = Some(status.name());
                ev.error = record.error;
                self.pending.push_back(ev);
            }
        }
        Ok(())
    }

    /// Reads frames `next_frame..end` from disk as "frame" events.
    fn frames_up_to(&mut self, py: Python<'_>, end: usize) -> PyResult<()> {
        while self.next_frame < end {
            let index = self.next_frame;
            let frame = py
                .detach(|| self.shared.pipeline.frame(self.id, index))
                .map_err(pipeline_err)?;
            let array =
                PyArray1::from_vec(py, frame.rgb).reshape([frame.height, frame.width, 3])?;
            let array: Bound<'_, PyArray3<u8>> = array;
            let mut ev = PyEvent::new("frame", self.id);
            ev.index = Some(index);
            ev.frame = Some(array.into_any().unbind());
            self.pending.push_back(ev);
            self.next_frame += 1;
        }
        Ok(())
    }
}

#[pymethods]
impl PyTask {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<PyEvent>> {
        self.next_event(py)
    }

    /// Only the frames, as uint8 arrays (size, size, 3), in order; then the task's end is
    /// checked: a task that did not complete raises `reel.ReelError` with its reason.
    fn frames(slf: Py<Self>) -> PyFrames {
        PyFrames { task: slf }
    }

    /// Cancels the task; returns its status after the call. Iterating then ends with
    /// "done" (status "cancelled", unless it had ended already).
    fn cancel(&self, py: Python<'_>) -> PyResult<&'static str> {
        cancel(py, &self.shared, self.id)
    }

    /// The stored record (status, plan, progress, timings, artifact paths, error) as a dict.
    fn record<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let record = py
            .detach(|| self.shared.pipeline.record(self.id))
            .map_err(pipeline_err)?;
        to_python(py, &record)
    }

    /// The stored status now.
    #[getter]
    fn status(&self, py: Python<'_>) -> PyResult<&'static str> {
        let record = py
            .detach(|| self.shared.pipeline.record(self.id))
            .map_err(pipeline_err)?;
        Ok(record.status.name())
    }

    /// The finished MP4's path (None until the task has completed).
    #[getter]
    fn video(&self, py: Python<'_>) -> PyResult<Option<PathBuf>> {
        let record = py
            .detach(|| self.shared.pipeline.record(self.id))
            .map_err(pipeline_err)?;
        Ok(record
            .artifact
            .map(|a| self.shared.pipeline.data_dir().join(a.video)))
    }

    fn __repr__(&self) -> String {
        format!("reel.Task(id={})", self.id)
    }
}

/// A task's frames only (`Task.frames()`).
#[pyclass(name = "Frames", module = "reel")]
struct PyFrames {
    task: Py<PyTask>,
}

#[pymethods]
impl PyFrames {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut task = self.task.bind(py).borrow_mut();
        while let Some(event) = task.next_event(py)? {
            match event.kind {
                "frame" => return Ok(event.frame),
                "done" if event.status != Some(TaskStatus::Completed.name()) => {
                    return Err(ReelError::new_err(format!(
                        "task {} ended {}: {}",
                        task.id,
                        event.status.unwrap_or("?"),
                        event.error.unwrap_or_default()
                    )))
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

/// The rule planner's plan of `prompt` (English or Chinese) in `num_scenes` scenes, open
/// attributes drawn from `seed`: a dict with "scenes" (each: "scene", "caption", "guessed").
#[pyfunction]
#[pyo3(signature = (prompt, num_scenes=1, seed=0))]
fn plan<'py>(
    py: Python<'py>,
    prompt: String,
    num_scenes: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let (min, max) = TaskParams::NUM_SCENES;
    if !(min..=max).contains(&num_scenes) {
        return Err(PyValueError::new_err(format!(
            "num_scenes must be {min}-{max}, not {num_scenes}"
        )));
    }
    let plan = py.detach(|| RulePlanner.plan(&prompt, num_scenes, seed));
    to_python(py, &plan)
}

/// Judges frames against a canonical caption (as `plan` writes them): a dict with "pass"
/// (every attribute right), "attributes" (attribute -> bool), "expected" and "measured".
/// `frames`: (frames, height, width, 3), float32 in [0, 1] (as `Model.generate` returns) or
/// uint8 (as `Pipeline` yields).
#[pyfunction]
fn evaluate<'py>(
    py: Python<'py>,
    frames: &Bound<'py, PyAny>,
    caption: String,
) -> PyResult<Bound<'py, PyAny>> {
    let plan = RulePlanner.plan(&caption, 1, 0);
    let planned = &plan.scenes[0];
    if !planned.guessed.is_empty() {
        return Err(PyValueError::new_err(format!(
            "the caption {caption:?} leaves {:?} open: evaluate needs a whole scene, such as \
             {:?}",
            planned.guessed, planned.caption
        )));
    }
    // The rule planner always names a WORLD.md scene.
    let scene = planned
        .scene
        .ok_or_else(|| PyValueError::new_err(format!("{caption:?} names no scene")))?;
    let clip = clip_of(frames)?;
    let verdict = py.detach(|| eval::evaluate(&clip, &scene));
    let out = PyDict::new(py);
    out.set_item("pass", verdict.all_pass())?;
    let attrs = PyDict::new(py);
    for attr in eval::ATTRS {
        let name = serde_json::to_value(attr).map_err(reel_err)?;
        attrs.set_item(name.as_str().unwrap_or("?"), verdict.pass(attr))?;
    }
    out.set_item("attributes", attrs)?;
    out.set_item("expected", to_python(py, &verdict.expected)?)?;
    out.set_item("measured", to_python(py, &verdict.measured)?)?;
    Ok(out.into_any())
}

/// A (frames, height, width, 3) float32 or uint8 array as a clip in [0, 1].
fn clip_of(frames: &Bound<'_, PyAny>) -> PyResult<Clip> {
    let (shape, data): (Vec<usize>, Vec<f32>) =
        if let Ok(a) = frames.extract::<PyReadonlyArray4<'_, f32>>() {
            (a.shape().to_vec(), a.as_array().iter().copied().collect())
        } else if let Ok(a) = frames.extract::<PyReadonlyArray4<'_, u8>>() {
            let data = a.as_array().iter().map(|&v| f32::from(v) / 255.0).collect();
            (a.shape().to_vec(), data)
        } else {
            return Err(PyTypeError::new_err(
                "frames must be a numpy array of shape (frames, height, width, 3), float32 in \
                 [0, 1] or uint8",
            ));
        };
    if shape[3] != 3 {
        return Err(PyValueError::new_err(format!(
            "frames must end in 3 channels (RGB), not shape {shape:?}"
        )));
    }
    Ok(Clip {
        frames: shape[0],
        height: shape[1],
        width: shape[2],
        data,
    })
}

/// The `reel` module.
#[pymodule]
fn reel(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ReelError", m.py().get_type::<ReelError>())?;
    m.add_class::<PyModel>()?;
    m.add_class::<PyWanModel>()?;
    m.add_class::<PyPipeline>()?;
    m.add_class::<PyTask>()?;
    m.add_class::<PyEvent>()?;
    m.add_class::<PyFrames>()?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    Ok(())
}
