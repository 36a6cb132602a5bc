//! `GET /api/tasks/{id}/stream`: the video as it is made, as `multipart/x-mixed-replace`
//! (MJPEG; browsers show it in an `<img>`).
//!
//! A running task sends the frames it already has, then each new frame as the engine
//! publishes it, and ends with the task. A finished task replays its stored PNG frames at the
//! task's frame rate.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pipeline::engine::TaskEvent;
use storage::Artifact;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::errors::ApiError;
use crate::handlers::AppState;
use crate::media::frame_path;

const BOUNDARY: &str = "reelframe";

type Tx = mpsc::Sender<Result<Bytes, Infallible>>;

/// One part of the multipart body.
fn part(content_type: &str, index: usize, data: &[u8]) -> Bytes {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nX-Frame-Index: {index}\r\n\r\n",
        data.len()
    );
    let mut buf = Vec::with_capacity(head.len() + data.len() + 2);
    buf.extend_from_slice(head.as_bytes());
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n");
    Bytes::from(buf)
}

fn closing() -> Bytes {
    Bytes::from(format!("--{BOUNDARY}--\r\n"))
}

pub async fn stream(id: u64, st: AppState) -> Result<Response, Rejection> {
    // Subscribe before looking: a frame made in between is then not lost (indexes dedupe).
    let rx = st.backend.subscribe(id);
    let record = st.record(id)?;
    let (tx, out) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    if record.status.is_final() {
        let artifact = record.artifact.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "frames_not_found",
                format!("task {id} ended {} without frames", record.status.name()),
            )
        })?;
        tokio::spawn(replay(artifact, st.data_dir.as_ref().clone(), tx));
    } else {
        let so_far = st.backend.frames_so_far(id);
        tokio::spawn(live(so_far, rx, tx));
    }
    let mut res = warp::reply::stream(ReceiverStream::new(out)).into_response();
    let ct = format!("multipart/x-mixed-replace; boundary={BOUNDARY}");
    if let Ok(v) = HeaderValue::from_str(&ct) {
        res.headers_mut().insert(CONTENT_TYPE, v);
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

async fn live(so_far: Vec<Arc<Vec<u8>>>, mut rx: broadcast::Receiver<TaskEvent>, tx: Tx) {
    let mut next = 0;
    for jpeg in so_far {
        if tx.send(Ok(part("image/jpeg", next, &jpeg))).await.is_err() {
            return;
        }
        next += 1;
    }
    loop {
        let ev = tokio::select! {
            _ = tx.closed() => return,
            ev = rx.recv() => ev,
        };
        match ev {
            Ok(TaskEvent::Frame { index, jpeg }) if index >= next => {
                next = index + 1;
                if tx.send(Ok(part("image/jpeg", index, &jpeg))).await.is_err() {
                    return;
                }
            }
            Ok(TaskEvent::Done(_)) | Err(broadcast::error::RecvError::Closed) => break,
            // Frames already sent, other events, or frames missed by a slow reader.
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
        }
    }
    let _ = tx.send(Ok(closing())).await;
}

async fn replay(artifact: Artifact, data_dir: PathBuf, tx: Tx) {
    let period = Duration::from_secs_f64(1.0 / f64::from(artifact.fps.max(1)));
    let mut tick = tokio::time::interval(period);
    for n in 0..artifact.frame_count {
        let Some(path) = frame_path(&data_dir, &artifact, n) else {
            break;
        };
        let Ok(png) = tokio::fs::read(&path).await else {
            // Files removed by retention mid-replay: end cleanly with what was sent.
            break;
        };
        tick.tick().await;
        if tx.send(Ok(part("image/png", n, &png))).await.is_err() {
            return;
        }
    }
    let _ = tx.send(Ok(closing())).await;
}
