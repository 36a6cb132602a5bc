//! Shared test rig: the real routes on an ephemeral port, a real store and task service in a
//! temp dir, and a fake engine. The tests drive a task's life through the real
//! [`TaskService`] (`rig.tasks`), as the engine's operators do.
#![allow(dead_code)] // each test binary uses its own subset of the rig

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use api::quota::Limits;
use api::ApiConfig;
use contract::{FreeFormSpec, GpuUsage, ModelKind, ModelSpec, SubmitError};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};
use storage::{frame_file, task_dir, NewTask, Store, TaskParams, TaskRecord, TaskStatus};
use tasks::TaskService;

/// Records what the API asked of it; its health, queue and GPU are set by the test.
#[derive(Default)]
pub struct FakeBackend {
    pub submitted: Mutex<Vec<u64>>,
    pub depth: AtomicUsize,
    pub bound: AtomicUsize,
    /// Make `submit` fail as if the queue filled after the API's check.
    pub refuse_submit: AtomicBool,
    /// `Some(reason)`: `health()` answers `Err(reason)` (a worker died, say).
    pub unhealthy: Mutex<Option<String>>,
    /// What `gpu()` reports (`None`: a CPU backend).
    pub gpu: Mutex<Option<GpuUsage>>,
    /// The served model: [`builtin_model`] unless a test sets another before the first
    /// request.
    pub model: OnceLock<ModelSpec>,
}

/// A built-in model's spec, as the fake serves by default.
pub fn builtin_model() -> ModelSpec {
    ModelSpec {
        id: "fake-model".into(),
        kind: ModelKind::Builtin,
        parameters: 1000,
        weight_bytes: 4000,
        free_form: None,
    }
}

/// A free-form model's spec with Wan2.1's rules (the tiny checkpoint's multiples).
pub fn free_form_model() -> ModelSpec {
    ModelSpec {
        id: "fake-wan".into(),
        kind: ModelKind::FreeForm,
        free_form: Some(FreeFormSpec {
            width: 48,
            height: 32,
            num_frames: 5,
            fps: 16,
            steps: 50,
            guidance: 5.0,
            width_multiple: 24,
            height_multiple: 16,
            frame_multiple: 4,
            schedulers: vec!["unipc".into(), "euler".into()],
        }),
        ..builtin_model()
    }
}

impl api::Backend for FakeBackend {
    fn submit(&self, record: &TaskRecord) -> Result<(), SubmitError> {
        if self.refuse_submit.load(Ordering::SeqCst) {
            return Err(SubmitError::QueueFull(self.depth.load(Ordering::SeqCst)));
        }
        self.submitted.lock().unwrap().push(record.id);
        Ok(())
    }
    fn health(&self) -> Result<(), String> {
        match self.unhealthy.lock().unwrap().clone() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
    fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }
    fn queue_bound(&self) -> usize {
        self.bound.load(Ordering::SeqCst)
    }
    fn ready(&self) -> Value {
        json!({"model": "fake-model", "device": "test"})
    }
    fn gpu(&self) -> Option<GpuUsage> {
        self.gpu.lock().unwrap().clone()
    }
    fn model(&self) -> &ModelSpec {
        self.model.get_or_init(builtin_model)
    }
}

/// How to build the rig's API.
#[derive(Default)]
pub struct Options {
    /// Mount `GET /metrics`.
    pub prometheus: Option<PrometheusHandle>,
    /// `None`: the defaults.
    pub limits: Option<Limits>,
    /// Free bytes under which new tasks are refused.
    pub min_free_disk: u64,
    /// Set before the routes are built (the engine was down at start-up).
    pub unhealthy: Option<String>,
}

pub struct Rig {
    pub base: String,
    pub store: Arc<Store>,
    pub tasks: Arc<TaskService>,
    pub backend: Arc<FakeBackend>,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Starts the API on 127.0.0.1:0 with an empty store (no keys: open) and a queue bound of 100.
pub async fn start() -> Rig {
    start_opts(Options::default()).await
}

/// [`start`], with `GET /metrics` mounted when a Prometheus handle is given.
pub async fn start_with(prometheus: Option<PrometheusHandle>) -> Rig {
    start_opts(Options {
        prometheus,
        ..Options::default()
    })
    .await
}

/// [`start`] with these options.
pub async fn start_opts(opts: Options) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let tasks = Arc::new(TaskService::new(store.clone()));
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let backend = Arc::new(FakeBackend::default());
    backend.bound.store(100, Ordering::SeqCst);
    *backend.unhealthy.lock().unwrap() = opts.unhealthy;
    let mut config = ApiConfig::new(data_dir.clone());
    config.prometheus = opts.prometheus;
    if let Some(limits) = opts.limits {
        config.limits = limits;
    }
    config.min_free_disk = opts.min_free_disk;
    let routes = api::routes(tasks.clone(), backend.clone(), config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    Rig {
        base: format!("http://{addr}"),
        store,
        tasks,
        backend,
        data_dir,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

/// The parameters of [`Rig::stored_task`]: 2 scenes of 8 frames at 64 px.
pub fn small_params() -> TaskParams {
    TaskParams {
        prompt: "a small red circle moving left on a black background".into(),
        num_scenes: 2,
        seed: 11,
        steps: 10,
        guidance: 4.0,
        seconds_per_scene: 1.0,
        fps: 8,
        size: 64,
        free_form: None,
    }
}

/// The legal path from queued to `to` (failed and cancelled are one step from anywhere live).
fn path_to(from: TaskStatus, to: TaskStatus) -> Vec<TaskStatus> {
    use TaskStatus::*;
    if matches!(to, Failed | Cancelled) {
        return vec![to];
    }
    let chain = [
        Queued,
        Planning,
        Generating,
        PostProcessing,
        Encoding,
        Completed,
    ];
    let start = chain
        .iter()
        .position(|s| *s == from)
        .expect("from a live status");
    let end = chain
        .iter()
        .position(|s| *s == to)
        .expect("to a known status");
    assert!(start < end, "no forward path from {from:?} to {to:?}");
    chain[start + 1..=end].to_vec()
}

/// Advances a live task along legal transitions to `to`.
pub fn walk_to(tasks: &TaskService, id: u64, to: TaskStatus) -> TaskRecord {
    walk_to_with(tasks, id, to, |_| {})
}

/// [`walk_to`], applying `f` to the record in the last transition's write.
pub fn walk_to_with(
    tasks: &TaskService,
    id: u64,
    to: TaskStatus,
    f: impl FnOnce(&mut TaskRecord),
) -> TaskRecord {
    let from = tasks
        .store()
        .get(id)
        .unwrap()
        .expect("a stored task")
        .status;
    let steps = path_to(from, to);
    let (last, before) = steps.split_last().unwrap();
    for s in before {
        tasks.advance(id, *s, |_| {}).unwrap().unwrap();
    }
    tasks.advance(id, *last, f).unwrap().unwrap()
}

impl Rig {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// A request with `Authorization: Bearer <token>` when a token is given.
    pub fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let req = self.http.request(method, self.url(path));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// GET as the key with this token.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, path, Some(token))
            .send()
            .await
            .unwrap()
    }

    /// DELETE as the key with this token (or none).
    pub async fn delete_as(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.req(reqwest::Method::DELETE, path, token)
            .send()
            .await
            .unwrap()
    }

    /// POSTs raw bytes as JSON.
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(self.url("/api/tasks"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, body: Value) -> reqwest::Response {
        self.post_raw(body.to_string()).await
    }

    /// POSTs a task as the key with this token (or none).
    pub async fn post_as(&self, body: Value, token: Option<&str>) -> reqwest::Response {
        self.req(reqwest::Method::POST, "/api/tasks", token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Makes a key through `POST /api/keys` (as `admin_token`, or none while the server is
    /// open); returns (id, token).
    pub async fn create_key(
        &self,
        admin_token: Option<&str>,
        name: &str,
        admin: bool,
    ) -> (String, String) {
        let res = self
            .req(reqwest::Method::POST, "/api/keys", admin_token)
            .json(&json!({"name": name, "admin": admin}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(res).await;
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    /// A queued, live task made through the task service (not the API), for read-side tests.
    pub fn stored_task(&self) -> TaskRecord {
        self.tasks
            .create(NewTask::anonymous(small_params()))
            .unwrap()
    }

    /// Where the engine stores task `id`'s frame `n`.
    pub fn frame_path(&self, id: u64, n: usize) -> PathBuf {
        self.data_dir
            .join(task_dir(id))
            .join("frames")
            .join(frame_file(n))
    }

    /// Writes task `id`'s frame `n` as the engine would (the bytes are not decoded by the
    /// API, so any will do).
    pub fn write_frame(&self, id: u64, n: usize, bytes: &[u8]) {
        let path = self.frame_path(id, n);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// Every stored task, newest first.
    pub fn all_tasks(&self) -> Vec<TaskRecord> {
        self.store.list(None, 100, None).unwrap().0
    }
}

/// Bytes that stand for frame `n`: a PNG signature and the index.
pub fn png_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    b.extend_from_slice(&(n as u32).to_be_bytes());
    b
}

/// Status and parsed JSON body; panics if the body is not JSON (every answer of the API is,
/// except the media and streams).
pub async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

/// Asserts a JSON error answer with this status and code.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    let (got, body) = json_of(res).await;
    assert_eq!(got, status, "body: {body}");
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    body
}

/// The `Retry-After` header in seconds; panics if absent.
pub fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}
