//! Durable task state for reel: a sled database behind a small API of its own.
//!
//! The api crate creates tasks here ([`Store::create_task`]) and serves them back
//! ([`Store::get`], [`Store::list`]); the pipeline advances them ([`Store::update`]), resumes
//! them after a restart ([`Store::unfinished`]), answers repeated requests from the result
//! cache ([`Store::cache_get`]) and ages old tasks out, files and all
//! ([`Store::remove_expired`]).
//! The record itself ([`TaskRecord`]) is the shared contract in [`task`].
//!
//! Layout (one sled db under `dir/db`):
//! - `tasks`: id (u64 big-endian) -> JSON [`TaskRecord`]; ids are creation order, so a
//!   reverse scan is newest first.
//! - `by_status`: status byte ++ id big-endian -> (); the index behind filtered listing.
//! - `by_owner`: owner key id ++ 0 ++ id -> (); one key's tasks, for its own listing.
//! - `meta`: the id counter and one count per status, changed in the same transaction as
//!   the records they describe.
//! - `keys`, `key_ids`: API keys, hashed ([`ApiKey`]).
//! - `outbox`: webhook deliveries owed, by due time ([`Delivery`]).
//! - `retention`: final tasks by finish time (finished ms ++ id -> ()), each task's finish
//!   time (so its entry can be found), and the tasks using each artifact (video path ++ id);
//!   changed in the same transaction as the records.
//! - `cache`: result-cache key -> id of the task whose artifact answers it, fronted by a
//!   bounded in-memory LRU with a TTL ([`CacheConfig`]); `cache_owners` is its reverse
//!   (id ++ key -> ()), so deleting a task drops its keys without a scan.
//!
//! A task stored and read back:
//!
//! ```
//! use storage::{NewTask, Store, TaskParams, TaskStatus};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let params = TaskParams {
//!     prompt: "a small red circle moving left on a black background".into(),
//!     num_scenes: 1,
//!     seed: 7,
//!     steps: 20,
//!     guidance: 4.0,
//!     seconds_per_scene: 2.0,
//!     fps: 24,
//!     size: 256,
//!     free_form: None,
//! };
//! let task = store.create_task(NewTask::anonymous(params.clone()))?;
//! assert_eq!((task.id, task.status), (1, TaskStatus::Queued));
//! let read = store.get(task.id)?.expect("the task just stored");
//! assert_eq!(read.params, params);
//! assert!(store.get(task.id + 1)?.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod api_keys;
mod cache;
mod error;
mod keys;
mod outbox;
mod retention;
mod store;
pub mod task;

pub use api_keys::{ApiKey, CreatedKey};
pub use cache::{CacheConfig, CacheStats};
pub use error::{Result, StoreError};
pub use outbox::Delivery;
pub use retention::Removed;
pub use store::{now_ms, Store};
pub use task::*;
