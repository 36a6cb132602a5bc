//! Server-sent events and the MJPEG stream, driven by the fake engine.

mod common;

use std::sync::Arc;

use common::{assert_error, start};
use pipeline::engine::TaskEvent;
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
    assert_eq!(
        rig.backend
            .publish(id, TaskEvent::Status(TaskStatus::Generating)),
        1
    );
    let step = TaskEvent::Step {
        scene: 1,
        step: 4,
        steps: 10,
        overall: 0.7,
    };
    rig.backend.publish(id, step);
    rig.backend.publish(
        id,
        TaskEvent::Frame {
            index: 5,
            jpeg: Arc::new(vec![0xff, 0xd8]),
        },
    );
    rig.backend
        .publish(id, TaskEvent::Done(TaskStatus::Completed));
    // Nothing after done reaches the client: the stream has ended.
    let rest = parse_sse(&body_text(res).await);
    let names: Vec<&str> = rest.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["status", "progress", "frame", "done"]);
    assert_eq!(rest[0].1["status"], "generating");
    assert_eq!(rest[1].1["scene"], 1);
    assert_eq!(rest[1].1["step"], 4);
    assert_eq!(rest[1].1["steps"], 10);
    assert!((rest[1].1["overall"].as_f64().unwrap() - 0.7).abs() < 1e-6);
    assert_eq!(rest[2].1["index"], 5);
    assert_eq!(rest[2].1["url"], format!("/api/tasks/{id}/frames/5"));
    assert_eq!(rest[3].1["status"], "completed");
    assert_eq!(rest[3].1["video"], format!("/api/tasks/{id}/video"));
}

#[tokio::test]
async fn events_of_a_final_task_are_status_and_done() {
    let rig = start().await;
    let t = rig.stored_task();
    rig.store
        .update(t.id, |r| r.status = TaskStatus::Failed)
        .unwrap();
    let res = rig.get(&format!("/api/tasks/{}/events", t.id)).await;
    let events = parse_sse(&body_text(res).await);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["status", "done"]);
    assert_eq!(events[1].1["status"], "failed");
    assert_eq!(events[1].1["video"], Value::Null);

    assert_error(rig.get("/api/tasks/5/events").await, 404, "task_not_found").await;
}

#[tokio::test]
async fn events_end_when_the_engine_drops_the_task() {
    let rig = start().await;
    let t = rig.stored_task();
    let mut res = rig.get(&format!("/api/tasks/{}/events", t.id)).await;
    first_event(&mut res).await;
    rig.store
        .update(t.id, |r| r.status = TaskStatus::Cancelled)
        .unwrap();
    rig.backend.close(t.id);
    let events = parse_sse(&body_text(res).await);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["status", "done"]);
    assert_eq!(events[1].1["status"], "cancelled");
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

#[tokio::test]
async fn stream_sends_frames_so_far_then_live_ones() {
    let rig = start().await;
    let t = rig.stored_task();
    let jpeg = |b: u8| Arc::new(vec![0xff, 0xd8, b, 0xff, 0xd9]);
    rig.backend
        .frames
        .lock()
        .unwrap()
        .insert(t.id, vec![jpeg(0), jpeg(1)]);
    let mut res = rig.get(&format!("/api/tasks/{}/stream", t.id)).await;
    assert_eq!(res.status(), 200);
    let boundary = boundary_of(&res);
    let mut body = res.chunk().await.unwrap().unwrap().to_vec();
    // A frame published while the client joined arrives twice from the engine; sent once.
    rig.backend.publish(
        t.id,
        TaskEvent::Frame {
            index: 1,
            jpeg: jpeg(1),
        },
    );
    rig.backend.publish(
        t.id,
        TaskEvent::Step {
            scene: 0,
            step: 1,
            steps: 2,
            overall: 0.5,
        },
    );
    rig.backend.publish(
        t.id,
        TaskEvent::Frame {
            index: 2,
            jpeg: jpeg(2),
        },
    );
    rig.backend
        .publish(t.id, TaskEvent::Done(TaskStatus::Completed));
    while let Some(chunk) = res.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let (parts, closed) = parse_parts(&body, &boundary);
    assert!(closed, "the multipart body is closed");
    let got: Vec<(String, usize, Vec<u8>)> = (0..3u8)
        .map(|i| ("image/jpeg".to_owned(), i as usize, jpeg(i).to_vec()))
        .collect();
    assert_eq!(parts, got);
}

#[tokio::test]
async fn stream_of_a_finished_task_replays_stored_frames() {
    let rig = start().await;
    let t = rig.stored_task();
    let frames_dir = rig.data_dir.join("t1/frames");
    std::fs::create_dir_all(&frames_dir).unwrap();
    for n in 0..3u8 {
        std::fs::write(
            frames_dir.join(format!("{n:05}.png")),
            [0x89, b'P', b'N', b'G', n],
        )
        .unwrap();
    }
    rig.store
        .update(t.id, |r| {
            r.status = TaskStatus::Completed;
            r.artifact = Some(Artifact {
                video: "t1/video.mp4".into(),
                frames_dir: "t1/frames".into(),
                frame_count: 3,
                video_bytes: 0,
                width: 64,
                height: 64,
                fps: 24,
            });
        })
        .unwrap();
    let res = rig.get(&format!("/api/tasks/{}/stream", t.id)).await;
    let boundary = boundary_of(&res);
    let body = res.bytes().await.unwrap();
    let (parts, closed) = parse_parts(&body, &boundary);
    assert!(closed);
    assert_eq!(parts.len(), 3);
    for (n, (ct, index, data)) in parts.iter().enumerate() {
        assert_eq!((ct.as_str(), *index), ("image/png", n));
        assert_eq!(data, &[0x89, b'P', b'N', b'G', n as u8]);
    }

    // A task that ended without frames has nothing to stream.
    let failed = rig.stored_task();
    rig.store
        .update(failed.id, |r| r.status = TaskStatus::Failed)
        .unwrap();
    let res = rig.get(&format!("/api/tasks/{}/stream", failed.id)).await;
    assert_error(res, 404, "frames_not_found").await;
    assert_error(rig.get("/api/tasks/42/stream").await, 404, "task_not_found").await;
}
