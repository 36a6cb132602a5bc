//! An acknowledged write survives the process dying without destructors running.
//!
//! The test re-runs its own binary as a child that writes and then aborts (no `Drop`, no
//! sled shutdown flush), then reopens the database in the parent.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use storage::{NewTask, Store, TaskParams, TaskStatus};

const CHILD_DIR: &str = "REEL_STORAGE_CRASH_CHILD_DIR";

fn params() -> NewTask {
    NewTask::anonymous(TaskParams {
        prompt: "a green triangle".into(),
        num_scenes: 2,
        seed: 3,
        steps: 10,
        guidance: 4.0,
        seconds_per_scene: 2.0,
        fps: 24,
        size: 128,
        free_form: None,
    })
}

#[test]
fn acknowledged_tasks_survive_abort() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let store = Store::open(Path::new(&dir)).unwrap();
        for _ in 0..3 {
            store.create_task(params()).unwrap();
        }
        for s in [TaskStatus::Planning, TaskStatus::Failed] {
            store.transition(2, s, |_| {}).unwrap();
        }
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "acknowledged_tasks_survive_abort",
            "--exact",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must die by abort");

    let store = Store::open(dir.path()).unwrap();
    let (all, _) = store.list(None, 10, None).unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), vec![3, 2, 1]);
    assert_eq!(store.get(2).unwrap().unwrap().status, TaskStatus::Failed);
    assert_eq!(store.counts().unwrap()[&TaskStatus::Queued], 2);
    assert_eq!(store.create_task(params()).unwrap().id, 4);
    // The finish was indexed in the same flushed write as the status: retention finds it.
    let swept = store
        .remove_expired(&dir.path().join("data"), Duration::ZERO)
        .unwrap();
    assert_eq!((swept.tasks, swept.examined), (1, 1));
    assert_eq!(store.get(2).unwrap(), None);
}
