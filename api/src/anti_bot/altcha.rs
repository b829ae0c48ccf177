//! ALTCHA proof of work: challenges bound to a paredão, expiring, verified with one hash.
//!
//! A challenge's salt is `<paredão>:<number><random>?expires=<unix>&`; the challenge is
//! SHA-256(salt + secret number) and the signature an HMAC of it, so changing the salt (to
//! extend the expiry or to move the challenge to another paredão) breaks the signature. The
//! paredão is part of the salt itself rather than a second `?` parameter: altcha-lib-rs
//! rebuilds the parameters from a HashMap when it verifies, in an order that differs from run
//! to run, so a salt with two parameters would verify only by chance. The
//! browser finds the number by brute force; the server checks it with one hash and one HMAC,
//! whatever the difficulty.
//!
//! `<number>` identifies the challenge: 16 hex digits naming this replica's run (random at
//! start) and 16 counting the challenges it has issued. It is what a vote carries as the
//! challenge it spent, so the challenges one replica hands out in a row are recorded together
//! in the store (one bitmap for thousands: `voting::store`). Eight more random bytes follow, so
//! a salt cannot be guessed ahead of being issued.

use altcha_lib_rs::{Challenge, ChallengeOptions, Payload};
use base64::Engine;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use voting::challenge_key::{CHALLENGE_KEY_CHARS, ChallengeKey};
use voting::paredao::ParedaoId;

/// Why a vote's captcha was refused. Each is a metric label and a WARN log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CaptchaRejection {
    #[error("the vote carries no captcha solution; solve the challenge first")]
    Missing,
    #[error("the captcha solution is not a valid ALTCHA payload")]
    Malformed,
    #[error("the captcha solution does not match its signed challenge")]
    BadSignature,
    #[error("the captcha challenge has expired; solve a fresh one")]
    Expired,
    #[error("the captcha challenge was issued for another paredão")]
    WrongParedao,
    #[error("this captcha challenge was already used for a vote; solve a fresh one")]
    AlreadyUsed,
    #[error("the captcha provider did not accept the token")]
    ProviderRejected,
}

impl CaptchaRejection {
    pub fn code(self) -> &'static str {
        match self {
            CaptchaRejection::Missing => "captcha_missing",
            CaptchaRejection::Malformed => "captcha_malformed",
            CaptchaRejection::BadSignature => "captcha_bad_signature",
            CaptchaRejection::Expired => "captcha_expired",
            CaptchaRejection::WrongParedao => "captcha_wrong_paredao",
            CaptchaRejection::AlreadyUsed => "captcha_already_used",
            CaptchaRejection::ProviderRejected => "captcha_rejected",
        }
    }
}

pub use voting::altcha::{ChallengeView, encode_solution, solve};

/// The challenge as the widget expects it, from altcha-lib-rs's.
fn view_of(c: Challenge) -> ChallengeView {
    let algorithm = serde_json::to_value(c.algorithm)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| "SHA-256".into());
    ChallengeView { algorithm, challenge: c.challenge, maxnumber: c.maxnumber, salt: c.salt, signature: c.signature }
}

/// The payload as the widget sends it. altcha-lib-rs reads `took` as a whole number, but the
/// 3.x widget sends milliseconds with a decimal (`4707.5`): read it here, and leave it out of
/// what is verified (it is the client's own timing, not part of the proof).
#[derive(Debug, Deserialize)]
struct WidgetPayload {
    algorithm: altcha_lib_rs::algorithm::AltchaAlgorithm,
    challenge: String,
    number: u64,
    salt: String,
    signature: String,
    #[serde(default)]
    #[allow(dead_code)]
    took: Option<f64>,
}

impl From<WidgetPayload> for Payload {
    fn from(w: WidgetPayload) -> Self {
        Payload {
            algorithm: w.algorithm,
            challenge: w.challenge,
            number: w.number,
            salt: w.salt,
            signature: w.signature,
            took: None,
        }
    }
}

/// A verified solution: the id to spend and when the challenge expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Solved {
    pub challenge_id: ChallengeKey,
    pub expires_at: i64,
}

pub struct Altcha {
    hmac_key: String,
    expires: TimeDelta,
    /// This run's half of the challenge numbers.
    issuer: u64,
    issued: AtomicU64,
}

impl Altcha {
    pub fn new(hmac_key: &str, expires_secs: u64) -> Self {
        let issuer = u64::from_le_bytes(rand_bytes()[..8].try_into().unwrap_or_default());
        Self {
            hmac_key: hmac_key.to_string(),
            expires: TimeDelta::seconds(expires_secs as i64),
            issuer,
            issued: AtomicU64::new(0),
        }
    }

    pub fn challenge(&self, paredao: &ParedaoId, max_number: u64, now: DateTime<Utc>) -> ChallengeView {
        let number = ChallengeKey::issued(self.issuer, self.issued.fetch_add(1, Ordering::Relaxed));
        let random = &rand_bytes()[..8];
        let salt = format!("{paredao}:{number}{}", hex::encode(random));
        view_of(
            altcha_lib_rs::create_challenge(ChallengeOptions {
                hmac_key: &self.hmac_key,
                max_number: Some(max_number.max(1)),
                expires: Some(now + self.expires),
                salt: Some(salt),
                ..Default::default()
            })
            .expect("a challenge with a positive max number is always created"),
        )
    }

    /// Checks a solution (the widget's base64 payload, or the payload's JSON itself) for
    /// `paredao`. Does not spend it.
    pub fn verify(&self, paredao: &ParedaoId, solution: Option<&str>) -> Result<Solved, CaptchaRejection> {
        let solution = solution.map(str::trim).filter(|s| !s.is_empty()).ok_or(CaptchaRejection::Missing)?;
        let json = if solution.starts_with('{') {
            solution.as_bytes().to_vec()
        } else {
            base64::engine::general_purpose::STANDARD.decode(solution).map_err(|_| CaptchaRejection::Malformed)?
        };
        let payload: Payload =
            serde_json::from_slice::<WidgetPayload>(&json).map_err(|_| CaptchaRejection::Malformed)?.into();
        let params = salt_params(&payload.salt);
        // A challenge without an expiry would be good forever: we never issue one.
        let expires_at: i64 = params.get("expires").and_then(|e| e.parse().ok()).ok_or(CaptchaRejection::Malformed)?;
        if !matches!(payload.algorithm, altcha_lib_rs::algorithm::AltchaAlgorithm::Sha256) {
            return Err(CaptchaRejection::Malformed);
        }
        if expires_at < Utc::now().timestamp() {
            return Err(CaptchaRejection::Expired);
        }
        self.check_proof(&payload)?;
        // Only now is the salt known to be ours, paredão included.
        let issued_for = payload.salt.split_once(':').map(|(p, _)| p);
        if issued_for != Some(paredao.as_str()) {
            return Err(CaptchaRejection::WrongParedao);
        }
        // The digest was checked above to be 64 hex digits, so it always has a key.
        let challenge_id = challenge_number(&payload.salt)
            .or_else(|| ChallengeKey::of_digest(&payload.challenge).ok())
            .ok_or(CaptchaRejection::Malformed)?;
        Ok(Solved { challenge_id, expires_at })
    }
}

impl Altcha {
    /// SHA-256(salt + number) must be the challenge, and the signature our HMAC of it.
    ///
    /// Done here rather than with `altcha_lib_rs::verify_solution`, which refuses any number
    /// above its default maximum (1,000,000) as a malformed input: the adaptive difficulty asks
    /// fast clients for numbers up to `captcha.difficulty.max`, and their honest solutions must
    /// verify.
    fn check_proof(&self, payload: &Payload) -> Result<(), CaptchaRejection> {
        use hmac::{KeyInit, Mac};
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{}{}", payload.salt, payload.number).as_bytes());
        let expected = hex::encode(digest);
        if expected != payload.challenge {
            return Err(CaptchaRejection::BadSignature);
        }
        let signature = hex::decode(&payload.signature).map_err(|_| CaptchaRejection::BadSignature)?;
        let mut mac =
            hmac::Hmac::<Sha256>::new_from_slice(self.hmac_key.as_bytes()).expect("HMAC takes a key of any size");
        mac.update(payload.challenge.as_bytes());
        // Constant time: the comparison must not tell a forger how much of a signature is right.
        mac.verify_slice(&signature).map_err(|_| CaptchaRejection::BadSignature)
    }
}

/// The number a salt we issued carries (see the module doc). A challenge issued before salts
/// carried one (a 24-digit random part) is known by its digest instead, as it was then.
fn challenge_number(salt: &str) -> Option<ChallengeKey> {
    let (_, rest) = salt.split_once(':')?;
    let digits = rest.split('?').next().unwrap_or_default();
    if digits.len() <= CHALLENGE_KEY_CHARS {
        return None;
    }
    rest.get(..CHALLENGE_KEY_CHARS)?.parse().ok()
}

/// Unpredictable bytes for a salt: two UUIDv4s' worth of the OS's randomness.
fn rand_bytes() -> [u8; 12] {
    let a = uuid::Uuid::new_v4();
    let mut out = [0u8; 12];
    out.copy_from_slice(&a.as_bytes()[..12]);
    out
}

/// The `key=value` parameters after the `?` of a salt. Only trusted once the signature, which
/// covers the whole salt, has been verified.
fn salt_params(salt: &str) -> std::collections::HashMap<String, String> {
    salt.split_once('?')
        .map(|(_, query)| {
            query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paredao(id: &str) -> ParedaoId {
        ParedaoId::parse(id).unwrap()
    }

    fn altcha() -> Altcha {
        Altcha::new("test-key", 300)
    }

    #[test]
    fn a_solved_challenge_verifies_for_its_paredao_only() {
        let a = altcha();
        let c = a.challenge(&paredao("p1"), 5_000, Utc::now());
        let solution = solve(&c);
        let solved = a.verify(&paredao("p1"), Some(&solution)).unwrap();
        assert_eq!(Some(solved.challenge_id), challenge_number(&c.salt));
        assert_eq!(a.verify(&paredao("p2"), Some(&solution)), Err(CaptchaRejection::WrongParedao));
    }

    #[test]
    fn the_challenges_a_replica_issues_in_a_row_are_numbered_in_a_row() {
        // What lets the store record thousands of them in one document.
        let a = altcha();
        let ids: Vec<ChallengeKey> = (0..3)
            .map(|_| {
                let c = a.challenge(&paredao("p1"), 10, Utc::now());
                a.verify(&paredao("p1"), Some(&solve(&c))).unwrap().challenge_id
            })
            .collect();
        assert!(ids.iter().all(|id| id.issuer() == ids[0].issuer()), "{ids:?}");
        let sequence: Vec<u64> = ids.iter().map(|id| id.sequence()).collect();
        assert_eq!(sequence, [sequence[0], sequence[0] + 1, sequence[0] + 2]);
        // Another replica's run numbers its own.
        let other = altcha().challenge(&paredao("p1"), 10, Utc::now());
        assert_ne!(challenge_number(&other.salt).unwrap().issuer(), ids[0].issuer());
    }

    #[test]
    fn a_challenge_issued_before_salts_carried_a_number_is_known_by_its_digest() {
        let p1 = paredao("p1");
        let c = view_of(
            altcha_lib_rs::create_challenge(ChallengeOptions {
                hmac_key: "test-key",
                max_number: Some(10),
                expires: Some(Utc::now() + TimeDelta::seconds(60)),
                salt: Some(format!("{p1}:00112233445566778899aabb")),
                ..Default::default()
            })
            .unwrap(),
        );
        assert_eq!(altcha().verify(&p1, Some(&solve(&c))).unwrap().challenge_id.to_string(), c.challenge[..32]);
    }

    #[test]
    fn forged_tampered_expired_and_missing_solutions_are_refused_with_their_reason() {
        let a = altcha();
        let c = a.challenge(&paredao("p1"), 2_000, Utc::now());
        let number = altcha_lib_rs::solve_challenge(&c.challenge, &c.salt, None, Some(c.maxnumber), 0).unwrap();

        assert_eq!(a.verify(&paredao("p1"), None), Err(CaptchaRejection::Missing));
        assert_eq!(a.verify(&paredao("p1"), Some("  ")), Err(CaptchaRejection::Missing));
        assert_eq!(a.verify(&paredao("p1"), Some("not base64 !")), Err(CaptchaRejection::Malformed));

        let wrong_number = encode_solution(&c, number + 1);
        assert_eq!(a.verify(&paredao("p1"), Some(&wrong_number)), Err(CaptchaRejection::BadSignature));

        let forged = Altcha::new("another-key", 300).challenge(&paredao("p1"), 2_000, Utc::now());
        assert_eq!(a.verify(&paredao("p1"), Some(&solve(&forged))), Err(CaptchaRejection::BadSignature));

        // Moving the challenge to another paredão, or pushing its expiry, changes the salt.
        let mut tampered = c.clone();
        tampered.salt = c.salt.replace("p1:", "p2:");
        assert_eq!(
            a.verify(&paredao("p2"), Some(&encode_solution(&tampered, number))),
            Err(CaptchaRejection::BadSignature)
        );

        let old = a.challenge(&paredao("p1"), 2_000, Utc::now() - TimeDelta::seconds(600));
        assert_eq!(a.verify(&paredao("p1"), Some(&solve(&old))), Err(CaptchaRejection::Expired));
    }

    #[test]
    fn the_widgets_payload_with_a_decimal_took_is_accepted() {
        let a = altcha();
        let c = a.challenge(&paredao("p1"), 1_000, Utc::now());
        let number = altcha_lib_rs::solve_challenge(&c.challenge, &c.salt, None, Some(c.maxnumber), 0).unwrap();
        let payload = serde_json::json!({
            "algorithm": "SHA-256", "challenge": c.challenge, "number": number,
            "salt": c.salt, "signature": c.signature, "took": 4707.5,
        });
        let encoded = base64::engine::general_purpose::STANDARD.encode(payload.to_string());
        assert!(a.verify(&paredao("p1"), Some(&encoded)).is_ok());
    }

    #[test]
    fn a_hard_challenges_solution_above_a_million_verifies() {
        // What the adaptive difficulty asks of a fast client: a secret number past 1,000,000
        // (the library's own verifier refused those as malformed).
        let a = altcha();
        let p1 = paredao("p1");
        let salt = format!("{p1}:00112233445566778899aabb");
        let c = view_of(
            altcha_lib_rs::create_challenge(ChallengeOptions {
                hmac_key: "test-key",
                max_number: Some(20_000_000),
                number: Some(5_000_000),
                expires: Some(Utc::now() + TimeDelta::seconds(60)),
                salt: Some(salt),
                ..Default::default()
            })
            .unwrap(),
        );
        assert!(a.verify(&p1, Some(&encode_solution(&c, 5_000_000))).is_ok());
        assert_eq!(a.verify(&p1, Some(&encode_solution(&c, 5_000_001))), Err(CaptchaRejection::BadSignature));
        let mut forged = c.clone();
        forged.signature = "ab".repeat(32);
        assert_eq!(a.verify(&p1, Some(&encode_solution(&forged, 5_000_000))), Err(CaptchaRejection::BadSignature));
        forged.signature = "not hex".into();
        assert_eq!(a.verify(&p1, Some(&encode_solution(&forged, 5_000_000))), Err(CaptchaRejection::BadSignature));
    }

    #[test]
    fn a_challenge_at_production_difficulty_is_solvable_by_the_widgets_algorithm() {
        // The widget searches 0..=maxnumber for SHA-256(salt + n) == challenge: the same loop
        // as `solve`. At the production base difficulty that is at most 100,000 hashes.
        let a = altcha();
        let c = a.challenge(&paredao("p1"), 100_000, Utc::now());
        assert_eq!(c.algorithm, "SHA-256");
        assert!(a.verify(&paredao("p1"), Some(&solve(&c))).is_ok());
    }
}
