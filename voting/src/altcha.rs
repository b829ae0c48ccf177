//! An ALTCHA challenge as it travels between the API and a client, and the client's side of it:
//! the brute-force search the browser's widget runs, for the tests and the load generator.
//! (The server's side, issuing and verifying, is the API's `captcha` module.)

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// The challenge as the `altcha` widget expects it from its `challengeurl`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChallengeView {
    #[schema(example = "SHA-256")]
    pub algorithm: String,
    pub challenge: String,
    /// The work asked of this client: the number searched for is at most this.
    pub maxnumber: u64,
    pub salt: String,
    pub signature: String,
}

/// Finds the number the challenge hides the way the widget does: SHA-256(salt + n) for n from 0
/// to `maxnumber`, until one matches. None if none does (not a challenge we issued).
pub fn find_number(challenge: &ChallengeView) -> Option<u64> {
    let wanted = hex::decode(&challenge.challenge).ok()?;
    let mut hasher = Sha256::new();
    hasher.update(challenge.salt.as_bytes());
    (0..=challenge.maxnumber).find(|n| {
        let mut h = hasher.clone();
        h.update(n.to_string().as_bytes());
        h.finalize().as_slice() == wanted.as_slice()
    })
}

/// Solves a challenge and encodes the payload the way the widget sends it; None when no number
/// up to `maxnumber` matches (the challenge came from the network: the load generator counts
/// that as a failure rather than stopping).
pub fn try_solve(challenge: &ChallengeView) -> Option<String> {
    find_number(challenge).map(|number| encode_solution(challenge, number))
}

/// `try_solve` for tests, whose challenges come from our own API: a miss is a bug there.
pub fn solve(challenge: &ChallengeView) -> String {
    try_solve(challenge).expect("the challenge is solvable within its max number")
}

/// The widget's payload for `number`: base64 of its JSON.
pub fn encode_solution(challenge: &ChallengeView, number: u64) -> String {
    let payload = serde_json::json!({
        "algorithm": challenge.algorithm, "challenge": challenge.challenge, "number": number,
        "salt": challenge.salt, "signature": challenge.signature,
    });
    base64::engine::general_purpose::STANDARD.encode(payload.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_number_is_found_by_the_widgets_search() {
        let salt = "p1:abc?expires=1&".to_string();
        let challenge = hex::encode(Sha256::digest(format!("{salt}4321").as_bytes()));
        let view =
            ChallengeView { algorithm: "SHA-256".into(), challenge, maxnumber: 10_000, salt, signature: String::new() };
        assert_eq!(find_number(&view), Some(4321));
        assert_eq!(find_number(&ChallengeView { maxnumber: 4320, ..view.clone() }), None);
        let payload: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD.decode(encode_solution(&view, 4321)).unwrap(),
        )
        .unwrap();
        assert_eq!(payload["number"], 4321);
        assert_eq!(payload["salt"], view.salt);
    }
}
