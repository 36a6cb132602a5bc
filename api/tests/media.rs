//! The video (with byte ranges) and the frames, from files in the temp data dir.

mod common;

use common::{assert_error, start, walk_to, walk_to_with, Rig};
use serde_json::Value;
use storage::{task_dir, Artifact, TaskStatus};

const VIDEO_LEN: usize = 1000;

/// A completed task whose video holds the bytes 0, 1, 2, ... (mod 251) and two PNG frames.
fn completed(rig: &Rig) -> (u64, Vec<u8>) {
    let t = rig.stored_task();
    let video: Vec<u8> = (0..VIDEO_LEN).map(|i| (i % 251) as u8).collect();
    let rel = task_dir(t.id);
    let dir = rig.data_dir.join(&rel);
    std::fs::create_dir_all(dir.join("frames")).unwrap();
    std::fs::write(dir.join("video.mp4"), &video).unwrap();
    std::fs::write(dir.join("frames/00000.png"), b"png-0").unwrap();
    std::fs::write(dir.join("frames/00001.png"), b"png-1").unwrap();
    walk_to_with(&rig.tasks, t.id, TaskStatus::Completed, |r| {
        r.artifact = Some(artifact(
            &format!("{rel}/video.mp4"),
            &format!("{rel}/frames"),
        ));
    });
    (t.id, video)
}

fn artifact(video: &str, frames_dir: &str) -> Artifact {
    Artifact {
        video: video.to_owned(),
        frames_dir: frames_dir.to_owned(),
        frame_count: 2,
        video_bytes: VIDEO_LEN as u64,
        width: 64,
        height: 64,
        fps: 8,
    }
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
    std::fs::remove_file(rig.data_dir.join(task_dir(id)).join("video.mp4")).unwrap();
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

    // A finished task's frames past its count are not served, even if a file is there.
    std::fs::write(
        rig.data_dir.join(task_dir(id)).join("frames/00002.png"),
        b"png-2",
    )
    .unwrap();
    assert_error(
        rig.get(&format!("/api/tasks/{id}/frames/2")).await,
        404,
        "frame_not_found",
    )
    .await;

    // Running: the PNGs the engine has stored so far, from the task's own directory.
    let running = rig.stored_task();
    walk_to(&rig.tasks, running.id, TaskStatus::Generating);
    let res = rig
        .get(&format!("/api/tasks/{}/frames/0", running.id))
        .await;
    assert_error(res, 404, "frame_not_found").await;
    rig.write_frame(running.id, 0, b"png-running-0");
    rig.tasks.frame(running.id, 0);
    let res = rig
        .get(&format!("/api/tasks/{}/frames/0", running.id))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "image/png");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"png-running-0");
    let res = rig
        .get(&format!("/api/tasks/{}/frames/1", running.id))
        .await;
    assert_error(res, 404, "frame_not_found").await;
    assert_error(
        rig.get("/api/tasks/77/frames/0").await,
        404,
        "task_not_found",
    )
    .await;
}

/// Error answers about broken or hostile artifacts never name a path of the server.
#[tokio::test]
async fn errors_name_no_server_paths() {
    let rig = start().await;
    let data_dir = rig.data_dir.to_str().unwrap().to_owned();
    let tmp_root = rig.data_dir.parent().unwrap().to_str().unwrap().to_owned();
    let check = |body: &Value| {
        let message = body["message"].as_str().unwrap();
        assert!(
            !message.contains(&tmp_root) && !message.contains(&data_dir),
            "{body}"
        );
        assert!(
            !message.contains(".mp4") && !message.contains(".png"),
            "{body}"
        );
        assert!(!message.contains("artifacts/"), "{body}");
    };

    // The artifact's files are missing.
    let (id, _) = completed(&rig);
    std::fs::remove_dir_all(rig.data_dir.join(task_dir(id))).unwrap();
    let body = assert_error(
        rig.get(&format!("/api/tasks/{id}/video")).await,
        404,
        "video_not_found",
    )
    .await;
    check(&body);
    let body = assert_error(
        rig.get(&format!("/api/tasks/{id}/frames/0")).await,
        404,
        "frame_not_found",
    )
    .await;
    check(&body);

    // Paths outside the data dir (absolute, or climbing out) are never read.
    for (video, frames) in [("/etc/passwd", "/etc"), ("../../etc/passwd", "../..")] {
        let t = rig.stored_task();
        walk_to_with(&rig.tasks, t.id, TaskStatus::Completed, |r| {
            r.artifact = Some(artifact(video, frames));
        });
        let res = rig.get(&format!("/api/tasks/{}/video", t.id)).await;
        check(&assert_error(res, 404, "video_not_found").await);
        let res = rig.get(&format!("/api/tasks/{}/frames/0", t.id)).await;
        check(&assert_error(res, 404, "frame_not_found").await);
    }

    // Unreadable (a directory where a file should be): a 500 whose message says nothing of
    // the inside.
    let t = rig.stored_task();
    let rel = task_dir(t.id);
    std::fs::create_dir_all(rig.data_dir.join(&rel).join("frames/00000.png")).unwrap();
    std::fs::write(rig.data_dir.join(&rel).join("not-a-dir"), b"x").unwrap();
    walk_to_with(&rig.tasks, t.id, TaskStatus::Completed, |r| {
        r.artifact = Some(artifact(
            &format!("{rel}/video.mp4"),
            &format!("{rel}/frames"),
        ));
    });
    let res = rig.get(&format!("/api/tasks/{}/frames/0", t.id)).await;
    let body = assert_error(res, 500, "internal").await;
    assert_eq!(body["message"], "internal error; the server has logged it");
    check(&body);
    let t2 = rig.stored_task();
    walk_to_with(&rig.tasks, t2.id, TaskStatus::Completed, |r| {
        r.artifact = Some(artifact(
            &format!("{rel}/video.mp4"),
            &format!("{rel}/not-a-dir"),
        ));
    });
    let res = rig.get(&format!("/api/tasks/{}/frames/1", t2.id)).await;
    let body = assert_error(res, 500, "internal").await;
    check(&body);

    // The task's JSON names no file either.
    let (_, task) = common::json_of(rig.get(&format!("/api/tasks/{}", t.id)).await).await;
    let text = task.to_string();
    assert!(
        !text.contains(&data_dir) && !text.contains("artifacts/"),
        "{task}"
    );
}
