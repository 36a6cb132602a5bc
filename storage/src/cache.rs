//! The result cache: which finished task already answers a request key.
//!
//! sled's `cache` tree is the truth (it survives restarts); a bounded LRU with a TTL sits in
//! front of it so that hot keys skip the tree. The TTL bounds how long the memory layer may
//! serve an entry without re-reading the tree.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::error::Result;
use crate::keys::decode_u64;
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
    memory: Option<Mutex<LruCache<String, (u64, Instant)>>>,
    ttl: Duration,
    hits: AtomicU64,
    memory_hits: AtomicU64,
    misses: AtomicU64,
}

impl ResultCache {
    pub(crate) fn open(tree: sled::Tree, config: CacheConfig) -> ResultCache {
        ResultCache {
            tree,
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

    /// Drops every in-memory entry pointing at one of `ids`.
    pub(crate) fn forget_tasks(&self, ids: &[u64]) {
        if let Some(mut lru) = self.memory() {
            let stale: Vec<String> = lru
                .iter()
                .filter(|(_, (id, _))| ids.contains(id))
                .map(|(k, _)| k.clone())
                .collect();
            for k in stale {
                lru.pop(&k);
            }
        }
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
    pub fn cache_put(&self, key: &str, task_id: u64) -> Result<()> {
        self.cache
            .tree
            .insert(key.as_bytes(), &task_id.to_be_bytes()[..])?;
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
