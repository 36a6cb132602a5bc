//! The JSON the API speaks: the create request and its validation, the list query, and the
//! task view. Parameter bounds and defaults are `storage::TaskParams`'s (shared with the
//! command line); the body and page limits are here. openapi.rs documents both.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use pipeline::engine::Progress;
use pipeline::plan::{Attr, Plan};
use serde::{Deserialize, Serialize};
use storage::{TaskParams, TaskRecord, TaskStatus};

use crate::errors::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;
/// `size` must be a multiple of this (as `TaskParams::validate` checks).
pub const SIZE_MULTIPLE: u32 = 16;
pub const LIST_LIMIT: RangeInclusive<usize> = 1..=100;
pub const DEFAULT_LIST_LIMIT: usize = 20;

/// `POST /api/tasks`. Bounds and defaults are `storage::TaskParams`'s. Integers are taken as
/// u64 and floats as f64 so that any JSON number of the right kind reaches validation and
/// gets a message naming its field; a wrong kind (string, fraction, negative) is a JSON error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    pub prompt: String,
    pub num_scenes: Option<u64>,
    pub seed: Option<u64>,
    pub steps: Option<u64>,
    pub guidance: Option<f64>,
    pub seconds_per_scene: Option<f64>,
    pub fps: Option<u64>,
    pub size: Option<u64>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_field", message)
}

/// `v` in the parameter's own integer type, or an error naming the field.
fn narrow<T: TryFrom<u64>>(field: &str, v: Option<u64>, default: T) -> Result<T, ApiError> {
    match v {
        None => Ok(default),
        Some(v) => T::try_from(v).map_err(|_| invalid(format!("{field} is out of range, got {v}"))),
    }
}

impl CreateTask {
    /// Fills the defaults and checks every field (`TaskParams::validate`); an omitted seed is
    /// drawn at random and recorded, so the task can be reproduced.
    pub fn validate(self) -> Result<TaskParams, ApiError> {
        // f64 -> f32 saturates to infinity, which the range check then rejects.
        let params = TaskParams {
            prompt: self.prompt.trim().to_owned(),
            num_scenes: narrow(
                "num_scenes",
                self.num_scenes,
                TaskParams::DEFAULT_NUM_SCENES,
            )?,
            seed: self.seed.unwrap_or_else(rand::random),
            steps: narrow("steps", self.steps, TaskParams::DEFAULT_STEPS)?,
            guidance: self
                .guidance
                .map_or(TaskParams::DEFAULT_GUIDANCE, |g| g as f32),
            seconds_per_scene: self
                .seconds_per_scene
                .map_or(TaskParams::DEFAULT_SECONDS_PER_SCENE, |s| s as f32),
            fps: narrow("fps", self.fps, TaskParams::DEFAULT_FPS)?,
            size: narrow("size", self.size, TaskParams::DEFAULT_SIZE)?,
        };
        params.validate().map_err(invalid)?;
        Ok(params)
    }
}

/// `GET /api/tasks?status=&limit=&cursor=`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<u64>,
}

impl ListQuery {
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

/// One planned scene as clients see it.
#[derive(Debug, Serialize)]
pub struct SceneView {
    pub caption: String,
    /// Attributes the prompt left open, drawn from the seed.
    pub guessed: Vec<Attr>,
}

/// What a finished task produced (the files are behind `links`).
#[derive(Debug, Serialize)]
pub struct ArtifactView {
    pub frame_count: usize,
    pub video_bytes: u64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

#[derive(Debug, Serialize)]
pub struct Links {
    #[serde(rename = "self")]
    pub self_: String,
    pub events: String,
    pub stream: String,
    pub video: String,
    /// Template: replace `{n}` by a frame index.
    pub frames: String,
}

/// `GET /api/tasks/{id}` and each entry of the list.
#[derive(Debug, Serialize)]
pub struct TaskView {
    pub id: u64,
    pub status: TaskStatus,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub params: TaskParams,
    pub plan: Option<Vec<SceneView>>,
    pub progress: Progress,
    pub timings_ms: BTreeMap<String, u64>,
    pub cached: bool,
    pub error: Option<String>,
    pub artifact: Option<ArtifactView>,
    pub links: Links,
}

impl TaskView {
    /// `live` is the engine's progress, used while the task is not final.
    pub fn new(r: TaskRecord, live: Option<Progress>) -> TaskView {
        let progress = match live {
            Some(p) if !r.status.is_final() => p,
            _ => stored_progress(&r),
        };
        let plan = r
            .plan
            .and_then(|v| serde_json::from_value::<Plan>(v).ok())
            .map(|p| {
                p.scenes
                    .into_iter()
                    .map(|s| SceneView {
                        caption: s.caption,
                        guessed: s.guessed,
                    })
                    .collect()
            });
        let id = r.id;
        TaskView {
            id,
            status: r.status,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            params: r.params,
            plan,
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
    pub tasks: Vec<TaskView>,
    pub next_cursor: Option<u64>,
}
