//! Retention deletes the files of expired final tasks, and nothing else.

use std::fs;
use std::path::Path;
use std::time::Duration;

use storage::{Artifact, Store, TaskParams, TaskStatus};

fn params() -> TaskParams {
    TaskParams {
        prompt: "a blue square".into(),
        num_scenes: 1,
        seed: 1,
        steps: 4,
        guidance: 4.0,
        seconds_per_scene: 1.0,
        fps: 8,
        size: 64,
    }
}

/// Writes a video and two frames for task `id` under `data`, returning the artifact.
fn write_artifact(data: &Path, id: u64) -> Artifact {
    let frames = format!("tasks/{id}/frames");
    fs::create_dir_all(data.join(&frames)).unwrap();
    fs::write(data.join(&frames).join("00000.png"), b"png").unwrap();
    fs::write(data.join(&frames).join("00001.png"), b"png").unwrap();
    let video = format!("tasks/{id}/video.mp4");
    fs::write(data.join(&video), b"mp4").unwrap();
    Artifact {
        video,
        frames_dir: frames,
        frame_count: 2,
        video_bytes: 3,
        width: 64,
        height: 64,
        fps: 8,
    }
}

fn finish(store: &Store, id: u64, status: TaskStatus, artifact: Option<Artifact>) {
    store
        .update(id, |r| {
            r.status = status;
            r.artifact = artifact;
        })
        .unwrap();
}

#[test]
fn removes_only_expired_final_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    for _ in 0..3 {
        store.create_task(params()).unwrap();
    }
    let done = write_artifact(&data, 1);
    finish(&store, 1, TaskStatus::Completed, Some(done.clone()));
    // Task 2 still running, with files already on disk: never touched.
    let running = write_artifact(&data, 2);
    finish(&store, 2, TaskStatus::Encoding, Some(running.clone()));
    // Task 3 answered from the cache with task 1's files.
    finish(&store, 3, TaskStatus::Completed, Some(done.clone()));
    store.cache_put("key-1", 1).unwrap();
    store.cache_put("key-2", 2).unwrap();

    // Nothing is old enough yet.
    let a_day = Duration::from_secs(86_400);
    assert_eq!(store.remove_expired_artifacts(&data, a_day).unwrap(), 0);
    assert!(data.join(&done.video).exists());

    assert_eq!(
        store
            .remove_expired_artifacts(&data, Duration::ZERO)
            .unwrap(),
        2
    );
    assert!(!data.join(&done.video).exists());
    assert!(!data.join(&done.frames_dir).exists());
    assert!(store.get(1).unwrap().unwrap().artifact.is_none());
    assert!(store.get(3).unwrap().unwrap().artifact.is_none());
    assert_eq!(store.get(1).unwrap().unwrap().status, TaskStatus::Completed);

    assert!(data.join(&running.video).exists());
    assert_eq!(store.get(2).unwrap().unwrap().artifact, Some(running));
    assert_eq!(store.cache_get("key-1").unwrap(), None);
    assert_eq!(store.cache_get("key-2").unwrap(), Some(2));

    // Idempotent: nothing left to remove.
    assert_eq!(
        store
            .remove_expired_artifacts(&data, Duration::ZERO)
            .unwrap(),
        0
    );
}

#[test]
fn never_deletes_outside_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let outside = dir.path().join("precious.mp4");
    fs::write(&outside, b"keep").unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.create_task(params()).unwrap();
    let artifact = Artifact {
        video: "../precious.mp4".into(),
        frames_dir: "/".into(),
        frame_count: 0,
        video_bytes: 4,
        width: 64,
        height: 64,
        fps: 8,
    };
    finish(&store, 1, TaskStatus::Failed, Some(artifact));
    assert_eq!(
        store
            .remove_expired_artifacts(&data, Duration::ZERO)
            .unwrap(),
        1
    );
    assert!(outside.exists());
    assert!(store.get(1).unwrap().unwrap().artifact.is_none());
}
