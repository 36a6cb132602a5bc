//! [`TaskService`]: the transition, the write, the event and the metric, in one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use contract::{Progress, TaskEvent, TaskStatus};
use storage::{NewTask, Store, StoreError, TaskRecord};
use tokio::sync::broadcast;

/// Events buffered per watcher before a slow one starts missing some (progress is
/// cumulative, so the next event brings it up to date).
const CHANNEL_CAPACITY: usize = 1024;

/// What a task that is not final keeps in memory.
struct Live {
    events: broadcast::Sender<TaskEvent>,
    progress: Progress,
    owner: Option<String>,
}

impl Live {
    fn new(record: &TaskRecord) -> Live {
        Live {
            events: broadcast::channel(CHANNEL_CAPACITY).0,
            progress: Progress::new(record.params.num_scenes),
            owner: record.owner.clone(),
        }
    }
}

/// Watching a task: its events from now on, or, once it has ended, its stored record.
pub enum Subscription {
    /// The task is live: the record as it was just after subscribing, and what follows.
    Live {
        /// The stored record.
        record: TaskRecord,
        /// Its events from the moment of subscribing; the last is `Done`.
        events: broadcast::Receiver<TaskEvent>,
    },
    /// The task has ended (or the engine does not hold it); everything is in the record.
    Ended(TaskRecord),
}

/// The result of a change: the record after it, `None` when the store has no such task, or
/// why nothing was applied.
pub type Transition = Result<Option<TaskRecord>, StoreError>;

/// The single owner of every task's life. Cheap to share behind an `Arc`.
pub struct TaskService {
    store: Arc<Store>,
    live: Mutex<HashMap<u64, Live>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the server down with a poisoned lock; the map stays
    // consistent because every critical section is a single insert, remove or field update.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TaskService {
    /// A service over `store`, holding no live task yet (see [`TaskService::resume`]).
    pub fn new(store: Arc<Store>) -> TaskService {
        TaskService {
            store,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The store, for reads (records, lists, counts, keys, the result cache).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Stores a new queued task (flushed: acknowledged means durable) and makes it live.
    pub fn create(&self, new: NewTask) -> Result<TaskRecord, StoreError> {
        self.create_then(new, || {})
    }

    /// [`TaskService::create`], running `on_live` under the live-state lock as the task
    /// becomes live: whoever counts with [`TaskService::with_live_of`] sees the new task and
    /// what `on_live` did together, never one without the other (the API's quotas release
    /// the task's reservation there, so it is never counted twice or not at all).
    pub fn create_then(
        &self,
        new: NewTask,
        on_live: impl FnOnce(),
    ) -> Result<TaskRecord, StoreError> {
        let record = self.store.create_task(new)?;
        {
            let mut live = lock(&self.live);
            live.insert(record.id, Live::new(&record));
            on_live();
        }
        metrics::counter!("reel_task_transitions_total", "status" => TaskStatus::Queued.name())
            .increment(1);
        Ok(record)
    }

    /// Every task a previous run left unfinished, moved back to queued and made live again,
    /// oldest first: what the engine takes again at start-up.
    pub fn resume(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let mut out = Vec::new();
        for record in self.store.unfinished()? {
            let record = if record.status == TaskStatus::Queued {
                record
            } else {
                tracing::info!(
                    task = record.id,
                    status = record.status.name(),
                    "queued again after restart"
                );
                match self
                    .store
                    .transition(record.id, TaskStatus::Queued, |_| {})?
                {
                    Some(r) => r,
                    None => continue,
                }
            };
            lock(&self.live).insert(record.id, Live::new(&record));
            out.push(record);
        }
        Ok(out)
    }

    /// Moves the task to `to`, applying `f` to the record in the same write, if the
    /// transition table allows it; then tells the watchers and counts it. Reaching a final
    /// status ends the task's live state (its watchers get `Done`). Refused transitions change
    /// nothing and are logged. `Ok(None)`: no such task.
    pub fn advance(&self, id: u64, to: TaskStatus, f: impl FnOnce(&mut TaskRecord)) -> Transition {
        let record = match self.store.transition(id, to, f) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(None),
            Err(e @ StoreError::IllegalTransition { .. }) => {
                tracing::warn!(task = id, error = %e, "transition refused");
                metrics::counter!("reel_transitions_refused_total").increment(1);
                return Err(e);
            }
            Err(e) => {
                tracing::error!(task = id, to = to.name(), error = %e, "transition not stored");
                return Err(e);
            }
        };
        metrics::counter!("reel_task_transitions_total", "status" => to.name()).increment(1);
        let mut live = lock(&self.live);
        if to.is_final() {
            if let Some(l) = live.remove(&id) {
                let _ = l.events.send(TaskEvent::Status(to));
                let _ = l.events.send(TaskEvent::Done(to));
            }
        } else if let Some(l) = live.get(&id) {
            let _ = l.events.send(TaskEvent::Status(to));
        }
        Ok(Some(record))
    }

    /// Moves a live task back to `Queued` from wherever it stood in the pipeline, keeping its
    /// watchers (they see the status change): what the engine does when the computation that
    /// ran it was lost. `Ok(None)` when the task is not live (it ended meanwhile).
    pub fn requeue(&self, id: u64) -> Transition {
        if !self.is_live(id) {
            return Ok(None);
        }
        match self.store.get(id)? {
            Some(r) if r.status == TaskStatus::Queued => Ok(Some(r)),
            Some(_) => self.advance(id, TaskStatus::Queued, |_| {}),
            None => Ok(None),
        }
    }

    /// Fails a live task with `reason` (shown to its client). False when it was not live (it
    /// had ended already, or the failure could not be stored: then it is logged).
    pub fn fail(&self, id: u64, reason: &str) -> bool {
        let failed = matches!(
            self.advance(id, TaskStatus::Failed, |r| r.error =
                Some(reason.to_owned())),
            Ok(Some(_))
        );
        if failed {
            tracing::error!(task = id, reason, "task failed");
            metrics::counter!("reel_errors_total", "kind" => "task_failed").increment(1);
        } else {
            // Usually it had ended already (cancelled, deleted) and the error is its
            // cleanup racing that; the refusal itself is logged by `advance`.
            tracing::debug!(task = id, reason, "failure of a task that was not live");
        }
        failed
    }

    /// Cancels a task that has not ended; an ended one is answered as it is, so repeating
    /// the call is harmless. The engine drops the task's work at its next check of
    /// [`TaskService::is_live`]. `Ok(None)`: no such task.
    pub fn cancel(&self, id: u64) -> Transition {
        match self.advance(id, TaskStatus::Cancelled, |_| {}) {
            Err(StoreError::IllegalTransition { .. }) => self.store.get(id),
            other => other,
        }
    }

    /// Changes fields other than the status (plan, timings, scenes done) of a task that has
    /// not ended; on an ended one it does nothing (late work of a cancelled task is dropped).
    pub fn patch(&self, id: u64, f: impl FnOnce(&mut TaskRecord)) -> Transition {
        let result = self.store.update(id, |r| {
            if !r.status.is_final() {
                f(r)
            }
        });
        if let Err(e) = &result {
            tracing::error!(task = id, error = %e, "task update not stored");
        }
        result
    }

    /// True while the task has not ended: the engine's operators drop a task's work as soon
    /// as this turns false (cancelled, failed elsewhere).
    pub fn is_live(&self, id: u64) -> bool {
        lock(&self.live).contains_key(&id)
    }

    /// Tasks with live state (none of them final): what the service holds in memory.
    pub fn live_count(&self) -> usize {
        lock(&self.live).len()
    }

    /// The ids of every live task.
    pub fn live_ids(&self) -> Vec<u64> {
        lock(&self.live).keys().copied().collect()
    }

    /// `f` of the number of live tasks created by `owner` (the per-key in-flight count),
    /// called under the live-state lock, so that no task becomes live or ends while `f` runs.
    pub fn with_live_of<R>(&self, owner: &str, f: impl FnOnce(usize) -> R) -> R {
        let live = lock(&self.live);
        let n = live
            .values()
            .filter(|l| l.owner.as_deref() == Some(owner))
            .count();
        f(n)
    }

    /// Resets the task's progress to `scenes` scenes, none done (after planning).
    pub fn begin(&self, id: u64, scenes: usize) {
        if let Some(l) = lock(&self.live).get_mut(&id) {
            l.progress = Progress::new(scenes);
        }
    }

    /// One denoising step of one scene finished.
    pub fn step(&self, id: u64, scene: usize, step: usize, steps: usize) {
        let mut live = lock(&self.live);
        let Some(l) = live.get_mut(&id) else { return };
        let p = &mut l.progress;
        if let Some(s) = p.scenes.get_mut(scene) {
            *s = step as f32 / steps.max(1) as f32;
        }
        p.overall = p.scenes.iter().sum::<f32>() / p.scenes.len().max(1) as f32;
        let overall = p.overall;
        let _ = l.events.send(TaskEvent::Step {
            scene,
            step,
            steps,
            overall,
        });
    }

    /// True while somebody watches the live task (an open event stream, live stream or
    /// subscription): the engine makes previews only then.
    pub fn watched(&self, id: u64) -> bool {
        lock(&self.live)
            .get(&id)
            .is_some_and(|l| l.events.receiver_count() > 0)
    }

    /// A preview of `scene` after `step` of `steps`: a PNG of the model's current estimate of
    /// its clean frames, sent to the task's watchers (progress is not changed: `step` says
    /// that). Nothing happens for a task that is not live.
    pub fn preview(&self, id: u64, scene: usize, step: usize, steps: usize, png: Arc<[u8]>) {
        let live = lock(&self.live);
        let Some(l) = live.get(&id) else { return };
        let _ = l.events.send(TaskEvent::Preview {
            scene,
            step,
            steps,
            png,
        });
    }

    /// Delivered frame `index` is stored; frames arrive in index order.
    pub fn frame(&self, id: u64, index: usize) {
        let mut live = lock(&self.live);
        let Some(l) = live.get_mut(&id) else { return };
        l.progress.frames_ready = l.progress.frames_ready.max(index + 1);
        let _ = l.events.send(TaskEvent::Frame { index });
    }

    /// Step-level progress of a live task.
    pub fn progress(&self, id: u64) -> Option<Progress> {
        lock(&self.live).get(&id).map(|l| l.progress.clone())
    }

    /// Watches a task. `Ok(None)` for a task the store does not hold, which leaves nothing
    /// behind; an ended task is answered from the store.
    pub fn subscribe(&self, id: u64) -> Result<Option<Subscription>, StoreError> {
        // Subscribe first, read second: whatever happens after the read is then seen.
        let events = lock(&self.live).get(&id).map(|l| l.events.subscribe());
        let Some(record) = self.store.get(id)? else {
            return Ok(None);
        };
        Ok(Some(match events {
            Some(events) => Subscription::Live { record, events },
            None => Subscription::Ended(record),
        }))
    }
}

#[cfg(test)]
mod tests {
    use storage::TaskParams;

    use super::*;

    fn service() -> (tempfile::TempDir, TaskService) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        (dir, TaskService::new(store))
    }

    fn new_task(owner: Option<&str>) -> NewTask {
        NewTask {
            owner: owner.map(str::to_owned),
            ..NewTask::anonymous(TaskParams {
                prompt: "a red circle".into(),
                num_scenes: 2,
                seed: 1,
                steps: 2,
                guidance: 4.0,
                seconds_per_scene: 1.0,
                fps: 8,
                size: 64,
                free_form: None,
            })
        }
    }

    #[test]
    fn a_task_lives_from_creation_to_its_final_status() {
        let (_dir, s) = service();
        let t = s.create(new_task(Some("key_a"))).unwrap();
        assert_eq!(
            (
                s.live_count(),
                s.with_live_of("key_a", |n| n),
                s.with_live_of("key_b", |n| n)
            ),
            (1, 1, 0)
        );
        let Some(Subscription::Live { mut events, .. }) = s.subscribe(t.id).unwrap() else {
            panic!("a created task is live");
        };
        s.advance(t.id, TaskStatus::Planning, |_| {}).unwrap();
        s.begin(t.id, 2);
        s.step(t.id, 1, 1, 2);
        let png: Arc<[u8]> = Arc::from(&b"\x89PNG"[..]);
        s.preview(t.id, 1, 1, 2, png.clone());
        s.frame(t.id, 0);
        assert_eq!(s.progress(t.id).unwrap().overall, 0.25);
        assert!(s.fail(t.id, "boom"));
        let got: Vec<TaskEvent> = std::iter::from_fn(|| events.try_recv().ok()).collect();
        assert_eq!(
            got,
            vec![
                TaskEvent::Status(TaskStatus::Planning),
                TaskEvent::Step {
                    scene: 1,
                    step: 1,
                    steps: 2,
                    overall: 0.25
                },
                TaskEvent::Preview {
                    scene: 1,
                    step: 1,
                    steps: 2,
                    png
                },
                TaskEvent::Frame { index: 0 },
                TaskEvent::Status(TaskStatus::Failed),
                TaskEvent::Done(TaskStatus::Failed),
            ]
        );
        assert_eq!(s.live_count(), 0);
        assert!(s.progress(t.id).is_none());
        let stored = s.store().get(t.id).unwrap().unwrap();
        assert_eq!(stored.error.as_deref(), Some("boom"));
        // Ended: watched from the store, and nothing leaves a final status.
        assert!(matches!(
            s.subscribe(t.id).unwrap(),
            Some(Subscription::Ended(_))
        ));
        assert!(!s.fail(t.id, "again"));
        assert_eq!(s.cancel(t.id).unwrap().unwrap().status, TaskStatus::Failed);
        s.patch(t.id, |r| r.scenes_done = 2).unwrap();
        assert_eq!(s.store().get(t.id).unwrap().unwrap(), stored);
    }

    #[test]
    fn a_task_is_watched_while_a_subscription_is_held() {
        let (_dir, s) = service();
        let t = s.create(new_task(None)).unwrap();
        assert!(!s.watched(t.id));
        let sub = s.subscribe(t.id).unwrap();
        assert!(s.watched(t.id));
        drop(sub);
        assert!(!s.watched(t.id));
        let _again = s.subscribe(t.id).unwrap();
        s.cancel(t.id).unwrap();
        assert!(!s.watched(t.id), "an ended task is nobody's to watch");
    }

    #[test]
    fn illegal_transitions_change_nothing_and_send_nothing() {
        let (_dir, s) = service();
        let t = s.create(new_task(None)).unwrap();
        let Some(Subscription::Live { mut events, .. }) = s.subscribe(t.id).unwrap() else {
            panic!("live");
        };
        for to in [
            TaskStatus::Generating,
            TaskStatus::Encoding,
            TaskStatus::Completed,
        ] {
            assert!(matches!(
                s.advance(t.id, to, |r| r.scenes_done = 5),
                Err(StoreError::IllegalTransition { .. })
            ));
        }
        assert_eq!(s.store().get(t.id).unwrap().unwrap(), t);
        assert!(events.try_recv().is_err());
        assert!(s.is_live(t.id));
    }

    #[test]
    fn unknown_tasks_leave_no_state() {
        let (_dir, s) = service();
        for id in 100..1100 {
            assert!(s.subscribe(id).unwrap().is_none());
            assert!(s.progress(id).is_none());
            s.step(id, 0, 1, 2);
            s.preview(id, 0, 1, 2, Arc::from(&[][..]));
            assert!(!s.watched(id));
            s.frame(id, 0);
            assert!(s.cancel(id).unwrap().is_none());
        }
        assert_eq!(s.live_count(), 0);
    }

    #[test]
    fn resume_requeues_what_a_previous_run_left() {
        let dir = tempfile::tempdir().unwrap();
        let ids = {
            let s = TaskService::new(Arc::new(Store::open(dir.path()).unwrap()));
            let a = s.create(new_task(None)).unwrap().id;
            let b = s.create(new_task(None)).unwrap().id;
            let c = s.create(new_task(None)).unwrap().id;
            s.advance(b, TaskStatus::Planning, |_| {}).unwrap();
            s.advance(b, TaskStatus::Generating, |_| {}).unwrap();
            s.cancel(c).unwrap();
            [a, b]
        };
        let s = TaskService::new(Arc::new(Store::open(dir.path()).unwrap()));
        assert_eq!(s.live_count(), 0);
        let resumed = s.resume().unwrap();
        assert_eq!(resumed.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
        assert!(resumed.iter().all(|r| r.status == TaskStatus::Queued));
        assert_eq!(s.live_count(), 2);
    }
}
