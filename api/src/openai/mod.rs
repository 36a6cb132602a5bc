//! The OpenAI-style video API, `/v1/videos`, over reel's tasks: one store, one pipeline, the
//! same keys and quotas. A video is a task (`video_<id>`); its states are OpenAI's (`queued`,
//! `in_progress`, `completed`, `failed`, a cancelled task reading as failed with code
//! `cancelled`); errors are OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`),
//! so the official clients raise their usual exceptions. `POST /v1/videos` takes the fields as
//! the official clients send them (multipart/form-data) or as JSON: `prompt`, `model`
//! (`reel`), `seconds` (split into scenes of at most 4 s), `size` (square `WxH`). Deleting a
//! video cancels it if it runs and then deletes its record and files.

mod models;

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::handlers::AppState;
use crate::media;
pub use models::{sizes, task_id, video_id, CreateVideo, OpenAiError, Video, MAX_SECONDS, MODEL};

fn ok(body: &impl serde::Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(body), StatusCode::OK).into_response()
}

fn reject(e: impl Into<OpenAiError>) -> Rejection {
    warp::reject::custom(e.into())
}

/// The task id of a `video_<id>` the caller may see, or OpenAI's 404.
async fn visible(
    st: &AppState,
    caller: Caller,
    video: &str,
) -> Result<storage::TaskRecord, Rejection> {
    let missing = || {
        reject(ApiError::new(
            StatusCode::NOT_FOUND,
            "video_not_found",
            format!("no video {video}"),
        ))
    };
    let id = task_id(video).ok_or_else(missing)?;
    st.blocking(move |st| st.record(&caller, id))
        .await
        .map_err(|_| missing())
}

/// The fields of a multipart form, text only (a file is refused by name).
async fn form_fields(
    content_type: &str,
    body: Bytes,
) -> Result<HashMap<String, String>, OpenAiError> {
    let bad = |e: multer::Error| models::invalid("body", format!("unreadable form: {e}"));
    let boundary = multer::parse_boundary(content_type).map_err(bad)?;
    let stream = tokio_stream::once(Ok::<Bytes, std::io::Error>(body));
    let mut form = multer::Multipart::new(stream, boundary);
    let mut fields = HashMap::new();
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        if field.file_name().is_some() {
            return Err(models::invalid(
                "input_reference",
                format!("{name}: reel takes no files"),
            ));
        }
        fields.insert(name, field.text().await.map_err(bad)?);
    }
    Ok(fields)
}

/// `POST /v1/videos`.
pub async fn create(
    caller: Caller,
    content_type: Option<String>,
    body: Bytes,
    st: AppState,
) -> Result<Response, Rejection> {
    let ct = content_type.unwrap_or_default();
    let request = if ct.starts_with("multipart/form-data") {
        CreateVideo::from_fields(form_fields(&ct, body).await.map_err(reject)?)
    } else {
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            reject(models::invalid(
                "body",
                format!("send multipart/form-data or JSON: {e}"),
            ))
        })?;
        CreateVideo::from_json(&v)
    }
    .map_err(reject)?;
    let params = request.params(st.backend.model()).map_err(reject)?;
    let priority = caller.default_priority();
    let record = st
        .admit(&caller, params, priority, None)
        .await
        .map_err(reject)?;
    Ok(ok(&Video::of(&record, 0.0)))
}

/// `GET /v1/videos/{video_id}`.
pub async fn retrieve(video: String, caller: Caller, st: AppState) -> Result<Response, Rejection> {
    let r = visible(&st, caller, &video).await?;
    let overall = st.tasks.progress(r.id).map_or(0.0, |p| p.overall);
    Ok(ok(&Video::of(&r, overall)))
}

/// `u64::MAX` for a `video_<digits>` too large for a task id: after it comes every task.
fn past_any(video: &str) -> Option<u64> {
    let digits = video.strip_prefix("video_")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(u64::MAX)
}

/// A query string as a map: parsed by the handlers, so that its errors take OpenAI's shape.
pub type Query = HashMap<String, String>;

/// `GET /v1/videos?after=&limit=&order=`: newest first, the caller's own (all, for an admin
/// key).
pub async fn list(caller: Caller, q: Query, st: AppState) -> Result<Response, Rejection> {
    if q.get("order").is_some_and(|o| o != "desc") {
        return Err(reject(models::invalid(
            "order",
            "only order=desc (newest first) is supported",
        )));
    }
    let limit = match q.get("limit") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| reject(models::invalid("limit", "limit must be 1 to 100")))?,
    };
    let cursor =
        match q.get("after").filter(|a| !a.is_empty()) {
            None => None,
            // An id past any task's (too large for one) pages from the newest.
            Some(a) => Some(task_id(a).or_else(|| past_any(a)).ok_or_else(|| {
                reject(models::invalid("after", format!("{a:?} is not a video id")))
            })?),
        };
    let (records, next) = st
        .blocking(move |st| {
            let store = st.tasks.store();
            Ok(match caller.owner().filter(|_| !caller.is_admin()) {
                Some(owner) => store.list_owned(&owner, None, limit, cursor)?,
                None => store.list(None, limit, cursor)?,
            })
        })
        .await
        .map_err(reject)?;
    let data: Vec<Video> = records
        .iter()
        .map(|r| Video::of(r, st.tasks.progress(r.id).map_or(0.0, |p| p.overall)))
        .collect();
    Ok(ok(&json!({
        "object": "list",
        "first_id": data.first().map(|v| v.id.clone()),
        "last_id": data.last().map(|v| v.id.clone()),
        "has_more": next.is_some(),
        "data": data,
    })))
}

/// `DELETE /v1/videos/{video_id}`: cancels it if it runs, then deletes its record and files.
pub async fn delete(video: String, caller: Caller, st: AppState) -> Result<Response, Rejection> {
    let r = visible(&st, caller, &video).await?;
    let id = r.id;
    let deleted = st
        .blocking(move |st| {
            st.tasks.cancel(id)?;
            Ok(st.tasks.store().delete_finished(&st.data_dir, id)?)
        })
        .await
        .map_err(reject)?;
    Ok(ok(
        &json!({"id": video, "object": "video.deleted", "deleted": deleted}),
    ))
}

/// `GET /v1/videos/{video_id}/content`: the whole MP4 (byte ranges are
/// `/api/tasks/{id}/video`'s).
pub async fn content(
    video: String,
    caller: Caller,
    q: Query,
    st: AppState,
) -> Result<Response, Rejection> {
    if q.get("variant").is_some_and(|v| v != "video") {
        return Err(reject(models::invalid(
            "variant",
            "only variant=video (the MP4) is served",
        )));
    }
    let r = visible(&st, caller.clone(), &video).await?;
    media::video(r.id, caller, None, st)
        .await
        .map_err(|rej| match rej.find::<ApiError>() {
            Some(e) => reject(e.clone()),
            None => rej,
        })
}

#[cfg(test)]
mod tests {
    use super::past_any;

    #[test]
    fn an_id_too_large_for_a_task_pages_from_the_newest() {
        assert_eq!(past_any("video_49882051017753701540907"), Some(u64::MAX));
        assert_eq!(past_any("video_"), None);
        assert_eq!(past_any("video_1x"), None);
        assert_eq!(past_any("task_1"), None);
    }
}
