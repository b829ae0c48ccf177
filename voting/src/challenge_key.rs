//! Which captcha challenge a vote spent: the key replicas remember spends by and the store
//! records counted challenges under.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// 128 bits: the run of the API replica that issued the challenge (high half, random at its
/// start) and how many challenges that run had issued before it (low half), so that the
/// challenges one replica hands out in a row have neighbouring keys (the store keeps thousands of
/// them in one bitmap). A challenge issued before salts carried that number is known by the
/// first 128 bits of its digest instead. On the wire: 32 lowercase hex digits, one spelling per
/// key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChallengeKey(u128);

/// Hex digits of a key on the wire.
pub const CHALLENGE_KEY_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a challenge key is {CHALLENGE_KEY_CHARS} lowercase hex digits")]
pub struct MalformedChallengeKey;

impl ChallengeKey {
    /// The key of the `sequence`-th challenge issued by run `issuer`.
    pub fn issued(issuer: u64, sequence: u64) -> Self {
        Self(u128::from(issuer) << 64 | u128::from(sequence))
    }

    /// The key of a challenge known by its digest (the first 32 of its hex digits).
    pub fn of_digest(hex_digest: &str) -> Result<Self, MalformedChallengeKey> {
        hex_digest.get(..CHALLENGE_KEY_CHARS).ok_or(MalformedChallengeKey)?.parse()
    }

    pub fn issuer(self) -> u64 {
        (self.0 >> 64) as u64
    }

    pub fn sequence(self) -> u64 {
        self.0 as u64
    }

    /// The key as 16 bytes, least significant first: how a replica holds millions of them
    /// (1-aligned, so an entry with its expiry takes 20 bytes; a `u128` would pad it to 32).
    pub fn to_le_bytes(self) -> [u8; 16] {
        self.0.to_le_bytes()
    }
}

impl FromStr for ChallengeKey {
    type Err = MalformedChallengeKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != CHALLENGE_KEY_CHARS || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(MalformedChallengeKey);
        }
        u128::from_str_radix(s, 16).map(Self).map_err(|_| MalformedChallengeKey)
    }
}

impl fmt::Display for ChallengeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Serialize for ChallengeKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ChallengeKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_its_issuer_and_sequence_spelled_once() {
        let k = ChallengeKey::issued(0xabc, 17);
        assert_eq!(k.to_string(), "0000000000000abc0000000000000011");
        assert_eq!(k.to_string().parse(), Ok(k));
        assert_eq!((k.issuer(), k.sequence()), (0xabc, 17));
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"0000000000000abc0000000000000011\"");
        assert_eq!(serde_json::from_str::<ChallengeKey>("\"0000000000000abc0000000000000011\"").unwrap(), k);
    }

    #[test]
    fn anything_but_32_lowercase_hex_digits_is_refused() {
        for s in [
            "",
            "ab",
            &"AB".repeat(16),
            &"ab".repeat(15),
            &"ab".repeat(17),
            &"xy".repeat(16),
            "+0000000000000000000000000000000",
        ] {
            assert_eq!(s.parse::<ChallengeKey>(), Err(MalformedChallengeKey), "{s:?}");
        }
        assert!(serde_json::from_str::<ChallengeKey>("\"ab\"").is_err());
    }

    #[test]
    fn a_digest_is_known_by_its_first_32_digits() {
        let digest = "0123456789abcdef".repeat(4);
        assert_eq!(ChallengeKey::of_digest(&digest).unwrap().to_string(), digest[..32]);
        assert_eq!(ChallengeKey::of_digest("short"), Err(MalformedChallengeKey));
    }
}
