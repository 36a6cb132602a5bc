//! Whether the engine can run tasks: a dying timely worker or post-processing thread reports
//! here, the engine's supervisor hears it, fails the tasks that instance held and starts a
//! fresh one, and `/readyz` and submissions read the state meanwhile.

use std::any::Any;
use std::sync::{Mutex, MutexGuard};

use crossbeam::channel::{Receiver, Sender};

/// The engine's health, shared by its threads and the API.
pub struct Health {
    down: Mutex<Option<String>>,
    deaths: Sender<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Health {
    /// Healthy, with the receiving end of death reports (for the supervisor).
    pub fn new() -> (Health, Receiver<String>) {
        let (deaths, rx) = crossbeam::channel::unbounded();
        (
            Health {
                down: Mutex::new(None),
                deaths,
            },
            rx,
        )
    }

    /// A thread of the engine is dying: `what` says which and why.
    pub fn report_death(&self, what: String) {
        tracing::error!(reason = %what, "engine thread died");
        metrics::counter!("reel_errors_total", "kind" => "engine_thread_died").increment(1);
        self.set_down(what.clone());
        // The supervisor outlives every thread it starts; a closed channel means shutdown.
        let _ = self.deaths.send(what);
    }

    /// Marks the engine unavailable for `reason` (until [`Health::set_up`]).
    pub fn set_down(&self, reason: String) {
        *lock(&self.down) = Some(reason);
    }

    /// Marks the engine available again.
    pub fn set_up(&self) {
        *lock(&self.down) = None;
    }

    /// `Err(reason)` while the engine cannot run tasks.
    pub fn check(&self) -> Result<(), String> {
        match lock(&self.down).as_ref() {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }
}

/// The text of a panic's payload (what `panic!` was given), for reports.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
