//! The OpenAI video API's shapes: the create request (multipart or JSON), the `video` object,
//! the list, and the error body, mapped onto reel's task records.

use std::collections::HashMap;

use contract::ModelSpec;
use serde::Serialize;
use serde_json::{json, Value};
use storage::{TaskParams, TaskRecord, TaskRequest, TaskStatus};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use crate::errors::ApiError;

/// The model name these endpoints answer to (and accept, besides the loaded model's own id).
pub const MODEL: &str = "reel";

/// Seconds per scene at most: a video of `seconds` is split into scenes no longer than this.
pub const SCENE_SECONDS: u32 = 4;

/// The longest video: as many scenes as a task may have.
pub const MAX_SECONDS: u32 = SCENE_SECONDS * TaskParams::NUM_SCENES.1 as u32;

/// The sizes reel makes, `NxN`, for the document.
pub fn sizes() -> Vec<String> {
    let (lo, hi) = TaskParams::SIZE;
    (lo..=hi)
        .step_by(TaskParams::SIZE_MULTIPLE as usize)
        .map(|n| format!("{n}x{n}"))
        .collect()
}

/// An error in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the
/// status and `Retry-After` of the reel error it carries.
#[derive(Debug)]
pub struct OpenAiError {
    /// The error, as reel names it.
    pub inner: ApiError,
    /// The request field at fault, if one is.
    pub param: Option<&'static str>,
}

impl warp::reject::Reject for OpenAiError {}

impl From<ApiError> for OpenAiError {
    fn from(inner: ApiError) -> Self {
        OpenAiError { inner, param: None }
    }
}

/// A 400 about `param`.
pub fn invalid(param: &'static str, message: impl Into<String>) -> OpenAiError {
    OpenAiError {
        inner: ApiError::bad_request("invalid_value", message),
        param: Some(param),
    }
}

impl OpenAiError {
    /// The answer: the error body with the carried status and `Retry-After`.
    pub fn response(&self) -> Response {
        let e = &self.inner;
        let kind = match e.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "authentication_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            s if s.is_server_error() || s == StatusCode::INSUFFICIENT_STORAGE => "server_error",
            _ => "invalid_request_error",
        };
        let body = json!({"error": {"message": e.message, "type": kind, "param": self.param, "code": e.code}});
        let mut res = warp::reply::with_status(warp::reply::json(&body), e.status).into_response();
        if let Some(secs) = e.retry_after {
            res.headers_mut()
                .insert(warp::http::header::RETRY_AFTER, secs.into());
        }
        res
    }
}

/// `POST /v1/videos` fields, from a multipart form or a JSON object.
#[derive(Debug, Default)]
pub struct CreateVideo {
    /// What the video shows.
    pub prompt: Option<String>,
    /// `reel` or the loaded model's id; omitted: reel's.
    pub model: Option<String>,
    /// Length in seconds, as a string ("4").
    pub seconds: Option<String>,
    /// `WxH`; reel's frames are square.
    pub size: Option<String>,
}

impl CreateVideo {
    /// From named text fields; a field reel does not take (an image reference) is an error.
    pub fn from_fields(fields: HashMap<String, String>) -> Result<CreateVideo, OpenAiError> {
        let mut out = CreateVideo::default();
        for (name, value) in fields {
            match name.as_str() {
                "prompt" => out.prompt = Some(value),
                "model" => out.model = Some(value),
                "seconds" => out.seconds = Some(value),
                "size" => out.size = Some(value),
                "input_reference" => {
                    return Err(invalid(
                        "input_reference",
                        "reel generates from text only; input_reference is not supported",
                    ))
                }
                other => {
                    return Err(OpenAiError {
                        inner: ApiError::bad_request(
                            "unknown_parameter",
                            format!("unknown parameter {other:?}"),
                        ),
                        param: None,
                    })
                }
            }
        }
        Ok(out)
    }

    /// From a JSON object of string values.
    pub fn from_json(v: &Value) -> Result<CreateVideo, OpenAiError> {
        let obj = v
            .as_object()
            .ok_or_else(|| invalid("body", "the body must be a JSON object"))?;
        let mut fields = HashMap::new();
        for (k, v) in obj {
            // Every field is a string, as the form sends it (`seconds` included: "4").
            let Value::String(text) = v else {
                return Err(invalid("body", format!("{k} must be a string")));
            };
            fields.insert(k.clone(), text.clone());
        }
        CreateVideo::from_fields(fields)
    }

    /// The task these fields ask for from the served `model`. The built-in model: `seconds`
    /// becomes scenes of at most [`SCENE_SECONDS`], `size` the square frame side. A free-form
    /// model: one scene of `seconds` at the model's rate (`1 + 4k` frames, the nearest),
    /// `size` its width and height. The rest takes the model's defaults (the seed drawn at
    /// random).
    pub fn params(&self, model: &ModelSpec) -> Result<TaskParams, OpenAiError> {
        if let Some(m) = &self.model {
            if m != MODEL && m != &model.id {
                return Err(invalid(
                    "model",
                    format!(
                        "unknown model {m:?}; this server serves {MODEL:?} ({})",
                        model.id
                    ),
                ));
            }
        }
        let prompt = self
            .prompt
            .as_deref()
            .ok_or_else(|| invalid("prompt", "prompt is required"))?;
        let seconds = match &self.seconds {
            None => 4,
            Some(s) => s
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|v| (1..=MAX_SECONDS).contains(v))
                .ok_or_else(|| {
                    invalid(
                        "seconds",
                        format!(
                            "seconds must be a whole number from 1 to {MAX_SECONDS}, got {s:?}"
                        ),
                    )
                })?,
        } as f32;
        let size = self.size.as_deref().map(parse_size).transpose()?;
        let mut request = TaskRequest {
            prompt: prompt.to_owned(),
            ..TaskRequest::default()
        };
        match &model.free_form {
            None => {
                let scenes = ((seconds / SCENE_SECONDS as f32).ceil() as usize)
                    .clamp(1, TaskParams::NUM_SCENES.1);
                request.num_scenes = Some(scenes);
                request.seconds_per_scene = Some(seconds / scenes as f32);
                if let Some((w, h)) = size {
                    if w != h {
                        return Err(invalid(
                            "size",
                            format!("size must be WxH with equal sides for the built-in model (its frames are square), e.g. 256x256, got {w}x{h}"),
                        ));
                    }
                    request.size = Some(w);
                }
            }
            Some(spec) => {
                let k = spec.frame_multiple.max(1) as f32;
                let frames =
                    1 + ((seconds * spec.fps as f32 - 1.0) / k).round() as usize * k as usize;
                request.num_frames = Some(frames.min(TaskParams::NUM_FRAMES.1));
                (request.width, request.height) = (size.map(|s| s.0), size.map(|s| s.1));
            }
        }
        request.resolve(model, rand::random).map_err(|m| {
            let param = if ["size", "width", "height"].iter().any(|p| m.starts_with(p)) {
                "size"
            } else if m.starts_with("prompt") {
                "prompt"
            } else {
                "seconds"
            };
            invalid(param, m)
        })
    }
}

/// `WxH`, as numbers.
fn parse_size(s: &str) -> Result<(u32, u32), OpenAiError> {
    let bad = || invalid("size", format!("size must be WxH, e.g. 256x256, got {s:?}"));
    let (w, h) = s.split_once('x').ok_or_else(bad)?;
    Ok((
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    ))
}

/// The public id of task `id`.
pub fn video_id(id: u64) -> String {
    format!("video_{id}")
}

/// The task id of a public id, if it is one.
pub fn task_id(video_id: &str) -> Option<u64> {
    video_id.strip_prefix("video_")?.parse().ok()
}

/// OpenAI's `video` object.
#[derive(Debug, Serialize)]
pub struct Video {
    /// `video_<task id>`.
    pub id: String,
    /// Always `video`.
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: u64,
    /// `queued`, `in_progress`, `completed` or `failed`.
    pub status: &'static str,
    /// The model.
    pub model: &'static str,
    /// Percent done.
    pub progress: u32,
    /// Length, as a string.
    pub seconds: String,
    /// `WxH`.
    pub size: String,
    /// Unix seconds, once completed.
    pub completed_at: Option<u64>,
    /// When the files expire (not tracked per task: `null`).
    pub expires_at: Option<u64>,
    /// Why it failed (or that it was cancelled).
    pub error: Option<Value>,
    /// Never a remix.
    pub remixed_from_video_id: Option<String>,
}

impl Video {
    /// The video object of a task, `overall` its progress in [0, 1].
    pub fn of(r: &TaskRecord, overall: f32) -> Video {
        let status = match r.status {
            TaskStatus::Queued => "queued",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed | TaskStatus::Cancelled => "failed",
            _ => "in_progress",
        };
        let error = match r.status {
            TaskStatus::Failed => Some(
                json!({"code": "generation_failed", "message": r.error.clone().unwrap_or_default()}),
            ),
            TaskStatus::Cancelled => {
                Some(json!({"code": "cancelled", "message": "the video was cancelled"}))
            }
            _ => None,
        };
        let p = &r.params;
        let seconds = match &p.free_form {
            Some(f) => (f.num_frames * p.num_scenes) as f32 / p.fps as f32,
            None => p.seconds_per_scene * p.num_scenes as f32,
        };
        let (w, h) = p.frame_size();
        Video {
            id: video_id(r.id),
            object: "video",
            created_at: r.created_ms / 1000,
            status,
            model: MODEL,
            progress: if r.status == TaskStatus::Completed {
                100
            } else {
                (overall.clamp(0.0, 1.0) * 100.0) as u32
            },
            seconds: format!("{}", (seconds * 100.0).round() / 100.0),
            size: format!("{w}x{h}"),
            completed_at: (r.status == TaskStatus::Completed).then_some(r.updated_ms / 1000),
            expires_at: None,
            error,
            remixed_from_video_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_model() -> ModelSpec {
        ModelSpec {
            id: "m".into(),
            kind: contract::ModelKind::Builtin,
            parameters: 1,
            weight_bytes: 4,
            free_form: None,
        }
    }

    fn fields(pairs: &[(&str, &str)]) -> CreateVideo {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CreateVideo::from_fields(map).unwrap()
    }

    #[test]
    fn seconds_and_size_map_onto_scenes_and_frames() {
        let p = fields(&[
            ("prompt", "a red circle"),
            ("seconds", "12"),
            ("size", "128x128"),
        ])
        .params(&test_model())
        .unwrap();
        assert_eq!((p.num_scenes, p.seconds_per_scene, p.size), (3, 4.0, 128));
        let p = fields(&[("prompt", "x"), ("model", "reel")])
            .params(&test_model())
            .unwrap();
        assert_eq!(
            (p.num_scenes, p.seconds_per_scene, p.size),
            (1, 4.0, TaskParams::DEFAULT_SIZE)
        );
        let e = fields(&[("prompt", "x"), ("size", "720x1280")])
            .params(&test_model())
            .unwrap_err();
        assert_eq!(e.param, Some("size"));
        let e = fields(&[("prompt", "x"), ("model", "sora-2")])
            .params(&test_model())
            .unwrap_err();
        assert_eq!(e.param, Some("model"));
        let e = fields(&[("prompt", "x"), ("seconds", "900")])
            .params(&test_model())
            .unwrap_err();
        assert_eq!(e.param, Some("seconds"));
        assert!(fields(&[("seconds", "4")]).params(&test_model()).is_err());
        assert_eq!(task_id(&video_id(42)), Some(42));
        assert_eq!(task_id("video_x"), None);
    }
}
