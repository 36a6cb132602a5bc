//! `GET /api/tasks/{id}/stream`: the video as it is made, as `multipart/x-mixed-replace` of
//! PNG frames (browsers show it live in an `<img>`).
//!
//! Frames are read from the files the engine stores, when a watcher needs them: nothing is
//! encoded or held in memory for a stream nobody watches. A running task sends the frames
//! stored so far, then each new frame as the engine announces it, and ends with the task. A
//! finished task replays its frames at the task's frame rate.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use contract::TaskEvent;
use storage::{frame_file, inside, task_dir, TaskRecord};
use tasks::Subscription;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::auth::Caller;
use crate::errors::ApiError;
use crate::handlers::AppState;

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

/// `GET /api/tasks/{id}/stream`.
pub async fn stream(id: u64, caller: Caller, st: AppState) -> Result<Response, Rejection> {
    let sub = st.watch(caller, id).await?;
    let (tx, out) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    match sub {
        Subscription::Live { record, events } => {
            // A running task's frames are stored under its own directory as they are made.
            let frames = st.data_dir.join(task_dir(id)).join("frames");
            let so_far = st.tasks.progress(record.id).map_or(0, |p| p.frames_ready);
            tokio::spawn(live(frames, so_far, events, tx));
        }
        Subscription::Ended(record) => {
            // An ended one's are where its artifact says (a cache hit's: the earlier task's).
            let (frames, count, fps) = replayable(&record, &st.data_dir)?;
            tokio::spawn(replay(frames, count, fps, tx));
        }
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

/// Where an ended task's frames are, how many and at what rate, or a 404 when it has none.
fn replayable(record: &TaskRecord, data_dir: &Path) -> Result<(PathBuf, usize, u32), ApiError> {
    record
        .artifact
        .as_ref()
        .and_then(|a| Some((inside(data_dir, &a.frames_dir)?, a.frame_count, a.fps)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "frames_not_found",
                format!(
                    "task {} ended {} without frames",
                    record.id,
                    record.status.name()
                ),
            )
        })
}

/// Sends stored frame `n`; false when the client left or the file is gone (expired).
async fn send_frame(dir: &std::path::Path, n: usize, tx: &Tx) -> bool {
    let Ok(png) = tokio::fs::read(dir.join(frame_file(n))).await else {
        return false;
    };
    tx.send(Ok(part("image/png", n, &png))).await.is_ok()
}

async fn live(dir: PathBuf, so_far: usize, mut rx: broadcast::Receiver<TaskEvent>, tx: Tx) {
    let mut next = 0;
    while next < so_far {
        if !send_frame(&dir, next, &tx).await {
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
            Ok(TaskEvent::Frame { index }) if index >= next => {
                // Frames missed by a slow reader are sent from disk, in order.
                while next <= index {
                    if !send_frame(&dir, next, &tx).await {
                        return;
                    }
                    next += 1;
                }
            }
            Ok(TaskEvent::Done(_)) | Err(broadcast::error::RecvError::Closed) => break,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
        }
    }
    let _ = tx.send(Ok(closing())).await;
}

async fn replay(dir: PathBuf, count: usize, fps: u32, tx: Tx) {
    let period = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
    let mut tick = tokio::time::interval(period);
    for n in 0..count {
        tick.tick().await;
        if !send_frame(&dir, n, &tx).await {
            // The client left, or retention removed the files mid-replay.
            break;
        }
    }
    let _ = tx.send(Ok(closing())).await;
}
