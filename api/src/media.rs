//! Finished files: `GET /api/tasks/{id}/video` (MP4, single byte ranges) and
//! `GET /api/tasks/{id}/frames/{n}` (PNG once stored, the engine's JPEG while running).

use std::io::{ErrorKind, SeekFrom};
use std::path::{Component, Path, PathBuf};

use storage::Artifact;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use warp::http::header::{HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::errors::ApiError;
use crate::handlers::AppState;

/// `data_dir/rel` when `rel` is a plain relative path: a record never points outside.
fn inside(data_dir: &Path, rel: &str) -> Option<PathBuf> {
    let p = Path::new(rel);
    let plain = p.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !p.as_os_str().is_empty()).then(|| data_dir.join(p))
}

/// Where frame `n` of an artifact is stored (`{frames_dir}/{n:05}.png`).
pub fn frame_path(data_dir: &Path, a: &Artifact, n: usize) -> Option<PathBuf> {
    inside(data_dir, &a.frames_dir).map(|d| d.join(format!("{n:05}.png")))
}

fn with_type(body: Vec<u8>, content_type: &'static str) -> Response {
    let mut res = Response::new(body.into());
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

fn video_missing(id: u64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "video_not_found",
        format!("task {id} has no video (not finished, failed, or expired)"),
    )
}

/// The byte range to send: `None` for the whole file. A malformed header is ignored (RFC 9110
/// allows that), several ranges too (single ranges only); an unsatisfiable one is an error.
fn pick_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(Ok(parsed)) = header.map(http_range_header::parse_range_header) else {
        return Ok(None);
    };
    match parsed.validate(len) {
        Ok(ranges) if ranges.len() == 1 => Ok(Some((*ranges[0].start(), *ranges[0].end()))),
        Ok(_) => Ok(None),
        Err(_) => Err(()),
    }
}

pub async fn video(id: u64, range: Option<String>, st: AppState) -> Result<Response, Rejection> {
    let record = st.record(id)?;
    let path = record
        .artifact
        .and_then(|a| inside(&st.data_dir, &a.video))
        .ok_or_else(|| video_missing(id))?;
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(video_missing(id).into()),
        Err(e) => return Err(ApiError::internal(format_args!("{}: {e}", path.display())).into()),
    };
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format_args!("{}: {e}", path.display())))?
        .len();
    let (status, start, count) = match pick_range(range.as_deref(), len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Err(()) => {
            let mut res = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the video has {len} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                res.headers_mut().insert(CONTENT_RANGE, v);
            }
            return Ok(res);
        }
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::internal(format_args!("{}: {e}", path.display())))?;
    }
    let mut res = warp::reply::stream(ReaderStream::new(file.take(count))).into_response();
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(count));
    if status == StatusCode::PARTIAL_CONTENT {
        let end = start + count - 1;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            h.insert(CONTENT_RANGE, v);
        }
    }
    Ok(res)
}

pub async fn frame(id: u64, n: usize, st: AppState) -> Result<Response, Rejection> {
    let record = st.record(id)?;
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "frame_not_found",
            format!("task {id} has no frame {n}"),
        )
    };
    if let Some(a) = &record.artifact {
        let path = frame_path(&st.data_dir, a, n)
            .filter(|_| n < a.frame_count)
            .ok_or_else(missing)?;
        return match tokio::fs::read(&path).await {
            Ok(png) => Ok(with_type(png, "image/png")),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(missing().into()),
            Err(e) => Err(ApiError::internal(format_args!("{}: {e}", path.display())).into()),
        };
    }
    // Still being made: the engine holds the frames delivered so far.
    let jpeg = st
        .backend
        .frames_so_far(id)
        .get(n)
        .cloned()
        .ok_or_else(missing)?;
    Ok(with_type(jpeg.as_ref().clone(), "image/jpeg"))
}
