//! Handlers of the task and key resources and the service endpoints. Each returns a finished
//! response or rejects with an [`ApiError`], which `errors::recover` renders. Store calls
//! run on tokio's blocking pool ([`AppState::blocking`]): a status change fsyncs.

use std::path::PathBuf;
use std::sync::Arc;

use contract::SubmitError;
use serde_json::json;
use storage::{NewTask, TaskParams, TaskRecord, Webhook};
use tasks::{Subscription, TaskService};
use warp::http::header::LOCATION;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::auth::{Auth, Caller};
use crate::backend::Backend;
use crate::disk::DiskGuard;
use crate::errors::ApiError;
use crate::models::{
    CreateKey, CreateTask, CreatedKeyView, KeyView, ListQuery, TaskList, TaskView,
};
use crate::quota::{Limits, Quotas};

/// Seconds a client is told to wait after a 429 for a full queue.
const QUEUE_RETRY_AFTER_SECS: u64 = 5;
/// Seconds a client is told to wait while the engine recovers or the disk is full.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 3;

/// What every handler works with.
#[derive(Clone)]
pub struct AppState {
    /// The owner of every task's life.
    pub tasks: Arc<TaskService>,
    /// The engine.
    pub backend: Arc<dyn Backend>,
    /// Where artifacts' relative paths point.
    pub data_dir: Arc<PathBuf>,
    /// Who may call.
    pub auth: Arc<Auth>,
    /// Per-key windows.
    pub quotas: Arc<Quotas>,
    /// The limits.
    pub limits: Limits,
    /// Free space under the data dir.
    pub disk: Arc<DiskGuard>,
}

impl AppState {
    /// Runs store work off the async workers.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let st = self.clone();
        match tokio::task::spawn_blocking(move || f(&st)).await {
            Ok(r) => r,
            Err(e) => Err(ApiError::internal(format_args!("store task: {e}"))),
        }
    }

    /// The stored task if `caller` may see it, else a 404 (the same as for no task).
    pub fn record(&self, caller: &Caller, id: u64) -> Result<TaskRecord, ApiError> {
        self.tasks
            .store()
            .get(id)?
            .filter(|r| caller.may_see(r))
            .ok_or_else(|| ApiError::task_not_found(id))
    }

    /// Watches a task the caller may see: its events while it runs, its record once ended;
    /// a 404 (leaving nothing behind) for one that does not exist or is not the caller's.
    pub async fn watch(&self, caller: Caller, id: u64) -> Result<Subscription, ApiError> {
        self.blocking(move |st| {
            st.record(&caller, id)?;
            st.tasks
                .subscribe(id)?
                .ok_or_else(|| ApiError::task_not_found(id))
        })
        .await
    }

    /// The API's view of a record, with live progress while it runs.
    pub fn view(&self, r: TaskRecord) -> TaskView {
        let live = self.tasks.progress(r.id);
        TaskView::new(r, live)
    }

    /// 503 while the engine is down or the disk is below its floor.
    fn ensure_available(&self) -> Result<(), ApiError> {
        if let Err(reason) = self.backend.health() {
            return Err(ApiError::unavailable(
                "engine_unavailable",
                format!("the engine is recovering: {reason}"),
                UNAVAILABLE_RETRY_AFTER_SECS,
            ));
        }
        self.disk.check().map_err(|why| {
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                why,
            )
            .retry_after(UNAVAILABLE_RETRY_AFTER_SECS * 10)
        })
    }
}

fn json_with(status: StatusCode, body: &impl serde::Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// The priority a caller's request gets: keys have their own (default 5) as default and
/// ceiling; the open server's user and admin keys may ask up to the top.
fn priority_of(caller: &Caller, body: &CreateTask) -> Result<u8, ApiError> {
    body.priority(caller.default_priority(), caller.priority_ceiling())
}

/// `POST /api/tasks`: validate, then [`AppState::admit`]; 202 with the task.
pub async fn create(caller: Caller, body: CreateTask, st: AppState) -> Result<Response, Rejection> {
    let params = body.validate(st.backend.model())?;
    let priority = priority_of(&caller, &body)?;
    let webhook = body.webhook(st.limits.private_webhooks)?;
    let record = st.admit(&caller, params, priority, webhook).await?;
    let id = record.id;
    let mut res = json_with(StatusCode::ACCEPTED, &st.view(record));
    if let Ok(loc) = format!("/api/tasks/{id}").parse() {
        res.headers_mut().insert(LOCATION, loc);
    }
    Ok(res)
}

impl AppState {
    /// Takes a validated task for `caller`: refuses it, storing nothing, when over the pixel
    /// budget or a quota, the queue is full or the engine or disk cannot take it; otherwise
    /// persists it and hands it to the engine. Shared by `POST /api/tasks` and
    /// `POST /v1/videos`.
    pub async fn admit(
        &self,
        caller: &Caller,
        params: TaskParams,
        priority: u8,
        webhook: Option<Webhook>,
    ) -> Result<TaskRecord, ApiError> {
        let st = self;
        st.limits.check_size(&params)?;
        st.ensure_available()?;
        let depth = st.backend.queue_depth();
        if depth >= st.backend.queue_bound() {
            return Err(ApiError::queue_full(depth, QUEUE_RETRY_AFTER_SECS));
        }
        let owner = caller.owner();
        if let Some(key) = &owner {
            st.tasks
                .with_live_of(key, |live| st.quotas.admit(key, live, &st.limits))?;
        }
        let new = NewTask {
            params,
            owner: owner.clone(),
            priority,
            webhook,
        };
        let key = owner.clone();
        // The reservation ends as the task becomes live, under the same lock.
        let created = st
            .blocking(move |st| {
                let on_live = || {
                    if let Some(key) = &key {
                        st.quotas.stored(key);
                    }
                };
                Ok(st.tasks.create_then(new, on_live)?)
            })
            .await;
        let record = match created {
            Ok(r) => r,
            Err(e) => {
                if let Some(key) = &owner {
                    st.quotas.stored(key);
                    st.quotas.refund(key);
                }
                return Err(e);
            }
        };
        let id = record.id;
        if let Err(e) = st.backend.submit(&record) {
            // Stored but not taken (the engine died or the queue filled since the checks):
            // end it rather than leave it queued forever, and give the hourly count back.
            if let Some(key) = &owner {
                st.quotas.refund(key);
            }
            let reason = format!("not accepted: {e}");
            st.blocking(move |st| Ok(st.tasks.fail(id, &reason)))
                .await?;
            return Err(match e {
                SubmitError::QueueFull(depth) => {
                    ApiError::queue_full(depth, QUEUE_RETRY_AFTER_SECS)
                }
                SubmitError::Unavailable(why) => ApiError::unavailable(
                    "engine_unavailable",
                    format!("the engine is recovering: {why}"),
                    UNAVAILABLE_RETRY_AFTER_SECS,
                ),
            });
        }
        Ok(record)
    }
}

/// `GET /api/tasks/{id}`.
pub async fn get(id: u64, caller: Caller, st: AppState) -> Result<Response, Rejection> {
    let record = st.blocking(move |st| st.record(&caller, id)).await?;
    Ok(json_with(StatusCode::OK, &st.view(record)))
}

/// `GET /api/tasks`: newest first, one page, from the store's indexes; a key lists its own.
pub async fn list(caller: Caller, q: ListQuery, st: AppState) -> Result<Response, Rejection> {
    let (status, limit) = q.validate()?;
    let cursor = q.cursor;
    let (records, next_cursor) = st
        .blocking(move |st| {
            let store = st.tasks.store();
            Ok(match caller.owner().filter(|_| !caller.is_admin()) {
                Some(owner) => store.list_owned(&owner, status, limit, cursor)?,
                None => store.list(status, limit, cursor)?,
            })
        })
        .await?;
    let tasks = records.into_iter().map(|r| st.view(r)).collect();
    Ok(json_with(StatusCode::OK, &TaskList { tasks, next_cursor }))
}

/// `DELETE /api/tasks/{id}`: cancels a queued or running task; a final one is returned as it
/// is, so repeating the call is harmless.
pub async fn cancel(id: u64, caller: Caller, st: AppState) -> Result<Response, Rejection> {
    let record = st
        .blocking(move |st| {
            st.record(&caller, id)?;
            st.tasks
                .cancel(id)?
                .ok_or_else(|| ApiError::task_not_found(id))
        })
        .await?;
    Ok(json_with(StatusCode::OK, &st.view(record)))
}

/// `POST /api/keys` (admin): makes a key and shows its token, once.
pub async fn create_key(_: Caller, body: CreateKey, st: AppState) -> Result<Response, Rejection> {
    let (name, priority) = body.validate()?;
    let admin = body.admin;
    let made = st
        .blocking(move |st| {
            let made = st.tasks.store().create_key(&name, admin, priority)?;
            st.auth.refresh()?;
            Ok(made)
        })
        .await?;
    tracing::info!(key = %made.key.id, admin, "API key created");
    let view = CreatedKeyView {
        webhook_secret: made.key.webhook_secret.clone(),
        key: KeyView::from(made.key),
        token: made.token,
    };
    Ok(json_with(StatusCode::CREATED, &view))
}

/// `GET /api/keys` (admin).
pub async fn list_keys(_: Caller, st: AppState) -> Result<Response, Rejection> {
    let keys = st.blocking(|st| Ok(st.tasks.store().keys()?)).await?;
    let keys: Vec<KeyView> = keys.into_iter().map(KeyView::from).collect();
    Ok(json_with(StatusCode::OK, &json!({ "keys": keys })))
}

/// `DELETE /api/keys/{key}` (admin): revokes at once.
pub async fn revoke_key(id: String, _: Caller, st: AppState) -> Result<Response, Rejection> {
    let key = st
        .blocking(move |st| {
            let key = st.tasks.store().revoke_key(&id)?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "key_not_found",
                    format!("no key {id}"),
                )
            })?;
            st.auth.refresh()?;
            Ok(key)
        })
        .await?;
    tracing::info!(key = %key.id, "API key revoked");
    Ok(json_with(StatusCode::OK, &KeyView::from(key)))
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Result<Response, Rejection> {
    Ok(json_with(StatusCode::OK, &json!({"status": "ok"})))
}

/// `GET /readyz`: 200 when storage answers, the engine runs and the disk has room; 503 with
/// the reasons otherwise.
pub async fn readyz(st: AppState) -> Result<Response, Rejection> {
    let queue = json!({"depth": st.backend.queue_depth(), "bound": st.backend.queue_bound()});
    let counts = st.blocking(|st| Ok(st.tasks.store().counts()?)).await;
    let engine = st.backend.health();
    let disk = st.disk.check();
    let mut reasons = Vec::new();
    if let Err(e) = &counts {
        reasons.push(format!("storage: {}", e.message));
    }
    if let Err(e) = &engine {
        reasons.push(format!("engine: {e}"));
    }
    if let Err(e) = &disk {
        reasons.push(format!("disk: {e}"));
    }
    let body = json!({
        "status": if reasons.is_empty() { "ready" } else { "unavailable" },
        "reasons": reasons,
        "backend": st.backend.ready(),
        "storage": {"ok": counts.is_ok(), "tasks": counts.ok()},
        "engine": {"ok": engine.is_ok()},
        "disk": st.disk.describe(),
        "auth": if st.auth.required() { "keys" } else { "open" },
        "live_tasks": st.tasks.live_count(),
        "queue": queue,
    });
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut res = json_with(status, &body);
    if status != StatusCode::OK {
        res.headers_mut().insert(
            warp::http::header::RETRY_AFTER,
            warp::http::HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
        );
    }
    Ok(res)
}
