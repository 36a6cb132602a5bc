//! The result cache: which finished task already answers a request key.
//!
//! sled's `cache` tree is the truth (it survives restarts); a bounded LRU with a TTL sits in
//! front of it so that hot keys skip the tree. The TTL bounds how long the memory layer may
//! serve an entry without re-reading the tree.
//!
//! The `cache_owners` tree is the reverse of `cache` (task id ++ key -> ()), written in the
//! same transaction, so that retention finds the keys of a task it deletes without a scan.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use crate::error::Result;
use crate::keys::{decode_u64, owner_key};
use crate::store::Store;

/// Sizes of the in-memory layer. `capacity: 0` turns the layer off (every lookup reads sled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Entries the LRU holds.
    pub capacity: usize,
    /// How long an entry stays in the LRU before the next lookup reads sled again.
    pub ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 1024,
            ttl: Duration::from_secs(600),
        }
    }
}

/// Lookups since the store was opened. `hits` counts both layers; `memory_hits` the LRU only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Lookups that found a task (in either layer).
    pub hits: u64,
    /// Lookups answered by the LRU.
    pub memory_hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
}

pub(crate) struct ResultCache {
    pub(crate) tree: sled::Tree,
    pub(crate) owners: sled::Tree,
    memory: Option<Mutex<LruCache<String, (u64, Instant)>>>,
    ttl: Duration,
    hits: AtomicU64,
    memory_hits: AtomicU64,
    misses: AtomicU64,
}

impl ResultCache {
    pub(crate) fn open(tree: sled::Tree, owners: sled::Tree, config: CacheConfig) -> ResultCache {
        ResultCache {
            tree,
            owners,
            memory: NonZeroUsize::new(config.capacity).map(|n| Mutex::new(LruCache::new(n))),
            ttl: config.ttl,
            hits: AtomicU64::new(0),
            memory_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn memory(&self) -> Option<std::sync::MutexGuard<'_, LruCache<String, (u64, Instant)>>> {
        // The LRU holds only copies of sled's entries, so a poisoned one is still usable.
        self.memory
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn remember(&self, key: &str, task_id: u64) {
        if let Some(mut lru) = self.memory() {
            lru.put(key.to_owned(), (task_id, Instant::now()));
        }
    }

    /// Drops `keys` from the memory layer (their sled entries are already gone).
    pub(crate) fn forget(&self, keys: &[String]) {
        if let Some(mut lru) = self.memory() {
            for k in keys {
                lru.pop(k);
            }
        }
    }

    /// Fills `cache_owners` from `cache`: once, for a database from before the reverse map.
    pub(crate) fn index_existing(&self) -> Result<()> {
        for item in self.tree.iter() {
            let (key, id) = item?;
            self.owners
                .insert(owner_key(decode_u64(&id)?, &key), &[][..])?;
        }
        Ok(())
    }
}

impl Store {
    /// The id of the task whose artifact answers `key`, if one was recorded.
    pub fn cache_get(&self, key: &str) -> Result<Option<u64>> {
        let c = &self.cache;
        if let Some(mut lru) = c.memory() {
            match lru.get(key) {
                Some(&(id, at)) if at.elapsed() < c.ttl => {
                    c.hits.fetch_add(1, Ordering::Relaxed);
                    c.memory_hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(id));
                }
                Some(_) => {
                    lru.pop(key);
                }
                None => {}
            }
        }
        match c.tree.get(key.as_bytes())? {
            Some(v) => {
                let id = decode_u64(&v)?;
                c.remember(key, id);
                c.hits.fetch_add(1, Ordering::Relaxed);
                Ok(Some(id))
            }
            None => {
                c.misses.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// Records that task `task_id`'s artifact answers `key` (replacing any older answer).
    /// Takes the store's write lock, so not from inside an [`Store::update`] closure.
    pub fn cache_put(&self, key: &str, task_id: u64) -> Result<()> {
        // Under the write lock: retention reads a task's keys before the transaction that
        // deletes it, and a key added in between would outlive the task.
        let _guard = self.lock();
        (&self.cache.tree, &self.cache.owners).transaction(|(tree, owners)| {
            if let Some(old) = tree.insert(key.as_bytes(), &task_id.to_be_bytes()[..])? {
                let old = decode_u64(&old).map_err(ConflictableTransactionError::Abort)?;
                owners.remove(owner_key(old, key.as_bytes()))?;
            }
            owners.insert(owner_key(task_id, key.as_bytes()), &[][..])?;
            Ok(())
        })?;
        self.cache.remember(key, task_id);
        Ok(())
    }

    /// Result-cache lookups since the store was opened.
    pub fn cache_stats(&self) -> CacheStats {
        let c = &self.cache;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            memory_hits: c.memory_hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
        }
    }
}
