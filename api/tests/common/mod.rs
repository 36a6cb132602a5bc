//! Shared test rig: the real routes on an ephemeral port, a real store in a temp dir, and a
//! fake pipeline the tests drive by hand.
#![allow(dead_code)] // each test binary uses its own subset of the rig

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use kernels::GpuUsage;
use metrics_exporter_prometheus::PrometheusHandle;
use pipeline::engine::{Progress, SubmitError, TaskEvent};
use serde_json::{json, Value};
use storage::{Store, TaskParams, TaskRecord};
use tokio::sync::broadcast;

/// Records what the API asked of it; events and frames are injected by the test.
#[derive(Default)]
pub struct FakeBackend {
    pub submitted: Mutex<Vec<u64>>,
    pub cancelled: Mutex<Vec<u64>>,
    pub depth: AtomicUsize,
    pub bound: AtomicUsize,
    /// Make `submit` fail as if the queue filled after the API's check.
    pub refuse_submit: AtomicBool,
    channels: Mutex<HashMap<u64, broadcast::Sender<TaskEvent>>>,
    pub frames: Mutex<HashMap<u64, Vec<Arc<Vec<u8>>>>>,
    pub progress: Mutex<HashMap<u64, Progress>>,
    /// What `gpu()` reports (`None`: a CPU backend).
    pub gpu: Mutex<Option<GpuUsage>>,
}

impl FakeBackend {
    fn sender(&self, id: u64) -> broadcast::Sender<TaskEvent> {
        self.channels
            .lock()
            .unwrap()
            .entry(id)
            .or_insert_with(|| broadcast::channel(64).0)
            .clone()
    }

    /// Sends an event to the task's watchers; returns how many there are.
    pub fn publish(&self, id: u64, ev: TaskEvent) -> usize {
        self.sender(id).send(ev).unwrap_or(0)
    }

    /// Drops the task's channel, as an engine that forgets a task would.
    pub fn close(&self, id: u64) {
        self.channels.lock().unwrap().remove(&id);
    }
}

impl api::Backend for FakeBackend {
    fn submit(&self, id: u64) -> Result<(), SubmitError> {
        if self.refuse_submit.load(Ordering::SeqCst) {
            return Err(SubmitError::QueueFull(self.depth.load(Ordering::SeqCst)));
        }
        self.submitted.lock().unwrap().push(id);
        Ok(())
    }
    fn cancel(&self, id: u64) {
        self.cancelled.lock().unwrap().push(id);
    }
    fn subscribe(&self, id: u64) -> broadcast::Receiver<TaskEvent> {
        self.sender(id).subscribe()
    }
    fn progress(&self, id: u64) -> Option<Progress> {
        self.progress.lock().unwrap().get(&id).cloned()
    }
    fn frames_so_far(&self, id: u64) -> Vec<Arc<Vec<u8>>> {
        self.frames
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .unwrap_or_default()
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
}

pub struct Rig {
    pub base: String,
    pub store: Arc<Store>,
    pub backend: Arc<FakeBackend>,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Starts the API on 127.0.0.1:0 with an empty store and a queue bound of 100.
pub async fn start() -> Rig {
    start_with(None).await
}

/// [`start`], with `GET /metrics` mounted when a Prometheus handle is given.
pub async fn start_with(prometheus: Option<PrometheusHandle>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let backend = Arc::new(FakeBackend::default());
    backend.bound.store(100, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match prometheus {
        None => {
            let routes = api::routes(store.clone(), backend.clone(), data_dir.clone());
            tokio::spawn(warp::serve(routes).incoming(listener).run());
        }
        Some(handle) => {
            let routes =
                api::routes_with_metrics(store.clone(), backend.clone(), data_dir.clone(), handle);
            tokio::spawn(warp::serve(routes).incoming(listener).run());
        }
    }
    Rig {
        base: format!("http://{addr}"),
        store,
        backend,
        data_dir,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Rig {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
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

    /// A task stored directly (not through the API), for read-side tests.
    pub fn stored_task(&self) -> TaskRecord {
        self.store
            .create_task(TaskParams {
                prompt: "a small red circle moving left on a black background".into(),
                num_scenes: 2,
                seed: 11,
                steps: 10,
                guidance: 4.0,
                seconds_per_scene: 1.0,
                fps: 8,
                size: 64,
            })
            .unwrap()
    }
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
