//! The result cache: persistence in sled, the LRU bound and the TTL of the memory layer.

use std::time::Duration;

use storage::{CacheConfig, CacheStats, Store};

#[test]
fn put_get_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.cache_get("k1").unwrap(), None);
        store.cache_put("k1", 5).unwrap();
        assert_eq!(store.cache_get("k1").unwrap(), Some(5));
        store.cache_put("k1", 6).unwrap();
        assert_eq!(store.cache_get("k1").unwrap(), Some(6));
        let s = store.cache_stats();
        assert_eq!((s.hits, s.memory_hits, s.misses), (2, 2, 1));
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.cache_get("k1").unwrap(), Some(6));
    // A fresh process answers from sled, then from memory.
    assert_eq!(store.cache_get("k1").unwrap(), Some(6));
    assert_eq!(
        store.cache_stats(),
        CacheStats {
            hits: 2,
            memory_hits: 1,
            misses: 0
        }
    );
}

#[test]
fn lru_evicts_least_recently_used_from_memory_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = CacheConfig {
        capacity: 2,
        ttl: Duration::from_secs(3600),
    };
    let store = Store::open_with(dir.path(), config).unwrap();
    store.cache_put("a", 1).unwrap();
    store.cache_put("b", 2).unwrap();
    assert_eq!(store.cache_get("a").unwrap(), Some(1)); // a is now most recent
    store.cache_put("c", 3).unwrap(); // evicts b
    let before = store.cache_stats();
    assert_eq!(store.cache_get("a").unwrap(), Some(1));
    assert_eq!(store.cache_get("c").unwrap(), Some(3));
    assert_eq!(store.cache_stats().memory_hits, before.memory_hits + 2);
    // b still answers, from sled.
    assert_eq!(store.cache_get("b").unwrap(), Some(2));
    let after = store.cache_stats();
    assert_eq!(after.memory_hits, before.memory_hits + 2);
    assert_eq!(after.hits, before.hits + 3);
}

#[test]
fn ttl_expires_memory_entries() {
    let dir = tempfile::tempdir().unwrap();
    let config = CacheConfig {
        capacity: 16,
        ttl: Duration::from_millis(20),
    };
    let store = Store::open_with(dir.path(), config).unwrap();
    store.cache_put("k", 9).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(store.cache_get("k").unwrap(), Some(9));
    let s = store.cache_stats();
    assert_eq!(
        (s.hits, s.memory_hits),
        (1, 0),
        "expired entry must come from sled"
    );
}

#[test]
fn zero_capacity_disables_memory_layer() {
    let dir = tempfile::tempdir().unwrap();
    let config = CacheConfig {
        capacity: 0,
        ttl: Duration::from_secs(60),
    };
    let store = Store::open_with(dir.path(), config).unwrap();
    store.cache_put("k", 1).unwrap();
    assert_eq!(store.cache_get("k").unwrap(), Some(1));
    assert_eq!(store.cache_get("k").unwrap(), Some(1));
    let s = store.cache_stats();
    assert_eq!((s.hits, s.memory_hits, s.misses), (2, 0, 0));
}
