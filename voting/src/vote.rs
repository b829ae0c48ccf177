//! A vote and the message that carries a batch of them through RabbitMQ.

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::challenge_key::{CHALLENGE_KEY_CHARS, ChallengeKey};
use crate::paredao::{Paredao, ParedaoId, ParticipantId};

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
    /// The captcha challenge this vote spent, when the API demanded one: its number (the issuing
    /// replica's run, then its sequence, 16 hex digits each; a challenge issued before salts
    /// carried one, by a prefix of its digest). Replicas refuse replays they know of; the consumer, which sees every vote, is the
    /// backstop that counts each challenge at most once even when a replay reached two replicas
    /// faster than they could tell each other.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// When that challenge expires, in unix seconds: every copy of a replayed vote carries the
    /// same, and the store keeps a challenge's record until the queue has passed it
    /// (`voting::store`).
    #[serde(rename = "x", default, skip_serializing_if = "Option::is_none")]
    pub challenge_expires: Option<i64>,
}

/// What a vote without `x` is filed as having lived for (the default challenge lifetime).
pub const LEGACY_CHALLENGE_LIFETIME_SECS: i64 = 300;

/// A challenge expires after its vote was cast and within this long of it (a day: far beyond
/// any lifetime we configure; what the API sends is checked against it, so that a forged
/// expiry cannot keep a record for years).
pub const MAX_CHALLENGE_EXPIRY_AFTER_CAST_SECS: i64 = 86_400;

impl Vote {
    pub fn new(paredao: ParedaoId, participant: ParticipantId, cast_at: DateTime<Utc>) -> Self {
        Self { paredao, participant, cast_at_ms: cast_at.timestamp_millis(), challenge: None, challenge_expires: None }
    }

    /// The vote with the challenge it spent, and when that challenge expires (unix seconds).
    pub fn spending(mut self, challenge: ChallengeKey, expires_at: i64) -> Self {
        self.challenge = Some(challenge.to_string());
        self.challenge_expires = Some(expires_at);
        self
    }

    /// The challenge this vote spent, if it spent one whose key is well-formed (every vote of a
    /// batch that passed `VoteBatch::check`).
    pub fn challenge_key(&self) -> Option<ChallengeKey> {
        self.challenge.as_deref()?.parse().ok()
    }

    /// The unix second the record of this vote's challenge is kept until: its expiry, or for a
    /// vote that does not say (sent by an API before it did), its cast time plus the longest
    /// challenge lifetime we ship.
    pub fn challenge_filed_at(&self) -> i64 {
        self.challenge_expires.unwrap_or(self.cast_at_ms.div_euclid(1000) + LEGACY_CHALLENGE_LIFETIME_SECS)
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

/// Why a decoded batch cannot be counted: it is not something our API could have sent for the
/// paredões the store holds. Retrying cannot cure it, so the message is dead-lettered with
/// `reason()`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidVote {
    #[error("vote {index} is for paredão '{paredao}', which the store does not hold")]
    UnknownParedao { index: usize, paredao: String },
    #[error("vote {index} is for '{participant}', who is not in paredão '{paredao}'")]
    UnknownParticipant { index: usize, paredao: String, participant: String },
    #[error(
        "vote {index} was cast at {t} ms since the epoch, outside paredão '{paredao}''s opening (allowing {skew_secs} s of clock skew)"
    )]
    CastOutsideWindow { index: usize, paredao: String, t: i64, skew_secs: i64 },
    #[error(
        "vote {index} carries a challenge key that is not {CHALLENGE_KEY_CHARS} lowercase hex digits (one spelling per challenge, so one bit per challenge)"
    )]
    MalformedChallenge { index: usize },
    #[error(
        "vote {index} says its challenge expires at {x} (unix seconds), which is not within a day after its cast time {t} ms"
    )]
    ChallengeExpiryOutOfRange { index: usize, x: i64, t: i64 },
}

impl InvalidVote {
    /// A short machine-readable reason, for the dead-letter header and the metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            InvalidVote::UnknownParedao { .. } => "unknown_paredao",
            InvalidVote::UnknownParticipant { .. } => "unknown_participant",
            InvalidVote::CastOutsideWindow { .. } => "cast_outside_window",
            InvalidVote::MalformedChallenge { .. } => "malformed_challenge",
            InvalidVote::ChallengeExpiryOutOfRange { .. } => "challenge_expiry_out_of_range",
        }
    }
}

impl DecodeError {
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Malformed(_) => "malformed",
            DecodeError::Empty => "empty_batch",
            DecodeError::CastTimeOutOfRange { .. } => "cast_time_out_of_range",
        }
    }
}

/// How far outside a paredão's opening a vote's cast time may lie: the API replicas stamp votes
/// with their own clocks and check the opening with them, and clocks drift apart a little.
pub const CAST_SKEW_SECS: i64 = 120;

impl VoteBatch {
    /// Checks every vote against the paredões the store holds: known paredão and participant,
    /// cast inside the opening (± `CAST_SKEW_SECS`), a well-formed challenge key.
    pub fn check<'a>(&self, paredao_of: impl Fn(&ParedaoId) -> Option<&'a Paredao>) -> Result<(), InvalidVote> {
        for (index, vote) in self.votes.iter().enumerate() {
            let paredao = paredao_of(&vote.paredao)
                .ok_or_else(|| InvalidVote::UnknownParedao { index, paredao: vote.paredao.to_string() })?;
            if paredao.participant(vote.participant.as_str()).is_none() {
                return Err(InvalidVote::UnknownParticipant {
                    index,
                    paredao: vote.paredao.to_string(),
                    participant: vote.participant.to_string(),
                });
            }
            let skew_ms = CAST_SKEW_SECS * 1000;
            let window = paredao.opens_at.timestamp_millis() - skew_ms..=paredao.closes_at.timestamp_millis() + skew_ms;
            if !window.contains(&vote.cast_at_ms) {
                return Err(InvalidVote::CastOutsideWindow {
                    index,
                    paredao: vote.paredao.to_string(),
                    t: vote.cast_at_ms,
                    skew_secs: CAST_SKEW_SECS,
                });
            }
            if let Some(k) = &vote.challenge
                && k.parse::<ChallengeKey>().is_err()
            {
                return Err(InvalidVote::MalformedChallenge { index });
            }
            if let Some(x) = vote.challenge_expires {
                let cast = vote.cast_at_ms.div_euclid(1000);
                if !(cast - CAST_SKEW_SECS..=cast + MAX_CHALLENGE_EXPIRY_AFTER_CAST_SECS).contains(&x) {
                    return Err(InvalidVote::ChallengeExpiryOutOfRange { index, x, t: vote.cast_at_ms });
                }
            }
        }
        Ok(())
    }

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
        if let Some((index, v)) =
            batch.votes.iter().enumerate().find(|(_, v)| !(EARLIEST_CAST_MS..LATEST_CAST_MS).contains(&v.cast_at_ms))
        {
            return Err(DecodeError::CastTimeOutOfRange { index, t: v.cast_at_ms });
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(p: &str, c: &str, ms: i64) -> Vote {
        Vote {
            paredao: ParedaoId::parse(p).unwrap(),
            participant: ParticipantId::parse(c).unwrap(),
            cast_at_ms: ms,
            challenge: None,
            challenge_expires: None,
        }
    }

    #[test]
    fn a_batch_round_trips_through_its_encoding() {
        let batch = VoteBatch::seal(
            vec![vote("p1", "ana", 1_764_000_000_000), vote("p1", "bia", 1_764_000_000_001)],
            Utc::now(),
        );
        assert_eq!(VoteBatch::decode(&batch.encode()).unwrap(), batch);
    }

    #[test]
    fn garbage_empty_and_invalid_ids_do_not_decode() {
        assert!(matches!(VoteBatch::decode(b"hello"), Err(DecodeError::Malformed(_))));
        let empty = VoteBatch::seal(vec![], Utc::now());
        assert!(matches!(VoteBatch::decode(&empty.encode()), Err(DecodeError::Empty)));
        let bad =
            br#"{"id":"0190a0b0-0000-7000-8000-000000000000","sealed_at_ms":1,"votes":[{"p":"P!","c":"ana","t":1}]}"#;
        assert!(matches!(VoteBatch::decode(bad), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn a_vote_cast_at_an_impossible_time_does_not_decode() {
        for t in [9_300_000_000_000, -1, 0, i64::MAX, i64::MIN] {
            let batch = VoteBatch::seal(vec![vote("p1", "ana", 1_764_000_000_000), vote("p1", "bia", t)], Utc::now());
            assert!(
                matches!(VoteBatch::decode(&batch.encode()), Err(DecodeError::CastTimeOutOfRange { index: 1, .. })),
                "t = {t}"
            );
        }
        let now = VoteBatch::seal(vec![vote("p1", "ana", Utc::now().timestamp_millis())], Utc::now());
        assert!(VoteBatch::decode(&now.encode()).is_ok());
    }

    #[test]
    fn a_vote_carries_the_challenge_it_spent_only_when_it_spent_one() {
        let plain = vote("p1", "ana", 1_764_000_000_000);
        assert!(
            !String::from_utf8(VoteBatch::seal(vec![plain.clone()], Utc::now()).encode()).unwrap().contains("\"k\"")
        );
        let key = ChallengeKey::issued(7, 9);
        let spent = plain.clone().spending(key, 1_764_000_300);
        assert_eq!(spent.challenge_key(), Some(key));
        assert_eq!(spent.challenge.as_deref(), Some("00000000000000070000000000000009"));
        assert_eq!(spent.challenge_filed_at(), 1_764_000_300);
        assert_eq!(plain.challenge_filed_at(), 1_764_000_000 + LEGACY_CHALLENGE_LIFETIME_SECS, "an older API's vote");
        let batch = VoteBatch::seal(vec![spent], Utc::now());
        assert_eq!(VoteBatch::decode(&batch.encode()).unwrap(), batch);
    }

    #[test]
    fn a_batch_is_checked_against_the_paredoes_the_store_holds() {
        let open = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 20, 0, 0).unwrap();
        let paredao = Paredao::new(crate::paredao::ParedaoSpec {
            id: ParedaoId::parse("p1").unwrap(),
            title: "P1".into(),
            participants: ["ana", "bia"]
                .iter()
                .map(|id| crate::paredao::Participant {
                    id: ParticipantId::parse(*id).unwrap(),
                    name: id.to_string(),
                    photo_url: None,
                })
                .collect(),
            opens_at: open,
            closes_at: open + chrono::Duration::hours(2),
            results_visibility: Default::default(),
        })
        .unwrap();
        let known = |id: &ParedaoId| (id == &paredao.id).then_some(&paredao);
        let at = open.timestamp_millis() + 1000;
        let check = |votes: Vec<Vote>| VoteBatch::seal(votes, Utc::now()).check(known);

        assert_eq!(
            check(vec![
                vote("p1", "ana", at),
                vote("p1", "bia", at).spending(ChallengeKey::issued(1, 2), at / 1000 + 300)
            ]),
            Ok(())
        );
        for x in
            [at / 1000 - CAST_SKEW_SECS - 1, at / 1000 + MAX_CHALLENGE_EXPIRY_AFTER_CAST_SECS + 1, i64::MIN, i64::MAX]
        {
            let forged = vote("p1", "bia", at).spending(ChallengeKey::issued(1, 2), x);
            assert_eq!(check(vec![forged]).unwrap_err().reason(), "challenge_expiry_out_of_range", "x = {x}");
        }
        assert_eq!(check(vec![vote("p1", "ana", open.timestamp_millis() - 60_000)]), Ok(()), "inside the skew");
        assert_eq!(check(vec![vote("p1", "ana", at), vote("p2", "ana", at)]).unwrap_err().reason(), "unknown_paredao");
        assert_eq!(check(vec![vote("p1", "caio", at)]).unwrap_err().reason(), "unknown_participant");
        let late = open.timestamp_millis() + 2 * 3_600_000 + (CAST_SKEW_SECS + 1) * 1000;
        assert_eq!(check(vec![vote("p1", "ana", late)]).unwrap_err().reason(), "cast_outside_window");
        for key in ["not hex at all, and far too long to be a key".to_string(), "AB".repeat(16), "ab".repeat(15)] {
            let mut forged = vote("p1", "ana", at);
            forged.challenge = Some(key);
            assert_eq!(check(vec![forged]).unwrap_err().reason(), "malformed_challenge");
        }
    }

    #[test]
    fn a_vote_keeps_its_millisecond() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 17, 5, 9).unwrap() + chrono::Duration::milliseconds(123);
        assert_eq!(Vote::new(ParedaoId::parse("p").unwrap(), ParticipantId::parse("a").unwrap(), at).cast_at(), at);
    }
}
