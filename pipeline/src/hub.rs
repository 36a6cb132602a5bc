//! The hub: what the dataflow tells the outside world while it works.
//!
//! Operators publish status changes, step progress and finished frames here; the API side
//! subscribes (tokio broadcast channels) and reads live progress. Cancellation requests travel
//! the other way: the API marks an id cancelled and the operators drop its work at their next
//! activation. Everything is behind short-lived mutexes; nothing here blocks a worker.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use storage::TaskStatus;
use tokio::sync::broadcast;

use crate::engine::{Progress, TaskEvent};

/// Events buffered per watcher before a slow one starts missing some.
const CHANNEL_CAPACITY: usize = 1024;

#[derive(Default)]
struct Live {
    progress: Progress,
    frames: Vec<Arc<Vec<u8>>>,
}

/// Shared between the engine's workers and the API.
#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<u64, broadcast::Sender<TaskEvent>>>,
    live: Mutex<HashMap<u64, Live>>,
    /// Tasks submitted and not yet out of the dataflow.
    admitted: Mutex<HashSet<u64>>,
    cancelled: Mutex<HashSet<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole server down with poisoned locks.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// A receiver of the task's future events.
    pub fn subscribe(&self, id: u64) -> broadcast::Receiver<TaskEvent> {
        lock(&self.channels)
            .entry(id)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    fn send(&self, id: u64, event: TaskEvent) {
        if let Some(tx) = lock(&self.channels).get(&id) {
            // No receiver is fine: nobody is watching.
            let _ = tx.send(event);
        }
    }

    /// Starts tracking a task about to run with `scenes` scenes.
    pub fn begin(&self, id: u64, scenes: usize) {
        lock(&self.live).insert(
            id,
            Live {
                progress: Progress {
                    overall: 0.0,
                    scenes: vec![0.0; scenes],
                    frames_ready: 0,
                },
                frames: Vec::new(),
            },
        );
    }

    pub fn status(&self, id: u64, status: TaskStatus) {
        self.send(id, TaskEvent::Status(status));
    }

    /// One denoising step of one scene finished.
    pub fn step(&self, id: u64, scene: usize, step: usize, steps: usize) {
        let overall = {
            let mut live = lock(&self.live);
            let Some(l) = live.get_mut(&id) else { return };
            if let Some(p) = l.progress.scenes.get_mut(scene) {
                *p = step as f32 / steps.max(1) as f32;
            }
            let n = l.progress.scenes.len().max(1) as f32;
            l.progress.overall = l.progress.scenes.iter().sum::<f32>() / n;
            l.progress.overall
        };
        self.send(
            id,
            TaskEvent::Step {
                scene,
                step,
                steps,
                overall,
            },
        );
    }

    /// A delivered frame exists (global index across the task's scenes).
    pub fn frame(&self, id: u64, index: usize, jpeg: Arc<Vec<u8>>) {
        if let Some(l) = lock(&self.live).get_mut(&id) {
            l.frames.push(jpeg.clone());
            l.progress.frames_ready = l.frames.len();
        }
        self.send(id, TaskEvent::Frame { index, jpeg });
    }

    /// A task entered the engine.
    pub fn admit(&self, id: u64) {
        lock(&self.admitted).insert(id);
    }

    /// The task has left the dataflow (its epoch is complete): forget everything about it.
    pub fn retire(&self, id: u64) {
        lock(&self.admitted).remove(&id);
        lock(&self.cancelled).remove(&id);
        lock(&self.live).remove(&id);
        lock(&self.channels).remove(&id);
    }

    /// The task reached a final status: tell watchers and drop its live state.
    pub fn done(&self, id: u64, status: TaskStatus) {
        lock(&self.live).remove(&id);
        if let Some(tx) = lock(&self.channels).remove(&id) {
            let _ = tx.send(TaskEvent::Status(status));
            let _ = tx.send(TaskEvent::Done(status));
        }
    }

    pub fn progress(&self, id: u64) -> Option<Progress> {
        lock(&self.live).get(&id).map(|l| l.progress.clone())
    }

    pub fn frames_so_far(&self, id: u64) -> Vec<Arc<Vec<u8>>> {
        lock(&self.live)
            .get(&id)
            .map(|l| l.frames.clone())
            .unwrap_or_default()
    }

    /// Marks an admitted task cancelled; false when it is not in the engine.
    pub fn cancel(&self, id: u64) -> bool {
        if !lock(&self.admitted).contains(&id) {
            return false;
        }
        lock(&self.cancelled).insert(id);
        true
    }

    pub fn is_cancelled(&self, id: u64) -> bool {
        lock(&self.cancelled).contains(&id)
    }
}
