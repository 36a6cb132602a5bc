//! Retention deletes expired final tasks, their files and their cache keys, and nothing else;
//! a sweep reads only the expired part of the time index; the database stays bounded.
//!
//! A task's finish time is its `updated_ms` when it entered a final status, and `update` never
//! moves `updated_ms` back. So a task finished "in the future" (its closure sets `updated_ms`
//! ahead) is young for any test that sweeps with `max_age` zero, without sleeping or racing
//! the clock; [`young_until`] makes one.

use std::fs;
use std::path::Path;
use std::time::Duration;

use storage::{now_ms, Artifact, NewTask, Store, TaskParams, TaskRecord, TaskStatus};

fn params() -> NewTask {
    NewTask::anonymous(TaskParams {
        prompt: "a blue square".into(),
        num_scenes: 1,
        seed: 1,
        steps: 4,
        guidance: 4.0,
        seconds_per_scene: 1.0,
        fps: 8,
        size: 64,
        free_form: None,
    })
}

/// A finish time `ahead` from now: young until then.
fn young_until(ahead: Duration) -> u64 {
    now_ms() + ahead.as_millis() as u64
}

const AN_HOUR: Duration = Duration::from_secs(3600);

/// Writes a video (3 bytes) and two frames (3 bytes each) for task `id` under
/// `data/artifacts/<id>`, as the pipeline lays them out, returning the artifact.
fn write_artifact(data: &Path, id: u64) -> Artifact {
    let frames = format!("artifacts/{id}/frames");
    fs::create_dir_all(data.join(&frames)).unwrap();
    fs::write(data.join(&frames).join("00000.png"), b"png").unwrap();
    fs::write(data.join(&frames).join("00001.png"), b"png").unwrap();
    let video = format!("artifacts/{id}/video.mp4");
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

/// Moves task `id` along the lifecycle to `status`, applying `f` in the last step.
fn walk(store: &Store, id: u64, status: TaskStatus, f: impl FnOnce(&mut TaskRecord)) {
    use TaskStatus::*;
    let stages = [Planning, Generating, PostProcessing, Encoding, Completed];
    let path: Vec<TaskStatus> = match stages.iter().position(|s| *s == status) {
        Some(i) => stages[..=i].to_vec(),
        None => vec![status],
    };
    let (last, before) = path.split_last().unwrap();
    for s in before {
        store.transition(id, *s, |_| {}).unwrap();
    }
    store.transition(id, *last, f).unwrap();
}

fn set(store: &Store, id: u64, status: TaskStatus, artifact: Option<Artifact>) {
    walk(store, id, status, |r| r.artifact = artifact);
}

/// Moves task `id` to `status`, finished at `finished_ms` (at least now).
fn finish_at(store: &Store, id: u64, status: TaskStatus, finished_ms: u64) {
    walk(store, id, status, |r| r.updated_ms = finished_ms);
}

fn count(store: &Store, status: TaskStatus) -> u64 {
    store.counts().unwrap()[&status]
}

#[test]
fn expired_tasks_go_with_their_files_and_cache_keys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    for _ in 0..4 {
        store.create_task(params()).unwrap();
    }
    let done = write_artifact(&data, 1);
    set(&store, 1, TaskStatus::Completed, Some(done.clone()));
    // Task 2 still running, with files already on disk: never touched.
    let running = write_artifact(&data, 2);
    set(&store, 2, TaskStatus::Encoding, Some(running.clone()));
    // Task 3 answered from the cache with task 1's files; task 4 failed without files.
    set(&store, 3, TaskStatus::Completed, Some(done.clone()));
    set(&store, 4, TaskStatus::Failed, None);
    store.cache_put("key-1", 1).unwrap();
    store.cache_put("key-1b", 1).unwrap();
    store.cache_put("key-2", 2).unwrap();
    // Into the memory layer too: a forgotten LRU entry would still answer below.
    assert_eq!(store.cache_get("key-1").unwrap(), Some(1));

    // Nothing is old enough yet.
    let a_day = Duration::from_secs(86_400);
    let none = store.remove_expired(&data, a_day).unwrap();
    assert_eq!((none.tasks, none.files, none.examined), (0, 0, 1));
    assert!(data.join(&done.video).exists());

    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!(swept.tasks, 3);
    assert_eq!((swept.files, swept.bytes), (3, 9));
    assert_eq!(
        swept.examined, 3,
        "three final tasks, no young one to stop at"
    );
    assert!(swept.failed.is_empty() && !swept.more);
    assert!(
        !data.join("artifacts/1").exists(),
        "the artifact directory goes too"
    );
    for id in [1, 3, 4] {
        assert_eq!(store.get(id).unwrap(), None);
    }
    assert_eq!(store.cache_get("key-1").unwrap(), None);
    assert_eq!(store.cache_get("key-1b").unwrap(), None);

    assert!(data.join(&running.video).exists());
    assert_eq!(store.get(2).unwrap().unwrap().artifact, Some(running));
    assert_eq!(store.cache_get("key-2").unwrap(), Some(2));
    assert_eq!(count(&store, TaskStatus::Completed), 0);
    assert_eq!(count(&store, TaskStatus::Failed), 0);
    assert_eq!(count(&store, TaskStatus::Encoding), 1);
    let (all, _) = store.list(None, 10, None).unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), vec![2]);
    assert!(store
        .list(Some(TaskStatus::Completed), 10, None)
        .unwrap()
        .0
        .is_empty());

    // Idempotent, durable, and ids are not reused.
    let again = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((again.tasks, again.examined), (0, 0));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!(store.cache_get("key-1").unwrap(), None);
    assert_eq!(store.cache_get("key-2").unwrap(), Some(2));
    assert_eq!(count(&store, TaskStatus::Completed), 0);
    assert_eq!(store.create_task(params()).unwrap().id, 5);
}

#[test]
fn young_and_unfinished_tasks_stay() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    for _ in 0..6 {
        store.create_task(params()).unwrap();
    }
    finish_at(&store, 1, TaskStatus::Completed, 0);
    finish_at(&store, 2, TaskStatus::Cancelled, 0);
    finish_at(&store, 3, TaskStatus::Completed, young_until(AN_HOUR));
    finish_at(&store, 4, TaskStatus::Failed, young_until(AN_HOUR));
    // 5 queued, 6 generating: never in the index, so never removed.
    set(
        &store,
        6,
        TaskStatus::Generating,
        Some(write_artifact(&data, 6)),
    );

    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!(swept.tasks, 2);
    assert_eq!(
        swept.examined, 3,
        "two expired entries and the young one after them"
    );
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!(store.get(2).unwrap(), None);
    for id in 3..=6 {
        assert!(store.get(id).unwrap().is_some(), "task {id} must stay");
    }
    assert!(data.join("artifacts/6/video.mp4").exists());
    let counts = store.counts().unwrap();
    assert_eq!(counts[&TaskStatus::Completed], 1);
    assert_eq!(counts[&TaskStatus::Cancelled], 0);
    assert_eq!(counts[&TaskStatus::Failed], 1);
    assert_eq!(counts[&TaskStatus::Queued], 1);
    assert_eq!(counts[&TaskStatus::Generating], 1);
    assert_eq!(store.unfinished().unwrap().len(), 2);
}

#[test]
fn a_sweep_reads_only_the_expired_entries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    const YOUNG: u64 = 10_000;
    const OLD: u64 = 5;
    for id in 1..=YOUNG + OLD {
        store.create_task(params()).unwrap();
        // The old ones are created last: the index is ordered by finish time, not by id.
        let finished = if id > YOUNG { 0 } else { young_until(AN_HOUR) };
        finish_at(&store, id, TaskStatus::Completed, finished);
    }
    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!(swept.tasks, OLD as usize);
    assert_eq!(swept.examined, OLD as usize + 1);
    let again = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((again.tasks, again.examined), (0, 1));
    assert_eq!(count(&store, TaskStatus::Completed), YOUNG);
}

#[test]
fn a_backlog_goes_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    let expired = Store::EXPIRE_BATCH as u64 + 3;
    for id in 1..=expired + 1 {
        store.create_task(params()).unwrap();
        let finished = if id > expired {
            young_until(AN_HOUR)
        } else {
            0
        };
        finish_at(&store, id, TaskStatus::Completed, finished);
    }
    let first = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!(first.tasks, Store::EXPIRE_BATCH);
    assert!(first.more);
    assert_eq!(first.examined, Store::EXPIRE_BATCH + 1);
    let second = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((second.tasks, second.examined, second.more), (3, 4, false));
    assert_eq!(count(&store, TaskStatus::Completed), 1);
    assert!(store.get(expired + 1).unwrap().is_some());
}

#[test]
fn a_finish_is_indexed_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    for _ in 0..2 {
        store.create_task(params()).unwrap();
    }
    finish_at(&store, 1, TaskStatus::Completed, 0);
    // Nothing leaves a final status (the transition table), so the finish time stays.
    assert!(store
        .transition(1, TaskStatus::Failed, |r| r.updated_ms =
            young_until(AN_HOUR))
        .is_err());
    finish_at(&store, 2, TaskStatus::Cancelled, young_until(AN_HOUR));

    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((swept.tasks, swept.examined), (1, 2));
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!(count(&store, TaskStatus::Completed), 0);
    assert_eq!(store.get(2).unwrap().unwrap().status, TaskStatus::Cancelled);
}

#[test]
fn a_failed_task_s_partial_frames_go_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    let id = store.create_task(params()).unwrap().id;
    let frames = data.join(storage::task_dir(id)).join("frames");
    fs::create_dir_all(&frames).unwrap();
    fs::write(frames.join(storage::frame_file(0)), b"png").unwrap();
    set(&store, id, TaskStatus::Failed, None);
    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((swept.tasks, swept.files), (1, 1));
    assert!(!data.join(storage::task_dir(id)).exists());
}

#[test]
fn shared_files_go_with_their_last_user() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    for _ in 0..2 {
        store.create_task(params()).unwrap();
    }
    let artifact = write_artifact(&data, 1);
    let soon = young_until(Duration::from_millis(200));
    walk(&store, 1, TaskStatus::Completed, |r| {
        r.artifact = Some(artifact.clone());
        r.updated_ms = soon;
    });
    store.cache_put("key", 1).unwrap();
    // Task 2 answered from the cache: same files, finished now, so it expires first.
    set(&store, 2, TaskStatus::Completed, Some(artifact.clone()));

    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((swept.tasks, swept.files), (1, 0));
    assert_eq!(store.get(2).unwrap(), None);
    assert!(data.join(&artifact.video).exists(), "task 1 still uses it");
    assert_eq!(store.cache_get("key").unwrap(), Some(1));

    std::thread::sleep(Duration::from_millis(250));
    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((swept.tasks, swept.files, swept.bytes), (1, 3, 9));
    assert!(!data.join("artifacts/1").exists());
    assert_eq!(store.cache_get("key").unwrap(), None);
}

#[test]
fn a_cache_key_answered_by_a_newer_task_outlives_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    for _ in 0..2 {
        store.create_task(params()).unwrap();
    }
    finish_at(&store, 1, TaskStatus::Completed, 0);
    finish_at(&store, 2, TaskStatus::Completed, young_until(AN_HOUR));
    store.cache_put("key", 1).unwrap();
    store.cache_put("key", 2).unwrap();
    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!(swept.tasks, 1);
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!(store.cache_get("key").unwrap(), Some(2));
    drop(store);
    // From sled, not from the memory layer.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.cache_get("key").unwrap(), Some(2));
}

#[test]
fn files_that_cannot_be_deleted_keep_their_task() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    for _ in 0..2 {
        store.create_task(params()).unwrap();
    }
    // A file where the frames directory's parent should be: looking into it fails with
    // ENOTDIR, which (unlike a permission bit) stops root as well.
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("blocker"), b"x").unwrap();
    let stuck = Artifact {
        video: "blocker/video.mp4".into(),
        frames_dir: "blocker/frames".into(),
        frame_count: 0,
        video_bytes: 0,
        width: 64,
        height: 64,
        fps: 8,
    };
    set(&store, 1, TaskStatus::Completed, Some(stuck));
    store.cache_put("key", 1).unwrap();
    set(
        &store,
        2,
        TaskStatus::Completed,
        Some(write_artifact(&data, 2)),
    );

    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!(swept.tasks, 1, "one stuck task does not hold up the others");
    assert_eq!(swept.failed.len(), 1);
    assert_eq!(swept.failed[0].0, 1);
    assert!(store.get(1).unwrap().is_some());
    assert_eq!(store.get(2).unwrap(), None);
    assert_eq!(store.cache_get("key").unwrap(), Some(1));
    assert_eq!(count(&store, TaskStatus::Completed), 1);

    // Retried by the next sweep, which succeeds once the obstacle is gone.
    let retried = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((retried.tasks, retried.failed.len()), (0, 1));
    fs::remove_file(data.join("blocker")).unwrap();
    let retried = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((retried.tasks, retried.examined), (1, 1));
    assert!(retried.failed.is_empty());
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!(store.cache_get("key").unwrap(), None);
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
    set(&store, 1, TaskStatus::Failed, Some(artifact));
    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((swept.tasks, swept.files), (1, 0));
    assert!(outside.exists());
    assert!(data.exists());
    assert_eq!(store.get(1).unwrap(), None);
}

#[test]
fn a_database_from_before_the_index_is_indexed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = Store::open(dir.path()).unwrap();
        for _ in 0..3 {
            store.create_task(params()).unwrap();
        }
        set(
            &store,
            1,
            TaskStatus::Completed,
            Some(write_artifact(&data, 1)),
        );
        set(&store, 2, TaskStatus::Completed, None);
        store.cache_put("key-1", 1).unwrap();
    }
    // Take the database back to its layout before retention: no `retention` or
    // `cache_owners` tree, no marker.
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        assert!(db.drop_tree("retention").unwrap());
        assert!(db.drop_tree("cache_owners").unwrap());
        let meta = db.open_tree("meta").unwrap();
        assert!(meta.remove("retention_indexed").unwrap().is_some());
        db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
    assert_eq!((swept.tasks, swept.files), (2, 3));
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!(store.get(2).unwrap(), None);
    assert!(store.get(3).unwrap().is_some());
    assert_eq!(store.cache_get("key-1").unwrap(), None);
    assert!(!data.join("artifacts/1").exists());
}

#[test]
fn the_database_stays_bounded_while_tasks_come_and_go() {
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    let mut sizes = Vec::new();
    for _ in 0..ROUNDS {
        for _ in 0..PER_ROUND {
            let id = store.create_task(params()).unwrap().id;
            walk(&store, id, TaskStatus::Completed, |_| {});
            store.cache_put(&format!("key-{id}"), id).unwrap();
        }
        let mut removed = 0;
        loop {
            let swept = store.remove_expired(&data, Duration::ZERO).unwrap();
            removed += swept.tasks;
            if !swept.more {
                break;
            }
        }
        assert_eq!(removed, PER_ROUND);
        sizes.push(store.size_on_disk().unwrap());
    }
    assert!(store.counts().unwrap().values().all(|n| *n == 0));
    // Measured: about 4-5 MiB after every round with the sweep, and 25 MiB after the last
    // without it (it grows by a round's records each time). sled grows in segments, so the
    // early rounds set the scale and the last may differ from them by a segment or two.
    let early = sizes[..2].iter().copied().max().unwrap();
    let last = *sizes.last().unwrap();
    assert!(
        last <= 2 * early,
        "size on disk grew from {early} to {last} bytes: {sizes:?}"
    );
}

#[test]
fn a_finished_task_can_be_deleted_at_once_and_a_live_one_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(dir.path()).unwrap();
    for _ in 0..2 {
        store.create_task(params()).unwrap();
    }
    set(
        &store,
        1,
        TaskStatus::Completed,
        Some(write_artifact(&data, 1)),
    );
    assert!(
        !store.delete_finished(&data, 2).unwrap(),
        "task 2 is still queued"
    );
    assert!(!store.delete_finished(&data, 9).unwrap(), "no task 9");
    assert!(store.delete_finished(&data, 1).unwrap());
    assert_eq!(store.get(1).unwrap(), None);
    assert!(!data.join("artifacts/1").exists());
    assert_eq!(count(&store, TaskStatus::Completed), 0);
    assert!(store.get(2).unwrap().is_some());
}
