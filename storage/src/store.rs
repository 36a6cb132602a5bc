//! The task store: records, the status index, the counters, and the listing queries.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;

use crate::cache::{CacheConfig, ResultCache};
use crate::error::{Result, StoreError};
use crate::keys::{by_owner_key, count_key, decode_u64, id_key, index_id, index_key, NEXT_ID};
use crate::retention;
use crate::task::{NewTask, TaskRecord, TaskStatus};

/// The durable home of every task. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    pub(crate) db: sled::Db,
    pub(crate) tasks: sled::Tree,
    pub(crate) by_status: sled::Tree,
    pub(crate) by_owner: sled::Tree,
    pub(crate) meta: sled::Tree,
    /// Finish times and artifact users of tasks, kept by `crate::retention`.
    pub(crate) retention: sled::Tree,
    pub(crate) cache: ResultCache,
    pub(crate) keys: sled::Tree,
    pub(crate) outbox: sled::Tree,
    pub(crate) key_ids: sled::Tree,
    /// Serialises writers so that read-modify-write needs no retry of the caller's closure
    /// (sled transactions may rerun their body; `update` takes an `FnOnce`).
    write_lock: Mutex<()>,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it): every stored timestamp.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) type TxResult<T> =
    std::result::Result<T, ConflictableTransactionError<crate::StoreError>>;

/// Adds `delta` to the stored count of `status` inside a transaction.
pub(crate) fn bump_count(meta: &TransactionalTree, status: TaskStatus, delta: i64) -> TxResult<()> {
    let key = count_key(status);
    let old = match meta.get(key)? {
        Some(v) => decode_u64(&v).map_err(ConflictableTransactionError::Abort)?,
        None => 0,
    };
    let new = old.saturating_add_signed(delta);
    meta.insert(&key[..], &new.to_be_bytes()[..])?;
    Ok(())
}

/// sled's page cache. Its default (1 GiB) lets a long-running server's memory grow with the
/// database for hours; tasks are small records, so 64 MiB holds the hot ones of 100k tasks.
const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// How long opening waits for sled's file lock. A store just dropped in this process (an
/// embedding program or a test reopening its data dir) gives the lock up only when sled's
/// flusher thread next wakes and exits, a few milliseconds later; a lock another process
/// holds is still an error, after this bounded wait.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// sled's database under `path`, waiting up to [`LOCK_WAIT`] for its file lock.
fn open_db(path: &Path) -> sled::Result<sled::Db> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(SLED_CACHE_BYTES);
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            // sled reports a held lock only as an I/O error saying so.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < LOCK_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl Store {
    /// Opens (or creates) the database under `dir/db` with the default cache sizes.
    pub fn open(dir: &Path) -> Result<Store> {
        Store::open_with(dir, CacheConfig::default())
    }

    /// Opens (or creates) the database under `dir/db`, sizing the in-memory result cache.
    pub fn open_with(dir: &Path, cache: CacheConfig) -> Result<Store> {
        let db = open_db(&dir.join("db"))?;
        let store = Store {
            tasks: db.open_tree("tasks")?,
            by_status: db.open_tree("by_status")?,
            by_owner: db.open_tree("by_owner")?,
            meta: db.open_tree("meta")?,
            retention: db.open_tree("retention")?,
            cache: ResultCache::open(db.open_tree("cache")?, db.open_tree("cache_owners")?, cache),
            keys: db.open_tree("keys")?,
            outbox: db.open_tree("outbox")?,
            key_ids: db.open_tree("key_ids")?,
            db,
            write_lock: Mutex::new(()),
        };
        store.index_existing()?;
        Ok(store)
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        // A panic in a caller's closure leaves no half-written state (the write is one
        // transaction after the closure), so a poisoned lock is safe to reuse.
        self.write_lock.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a new queued task under the next id (1, 2, ...) and flushes it to disk, so an
    /// acknowledged task survives a crash.
    pub fn create_task(&self, new: NewTask) -> Result<TaskRecord> {
        let _guard = self.lock();
        let id = match self.meta.get(NEXT_ID)? {
            Some(v) => decode_u64(&v)?,
            None => 1,
        };
        let now = now_ms();
        let record = TaskRecord {
            id,
            status: TaskStatus::Queued,
            created_ms: now,
            updated_ms: now,
            params: new.params,
            plan: None,
            scenes_done: 0,
            timings_ms: BTreeMap::new(),
            cached: false,
            error: None,
            artifact: None,
            owner: new.owner,
            priority: new.priority,
            webhook: new.webhook,
        };
        let bytes = serde_json::to_vec(&record)?;
        let by_owner_key = record.owner.as_deref().map(|o| by_owner_key(o, id));
        (&self.tasks, &self.by_status, &self.by_owner, &self.meta).transaction(
            |(tasks, index, by_owner, meta)| {
                tasks.insert(&id_key(id)[..], bytes.as_slice())?;
                index.insert(&index_key(TaskStatus::Queued, id)[..], &[][..])?;
                if let Some(k) = &by_owner_key {
                    by_owner.insert(k.as_slice(), &[][..])?;
                }
                meta.insert(NEXT_ID, &(id + 1).to_be_bytes()[..])?;
                bump_count(meta, TaskStatus::Queued, 1)
            },
        )?;
        self.db.flush()?;
        Ok(record)
    }

    /// The task with this id; `None` if there is none.
    pub fn get(&self, id: u64) -> Result<Option<TaskRecord>> {
        match self.tasks.get(id_key(id))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// Applies `f` to the stored task's fields other than its status (plan, timings, scene
    /// count...) and writes it back with `updated_ms`; a closure that changes nothing writes
    /// nothing. A status changes only through [`Store::transition`]: a closure that changes it
    /// is refused whole ([`StoreError::StatusChange`]). `None` if no such task.
    pub fn update(&self, id: u64, f: impl FnOnce(&mut TaskRecord)) -> Result<Option<TaskRecord>> {
        self.write(id, None, f)
    }

    /// Moves the task to `to` and applies `f` to it in the same write, if the transition table
    /// ([`TaskStatus::can_become`]) allows it; otherwise changes nothing and answers
    /// [`StoreError::IllegalTransition`]. Flushed before returning: a status change survives
    /// kill -9. `None` if no such task.
    pub fn transition(
        &self,
        id: u64,
        to: TaskStatus,
        f: impl FnOnce(&mut TaskRecord),
    ) -> Result<Option<TaskRecord>> {
        self.write(id, Some(to), f)
    }

    fn write(
        &self,
        id: u64,
        to: Option<TaskStatus>,
        f: impl FnOnce(&mut TaskRecord),
    ) -> Result<Option<TaskRecord>> {
        let _guard = self.lock();
        let Some(mut record) = self.get(id)? else {
            return Ok(None);
        };
        let before = record.clone();
        if let Some(to) = to {
            if !before.status.can_become(to) {
                return Err(StoreError::IllegalTransition {
                    id,
                    from: before.status,
                    to,
                });
            }
        }
        f(&mut record);
        // The id is the key; a closure cannot move a record to another one.
        record.id = id;
        if record.status != before.status {
            return Err(StoreError::StatusChange(id));
        }
        if let Some(to) = to {
            record.status = to;
        }
        if record == before {
            // Nothing to write: the record (and its updated_ms) stay as they were.
            return Ok(Some(record));
        }
        let old_status = before.status;
        record.updated_ms = now_ms().max(record.updated_ms);
        let new_status = record.status;
        let bytes = serde_json::to_vec(&record)?;
        // A webhook owed for this change is stored with it: a crash cannot lose one.
        let owed = if old_status != new_status {
            crate::outbox::owed(&record)?
        } else {
            None
        };
        let trees = (
            &self.tasks,
            &self.by_status,
            &self.meta,
            &self.outbox,
            &self.retention,
        );
        trees.transaction(|(tasks, index, meta, outbox, retention)| {
            tasks.insert(&id_key(id)[..], bytes.as_slice())?;
            retention::follow(retention, Some(&before), &record)?;
            if old_status != new_status {
                index.remove(&index_key(old_status, id)[..])?;
                index.insert(&index_key(new_status, id)[..], &[][..])?;
                bump_count(meta, old_status, -1)?;
                bump_count(meta, new_status, 1)?;
            }
            if let Some(delivery) = &owed {
                crate::outbox::enqueue(outbox, meta, delivery)?;
            }
            Ok(())
        })?;
        if old_status != new_status {
            self.db.flush()?;
        }
        Ok(Some(record))
    }

    /// Up to `limit` tasks, newest first, optionally of one status, strictly older than
    /// `cursor` (an id from a previous page). Returns the cursor of the next page, if any.
    pub fn list(
        &self,
        status: Option<TaskStatus>,
        limit: usize,
        cursor: Option<u64>,
    ) -> Result<(Vec<TaskRecord>, Option<u64>)> {
        let end = cursor.unwrap_or(u64::MAX);
        let mut page = Vec::with_capacity(limit.min(128));
        let mut more = false;
        match status {
            None => {
                for item in self.tasks.range(..id_key(end)).rev() {
                    let (_, v) = item?;
                    if page.len() == limit {
                        more = true;
                        break;
                    }
                    page.push(serde_json::from_slice::<TaskRecord>(&v)?);
                }
            }
            Some(status) => {
                let range = index_key(status, 0)..index_key(status, end);
                for item in self.by_status.range(range).rev() {
                    let (k, _) = item?;
                    if page.len() == limit {
                        more = true;
                        break;
                    }
                    // The record may have moved on since the index was read; skip it then.
                    if let Some(r) = self.get(index_id(&k)?)?.filter(|r| r.status == status) {
                        page.push(r);
                    }
                }
            }
        }
        let next = if more {
            page.last().map(|r| r.id)
        } else {
            None
        };
        Ok((page, next))
    }

    /// Like [`Store::list`], over the tasks of one owner only (through the `by_owner` index;
    /// a status filter skips the owner's tasks in other statuses).
    pub fn list_owned(
        &self,
        owner: &str,
        status: Option<TaskStatus>,
        limit: usize,
        cursor: Option<u64>,
    ) -> Result<(Vec<TaskRecord>, Option<u64>)> {
        let range = by_owner_key(owner, 0)..by_owner_key(owner, cursor.unwrap_or(u64::MAX));
        let mut page = Vec::with_capacity(limit.min(128));
        let mut more = false;
        for item in self.by_owner.range(range).rev() {
            let (k, _) = item?;
            let id = decode_u64(&k[k.len().saturating_sub(8)..])?;
            let Some(r) = self.get(id)? else { continue };
            if status.is_some_and(|s| s != r.status) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(r);
        }
        let next = if more {
            page.last().map(|r| r.id)
        } else {
            None
        };
        Ok((page, next))
    }

    /// Every task not yet in a final status, oldest first (what to resume after a restart).
    pub fn unfinished(&self) -> Result<Vec<TaskRecord>> {
        let mut ids = Vec::new();
        for status in TaskStatus::ALL.iter().filter(|s| !s.is_final()) {
            for item in self.by_status.scan_prefix(&index_key(*status, 0)[..1]) {
                ids.push(index_id(&item?.0)?);
            }
        }
        ids.sort_unstable();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.get(id)?.filter(|r| !r.status.is_final()) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Number of tasks per status (every status present, zeros included), from the counters.
    pub fn counts(&self) -> Result<BTreeMap<TaskStatus, u64>> {
        let mut out = BTreeMap::new();
        for status in TaskStatus::ALL {
            let n = match self.meta.get(count_key(*status))? {
                Some(v) => decode_u64(&v)?,
                None => 0,
            };
            out.insert(*status, n);
        }
        Ok(out)
    }
}
