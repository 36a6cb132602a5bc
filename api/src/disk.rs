//! The free-space floor (`--min-free-disk`): below it the server takes no new task (507),
//! `/readyz` says why, and the engine's running tasks are failed by the serve loop that
//! watches it, with the reason, while the store can still write that down. Reads the
//! filesystem each time (one `statvfs`, microseconds), so the server recovers by itself as
//! soon as space comes back.

use std::path::PathBuf;

use serde_json::{json, Value};

/// Free space under the data dir against a floor.
pub struct DiskGuard {
    dir: PathBuf,
    floor_bytes: u64,
}

impl DiskGuard {
    /// Watches the filesystem holding `dir`; `floor_bytes` 0 turns the check off.
    pub fn new(dir: PathBuf, floor_bytes: u64) -> DiskGuard {
        DiskGuard { dir, floor_bytes }
    }

    /// Bytes free for this process under the data dir, if the filesystem answers.
    pub fn free_bytes(&self) -> Option<u64> {
        fs4::available_space(&self.dir).ok()
    }

    /// `Err(why)` while free space is below the floor.
    pub fn check(&self) -> Result<(), String> {
        match self.free_bytes() {
            Some(free) if free < self.floor_bytes => Err(format!(
                "free disk space is {} MiB, below the floor of {} MiB; new tasks are refused \
                 until space is freed",
                free >> 20,
                self.floor_bytes >> 20
            )),
            _ => Ok(()),
        }
    }

    /// Free space and the floor, for `/readyz`.
    pub fn describe(&self) -> Value {
        json!({"free_bytes": self.free_bytes(), "floor_bytes": self.floor_bytes})
    }
}
