//! Per-key limits on new tasks: at most N in flight and M an hour (429 with Retry-After and
//! the limit named), and one cap for every task's size (400 with the numbers).
//!
//! The hourly window counts creations in memory; at start-up it is filled from the store's
//! newest tasks, so a restart does not reset anybody's hour.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use storage::{now_ms, Store, TaskParams};
use warp::http::StatusCode;

use crate::errors::ApiError;

const HOUR_MS: u64 = 3_600_000;

/// The limits a server enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most unfinished tasks per key.
    pub in_flight_per_key: usize,
    /// Most tasks a key may create in any hour.
    pub per_hour_per_key: usize,
    /// Most pixels one task may deliver (frames x width x height).
    pub max_task_pixels: u64,
    /// Whether webhooks may point at loopback, private and link-local addresses
    /// ([`crate::webhook_target`]); off, only public ones are accepted.
    pub private_webhooks: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            in_flight_per_key: 16,
            per_hour_per_key: 500,
            // 768 frames at 512 x 512: the longest OpenAI-style video (8 scenes of 4 s at 24
            // fps) at the largest size fits; the default task (3 x 48 frames at 256 px) is
            // 9.4 M; the largest /api/tasks request (8 x 10 s x 60 fps at 512 px) is 6x over.
            max_task_pixels: 768 * 512 * 512,
            private_webhooks: false,
        }
    }
}

impl Limits {
    /// Refuses a task whose total pixels exceed the budget, naming the numbers.
    pub fn check_size(&self, p: &TaskParams) -> Result<(), ApiError> {
        let pixels = p.total_pixels();
        if pixels > self.max_task_pixels {
            return Err(ApiError::bad_request(
                "task_too_large",
                format!(
                    "the task would deliver {} frames x {} x {} = {pixels} pixels, over the \
                     budget of {} per task; ask for fewer scenes, seconds, fps or a smaller size",
                    p.num_scenes * p.frames_per_scene(),
                    p.size,
                    p.size,
                    self.max_task_pixels
                ),
            ));
        }
        Ok(())
    }
}

/// Creation times per key within the last hour, and the tasks being created now.
#[derive(Default)]
pub struct Quotas {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    recent: HashMap<String, VecDeque<u64>>,
    /// Per key, tasks admitted and not yet live (being stored): counted as in flight, so that
    /// concurrent requests of one key cannot all pass the check before any is stored.
    reserved: HashMap<String, usize>,
}

fn too_many(message: String, retry_after_secs: u64) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota_exceeded", message)
        .retry_after(retry_after_secs.max(1))
}

impl Quotas {
    /// Fills the hourly window from the store's tasks of the last hour.
    pub fn from_store(store: &Store) -> Result<Quotas, storage::StoreError> {
        let quotas = Quotas::default();
        let since = now_ms().saturating_sub(HOUR_MS);
        let mut cursor = None;
        'pages: loop {
            let (page, next) = store.list(None, 100, cursor)?;
            for r in page {
                if r.created_ms < since {
                    break 'pages;
                }
                if let Some(owner) = r.owner {
                    let mut state = quotas.lock();
                    state
                        .recent
                        .entry(owner)
                        .or_default()
                        .push_front(r.created_ms);
                }
            }
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(quotas)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits one more task of `key`, which has `live` unfinished tasks, and reserves its
    /// place until [`Quotas::stored`]; or says which limit it hit and when to come back.
    ///
    /// `live` must not change until this returns, and a task must become live in the same
    /// step as its reservation is released ([`tasks::TaskService::with_live_of`] and
    /// [`tasks::TaskService::create_then`] do both): otherwise a task is counted twice, or
    /// not at all, for a moment.
    pub fn admit(&self, key: &str, live: usize, limits: &Limits) -> Result<(), ApiError> {
        let mut state = self.lock();
        let reserved = state.reserved.get(key).copied().unwrap_or(0);
        if live + reserved >= limits.in_flight_per_key {
            return Err(too_many(
                format!(
                    "limit of {} tasks in flight per key reached; wait for one to finish",
                    limits.in_flight_per_key
                ),
                5,
            ));
        }
        let now = now_ms();
        let times = state.recent.entry(key.to_owned()).or_default();
        while times.front().is_some_and(|&t| t + HOUR_MS <= now) {
            times.pop_front();
        }
        if times.len() >= limits.per_hour_per_key {
            let oldest = times.front().copied().unwrap_or(now);
            let wait_ms = (oldest + HOUR_MS).saturating_sub(now);
            return Err(too_many(
                format!(
                    "limit of {} tasks per hour per key reached",
                    limits.per_hour_per_key
                ),
                wait_ms.div_ceil(1000),
            ));
        }
        times.push_back(now);
        *state.reserved.entry(key.to_owned()).or_default() += 1;
        Ok(())
    }

    /// The task admitted for `key` is stored and live: it counts as live from now on.
    pub fn stored(&self, key: &str) {
        let mut state = self.lock();
        if let Some(n) = state.reserved.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                state.reserved.remove(key);
            }
        }
    }

    /// Takes back the hourly count of a task admitted for `key` that was then not accepted
    /// (its reservation is released by [`Quotas::stored`], whether or not it was stored).
    pub fn refund(&self, key: &str) {
        if let Some(times) = self.lock().recent.get_mut(key) {
            times.pop_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_themselves_and_keys_are_counted_apart() {
        let limits = Limits {
            in_flight_per_key: 2,
            per_hour_per_key: 3,
            ..Limits::default()
        };
        let q = Quotas::default();
        let e = q.admit("a", 2, &limits).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (429, "quota_exceeded"));
        assert!(e.message.contains("2 tasks in flight"), "{}", e.message);
        // Admitted but not yet stored counts as in flight.
        q.admit("a", 0, &limits).unwrap();
        q.admit("a", 0, &limits).unwrap();
        assert!(q
            .admit("a", 0, &limits)
            .unwrap_err()
            .message
            .contains("in flight"));
        q.stored("a");
        q.stored("a");
        q.admit("a", 0, &limits).unwrap();
        q.stored("a");
        let e = q.admit("a", 0, &limits).unwrap_err();
        assert!(e.message.contains("3 tasks per hour"), "{}", e.message);
        let wait = e.retry_after.unwrap();
        assert!((3590..=3600).contains(&wait), "{wait}");
        q.admit("b", 0, &limits).unwrap();
        q.admit("b", 0, &limits).unwrap();
        for _ in 0..2 {
            q.stored("b");
            q.refund("b");
        }
        q.admit("b", 0, &limits).unwrap();
    }

    #[test]
    fn the_pixel_budget_counts_every_delivered_pixel() {
        let limits = Limits::default();
        let mut p = TaskParams {
            prompt: "x".into(),
            num_scenes: 3,
            seed: 0,
            steps: 20,
            guidance: 4.0,
            seconds_per_scene: 2.0,
            fps: 24,
            size: 256,
            free_form: None,
        };
        assert_eq!(p.total_pixels(), 3 * 48 * 256 * 256);
        limits.check_size(&p).unwrap();
        (p.num_scenes, p.seconds_per_scene, p.fps, p.size) = (8, 10.0, 60, 512);
        let e = limits.check_size(&p).unwrap_err();
        assert_eq!(e.code, "task_too_large");
        assert!(
            e.message.contains("4800 frames x 512 x 512"),
            "{}",
            e.message
        );
    }
}
