//! Stored files: `GET /api/tasks/{id}/video` (MP4, single byte ranges) and
//! `GET /api/tasks/{id}/frames/{n}` (PNG, as soon as the engine has stored it).

use std::io::{ErrorKind, SeekFrom};

use storage::{frame_file, inside, task_dir};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;
use warp::http::header::{HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::handlers::AppState;

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
    if parsed.len() != 1 {
        // Several ranges: the whole file instead (single ranges only), whether or not some
        // of them fall outside it.
        return Ok(None);
    }
    match parsed.validate(len) {
        Ok(ranges) => Ok(ranges.first().map(|r| (*r.start(), *r.end()))),
        Err(_) => Err(()),
    }
}

/// `GET /api/tasks/{id}/video`.
pub async fn video(
    id: u64,
    caller: Caller,
    range: Option<String>,
    st: AppState,
) -> Result<Response, Rejection> {
    let record = st.blocking(move |st| st.record(&caller, id)).await?;
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

/// `GET /api/tasks/{id}/frames/{n}`: any stored frame, while the task runs too.
pub async fn frame(id: u64, n: usize, caller: Caller, st: AppState) -> Result<Response, Rejection> {
    let record = st.blocking(move |st| st.record(&caller, id)).await?;
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "frame_not_found",
            format!("task {id} has no frame {n}"),
        )
    };
    // A finished task's artifact names its frames; a running task's are under its own dir.
    let dir = match &record.artifact {
        Some(a) if n < a.frame_count => inside(&st.data_dir, &a.frames_dir),
        Some(_) => None,
        None => Some(st.data_dir.join(task_dir(id)).join("frames")),
    };
    let path = dir.ok_or_else(missing)?.join(frame_file(n));
    match tokio::fs::read(&path).await {
        Ok(png) => Ok(with_type(png, "image/png")),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(missing().into()),
        Err(e) => Err(ApiError::internal(format_args!("{}: {e}", path.display())).into()),
    }
}
