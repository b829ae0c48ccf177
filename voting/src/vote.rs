//! A vote and the message that carries a batch of them through RabbitMQ.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::paredao::{ParedaoId, ParticipantId};

/// One accepted vote, as it travels inside a batch. Field names are one letter because a batch
/// holds hundreds of them and every byte crosses the broker and its disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    #[serde(rename = "p")]
    pub paredao: ParedaoId,
    #[serde(rename = "c")]
    pub participant: ParticipantId,
    /// When the API accepted it, in milliseconds since the epoch: the hour it is counted in.
    #[serde(rename = "t")]
    pub cast_at_ms: i64,
    /// The captcha challenge this vote spent (a prefix of its digest), when the API demanded
    /// one. Replicas refuse replays they know of; the consumer, which sees every vote, is the
    /// backstop that counts each challenge at most once even when a replay reached two replicas
    /// faster than they could tell each other.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
}

/// How much of a challenge digest identifies it: 128 bits, collision-free in practice for the
/// few minutes a challenge lives, and half the bytes of the full digest in every message.
pub const CHALLENGE_KEY_CHARS: usize = 32;

impl Vote {
    pub fn new(paredao: ParedaoId, participant: ParticipantId, cast_at: DateTime<Utc>) -> Self {
        Self { paredao, participant, cast_at_ms: cast_at.timestamp_millis(), challenge: None }
    }

    /// The vote with the challenge it spent, identified by its digest's prefix.
    pub fn spending(mut self, challenge_digest: &str) -> Self {
        let end = challenge_digest.len().min(CHALLENGE_KEY_CHARS);
        self.challenge = Some(challenge_digest.get(..end).unwrap_or(challenge_digest).to_string());
        self
    }

    pub fn cast_at(&self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.cast_at_ms).single().unwrap_or_default()
    }
}

/// One RabbitMQ message: the votes of one group commit. `id` is what makes counting exactly
/// once possible: the consumer records it in the same transaction as the counter increments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteBatch {
    pub id: Uuid,
    /// When the batch was sealed, in ms since the epoch; the consumer measures its lag from it.
    pub sealed_at_ms: i64,
    pub votes: Vec<Vote>,
}

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("not a vote batch: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("a vote batch must hold at least one vote")]
    Empty,
    #[error("vote {index} was cast at {t} ms since the epoch, outside 2000-2200: not a time the API stamps")]
    CastTimeOutOfRange { index: usize, t: i64 },
}

/// The cast times a batch may carry (2000-01-01 to 2200-01-01, in ms). The API stamps each vote
/// with its own clock; anything else is a forged or corrupted message, and counting it would put
/// a vote in an hour no panel shows (or, far enough out, overflow the hour arithmetic).
const EARLIEST_CAST_MS: i64 = 946_684_800_000;
const LATEST_CAST_MS: i64 = 7_258_118_400_000;

impl VoteBatch {
    pub fn seal(votes: Vec<Vote>, now: DateTime<Utc>) -> Self {
        // v7 ids sort by time, which keeps the applied-batch index append-mostly.
        Self { id: Uuid::now_v7(), sealed_at_ms: now.timestamp_millis(), votes }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a vote batch always serializes")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let batch: VoteBatch = serde_json::from_slice(bytes)?;
        if batch.votes.is_empty() {
            return Err(DecodeError::Empty);
        }
        if let Some((index, v)) = batch.votes.iter().enumerate().find(|(_, v)| !(EARLIEST_CAST_MS..LATEST_CAST_MS).contains(&v.cast_at_ms)) {
            return Err(DecodeError::CastTimeOutOfRange { index, t: v.cast_at_ms });
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(p: &str, c: &str, ms: i64) -> Vote {
        Vote { paredao: ParedaoId::parse(p).unwrap(), participant: ParticipantId::parse(c).unwrap(), cast_at_ms: ms, challenge: None }
    }

    #[test]
    fn a_batch_round_trips_through_its_encoding() {
        let batch = VoteBatch::seal(vec![vote("p1", "ana", 1_764_000_000_000), vote("p1", "bia", 1_764_000_000_001)], Utc::now());
        assert_eq!(VoteBatch::decode(&batch.encode()).unwrap(), batch);
    }

    #[test]
    fn garbage_empty_and_invalid_ids_do_not_decode() {
        assert!(matches!(VoteBatch::decode(b"hello"), Err(DecodeError::Malformed(_))));
        let empty = VoteBatch::seal(vec![], Utc::now());
        assert!(matches!(VoteBatch::decode(&empty.encode()), Err(DecodeError::Empty)));
        let bad = br#"{"id":"0190a0b0-0000-7000-8000-000000000000","sealed_at_ms":1,"votes":[{"p":"P!","c":"ana","t":1}]}"#;
        assert!(matches!(VoteBatch::decode(bad), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn a_vote_cast_at_an_impossible_time_does_not_decode() {
        for t in [9_300_000_000_000, -1, 0, i64::MAX, i64::MIN] {
            let batch = VoteBatch::seal(vec![vote("p1", "ana", 1_764_000_000_000), vote("p1", "bia", t)], Utc::now());
            assert!(matches!(VoteBatch::decode(&batch.encode()), Err(DecodeError::CastTimeOutOfRange { index: 1, .. })), "t = {t}");
        }
        let now = VoteBatch::seal(vec![vote("p1", "ana", Utc::now().timestamp_millis())], Utc::now());
        assert!(VoteBatch::decode(&now.encode()).is_ok());
    }

    #[test]
    fn a_vote_carries_the_challenge_it_spent_only_when_it_spent_one() {
        let plain = vote("p1", "ana", 1_764_000_000_000);
        assert!(!String::from_utf8(VoteBatch::seal(vec![plain.clone()], Utc::now()).encode()).unwrap().contains("\"k\""));
        let digest = "ab".repeat(32);
        let spent = plain.spending(&digest);
        assert_eq!(spent.challenge.as_deref(), Some(&digest[..CHALLENGE_KEY_CHARS]));
        let batch = VoteBatch::seal(vec![spent], Utc::now());
        assert_eq!(VoteBatch::decode(&batch.encode()).unwrap(), batch);
    }

    #[test]
    fn a_vote_keeps_its_millisecond() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 17, 5, 9).unwrap() + chrono::Duration::milliseconds(123);
        assert_eq!(Vote::new(ParedaoId::parse("p").unwrap(), ParticipantId::parse("a").unwrap(), at).cast_at(), at);
    }
}
