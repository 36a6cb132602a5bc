//! The JSON the API speaks: the create request and its validation, the list query, and the
//! task view. Parameter bounds and defaults are `storage::TaskParams`'s (shared with the
//! command line); the body and page limits are here. openapi.rs documents both.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use contract::{ModelSpec, PlanView, Progress};
use serde::{Deserialize, Serialize};
use storage::{ApiKey, TaskParams, TaskRecord, TaskRequest, TaskStatus, Webhook, WebhookEvent};

use crate::errors::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
/// Page sizes a list may ask for.
pub const LIST_LIMIT: RangeInclusive<usize> = 1..=100;
/// The page size of a list that names none.
pub const DEFAULT_LIST_LIMIT: usize = 20;

/// `POST /api/tasks`. Bounds and defaults are `storage::TaskParams`'s. Integers are taken as
/// u64 and floats as f64 so that any JSON number of the right kind reaches validation and
/// gets a message naming its field; a wrong kind (string, fraction, negative) is a JSON error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// What the video shows, English or Chinese.
    pub prompt: String,
    /// Scenes in the video.
    pub num_scenes: Option<u64>,
    /// Seed of every random choice.
    pub seed: Option<u64>,
    /// Denoising steps per scene.
    pub steps: Option<u64>,
    /// Classifier-free guidance scale.
    pub guidance: Option<f64>,
    /// Seconds per scene.
    pub seconds_per_scene: Option<f64>,
    /// Delivered frames per second.
    pub fps: Option<u64>,
    /// Delivered frame side in pixels (the built-in model).
    pub size: Option<u64>,
    /// Frame width in pixels (a free-form model).
    pub width: Option<u64>,
    /// Frame height in pixels (a free-form model).
    pub height: Option<u64>,
    /// Frames per scene, `1 + 4k` (a free-form model).
    pub num_frames: Option<u64>,
    /// What guidance steers away from (a free-form model).
    pub negative_prompt: Option<String>,
    /// The sampler, one of the model's (a free-form model).
    pub scheduler: Option<String>,
    /// Scheduling priority, higher first; at most the key's own (default 5).
    pub priority: Option<u64>,
    /// An http(s) URL told of the task's progress, signed (see the README).
    pub webhook: Option<String>,
    /// Which of `start`, `progress`, `completed`, `failed` go to the webhook (default all).
    pub webhook_events_filter: Option<Vec<String>>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_field", message)
}

/// `v` in the parameter's own integer type, or an error naming the field.
fn narrow<T: TryFrom<u64>>(field: &str, v: Option<u64>) -> Result<Option<T>, ApiError> {
    v.map(|v| T::try_from(v).map_err(|_| invalid(format!("{field} is out of range, got {v}"))))
        .transpose()
}

impl CreateTask {
    /// Fills the served `model`'s defaults and checks every field against its rules
    /// (`TaskRequest::resolve`); an omitted seed is drawn at random and recorded, so the task
    /// can be reproduced.
    pub fn validate(&self, model: &ModelSpec) -> Result<TaskParams, ApiError> {
        // f64 -> f32 saturates to infinity, which the range check then rejects.
        let request = TaskRequest {
            prompt: self.prompt.clone(),
            num_scenes: narrow("num_scenes", self.num_scenes)?,
            seed: self.seed,
            steps: narrow("steps", self.steps)?,
            guidance: self.guidance.map(|g| g as f32),
            seconds_per_scene: self.seconds_per_scene.map(|s| s as f32),
            fps: narrow("fps", self.fps)?,
            size: narrow("size", self.size)?,
            width: narrow("width", self.width)?,
            height: narrow("height", self.height)?,
            num_frames: narrow("num_frames", self.num_frames)?,
            negative_prompt: self.negative_prompt.clone(),
            scheduler: self.scheduler.clone(),
        };
        // Stored trimmed; checked as sent (the schema's maxLength counts every character).
        request.resolve(model, rand::random).map_err(invalid)
    }

    /// The task's webhook, if it asks for one, checked: an absolute http(s) URL of at most
    /// 2048 characters, whose host is a public address unless `private` allows others
    /// ([`crate::webhook_target::refusal`]), and known event names. A filter without a webhook
    /// filters nothing (as Cog's does).
    pub fn webhook(&self, private: bool) -> Result<Option<Webhook>, ApiError> {
        let Some(raw) = &self.webhook else {
            return Ok(None);
        };
        let parsed =
            url::Url::parse(raw).map_err(|e| invalid(format!("webhook is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() || raw.len() > 2048 {
            return Err(invalid(
                "webhook must be an http or https URL with a host, at most 2048 characters",
            ));
        }
        if let Some(why) = (!private)
            .then(|| crate::webhook_target::refusal(&parsed))
            .flatten()
        {
            return Err(invalid(why));
        }
        let events = match &self.webhook_events_filter {
            None => WebhookEvent::ALL.to_vec(),
            Some(names) if names.is_empty() => {
                return Err(invalid(
                    "webhook_events_filter must name at least one event",
                ))
            }
            Some(names) => names
                .iter()
                .map(|n| {
                    WebhookEvent::parse(n).ok_or_else(|| {
                        invalid(format!(
                            "unknown webhook event {n:?}; one of start, progress, completed, failed"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Some(Webhook {
            url: raw.clone(),
            events,
        }))
    }

    /// The task's priority: the request's, at most `ceiling`, or `default` when it names
    /// none.
    pub fn priority(&self, default: u8, ceiling: u8) -> Result<u8, ApiError> {
        let (lo, hi) = TaskParams::PRIORITY;
        match self.priority {
            None => Ok(default),
            Some(p) if p < u64::from(lo) || p > u64::from(hi) => Err(invalid(format!(
                "priority must be between {lo} and {hi}, got {p}"
            ))),
            Some(p) if p > u64::from(ceiling) => Err(invalid(format!(
                "priority {p} is above this key's {ceiling}"
            ))),
            Some(p) => Ok(p as u8),
        }
    }
}

/// `GET /api/tasks?status=&limit=&cursor=`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only tasks in this status.
    pub status: Option<String>,
    /// Page size.
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<u64>,
}

impl ListQuery {
    /// The status filter and page size, or a 400 naming what is wrong.
    pub fn validate(&self) -> Result<(Option<TaskStatus>, usize), ApiError> {
        let status = match self.status.as_deref() {
            None | Some("") => None,
            Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
                let names: Vec<_> = TaskStatus::ALL.iter().map(|s| s.name()).collect();
                ApiError::bad_request(
                    "invalid_query",
                    format!("unknown status {s:?}; one of {}", names.join(", ")),
                )
            })?),
        };
        // Ids are documented as int64 (JSON clients hold them as such).
        if self.cursor.is_some_and(|c| c > i64::MAX as u64) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("cursor must be at most {}", i64::MAX),
            ));
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIST_LIMIT);
        if !LIST_LIMIT.contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!(
                    "limit must be in {}..={}",
                    LIST_LIMIT.start(),
                    LIST_LIMIT.end()
                ),
            ));
        }
        Ok((status, limit))
    }
}

/// What a finished task produced (the files are behind `links`).
#[derive(Debug, Serialize)]
pub struct ArtifactView {
    /// Delivered frames.
    pub frame_count: usize,
    /// Size of the MP4.
    pub video_bytes: u64,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
}

/// Where a task's resources are.
#[derive(Debug, Serialize)]
pub struct Links {
    /// The task.
    #[serde(rename = "self")]
    pub self_: String,
    /// Its event stream.
    pub events: String,
    /// Its live frames.
    pub stream: String,
    /// Its video.
    pub video: String,
    /// Template: replace `{n}` by a frame index.
    pub frames: String,
}

/// `GET /api/tasks/{id}` and each entry of the list.
#[derive(Debug, Serialize)]
pub struct TaskView {
    /// The task's id.
    pub id: u64,
    /// Where it stands.
    pub status: TaskStatus,
    /// When it was accepted, ms since the epoch.
    pub created_ms: u64,
    /// When it last changed.
    pub updated_ms: u64,
    /// The request with every default filled in.
    pub params: TaskParams,
    /// Its scheduling priority.
    pub priority: u8,
    /// The key that made it (`null` without keys).
    pub owner: Option<String>,
    /// The scenes, once planned.
    pub plan: Option<Vec<contract::SceneView>>,
    /// How the LLM planner fared (`null` with the rule planner): its outcome and, when the
    /// rule planner answered instead, why.
    pub planner: Option<contract::PlanOrigin>,
    /// How far it is.
    pub progress: Progress,
    /// Milliseconds per stage.
    pub timings_ms: BTreeMap<String, u64>,
    /// True when an earlier identical task's video answered it.
    pub cached: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// What it produced.
    pub artifact: Option<ArtifactView>,
    /// Where its resources are.
    pub links: Links,
}

impl TaskView {
    /// The view of a record; `live` is the engine's progress, used while the task is not final.
    pub fn new(r: TaskRecord, live: Option<Progress>) -> TaskView {
        let progress = match live {
            Some(mut p) if !r.status.is_final() => {
                // Scenes the store counts as done are done, whatever the steps said.
                for s in p.scenes.iter_mut().take(r.scenes_done) {
                    *s = 1.0;
                }
                p.overall = p.scenes.iter().sum::<f32>() / p.scenes.len().max(1) as f32;
                p
            }
            _ => stored_progress(&r),
        };
        let (plan, planner) = r
            .plan
            .and_then(|v| serde_json::from_value::<PlanView>(v).ok())
            .map_or((None, None), |p| (Some(p.scenes), p.origin));
        let id = r.id;
        TaskView {
            id,
            status: r.status,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            params: r.params,
            priority: r.priority,
            owner: r.owner,
            plan,
            planner,
            progress,
            timings_ms: r.timings_ms,
            cached: r.cached,
            error: r.error,
            artifact: r.artifact.map(|a| ArtifactView {
                frame_count: a.frame_count,
                video_bytes: a.video_bytes,
                width: a.width,
                height: a.height,
                fps: a.fps,
            }),
            links: Links {
                self_: format!("/api/tasks/{id}"),
                events: format!("/api/tasks/{id}/events"),
                stream: format!("/api/tasks/{id}/stream"),
                video: format!("/api/tasks/{id}/video"),
                frames: format!("/api/tasks/{id}/frames/{{n}}"),
            },
        }
    }
}

/// Progress as far as storage knows it: whole scenes only, everything once completed.
fn stored_progress(r: &TaskRecord) -> Progress {
    let n = r.params.num_scenes.max(1);
    let done = if r.status == TaskStatus::Completed {
        n
    } else {
        r.scenes_done.min(n)
    };
    Progress {
        overall: done as f32 / n as f32,
        scenes: (0..n).map(|i| if i < done { 1.0 } else { 0.0 }).collect(),
        frames_ready: r.artifact.as_ref().map_or(0, |a| a.frame_count),
    }
}

/// `GET /api/tasks`.
#[derive(Debug, Serialize)]
pub struct TaskList {
    /// One page, newest first.
    pub tasks: Vec<TaskView>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<u64>,
}

/// `POST /api/keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A label for people (1 to 100 characters).
    pub name: String,
    /// An admin key sees every task and manages keys.
    #[serde(default)]
    pub admin: bool,
    /// The priority of this key's tasks (and the most a request of it may ask for).
    pub priority: Option<u64>,
}

impl CreateKey {
    /// The trimmed name and the priority, or a 400.
    pub fn validate(&self) -> Result<(String, Option<u8>), ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(invalid("name must be 1 to 100 characters"));
        }
        let (lo, hi) = TaskParams::PRIORITY;
        let priority = match self.priority {
            None => None,
            Some(p) if p >= u64::from(lo) && p <= u64::from(hi) => Some(p as u8),
            Some(p) => {
                return Err(invalid(format!(
                    "priority must be between {lo} and {hi}, got {p}"
                )))
            }
        };
        Ok((name.to_owned(), priority))
    }
}

/// A key as listed: never its token.
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// Public id (what tasks' `owner` names).
    pub id: String,
    /// Its label.
    pub name: String,
    /// Admin or not.
    pub admin: bool,
    /// Revoked keys authenticate nothing.
    pub revoked: bool,
    /// When it was made.
    pub created_ms: u64,
    /// Its tasks' priority.
    pub priority: u8,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> KeyView {
        KeyView {
            priority: k.priority.unwrap_or(TaskParams::DEFAULT_PRIORITY),
            id: k.id,
            name: k.name,
            admin: k.admin,
            revoked: k.revoked,
            created_ms: k.created_ms,
        }
    }
}

/// `POST /api/keys`'s answer: the only time the token and webhook secret are shown.
#[derive(Debug, Serialize)]
pub struct CreatedKeyView {
    /// The key.
    #[serde(flatten)]
    pub key: KeyView,
    /// `Authorization: Bearer <token>`.
    pub token: String,
    /// Verifies this key's webhook deliveries (HMAC-SHA256 of the body).
    pub webhook_secret: String,
}
