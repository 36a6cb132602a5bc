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
pub fn owner_key(owner: &str, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(owner.len() + 9);
    k.extend_from_slice(owner.as_bytes());
    k.push(0);
    k.extend_from_slice(&id.to_be_bytes());
    k
}
