//! The video (with byte ranges) and the frames, from files in the temp data dir.

mod common;

use std::sync::Arc;

use common::{assert_error, start, Rig};
use storage::{Artifact, TaskStatus};

const VIDEO_LEN: usize = 1000;

/// A completed task whose video holds the bytes 0, 1, 2, ... (mod 251) and two PNG frames.
fn completed(rig: &Rig) -> (u64, Vec<u8>) {
    let t = rig.stored_task();
    let video: Vec<u8> = (0..VIDEO_LEN).map(|i| (i % 251) as u8).collect();
    let dir = rig.data_dir.join(format!("tasks/{}", t.id));
    std::fs::create_dir_all(dir.join("frames")).unwrap();
    std::fs::write(dir.join("video.mp4"), &video).unwrap();
    std::fs::write(dir.join("frames/00000.png"), b"png-0").unwrap();
    std::fs::write(dir.join("frames/00001.png"), b"png-1").unwrap();
    rig.store
        .update(t.id, |r| {
            r.status = TaskStatus::Completed;
            r.artifact = Some(Artifact {
                video: format!("tasks/{}/video.mp4", t.id),
                frames_dir: format!("tasks/{}/frames", t.id),
                frame_count: 2,
                video_bytes: VIDEO_LEN as u64,
                width: 64,
                height: 64,
                fps: 8,
            });
        })
        .unwrap();
    (t.id, video)
}

async fn ranged(rig: &Rig, id: u64, range: &str) -> reqwest::Response {
    rig.http
        .get(rig.url(&format!("/api/tasks/{id}/video")))
        .header("range", range)
        .send()
        .await
        .unwrap()
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()[name].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn video_whole_and_ranges() {
    let rig = start().await;
    let (id, video) = completed(&rig);

    let res = rig.get(&format!("/api/tasks/{id}/video")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "video/mp4");
    assert_eq!(header(&res, "accept-ranges"), "bytes");
    assert_eq!(header(&res, "content-length"), VIDEO_LEN.to_string());
    assert_eq!(res.bytes().await.unwrap().as_ref(), &video[..]);

    let cases = [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, VIDEO_LEN - 1),
        ("bytes=-10", VIDEO_LEN - 10, VIDEO_LEN - 1),
        ("bytes=990-5000", 990, VIDEO_LEN - 1),
        ("bytes=500-500", 500, 500),
    ];
    for (range, a, b) in cases {
        let res = ranged(&rig, id, range).await;
        assert_eq!(res.status(), 206, "{range}");
        assert_eq!(
            header(&res, "content-range"),
            format!("bytes {a}-{b}/{VIDEO_LEN}")
        );
        assert_eq!(header(&res, "content-length"), (b - a + 1).to_string());
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            &video[a..=b],
            "{range}"
        );
    }

    for range in ["bytes=1000-", "bytes=2000-3000"] {
        let res = ranged(&rig, id, range).await;
        assert_eq!(
            header(&res, "content-range"),
            format!("bytes */{VIDEO_LEN}")
        );
        assert_error(res, 416, "range_not_satisfiable").await;
    }
    // Malformed or multiple ranges: the whole file.
    for range in ["items=0-1", "bytes=abc", "bytes=0-1,5-6"] {
        let res = ranged(&rig, id, range).await;
        assert_eq!(res.status(), 200, "{range}");
        assert_eq!(res.bytes().await.unwrap().len(), VIDEO_LEN);
    }
}

#[tokio::test]
async fn video_missing_is_404() {
    let rig = start().await;
    let queued = rig.stored_task();
    let res = rig.get(&format!("/api/tasks/{}/video", queued.id)).await;
    assert_error(res, 404, "video_not_found").await;
    assert_error(rig.get("/api/tasks/9/video").await, 404, "task_not_found").await;

    // Recorded but deleted from disk (retention, say).
    let (id, _) = completed(&rig);
    std::fs::remove_file(rig.data_dir.join(format!("tasks/{id}/video.mp4"))).unwrap();
    assert_error(
        rig.get(&format!("/api/tasks/{id}/video")).await,
        404,
        "video_not_found",
    )
    .await;
}

#[tokio::test]
async fn frames_from_disk_or_from_the_engine() {
    let rig = start().await;
    let (id, _) = completed(&rig);
    let res = rig.get(&format!("/api/tasks/{id}/frames/1")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "image/png");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"png-1");
    assert_error(
        rig.get(&format!("/api/tasks/{id}/frames/2")).await,
        404,
        "frame_not_found",
    )
    .await;
    assert_error(
        rig.get(&format!("/api/tasks/{id}/frames/x")).await,
        404,
        "route_not_found",
    )
    .await;

    // Running: the engine's JPEGs.
    let running = rig.stored_task();
    rig.store
        .update(running.id, |r| r.status = TaskStatus::Generating)
        .unwrap();
    rig.backend
        .frames
        .lock()
        .unwrap()
        .insert(running.id, vec![Arc::new(b"jpeg-0".to_vec())]);
    let res = rig
        .get(&format!("/api/tasks/{}/frames/0", running.id))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "image/jpeg");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"jpeg-0");
    let res = rig
        .get(&format!("/api/tasks/{}/frames/1", running.id))
        .await;
    assert_error(res, 404, "frame_not_found").await;
}
