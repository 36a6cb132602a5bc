//! The store against a real sled database in a temp dir: ids, persistence, the status index,
//! pagination, counts, resumption.

use std::collections::BTreeMap;

use storage::{NewTask, Store, StoreError, TaskParams, TaskStatus};

fn params(prompt: &str) -> NewTask {
    NewTask::anonymous(TaskParams {
        prompt: prompt.to_owned(),
        num_scenes: 3,
        seed: 7,
        steps: 20,
        guidance: 4.0,
        seconds_per_scene: 2.0,
        fps: 24,
        size: 256,
        free_form: None,
    })
}

/// Moves task `id` along the lifecycle to `to`, as the engine would.
fn walk_to(store: &Store, id: u64, to: TaskStatus) {
    use TaskStatus::*;
    let path: &[TaskStatus] = match to {
        Generating => &[Planning, Generating],
        Completed => &[Planning, Generating, PostProcessing, Encoding, Completed],
        other => &[other][..],
    };
    for &s in path {
        store.transition(id, s, |_| {}).unwrap().unwrap();
    }
}

fn ids(records: &[storage::TaskRecord]) -> Vec<u64> {
    records.iter().map(|r| r.id).collect()
}

#[test]
fn ids_are_sequential_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let a = store.create_task(params("a red ball")).unwrap();
        let b = store.create_task(params("测试视频")).unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        assert_eq!(a.status, TaskStatus::Queued);
        assert!(a.created_ms > 0 && a.updated_ms == a.created_ms);
        walk_to(&store, 2, TaskStatus::Generating);
        store.update(2, |r| r.scenes_done = 1).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let b = store.get(2).unwrap().expect("task 2 persisted");
    assert_eq!(b.params.prompt, "测试视频");
    assert_eq!((b.status, b.scenes_done), (TaskStatus::Generating, 1));
    assert_eq!(store.create_task(params("next")).unwrap().id, 3);
    assert_eq!(store.counts().unwrap()[&TaskStatus::Queued], 2);
    assert!(store.get(99).unwrap().is_none());
}

#[test]
fn update_keeps_index_and_counts_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..6 {
        store.create_task(params(&format!("task {i}"))).unwrap();
    }
    walk_to(&store, 2, TaskStatus::Generating);
    walk_to(&store, 4, TaskStatus::Completed);
    walk_to(&store, 5, TaskStatus::Generating);
    walk_to(&store, 5, TaskStatus::Failed);
    // A closure cannot move a record to another key.
    let moved = store.update(6, |r| r.id = 1).unwrap().unwrap();
    assert_eq!(moved.id, 6);
    assert!(store
        .transition(42, TaskStatus::Failed, |_| {})
        .unwrap()
        .is_none());

    let by = |s| ids(&store.list(Some(s), 100, None).unwrap().0);
    assert_eq!(by(TaskStatus::Queued), vec![6, 3, 1]);
    assert_eq!(by(TaskStatus::Generating), vec![2]);
    assert_eq!(by(TaskStatus::Completed), vec![4]);
    assert_eq!(by(TaskStatus::Failed), vec![5]);
    assert!(by(TaskStatus::Cancelled).is_empty());

    let counts = store.counts().unwrap();
    let expected: BTreeMap<_, _> = TaskStatus::ALL
        .iter()
        .map(|s| (*s, by(*s).len() as u64))
        .collect();
    assert_eq!(counts, expected);
    assert_eq!(counts.values().sum::<u64>(), 6);

    // Oldest first, final ones left out.
    assert_eq!(ids(&store.unfinished().unwrap()), vec![1, 2, 3, 6]);
}

#[test]
fn update_bumps_updated_ms_only_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = store.create_task(params("x")).unwrap();
    let u = store
        .update(t.id, |r| {
            r.timings_ms.insert("plan".into(), 12);
            r.error = Some("boom".into());
        })
        .unwrap()
        .unwrap();
    assert!(u.updated_ms >= t.updated_ms);
    assert_eq!(store.get(t.id).unwrap().unwrap(), u);
    assert_eq!(u.status, TaskStatus::Queued);

    // A closure that changes nothing writes nothing, so updated_ms stays.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let same = store.update(t.id, |_| {}).unwrap().unwrap();
    assert_eq!(same, u);
    assert_eq!(store.get(t.id).unwrap().unwrap(), u);
}

#[test]
fn list_pages_newest_first_with_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for i in 0..25 {
        let t = store.create_task(params(&format!("p{i}"))).unwrap();
        if t.id.is_multiple_of(2) {
            walk_to(&store, t.id, TaskStatus::Completed);
        }
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let (page, next) = store.list(None, 10, cursor).unwrap();
        assert!(page.len() <= 10);
        seen.extend(ids(&page));
        pages += 1;
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=25).rev().collect::<Vec<_>>());

    // Filtered pages walk the index only.
    let (p1, c1) = store.list(Some(TaskStatus::Completed), 5, None).unwrap();
    assert_eq!(ids(&p1), vec![24, 22, 20, 18, 16]);
    let (p2, c2) = store.list(Some(TaskStatus::Completed), 5, c1).unwrap();
    assert_eq!(ids(&p2), vec![14, 12, 10, 8, 6]);
    let (p3, c3) = store.list(Some(TaskStatus::Completed), 5, c2).unwrap();
    assert_eq!(ids(&p3), vec![4, 2]);
    assert_eq!(c3, None);
    // An exact final page has no next cursor either.
    let (p, c) = store.list(Some(TaskStatus::Queued), 13, None).unwrap();
    assert_eq!((p.len(), c), (13, None));
    assert!(store.list(None, 10, Some(1)).unwrap().0.is_empty());
}

#[test]
fn illegal_transitions_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let t = store.create_task(params("x")).unwrap();
    // Queued cannot jump to encoding; the closure's change is not applied either.
    let err = store
        .transition(t.id, TaskStatus::Encoding, |r| r.scenes_done = 9)
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::IllegalTransition {
            from: TaskStatus::Queued,
            to: TaskStatus::Encoding,
            ..
        }
    ));
    // A status never changes through a plain update.
    assert!(matches!(
        store.update(t.id, |r| r.status = TaskStatus::Completed),
        Err(StoreError::StatusChange(_))
    ));
    assert_eq!(store.get(t.id).unwrap().unwrap(), t);
    // Nothing leaves a final status.
    store
        .transition(t.id, TaskStatus::Cancelled, |_| {})
        .unwrap();
    for &to in TaskStatus::ALL {
        assert!(store.transition(t.id, to, |_| {}).is_err(), "{to:?}");
    }
    assert_eq!(store.counts().unwrap()[&TaskStatus::Cancelled], 1);
    assert_eq!(store.counts().unwrap()[&TaskStatus::Queued], 0);
}

#[test]
fn webhooks_owed_are_stored_with_the_change_and_survive_reopen() {
    use storage::{Webhook, WebhookEvent};
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let mut new = params("hooked");
        new.webhook = Some(Webhook {
            url: "http://127.0.0.1:9/hook".into(),
            events: vec![WebhookEvent::Start, WebhookEvent::Failed],
        });
        let t = store.create_task(new).unwrap();
        store.create_task(params("plain")).unwrap();
        walk_to(&store, t.id, TaskStatus::Generating); // start: owed; progress: not wanted
        walk_to(&store, 2, TaskStatus::Generating); // no webhook: nothing owed
        walk_to(&store, t.id, TaskStatus::Failed);
    }
    let store = Store::open(dir.path()).unwrap();
    let due = store.due_deliveries(u64::MAX - 1, 10).unwrap();
    let events: Vec<_> = due.iter().map(|d| d.event).collect();
    assert_eq!(events, [WebhookEvent::Start, WebhookEvent::Failed]);
    let body: serde_json::Value = serde_json::from_str(&due[1].body).unwrap();
    assert_eq!(body["event"], "failed");
    assert_eq!(body["task"]["status"], "failed");
    assert!(due[0].seq < due[1].seq);
    // A retry waits for its time; done is gone.
    let later = storage::now_ms() + 60_000;
    store.delivery_retry(&due[0], later).unwrap();
    store.delivery_done(&due[1]).unwrap();
    assert!(store
        .due_deliveries(storage::now_ms(), 10)
        .unwrap()
        .is_empty());
    let retried = store.due_deliveries(later, 10).unwrap();
    assert_eq!((retried.len(), retried[0].attempts), (1, 1));
    assert_eq!(store.deliveries_owed(), 1);
    // The server's own secret is made once and kept.
    let s1 = store.webhook_secret(None).unwrap();
    assert_eq!(store.webhook_secret(None).unwrap(), s1);
}

#[test]
fn a_store_dropped_in_this_process_can_be_reopened_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20u64 {
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let task = store.create_task(params("reopened")).unwrap();
        assert_eq!(
            task.id,
            round + 1,
            "every earlier round's task is still there"
        );
    }
}

#[test]
fn a_store_held_open_elsewhere_is_an_error_after_a_bounded_wait() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path()).unwrap();
    let started = std::time::Instant::now();
    let err = Store::open(dir.path()).err().expect("the lock is held");
    let waited = started.elapsed();
    assert!(err.to_string().contains("lock"), "{err}");
    assert!(
        waited < std::time::Duration::from_secs(30),
        "waited {waited:?}"
    );
}
