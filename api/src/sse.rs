//! `GET /api/tasks/{id}/events`: a task's progress as server-sent events.
//!
//! Events: `status` `{"status"}` first (the stored status), then as the engine publishes them
//! `status`, `progress` `{"scene","step","steps","overall"}`, `preview`
//! `{"scene","step","steps","image"}`, `frame` `{"index","url"}`, and finally `done`
//! `{"status","video"}`, after which the stream ends. A final task gets its `status` and
//! `done` at once.
//!
//! `preview`: scene `scene`'s current estimate of its clean frames after step `step` of
//! `steps` (its middle frame, upscaled by nearest neighbour to at most 256 px), as
//! `"image": "data:image/png;base64,..."`, a few kilobytes. A few per scene while the scene is
//! sampled (none after its last step: its frames follow), only while someone watches, and
//! none when the server runs with `--previews=false`. A slow watcher may miss some.

use std::convert::Infallible;

use base64::Engine as _;
use contract::TaskEvent;
use serde_json::json;
use storage::{TaskRecord, TaskStatus};
use tasks::Subscription;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use warp::reply::Response;
use warp::sse::Event;
use warp::{Rejection, Reply};

use crate::auth::Caller;
use crate::handlers::AppState;

fn event(name: &str, data: serde_json::Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

fn status_event(status: TaskStatus) -> Event {
    event("status", json!({"status": status}))
}

fn done_event(id: u64, status: TaskStatus) -> Event {
    let video = (status == TaskStatus::Completed).then(|| format!("/api/tasks/{id}/video"));
    event("done", json!({"status": status, "video": video}))
}

fn to_event(id: u64, ev: TaskEvent) -> Event {
    match ev {
        TaskEvent::Status(s) => status_event(s),
        TaskEvent::Step {
            scene,
            step,
            steps,
            overall,
        } => event(
            "progress",
            json!({"scene": scene, "step": step, "steps": steps, "overall": overall}),
        ),
        TaskEvent::Preview {
            scene,
            step,
            steps,
            png,
        } => event(
            "preview",
            json!({"scene": scene, "step": step, "steps": steps, "image": data_url(&png)}),
        ),
        TaskEvent::Frame { index } => event(
            "frame",
            json!({"index": index, "url": format!("/api/tasks/{id}/frames/{index}")}),
        ),
        TaskEvent::Done(s) => done_event(id, s),
    }
}

/// `data:image/png;base64,...` of a PNG.
fn data_url(png: &[u8]) -> String {
    let mut url = String::from("data:image/png;base64,");
    base64::engine::general_purpose::STANDARD.encode_string(png, &mut url);
    url
}

/// `GET /api/tasks/{id}/events`. A task that does not exist (or is not the caller's) is a 404
/// that leaves nothing behind; an ended one is answered from the store.
pub async fn events(id: u64, caller: Caller, st: AppState) -> Result<Response, Rejection> {
    let sub = st.watch(caller, id).await?;
    let (tx, out) = mpsc::channel::<Result<Event, Infallible>>(64);
    match sub {
        Subscription::Live { record, events } => {
            tokio::spawn(forward(record, events, tx, st));
        }
        Subscription::Ended(record) => {
            tokio::spawn(async move {
                let _ = tx.send(Ok(status_event(record.status))).await;
                let _ = tx.send(Ok(done_event(id, record.status))).await;
            });
        }
    }
    let stream = warp::sse::keep_alive().stream(ReceiverStream::new(out));
    Ok(warp::sse::reply(stream).into_response())
}

/// Relays the task's events to one client until `done` or the client leaving.
async fn forward(
    record: TaskRecord,
    mut rx: broadcast::Receiver<TaskEvent>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    st: AppState,
) {
    let id = record.id;
    let send = |e: Event| tx.send(Ok(e));
    if send(status_event(record.status)).await.is_err() {
        return;
    }
    if record.status.is_final() {
        let _ = send(done_event(id, record.status)).await;
        return;
    }
    loop {
        let ev = tokio::select! {
            _ = tx.closed() => return,
            ev = rx.recv() => ev,
        };
        match ev {
            Ok(ev) => {
                let done = matches!(ev, TaskEvent::Done(_));
                if send(to_event(id, ev)).await.is_err() || done {
                    return;
                }
            }
            // Progress is cumulative: the next event brings a slow watcher up to date.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            // The service sends `done` before it drops a task's channel, so this is only
            // reached if the server is going away; say how the task stands.
            Err(broadcast::error::RecvError::Closed) => {
                let r = st.blocking(move |st| Ok(st.tasks.store().get(id)?)).await;
                if let Ok(Some(r)) = r {
                    if send(status_event(r.status)).await.is_ok() && r.status.is_final() {
                        let _ = send(done_event(id, r.status)).await;
                    }
                }
                return;
            }
        }
    }
}
