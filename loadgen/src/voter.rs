//! One simulated browser's requests: fetch a challenge, solve it, vote; the next challenge rides
//! on the 202, so a voter that keeps voting makes one request per vote, as the page does.

use std::time::Duration;

use voting::altcha::{ChallengeView, try_solve};

use crate::http1::Connection;

/// Where the votes go. Requests travel over `Connection`s that each worker owns; the reqwest
/// client is only for the occasional statistics read.
#[derive(Clone)]
pub struct Target {
    pub client: reqwest::Client,
    pub base: String,
    pub paredao: String,
    challenge_path: String,
    votes_path: String,
}

/// The answer to one vote: its status, and the next challenge when it was accepted.
pub struct Answer {
    /// 0: no HTTP answer (see `failure`).
    pub status: u16,
    /// The `error` code of a refusal's JSON body (`overloaded`, `unavailable`, ...).
    pub code: Option<String>,
    /// Why there was no HTTP answer (`connection_reset`, `client_timeout`, ...).
    pub failure: Option<&'static str>,
    /// `Retry-After` in seconds, when the refusal had one.
    pub retry_after: Option<u64>,
    pub next: Option<ChallengeView>,
}

impl Answer {
    /// Refused before any work, so the same captcha may be sent again: the server's surge
    /// guard (503 `overloaded`) or a rate limit (429).
    pub fn is_refusal(&self) -> bool {
        self.status == 429 || (self.status == 503 && self.code.as_deref() == Some("overloaded"))
    }

    /// How the report names this outcome: `202`, `503 overloaded`, `connection_reset`.
    pub fn kind(&self) -> String {
        match (self.status, &self.code, self.failure) {
            (0, _, Some(f)) => f.to_string(),
            (0, _, None) => "no_answer".to_string(),
            (s, Some(code), _) => format!("{s} {code}"),
            (s, None, _) => s.to_string(),
        }
    }
}

/// The `error` field of an error body, without parsing the whole JSON.
fn error_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find(r#""error":""#)? + r#""error":""#.len();
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_string())
}

impl Target {
    pub fn new(base: &str, paredao: &str) -> anyhow::Result<Self> {
        // The statistics are the production team's: the stack's SRE bearer token
        // (PAREDAO_ADMIN_TOKEN, which run.sh passes) reads them.
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(token) = std::env::var("PAREDAO_ADMIN_TOKEN")
            && !token.is_empty()
        {
            headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
        }
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).default_headers(headers).build()?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_string(),
            paredao: paredao.to_string(),
            challenge_path: format!("/api/paredoes/{paredao}/challenge"),
            votes_path: format!("/api/paredoes/{paredao}/votes"),
        })
    }

    pub fn connect(&self) -> Connection {
        Connection::new(&self.base)
    }

    /// A solved challenge: what the page's widget hands to the vote.
    pub async fn solved(&self, conn: &mut Connection) -> anyhow::Result<String> {
        let r = conn.request("GET", &self.challenge_path, None).await?;
        anyhow::ensure!(r.status == 200, "challenge: HTTP {}", r.status);
        try_solve(&serde_json::from_slice(&r.body)?).ok_or_else(|| anyhow::anyhow!("challenge: no number solves it"))
    }

    /// The solution in hand (the next challenge that rode on a 202, or one a refusal left
    /// unspent), else a freshly fetched and solved one.
    pub async fn solution(&self, conn: &mut Connection, in_hand: Option<String>) -> anyhow::Result<String> {
        match in_hand {
            Some(c) => Ok(c),
            None => self.solved(conn).await,
        }
    }

    pub async fn vote(&self, conn: &mut Connection, participant: &str, captcha: &str) -> Answer {
        let body = format!(r#"{{"participant_id":"{participant}","captcha":"{captcha}"}}"#);
        match conn.request("POST", &self.votes_path, Some(&body)).await {
            // 0 stands for "no HTTP answer" (connection error, timeout).
            Err(e) => Answer {
                status: 0,
                code: None,
                failure: Some(crate::http1::failure_kind(&e)),
                retry_after: None,
                next: None,
            },
            Ok(r) if r.status == 202 => {
                let next = serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|v| serde_json::from_value(v.get("next_challenge")?.clone()).ok());
                Answer { status: 202, code: None, failure: None, retry_after: None, next }
            }
            Ok(r) => Answer {
                status: r.status,
                code: error_code(&r.body),
                failure: None,
                retry_after: r.retry_after,
                next: None,
            },
        }
    }

    /// A plain GET whose status is all that matters (baseline, results reads).
    pub async fn get(&self, conn: &mut Connection, path: &str) -> u16 {
        conn.request("GET", path, None).await.map(|r| r.status).unwrap_or(0)
    }
}

/// Participants chosen in proportion to their weights, deterministically spread (no RNG needed:
/// the k-th vote goes to the participant whose cumulative share covers k mod total).
#[derive(Clone)]
pub struct Split {
    cumulative: Vec<(u32, String)>,
    total: u32,
}

impl Split {
    /// `ana=50,bruno=30,carla=20`
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut cumulative = Vec::new();
        let mut total = 0;
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, weight) =
                part.split_once('=').ok_or_else(|| anyhow::anyhow!("split entry '{part}' is not name=weight"))?;
            let weight: u32 = weight.parse()?;
            total += weight;
            cumulative.push((total, name.to_string()));
        }
        anyhow::ensure!(total > 0, "the split needs at least one positive weight");
        Ok(Self { cumulative, total })
    }

    pub fn pick(&self, k: u64) -> &str {
        // A multiplicative hash spreads consecutive k over the whole range.
        let slot = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32 % self.total;
        &self.cumulative.iter().find(|(upto, _)| slot < *upto).expect("slot < total").1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_told_from_a_failure_by_its_code() {
        let answer = |status, body: &str| Answer {
            status,
            code: error_code(body.as_bytes()),
            failure: None,
            retry_after: None,
            next: None,
        };
        let shed = answer(503, r#"{"error":"overloaded","message":"busy"}"#);
        assert!(shed.is_refusal());
        assert_eq!(shed.kind(), "503 overloaded");
        assert!(answer(429, r#"{"error":"rate_limited"}"#).is_refusal());
        let unreachable = answer(503, r#"{"error":"unavailable","message":"x"}"#);
        assert!(!unreachable.is_refusal());
        assert_eq!(unreachable.kind(), "503 unavailable");
        assert_eq!(answer(502, "<html>").kind(), "502");
    }

    #[test]
    fn the_split_follows_the_weights() {
        let split = Split::parse("ana=50,bruno=30,carla=20").unwrap();
        let mut counts = std::collections::HashMap::new();
        for k in 0..100_000 {
            *counts.entry(split.pick(k).to_string()).or_insert(0u32) += 1;
        }
        for (name, share) in [("ana", 0.5), ("bruno", 0.3), ("carla", 0.2)] {
            let got = counts[name] as f64 / 100_000.0;
            assert!((got - share).abs() < 0.01, "{name}: {got}");
        }
        assert!(Split::parse("ana").is_err());
        assert!(Split::parse("ana=0").is_err());
    }
}
