//! Handlers of the task resource and the service endpoints. Each returns a finished response
//! or rejects with an [`ApiError`], which `errors::recover` renders.

use std::path::PathBuf;
use std::sync::Arc;

use pipeline::engine::SubmitError;
use serde_json::json;
use storage::{Store, TaskRecord, TaskStatus};
use warp::http::header::LOCATION;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::backend::Backend;
use crate::errors::ApiError;
use crate::models::{CreateTask, ListQuery, TaskList, TaskView};

/// Seconds a client is told to wait after a 429.
const RETRY_AFTER_SECS: u64 = 5;

/// What every handler works with.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub backend: Arc<dyn Backend>,
    pub data_dir: Arc<PathBuf>,
}

impl AppState {
    /// The stored task, or a 404.
    pub fn record(&self, id: u64) -> Result<TaskRecord, ApiError> {
        self.store
            .get(id)?
            .ok_or_else(|| ApiError::task_not_found(id))
    }

    pub fn view(&self, r: TaskRecord) -> TaskView {
        let live = self.backend.progress(r.id);
        TaskView::new(r, live)
    }

    /// Runs a store write (which may fsync) off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> storage::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => Ok(r?),
            Err(e) => Err(ApiError::internal(format_args!("store task: {e}"))),
        }
    }
}

fn json_with(status: StatusCode, body: &impl serde::Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// `POST /api/tasks`: validate, refuse when the queue is full (storing nothing), persist,
/// hand to the pipeline, answer 202 with the task.
pub async fn create(body: CreateTask, st: AppState) -> Result<Response, Rejection> {
    let params = body.validate()?;
    let depth = st.backend.queue_depth();
    if depth >= st.backend.queue_bound() {
        return Err(ApiError::queue_full(depth, RETRY_AFTER_SECS).into());
    }
    let record = st.blocking(move |s| s.create_task(params)).await?;
    let id = record.id;
    let record = match st.backend.submit(id) {
        Ok(()) => record,
        Err(e) => {
            // The queue filled between the check and the submit: the task is stored but
            // will never run, so close it rather than leave it queued forever.
            let reason = e.to_string();
            st.blocking(move |s| {
                s.update(id, |r| {
                    r.status = TaskStatus::Cancelled;
                    r.error = Some(format!("not accepted: {reason}"));
                })
            })
            .await?;
            return Err(match e {
                SubmitError::QueueFull(depth) => ApiError::queue_full(depth, RETRY_AFTER_SECS),
                other => ApiError::internal(other),
            }
            .into());
        }
    };
    let mut res = json_with(StatusCode::ACCEPTED, &st.view(record));
    if let Ok(loc) = format!("/api/tasks/{id}").parse() {
        res.headers_mut().insert(LOCATION, loc);
    }
    Ok(res)
}

/// `GET /api/tasks/{id}`.
pub async fn get(id: u64, st: AppState) -> Result<Response, Rejection> {
    let record = st.record(id)?;
    Ok(json_with(StatusCode::OK, &st.view(record)))
}

/// `GET /api/tasks`: newest first, one page, from the store's indexes.
pub async fn list(q: ListQuery, st: AppState) -> Result<Response, Rejection> {
    let (status, limit) = q.validate()?;
    let (records, next_cursor) = st
        .store
        .list(status, limit, q.cursor)
        .map_err(ApiError::from)?;
    let tasks = records.into_iter().map(|r| st.view(r)).collect();
    Ok(json_with(StatusCode::OK, &TaskList { tasks, next_cursor }))
}

/// `DELETE /api/tasks/{id}`: cancels a queued or running task; a final one is returned as it
/// is, so repeating the call is harmless.
pub async fn cancel(id: u64, st: AppState) -> Result<Response, Rejection> {
    let record = st.record(id)?;
    if record.status.is_final() {
        return Ok(json_with(StatusCode::OK, &st.view(record)));
    }
    // Decided again inside the update: the engine may finish the task meanwhile.
    let record = st
        .blocking(move |s| {
            s.update(id, |r| {
                if !r.status.is_final() {
                    r.status = TaskStatus::Cancelled;
                }
            })
        })
        .await?
        .ok_or_else(|| ApiError::task_not_found(id))?;
    st.backend.cancel(id);
    Ok(json_with(StatusCode::OK, &st.view(record)))
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Result<Response, Rejection> {
    Ok(json_with(StatusCode::OK, &json!({"status": "ok"})))
}

/// `GET /readyz`: storage answers and the pipeline says what it serves with.
pub async fn readyz(st: AppState) -> Result<Response, Rejection> {
    let queue = json!({"depth": st.backend.queue_depth(), "bound": st.backend.queue_bound()});
    match st.store.counts() {
        Ok(counts) => Ok(json_with(
            StatusCode::OK,
            &json!({
                "status": "ready",
                "backend": st.backend.ready(),
                "storage": {"ok": true, "tasks": counts},
                "queue": queue,
            }),
        )),
        Err(e) => Ok(json_with(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({
                "status": "unavailable",
                "storage": {"ok": false, "error": e.to_string()},
                "queue": queue,
            }),
        )),
    }
}
