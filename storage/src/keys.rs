//! Byte encodings of the sled keys and values; big-endian so that byte order is numeric order.

use crate::error::{Result, StoreError};
use crate::task::TaskStatus;

/// Key of the id counter in the `meta` tree.
pub const NEXT_ID: &[u8] = b"next_id";

pub fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

pub fn status_byte(status: TaskStatus) -> u8 {
    // ALL lists every variant, so the position always exists.
    TaskStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or(0) as u8
}

/// `by_status` key: status byte then id, so one status is one contiguous id-ordered range.
pub fn index_key(status: TaskStatus, id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = status_byte(status);
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// `meta` key of the number of tasks in `status`.
pub fn count_key(status: TaskStatus) -> [u8; 6] {
    let mut k = *b"count\0";
    k[5] = status_byte(status);
    k
}

pub fn decode_u64(bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("expected 8 bytes, found {}", bytes.len())))?;
    Ok(u64::from_be_bytes(arr))
}

/// The id at the end of a `by_status` key.
pub fn index_id(key: &[u8]) -> Result<u64> {
    key.get(1..)
        .ok_or_else(|| StoreError::Corrupt("empty index key".into()))
        .and_then(decode_u64)
}

/// `by_owner` key: the owner's id, a zero byte, then the task id, so one owner's tasks are
/// one contiguous id-ordered range (key ids never contain a zero byte).
pub fn by_owner_key(owner: &str, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(owner.len() + 9);
    k.extend_from_slice(owner.as_bytes());
    k.push(0);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `meta` key set once every task and cache entry is in the retention and cache-owner trees
/// (a database from before those trees is indexed on its first open).
pub const RETENTION_INDEXED: &[u8] = b"retention_indexed";

/// The `retention` tree holds three kinds of keys, told apart by their first byte.
const FINISHED: u8 = b'f';
const FINISHED_AT: u8 = b'a';
const USER: u8 = b'u';

/// `retention` key ordering final tasks by when they finished: `f` ++ ms ++ id -> ().
pub fn finished_key(ms: u64, id: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = FINISHED;
    k[1..9].copy_from_slice(&ms.to_be_bytes());
    k[9..].copy_from_slice(&id.to_be_bytes());
    k
}

/// Prefix of every [`finished_key`], oldest first.
pub const FINISHED_PREFIX: [u8; 1] = [FINISHED];

/// The (finished ms, id) of a [`finished_key`].
pub fn decode_finished(key: &[u8]) -> Result<(u64, u64)> {
    match key {
        [FINISHED, rest @ ..] if rest.len() == 16 => {
            Ok((decode_u64(&rest[..8])?, decode_u64(&rest[8..])?))
        }
        _ => Err(StoreError::Corrupt(format!(
            "bad finished-index key of {} bytes",
            key.len()
        ))),
    }
}

/// `retention` key `a` ++ id -> finished ms: finds a task's [`finished_key`] from its id.
pub fn finished_at_key(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = FINISHED_AT;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// Prefix of the [`user_key`]s of every task whose artifact is the video at `video`. The NUL
/// ends the path (no path contains one), so `a/b` does not also match `a/bc`.
pub fn users_prefix(video: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(video.len() + 10);
    k.push(USER);
    k.extend_from_slice(video.as_bytes());
    k.push(0);
    k
}

/// `retention` key `u` ++ video path ++ NUL ++ id -> (): one task using an artifact, so that
/// files shared through the result cache go only with their last user.
pub fn user_key(video: &str, id: u64) -> Vec<u8> {
    let mut k = users_prefix(video);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The id at the end of a [`user_key`].
pub fn user_id(key: &[u8]) -> Result<u64> {
    key.len()
        .checked_sub(8)
        .ok_or_else(|| StoreError::Corrupt("short artifact-user key".into()))
        .and_then(|at| decode_u64(&key[at..]))
}

/// `cache_owners` key: task id ++ cache key -> (), the cache keys answered by one task.
pub fn owner_key(id: u64, cache_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + cache_key.len());
    k.extend_from_slice(&id.to_be_bytes());
    k.extend_from_slice(cache_key);
    k
}
