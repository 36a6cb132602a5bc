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
//! - `meta`: the id counter and one count per status, changed in the same transaction as
//!   the records they describe.
//! - `retention`: final tasks by finish time (finished ms ++ id -> ()), each task's finish
//!   time (so its entry can be found), and the tasks using each artifact (video path ++ id);
//!   changed in the same transaction as the records.
//! - `cache`: result-cache key -> id of the task whose artifact answers it, fronted by a
//!   bounded in-memory LRU with a TTL ([`CacheConfig`]); `cache_owners` is its reverse
//!   (id ++ key -> ()), so deleting a task drops its keys without a scan.

mod cache;
mod error;
mod keys;
mod retention;
mod store;
pub mod task;

pub use cache::{CacheConfig, CacheStats};
pub use error::{Result, StoreError};
pub use retention::Removed;
pub use store::Store;
pub use task::*;
