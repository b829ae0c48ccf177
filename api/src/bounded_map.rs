//! A map keyed by client that cannot outgrow its bound, whoever sends requests: the state of the
//! rate limiters and of the adaptive difficulty.
//!
//! The keys are spread over shards, each behind its own mutex, so that concurrent requests
//! rarely wait for one another (at 25,000 checks per second a single lock would be the
//! bottleneck). Each shard is an LRU map (hashlink's, already built for the config crate's YAML)
//! holding its share of the bound: a new key beyond it pushes out the shard's least recently
//! used one, in constant time. With randomly seeded hashing nobody can choose keys that all land
//! on one shard, so that is close to the least recently used of the whole map.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, RandomState};
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use hashlink::LruCache;

/// Enough shards that 25,000 checks per second spread over a few cores seldom meet on one lock,
/// few enough that a purge pass stays cheap.
const SHARDS: usize = 16;

pub type Shard<K, V> = LruCache<K, V, RandomState>;

pub struct BoundedMap<K, V> {
    hasher: RandomState,
    shards: Box<[Mutex<Shard<K, V>>]>,
}

impl<K: Hash + Eq, V> BoundedMap<K, V> {
    /// A map of at most `max_entries` entries (exactly: fewer shards when the bound is small).
    pub fn new(max_entries: NonZeroUsize) -> Self {
        Self::with_shards(max_entries, SHARDS)
    }

    fn with_shards(max_entries: NonZeroUsize, shards: usize) -> Self {
        let shards = shards.min(max_entries.get());
        let per_shard = max_entries.get() / shards;
        Self {
            hasher: RandomState::new(),
            // Nothing is allocated up front: memory follows the clients actually seen.
            shards: (0..shards).map(|_| Mutex::new(LruCache::with_hasher(per_shard, RandomState::new()))).collect(),
        }
    }

    /// The shard that holds `key`, locked. Insert into it with `insert` (which evicts beyond the
    /// bound); `get`/`get_mut` mark the key as recently used.
    pub fn shard<Q>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let index = self.hasher.hash_one(key) as usize % self.shards.len();
        lock(&self.shards[index])
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for shard in self.shards.iter() {
            lock(shard).retain(&mut keep);
        }
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound itself.
    pub fn capacity(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).capacity()).sum()
    }
}

/// A panic while a shard is held cannot leave its map half-updated (each change is one insert or
/// one assignment), so a poisoned shard is still sound: keep serving rather than fail every
/// request.
pub fn lock<T>(shard: &Mutex<T>) -> MutexGuard<'_, T> {
    shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn the_bound_holds_whatever_the_number_of_keys() {
        for max in [1, 5, 16, 1000, 1003] {
            let map = BoundedMap::new(bound(max));
            for i in 0..10 * max + 100 {
                map.shard(&i).insert(i, ());
                assert!(map.len() <= max, "{} entries for a bound of {max}", map.len());
            }
            assert!(map.capacity() <= max);
            assert!(map.len() >= max * 9 / 10, "a full map is (about) full: {} of {max}", map.len());
        }
    }

    #[test]
    fn beyond_the_bound_the_least_recently_used_key_goes() {
        // One shard, so that the order is exact.
        let map = BoundedMap::with_shards(bound(3), 1);
        for k in ["a", "b", "c"] {
            map.shard(k).insert(k, 0);
        }
        // "a" is used again: "b" is now the least recently used.
        *map.shard("a").get_mut("a").unwrap() += 1;
        map.shard("d").insert("d", 0);
        assert!(map.shard("b").get("b").is_none());
        assert_eq!(map.shard("a").get("a"), Some(&1));
        assert_eq!(map.len(), 3);
    }

    #[test]
    fn keys_are_found_by_their_borrowed_form() {
        let map: BoundedMap<String, u32> = BoundedMap::new(bound(100));
        map.shard("203.0.113.7").insert("203.0.113.7".to_string(), 7);
        assert_eq!(map.shard("203.0.113.7").get("203.0.113.7"), Some(&7));
    }

    #[test]
    fn retain_drops_what_it_is_told_to() {
        let map = BoundedMap::new(bound(10_000));
        for i in 0..50 {
            map.shard(&i).insert(i, i);
        }
        map.retain(|_, v| *v % 2 == 0);
        assert_eq!(map.len(), 25);
    }
}
