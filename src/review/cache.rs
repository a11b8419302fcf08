//! A map whose entries expire and whose size is capped: the review page's sessions and its
//! cached TokenReview and SubjectAccessReview answers. Without the cap, a client sending a
//! new made-up token every request would grow the token cache for as long as it kept
//! sending (entries were only dropped once expired).
//!
//! Guarantees: never more than `capacity` entries; an expired entry is never returned; when
//! full, expired entries go first, then the one that expires soonest (the oldest, where all
//! live equally long). Pure over the time handed in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

#[derive(Debug)]
pub struct Expiring<K, V> {
    capacity: usize,
    entries: HashMap<K, (V, Instant)>,
}

impl<K: Hash + Eq + Clone, V> Expiring<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), entries: HashMap::new() }
    }

    /// The live entry of `key` at `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<&V> {
        self.entries.get(key).filter(|(_, expires)| *expires > now).map(|(v, _)| v)
    }

    pub fn get_mut(&mut self, key: &K, now: Instant) -> Option<&mut V> {
        self.entries.get_mut(key).filter(|(_, expires)| *expires > now).map(|(v, _)| v)
    }

    /// Keeps `value` under `key` until `expires`, making room first when full.
    pub fn insert(&mut self, key: K, value: V, expires: Instant, now: Instant) {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, e)| *e > now);
            if self.entries.len() >= self.capacity
                && let Some(soonest) = self.entries.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| k.clone())
            {
                self.entries.remove(&soonest);
            }
        }
        self.entries.insert(key, (value, expires));
    }

    pub fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn entries_expire() {
        let now = Instant::now();
        let mut c = Expiring::new(8);
        c.insert("a", 1, now + Duration::from_secs(10), now);
        assert_eq!(c.get(&"a", now), Some(&1));
        assert_eq!(c.get(&"a", now + Duration::from_secs(10)), None, "expired at its instant");
        if let Some(v) = c.get_mut(&"a", now) {
            *v = 2;
        }
        assert_eq!(c.get(&"a", now), Some(&2));
        c.remove(&"a");
        assert_eq!(c.get(&"a", now), None);
    }

    #[test]
    fn a_flood_of_new_keys_never_grows_it_past_its_capacity() {
        let start = Instant::now();
        let mut c = Expiring::new(100);
        for i in 0..10_000u32 {
            let now = start + Duration::from_millis(u64::from(i));
            c.insert(i, (), now + Duration::from_secs(10), now);
            assert!(c.len() <= 100);
        }
        let end = start + Duration::from_millis(10_000);
        assert!(c.get(&9_999, end).is_some(), "the newest is kept");
        assert!(c.get(&0, end).is_none(), "the oldest went");
    }

    #[test]
    fn expired_entries_make_room_before_live_ones() {
        let now = Instant::now();
        let mut c = Expiring::new(2);
        c.insert("short", (), now + Duration::from_secs(1), now);
        c.insert("long", (), now + Duration::from_secs(100), now);
        let later = now + Duration::from_secs(2);
        c.insert("new", (), later + Duration::from_secs(5), later);
        assert!(c.get(&"long", later).is_some() && c.get(&"new", later).is_some());
        c.insert("newer", (), later + Duration::from_secs(50), later);
        assert!(c.get(&"new", later).is_none(), "the one expiring soonest went");
        assert!(c.get(&"long", later).is_some() && c.get(&"newer", later).is_some());
        c.insert("long", (), later + Duration::from_secs(1), later);
        assert_eq!(c.len(), 2, "replacing a key takes no room");
    }
}
