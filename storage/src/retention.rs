//! Retention: ageing the files of old finished tasks out of the data dir.

use std::collections::{BTreeMap, HashSet};
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::error::Result;
use crate::keys::decode_u64;
use crate::store::{now_ms, Store};
use crate::task::{TaskRecord, TaskStatus};

/// `data_dir/rel` if `rel` is a plain relative path (no `..`, no root): records never name
/// files outside the data dir, and retention must never delete any.
fn inside(data_dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !rel.as_os_str().is_empty()).then(|| data_dir.join(rel))
}

fn remove(path: Option<PathBuf>, dir: bool) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let res = if dir {
        std::fs::remove_dir_all(&path)
    } else {
        std::fs::remove_file(&path)
    };
    match res {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

impl Store {
    /// Deletes the video and frames of final tasks last updated more than `max_age` ago,
    /// clears their `artifact`, and drops the result-cache entries pointing at them. Files
    /// shared by several tasks (a cache hit reuses an artifact) go only when every task using
    /// them has expired. Returns how many tasks lost their artifact.
    pub fn remove_expired_artifacts(&self, data_dir: &Path, max_age: Duration) -> Result<usize> {
        let cutoff = now_ms().saturating_sub(max_age.as_millis() as u64);
        // Every final task with files, grouped by the video they point at.
        let mut by_video: BTreeMap<String, Vec<TaskRecord>> = BTreeMap::new();
        for status in [
            TaskStatus::Completed,
            TaskStatus::Failed,
            TaskStatus::Cancelled,
        ] {
            let (records, _) = self.list(Some(status), usize::MAX, None)?;
            for r in records {
                if let Some(a) = &r.artifact {
                    by_video.entry(a.video.clone()).or_default().push(r);
                }
            }
        }
        let mut cleared = Vec::new();
        for (video, users) in by_video {
            if users.iter().any(|r| r.updated_ms > cutoff) {
                continue;
            }
            remove(inside(data_dir, &video), false)?;
            for r in users {
                if let Some(a) = &r.artifact {
                    remove(inside(data_dir, &a.frames_dir), true)?;
                }
                self.update(r.id, |r| r.artifact = None)?;
                cleared.push(r.id);
            }
        }
        if !cleared.is_empty() {
            let gone: HashSet<u64> = cleared.iter().copied().collect();
            for item in self.cache.tree.iter() {
                let (k, v) = item?;
                if gone.contains(&decode_u64(&v)?) {
                    self.cache.tree.remove(k)?;
                }
            }
            self.cache.forget_tasks(&cleared);
            self.db.flush()?;
        }
        Ok(cleared.len())
    }
}
