//! Retention: old finished tasks leave the data dir and the database.
//!
//! The `retention` tree (key kinds in `keys`) orders final tasks by when they finished, so a
//! sweep reads the expired entries and the first young one and nothing else; and it records
//! which tasks use each artifact, so that files shared through the result cache go only with
//! their last user. [`follow`] keeps it in step inside every `Store::update` transaction.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;
use std::time::Duration;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use crate::error::{Result, StoreError};
use crate::keys::{
    by_owner_key, decode_finished, decode_u64, finished_at_key, finished_key, id_key, index_key,
    user_id, user_key, users_prefix, FINISHED_PREFIX, RETENTION_INDEXED,
};
use crate::store::{bump_count, now_ms, Store, TxResult};
use crate::task::{inside, task_dir, Artifact, TaskRecord};

/// What one [`Store::remove_expired`] call did.
#[derive(Debug, Default)]
pub struct Removed {
    /// Tasks deleted from the database: record, indexes, count and result-cache keys.
    pub tasks: usize,
    /// Artifact files deleted.
    pub files: u64,
    /// Their size in bytes.
    pub bytes: u64,
    /// Time-index entries read: the expired ones handled, plus the entry that ended the walk
    /// (the first young one, or the one past the batch limit). The sweep reads no others.
    pub examined: usize,
    /// Tasks whose files could not be deleted, with the reason. They keep their record and
    /// index entries, so the next sweep tries again.
    pub failed: Vec<(u64, StoreError)>,
    /// The batch limit ended this call with expired tasks left: call again.
    pub more: bool,
}

fn video(r: &TaskRecord) -> Option<&str> {
    r.artifact.as_ref().map(|a| a.video.as_str())
}

/// Brings the `retention` tree from `before` (None: a task not indexed yet) to `after`, in the
/// caller's transaction. A task is indexed under the time it entered a final status; a later
/// final-to-final change keeps that time, and leaving the final statuses drops the entry.
pub(crate) fn follow(
    tree: &TransactionalTree,
    before: Option<&TaskRecord>,
    after: &TaskRecord,
) -> TxResult<()> {
    let id = after.id;
    let was_final = before.is_some_and(|b| b.status.is_final());
    match (was_final, after.status.is_final()) {
        (false, true) => {
            let ms = after.updated_ms;
            tree.insert(&finished_key(ms, id)[..], &[][..])?;
            tree.insert(&finished_at_key(id)[..], &ms.to_be_bytes()[..])?;
        }
        (true, false) => {
            if let Some(ms) = tree.remove(&finished_at_key(id)[..])? {
                let ms = decode_u64(&ms).map_err(ConflictableTransactionError::Abort)?;
                tree.remove(&finished_key(ms, id)[..])?;
            }
        }
        _ => {}
    }
    let (old, new) = (before.and_then(video), video(after));
    if old != new {
        if let Some(v) = old {
            tree.remove(user_key(v, id))?;
        }
        if let Some(v) = new {
            tree.insert(user_key(v, id), &[][..])?;
        }
    }
    Ok(())
}

/// How often [`remove_tree`] lists a directory again when a file appeared in it while it was
/// being emptied.
const RELIST: usize = 8;

/// Deletes `path`, a file or a directory with everything in it, tallying the files. Symlinks
/// are deleted, not followed, so nothing outside `path` goes. A missing path is no error: a
/// crash may have come between deleting the files and deleting the record, and a task cancelled
/// just before its deletion may still have a frame write in flight (its temporary file renamed
/// away, or a new file added, under the walk), so vanished entries are skipped and a directory
/// that filled again is listed again.
fn remove_tree(path: &Path, out: &mut Removed) -> std::io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        meta => meta?,
    };
    if !meta.is_dir() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(()) => {
                out.files += 1;
                out.bytes += meta.len();
                Ok(())
            }
        };
    }
    let mut listed = 0;
    loop {
        let entries = match fs::read_dir(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            entries => entries?,
        };
        for entry in entries {
            match entry {
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                entry => remove_tree(&entry?.path(), out)?,
            }
        }
        listed += 1;
        match fs::remove_dir(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty && listed < RELIST => {}
            done => return done,
        }
    }
}

/// Deletes what a task that ended without an artifact (failed, cancelled) may have stored:
/// its own directory, `storage::task_dir`.
fn remove_partial(data_dir: &Path, id: u64, out: &mut Removed) -> std::io::Result<()> {
    match inside(data_dir, task_dir(id)) {
        Some(path) => remove_tree(&path, out),
        None => Ok(()),
    }
}

/// Deletes an artifact's video and frames, then the directory holding the video (the task's
/// own directory, `storage::task_dir`) if that left it empty.
fn remove_artifact(data_dir: &Path, a: &Artifact, out: &mut Removed) -> std::io::Result<()> {
    for rel in [&a.video, &a.frames_dir] {
        if let Some(path) = inside(data_dir, rel) {
            remove_tree(&path, out)?;
        }
    }
    let parent = Path::new(&a.video)
        .parent()
        .and_then(|p| inside(data_dir, p));
    match parent.map(fs::remove_dir) {
        Some(Err(e)) if !matches!(e.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty) => {
            Err(e)
        }
        _ => Ok(()),
    }
}

impl Store {
    /// Most tasks one [`Store::remove_expired`] call deletes. Each takes the write lock once,
    /// briefly; the limit bounds one call when a backlog has piled up (the first sweep of an
    /// old database, a shorter retention).
    pub const EXPIRE_BATCH: usize = 256;

    /// Deletes final tasks that finished (entered a final status) more than `max_age` ago,
    /// oldest first, at most [`Store::EXPIRE_BATCH`] of them: first the task's artifact files
    /// under `data_dir` (only there, and only once no other task uses them), then in one
    /// transaction its record, index entries, count and result-cache keys. A task whose files
    /// cannot be deleted stays, reported in [`Removed::failed`], and is retried next call.
    pub fn remove_expired(&self, data_dir: &Path, max_age: Duration) -> Result<Removed> {
        let cutoff = now_ms().saturating_sub(max_age.as_millis() as u64);
        let mut out = Removed::default();
        for item in self.retention.scan_prefix(FINISHED_PREFIX) {
            let (key, _) = item?;
            out.examined += 1;
            let (finished_ms, id) = decode_finished(&key)?;
            if finished_ms > cutoff {
                break;
            }
            if out.tasks == Self::EXPIRE_BATCH {
                out.more = true;
                break;
            }
            self.expire(data_dir, finished_ms, id, &mut out)?;
        }
        if out.tasks > 0 {
            // Files are gone already; a record that came back after a crash would name them.
            self.db.flush()?;
        }
        Ok(out)
    }

    /// Deletes one finished task now, as retention would once it expired: its files (unless
    /// another task shares them), record, indexes, count and cache keys. `Ok(false)` when no
    /// such task is stored, or it has not ended (cancel it first); an error when its files
    /// cannot be deleted (then it stays, whole).
    pub fn delete_finished(&self, data_dir: &Path, id: u64) -> Result<bool> {
        let Some(ms) = self.retention.get(finished_at_key(id))? else {
            return Ok(false);
        };
        let mut out = Removed::default();
        self.expire(data_dir, decode_u64(&ms)?, id, &mut out)?;
        if let Some((_, e)) = out.failed.pop() {
            return Err(e);
        }
        Ok(out.tasks == 1)
    }

    /// Deletes one expired task (see [`Store::remove_expired`]) under the write lock.
    fn expire(&self, data_dir: &Path, finished_ms: u64, id: u64, out: &mut Removed) -> Result<()> {
        let _guard = self.lock();
        // The walk reads without the lock: an update may have taken the task out of its final
        // status since, and its entry with it.
        if !self.retention.contains_key(finished_key(finished_ms, id))? {
            return Ok(());
        }
        let record = self.get(id)?.ok_or_else(|| {
            StoreError::Corrupt(format!("task {id} is in the time index but not stored"))
        })?;
        if let Some(a) = &record.artifact {
            if !self.shared(&a.video, id)? {
                if let Err(e) = remove_artifact(data_dir, a, out) {
                    out.failed.push((id, e.into()));
                    return Ok(());
                }
            }
        } else if let Err(e) = remove_partial(data_dir, id, out) {
            out.failed.push((id, e.into()));
            return Ok(());
        }
        let owned = self
            .cache
            .owners
            .scan_prefix(id_key(id))
            .keys()
            .collect::<sled::Result<Vec<_>>>()?;
        let trees = (
            &self.tasks,
            &self.by_status,
            &self.by_owner,
            &self.meta,
            &self.retention,
            &self.cache.tree,
            &self.cache.owners,
        );
        let owner_entry = record.owner.as_deref().map(|o| by_owner_key(o, id));
        trees.transaction(|(tasks, index, by_owner, meta, retention, cache, owners)| {
            tasks.remove(&id_key(id)[..])?;
            index.remove(&index_key(record.status, id)[..])?;
            if let Some(k) = &owner_entry {
                by_owner.remove(k.as_slice())?;
            }
            bump_count(meta, record.status, -1)?;
            retention.remove(&finished_key(finished_ms, id)[..])?;
            retention.remove(&finished_at_key(id)[..])?;
            if let Some(v) = video(&record) {
                retention.remove(user_key(v, id))?;
            }
            for k in &owned {
                owners.remove(k)?;
                cache.remove(&k[8..])?;
            }
            Ok(())
        })?;
        let keys: Vec<String> = owned
            .iter()
            .map(|k| String::from_utf8_lossy(&k[8..]).into_owned())
            .collect();
        self.cache.forget(&keys);
        out.tasks += 1;
        Ok(())
    }

    /// Whether a task other than `id` uses the artifact whose video is `video`.
    fn shared(&self, video: &str, id: u64) -> Result<bool> {
        for key in self.retention.scan_prefix(users_prefix(video)).keys() {
            if user_id(&key?)? != id {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Indexes every task and cache entry once, for a database written before the
    /// `retention` and `cache_owners` trees existed; the marker in `meta` makes later opens
    /// skip this. Rerunning it writes the same entries, so a crash half-way is harmless.
    pub(crate) fn index_existing(&self) -> Result<()> {
        if self.meta.contains_key(RETENTION_INDEXED)? {
            return Ok(());
        }
        for item in self.tasks.iter() {
            let (_, v) = item?;
            let record: TaskRecord = serde_json::from_slice(&v)?;
            self.retention
                .transaction(|tree| follow(tree, None, &record))?;
        }
        self.cache.index_existing()?;
        self.meta.insert(RETENTION_INDEXED, &[][..])?;
        self.db.flush()?;
        Ok(())
    }

    /// Bytes the database takes on disk, to watch that retention keeps it bounded.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }
}
