//! The consumer's record of the captcha challenges already counted: the last line of "each
//! challenge buys one vote across the whole deployment".
//!
//! API replicas refuse a replay they know of, and tell each other within milliseconds. A replay
//! sent to two replicas inside that window (or to a replica that restarted and forgot) is
//! accepted by both, but both votes pass through the consumer, which counts the first and
//! discards the second. Keys are kept until their challenge has surely expired (a replay after
//! that is refused by the API as expired), and are recorded with their batch in the counting
//! transaction, so a restarted consumer reloads them.
//!
//! At the record peak (25,000 votes/s) and challenges living minutes, that is millions of keys:
//! each is held as the 128-bit number its hex spells (about 40 bytes per key with the map's
//! overhead, against over 100 as a `String`).

use std::collections::HashMap;

/// A challenge key as a number: the 32 hex digits the vote carries.
pub fn key_of(challenge: &str) -> u128 {
    u128::from_str_radix(challenge, 16).unwrap_or_else(|_| {
        // Only our API writes these; a key that is not hex still needs a stable identity.
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        u128::from(BuildHasherDefault::<DefaultHasher>::default().hash_one(challenge))
    })
}

/// How often the whole map is swept for keys that may be forgotten.
const PURGE_EVERY_SECS: i64 = 10;

#[derive(Debug, Default)]
pub struct SpentLedger {
    /// Challenge key → unix second after which it can be forgotten.
    keys: HashMap<u128, i64>,
    next_purge: i64,
}

impl SpentLedger {
    pub fn contains(&self, key: u128) -> bool {
        self.keys.contains_key(&key)
    }

    pub fn insert(&mut self, key: u128, forget_at: i64) {
        let at = self.keys.entry(key).or_insert(forget_at);
        *at = (*at).max(forget_at);
    }

    /// Forgets keys whose challenges can no longer be spent anywhere; sweeps at most every
    /// few seconds, since a sweep walks every key.
    pub fn purge(&mut self, now_unix: i64) {
        if now_unix < self.next_purge {
            return;
        }
        self.keys.retain(|_, forget_at| *forget_at >= now_unix);
        self.next_purge = now_unix + PURGE_EVERY_SECS;
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_known_until_it_may_be_forgotten() {
        let mut ledger = SpentLedger::default();
        ledger.insert(1, 100);
        ledger.insert(2, 200);
        ledger.insert(1, 50);
        assert!(ledger.contains(1) && ledger.contains(2));
        ledger.purge(150);
        assert!(!ledger.contains(1), "1 was kept until 100, not moved back to 50");
        assert!(ledger.contains(2));
        ledger.insert(3, 152);
        ledger.purge(155);
        assert!(ledger.contains(3), "sweeps are at most every few seconds");
        ledger.purge(150 + PURGE_EVERY_SECS);
        assert!(!ledger.contains(3));
        assert!(ledger.contains(2));
    }

    #[test]
    fn keys_are_the_number_their_hex_spells_and_anything_else_still_has_one() {
        assert_eq!(key_of("ff"), 255);
        assert_eq!(key_of(&"a".repeat(32)), u128::MAX / 15 * 10);
        assert_eq!(key_of("not hex"), key_of("not hex"));
        assert_ne!(key_of("not hex"), key_of("also not hex"));
    }
}
