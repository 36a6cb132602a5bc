//! Server-sent events and the live PNG stream, driven through the real task service.

mod common;

use common::{assert_error, json_of, png_bytes, start, walk_to, walk_to_with, Rig};
use serde_json::Value;
use storage::{Artifact, TaskStatus};

/// Reads the response body to its end (the server closes the stream after `done`).
async fn body_text(mut res: reqwest::Response) -> String {
    let mut all = Vec::new();
    while let Some(chunk) = res.chunk().await.unwrap() {
        all.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Reads chunks until the text holds a complete first SSE event.
async fn first_event(res: &mut reqwest::Response) -> String {
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = res
            .chunk()
            .await
            .unwrap()
            .expect("stream ended before the first event");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

/// (event name, JSON data) of every event in an SSE text.
fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).ok();
                }
            }
            Some((name?, data?))
        })
        .collect()
}

/// Standard base64 with padding, written out here so the test does not trust the encoder.
fn base64_of(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn events_of_a_running_task_end_with_done() {
    let rig = start().await;
    let t = rig.stored_task();
    let mut res = rig.get(&format!("/api/tasks/{}/events", t.id)).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let first = parse_sse(&first_event(&mut res).await);
    assert_eq!(first[0].0, "status");
    assert_eq!(first[0].1["status"], "queued");

    let id = t.id;
    rig.tasks
        .advance(id, TaskStatus::Planning, |_| {})
        .unwrap()
        .unwrap();
    rig.tasks.begin(id, 2);
    rig.tasks
        .advance(id, TaskStatus::Generating, |_| {})
        .unwrap();
    rig.tasks.step(id, 1, 4, 10);
    let png = png_bytes(7);
    rig.tasks.preview(id, 1, 4, 10, png.clone().into());
    rig.tasks.frame(id, 5);
    walk_to(&rig.tasks, id, TaskStatus::Completed);
    // Nothing after done reaches the client: the stream has ended.
    rig.tasks.step(id, 1, 5, 10);
    let rest = parse_sse(&body_text(res).await);
    let names: Vec<&str> = rest.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "status", "status", "progress", "preview", "frame", "status", "status", "status",
            "done"
        ]
    );
    let statuses: Vec<&Value> = rest
        .iter()
        .filter(|(n, _)| n == "status")
        .map(|(_, d)| &d["status"])
        .collect();
    assert_eq!(
        statuses,
        [
            "planning",
            "generating",
            "post_processing",
            "encoding",
            "completed"
        ]
    );
    assert_eq!(rest[2].1["scene"], 1);
    assert_eq!(rest[2].1["step"], 4);
    assert_eq!(rest[2].1["steps"], 10);
    assert!((rest[2].1["overall"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    let preview = &rest[3].1;
    assert_eq!(
        (&preview["scene"], &preview["step"], &preview["steps"]),
        (&1.into(), &4.into(), &10.into())
    );
    let image = preview["image"].as_str().unwrap();
    let b64 = image.strip_prefix("data:image/png;base64,").unwrap();
    assert_eq!(b64, base64_of(&png));
    assert_eq!(rest[4].1["index"], 5);
    assert_eq!(rest[4].1["url"], format!("/api/tasks/{id}/frames/5"));
    assert_eq!(rest[8].1["status"], "completed");
    assert_eq!(rest[8].1["video"], format!("/api/tasks/{id}/video"));
    assert_eq!(rig.tasks.live_count(), 0);
}

#[tokio::test]
async fn events_of_a_final_task_are_status_and_done() {
    let rig = start().await;
    let t = rig.stored_task();
    assert!(rig.tasks.fail(t.id, "boom"));
    let res = rig.get(&format!("/api/tasks/{}/events", t.id)).await;
    let events = parse_sse(&body_text(res).await);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["status", "done"]);
    assert_eq!(events[0].1["status"], "failed");
    assert_eq!(events[1].1["status"], "failed");
    assert_eq!(events[1].1["video"], Value::Null);

    assert_error(rig.get("/api/tasks/5/events").await, 404, "task_not_found").await;
}

/// A watcher's stream ends when the task is cancelled (through the API) under it.
#[tokio::test]
async fn events_end_when_the_task_is_cancelled() {
    let rig = start().await;
    let t = rig.stored_task();
    walk_to(&rig.tasks, t.id, TaskStatus::Generating);
    let mut res = rig.get(&format!("/api/tasks/{}/events", t.id)).await;
    let first = parse_sse(&first_event(&mut res).await);
    assert_eq!(first[0].1["status"], "generating");
    let (status, _) = json_of(rig.delete_as(&format!("/api/tasks/{}", t.id), None).await).await;
    assert_eq!(status, 200);
    let events = parse_sse(&body_text(res).await);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["status", "done"]);
    assert_eq!(events[0].1["status"], "cancelled");
    assert_eq!(events[1].1["status"], "cancelled");
    assert_eq!(events[1].1["video"], Value::Null);
}

/// 10 000 watchers of tasks that do not exist: each a 404, and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_missing_tasks_leave_nothing_behind() {
    let rig = start().await;
    let live = rig.stored_task();
    let (_, before) = json_of(rig.get("/api/stats").await).await;
    assert_eq!(before["live_tasks"], 1, "{before}");

    const REQUESTS: u64 = 10_000;
    const CONCURRENCY: u64 = 50;
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let (http, base) = (rig.http.clone(), rig.base.clone());
            tokio::spawn(async move {
                let mut not_found = 0;
                let mut id = 100_000 + w;
                while id < 100_000 + REQUESTS {
                    let res = http
                        .get(format!("{base}/api/tasks/{id}/events"))
                        .send()
                        .await
                        .unwrap();
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap();
                    if status == 404 && body["code"] == "task_not_found" {
                        not_found += 1;
                    }
                    id += CONCURRENCY;
                }
                not_found
            })
        })
        .collect();
    let mut not_found = 0;
    for w in workers {
        not_found += w.await.unwrap();
    }
    assert_eq!(not_found, REQUESTS);

    let (status, after) = json_of(rig.get("/api/stats").await).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["live_tasks"], 1, "{after}");
    assert_eq!(rig.tasks.live_count(), 1);
    assert!(rig.tasks.is_live(live.id));
    assert_eq!(rig.all_tasks().len(), 1);
}

/// (content type, frame index, payload) of each part of a multipart body.
fn parse_parts(body: &[u8], boundary: &str) -> (Vec<(String, usize, Vec<u8>)>, bool) {
    let mut parts = Vec::new();
    let mut rest = body;
    let open = format!("--{boundary}\r\n");
    while rest.starts_with(open.as_bytes()) {
        rest = &rest[open.len()..];
        let head_end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let field = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
                .unwrap()
        };
        let len: usize = field("Content-Length:").parse().unwrap();
        let start = head_end + 4;
        parts.push((
            field("Content-Type:"),
            field("X-Frame-Index:").parse().unwrap(),
            rest[start..start + len].to_vec(),
        ));
        assert_eq!(&rest[start + len..start + len + 2], b"\r\n");
        rest = &rest[start + len + 2..];
    }
    let closed = rest == format!("--{boundary}--\r\n").as_bytes();
    (parts, closed)
}

fn boundary_of(res: &reqwest::Response) -> String {
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("multipart/x-mixed-replace"), "{ct}");
    ct.split("boundary=").nth(1).unwrap().to_owned()
}

/// Frame `n` as the stream should send it.
fn png_part(n: usize) -> (String, usize, Vec<u8>) {
    ("image/png".to_owned(), n, png_bytes(n))
}

#[tokio::test]
async fn stream_sends_frames_so_far_then_live_ones() {
    let rig = start().await;
    let t = rig.stored_task();
    let id = t.id;
    walk_to(&rig.tasks, id, TaskStatus::Generating);
    for n in 0..2 {
        rig.write_frame(id, n, &png_bytes(n));
        rig.tasks.frame(id, n);
    }
    let mut res = rig.get(&format!("/api/tasks/{id}/stream")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-cache");
    let boundary = boundary_of(&res);
    let mut body = res.chunk().await.unwrap().unwrap().to_vec();
    // A frame announced again (the client joined meanwhile) is sent once.
    rig.tasks.frame(id, 1);
    rig.tasks.step(id, 0, 1, 2);
    rig.write_frame(id, 2, &png_bytes(2));
    rig.tasks.frame(id, 2);
    // Frames announced past the next one (a slow reader lagged) are sent from disk, in order.
    rig.write_frame(id, 3, &png_bytes(3));
    rig.write_frame(id, 4, &png_bytes(4));
    rig.tasks.frame(id, 4);
    walk_to(&rig.tasks, id, TaskStatus::Completed);
    while let Some(chunk) = res.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let (parts, closed) = parse_parts(&body, &boundary);
    assert!(closed, "the multipart body is closed");
    assert_eq!(parts, (0..5).map(png_part).collect::<Vec<_>>());
}

#[tokio::test]
async fn stream_of_a_task_cancelled_while_watched_ends() {
    let rig = start().await;
    let id = rig.stored_task().id;
    walk_to(&rig.tasks, id, TaskStatus::Generating);
    rig.write_frame(id, 0, &png_bytes(0));
    rig.tasks.frame(id, 0);
    let mut res = rig.get(&format!("/api/tasks/{id}/stream")).await;
    let boundary = boundary_of(&res);
    let mut body = res.chunk().await.unwrap().unwrap().to_vec();
    rig.tasks.cancel(id).unwrap().unwrap();
    while let Some(chunk) = res.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let (parts, closed) = parse_parts(&body, &boundary);
    assert!(closed);
    assert_eq!(parts, vec![png_part(0)]);
}

/// A completed task whose frames are stored under `dir` (relative to the data dir).
fn completed_with_frames(rig: &Rig, dir: &str, count: usize) -> u64 {
    let t = rig.stored_task();
    let frames_dir = rig.data_dir.join(dir);
    std::fs::create_dir_all(&frames_dir).unwrap();
    for n in 0..count {
        std::fs::write(frames_dir.join(storage::frame_file(n)), png_bytes(n)).unwrap();
    }
    walk_to_with(&rig.tasks, t.id, TaskStatus::Completed, |r| {
        r.artifact = Some(Artifact {
            video: format!("artifacts/{}/video.mp4", t.id),
            frames_dir: dir.to_owned(),
            frame_count: count,
            video_bytes: 0,
            width: 64,
            height: 64,
            fps: 24,
        });
    });
    t.id
}

#[tokio::test]
async fn stream_of_a_finished_task_replays_stored_frames() {
    let rig = start().await;
    let id = completed_with_frames(&rig, "artifacts/1/frames", 3);
    assert_eq!(id, 1);
    let res = rig.get(&format!("/api/tasks/{id}/stream")).await;
    let boundary = boundary_of(&res);
    let body = res.bytes().await.unwrap();
    let (parts, closed) = parse_parts(&body, &boundary);
    assert!(closed);
    assert_eq!(parts, (0..3).map(png_part).collect::<Vec<_>>());

    // A task that ended without frames has nothing to stream.
    let failed = rig.stored_task();
    rig.tasks.fail(failed.id, "boom");
    let res = rig.get(&format!("/api/tasks/{}/stream", failed.id)).await;
    assert_error(res, 404, "frames_not_found").await;
    assert_error(rig.get("/api/tasks/42/stream").await, 404, "task_not_found").await;
}

/// A task answered from the result cache completes with an earlier task's artifact, whose
/// frames live under that task's directory: the replay reads them where the artifact says
/// (as `/frames/{n}` does).
#[tokio::test]
async fn stream_of_a_cached_task_replays_the_artifacts_frames() {
    let rig = start().await;
    let source = completed_with_frames(&rig, "artifacts/1/frames", 3);
    let artifact = rig.store.get(source).unwrap().unwrap().artifact;
    let cached = rig.stored_task();
    walk_to(&rig.tasks, cached.id, TaskStatus::Planning);
    rig.tasks
        .advance(cached.id, TaskStatus::Completed, |r| {
            r.artifact = artifact;
            r.cached = true;
        })
        .unwrap()
        .unwrap();
    let frame = rig.get(&format!("/api/tasks/{}/frames/2", cached.id)).await;
    assert_eq!(frame.status(), 200);
    assert_eq!(frame.bytes().await.unwrap().as_ref(), &png_bytes(2)[..]);

    let res = rig.get(&format!("/api/tasks/{}/stream", cached.id)).await;
    let boundary = boundary_of(&res);
    let body = res.bytes().await.unwrap();
    let (parts, closed) = parse_parts(&body, &boundary);
    assert!(closed);
    assert_eq!(parts, (0..3).map(png_part).collect::<Vec<_>>());
}
