//! The one owner of a task's life.
//!
//! Every change to a task goes through [`TaskService`]: the HTTP handlers (`api`) create and
//! cancel tasks with it, the engine's operators (`pipeline`) advance, fail and report progress
//! with it. One call does the whole change: it checks the transition table
//! ([`contract::TaskStatus::can_become`]), writes the record (`storage`, flushed on a status
//! change), tells the task's watchers ([`contract::TaskEvent`]) and counts the transition in the
//! metrics. An illegal transition is refused and logged, never half-applied.
//!
//! Live state (the watchers' channel and step-level progress) exists only for tasks that are
//! not final, and only for tasks the store holds: it is made when a task is created or taken
//! again after a restart, and dropped when the task reaches a final status, so asking about a
//! task that does not exist, or watching one that has ended, leaves nothing behind. A finished
//! task is served from the store.
//!
//! ```
//! use contract::TaskStatus;
//! use storage::{NewTask, Store, TaskParams};
//! use tasks::TaskService;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let service = TaskService::new(std::sync::Arc::new(Store::open(dir.path()).unwrap()));
//! let params = TaskParams {
//!     prompt: "a red circle".into(), num_scenes: 1, seed: 1, steps: 2, guidance: 4.0,
//!     seconds_per_scene: 1.0, fps: 8, size: 64, free_form: None,
//! };
//! let task = service.create(NewTask::anonymous(params)).unwrap();
//! assert!(service.is_live(task.id));
//! service.advance(task.id, TaskStatus::Planning, |_| {}).unwrap();
//! assert!(service.advance(task.id, TaskStatus::Encoding, |_| {}).is_err()); // not yet
//! service.cancel(task.id).unwrap();
//! assert!(!service.is_live(task.id));
//! ```
#![warn(missing_docs)]

mod service;

pub use service::{Subscription, TaskService, Transition};
