//! The anti-bot policy every vote passes before it is batched, and that hands out challenges.
//!
//! `off`: nothing is checked (pipeline load tests only). `altcha`: every vote needs a freshly
//! solved ALTCHA challenge for its paredão, spent at most once across all replicas; how hard
//! the challenge is depends on how fast the client has been voting. `external`: every vote
//! carries an hCaptcha / Turnstile / reCAPTCHA token, checked with the provider (which also
//! makes each token single-use).
//!
//! Its parts: `altcha` (issuing and verifying challenges), `difficulty` (how hard per client),
//! `spent_challenges` (each challenge buys one vote across the replicas), `rate_limit` (votes
//! and challenges per client address), `external_captcha` (the provider's check).

pub mod altcha;
pub mod difficulty;
pub mod external_captcha;
pub mod rate_limit;
pub mod spent_challenges;

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use voting::configuration::{CaptchaMode, CaptchaSettings};
use voting::paredao::ParedaoId;

use crate::client::Client;
use altcha::{Altcha, CaptchaRejection, ChallengeView};
use difficulty::{ClientKey, Difficulty};
use external_captcha::{ExternalCaptcha, ExternalCaptchaError};
use spent_challenges::{Spend, SpentChallenges};

/// The policy in force, with what it needs: the provider's client exists exactly in `external`
/// mode.
enum Policy {
    Off,
    Altcha,
    External(ExternalCaptcha),
}

pub struct AntiBot {
    policy: Policy,
    altcha: Altcha,
    difficulty: Difficulty,
    spent: Arc<SpentChallenges>,
}

/// Why a vote's proof was not checked or not accepted.
#[derive(Debug)]
pub enum AntiBotError {
    Rejected(CaptchaRejection),
    /// The external provider could not be asked: the vote is refused (fail closed) with 503.
    ProviderUnavailable,
}

impl AntiBot {
    pub fn new(settings: &CaptchaSettings, spent: Arc<SpentChallenges>) -> Self {
        let policy = match &settings.mode {
            CaptchaMode::Off => Policy::Off,
            CaptchaMode::Altcha => Policy::Altcha,
            CaptchaMode::External(external) => Policy::External(ExternalCaptcha::new(external.clone())),
        };
        Self {
            policy,
            altcha: Altcha::new(settings.hmac_key(), settings.expires_secs),
            difficulty: Difficulty::new(settings.difficulty.clone()),
            spent,
        }
    }

    pub fn name(&self) -> &'static str {
        match self.policy {
            Policy::Off => "off",
            Policy::Altcha => "altcha",
            Policy::External(_) => "external",
        }
    }

    /// A challenge for `client` to solve before voting in `paredao`; `None` when none is needed.
    pub fn challenge(&self, paredao: &ParedaoId, client: &Client) -> Option<ChallengeView> {
        match self.policy {
            Policy::Off | Policy::External(_) => None,
            Policy::Altcha => {
                let address = ClientKey::Address(client.ip);
                let max_number = match client.id() {
                    Some(id) => self.difficulty.next(&[address, ClientKey::Cookie(id)], Instant::now()),
                    None => self.difficulty.next(&[address], Instant::now()),
                };
                Some(self.altcha.challenge(paredao, max_number, Utc::now()))
            }
        }
    }

    /// Checks the vote's captcha solution (or provider token) and spends it. Returns the spend
    /// of the ALTCHA challenge, whose id the vote carries so that the store counts each
    /// challenge once; the caller keeps it once the vote is durable, or drops it to release it.
    pub async fn check(
        &self,
        paredao: &ParedaoId,
        solution: Option<&str>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<Option<Spend>, AntiBotError> {
        match &self.policy {
            Policy::Off => Ok(None),
            Policy::Altcha => {
                let solved = self.altcha.verify(paredao, solution).map_err(AntiBotError::Rejected)?;
                match self.spent.spend(solved.challenge_id, solved.expires_at) {
                    Some(spend) => Ok(Some(spend)),
                    None => Err(AntiBotError::Rejected(CaptchaRejection::AlreadyUsed)),
                }
            }
            Policy::External(external) => {
                external.verify(solution, client_ip).await.map(|()| None).map_err(|e| match e {
                    ExternalCaptchaError::Missing => AntiBotError::Rejected(CaptchaRejection::Missing),
                    ExternalCaptchaError::Rejected(_) => AntiBotError::Rejected(CaptchaRejection::ProviderRejected),
                    ExternalCaptchaError::Unavailable => AntiBotError::ProviderUnavailable,
                })
            }
        }
    }

    /// Whether replays refused elsewhere are refused here too (only `altcha` needs the news).
    pub fn hears_spends(&self) -> bool {
        !matches!(self.policy, Policy::Altcha) || self.spent.is_listening()
    }

    /// How many spent challenges this replica knows of (its own and those it heard of).
    pub fn spent_known(&self) -> usize {
        self.spent.len()
    }

    pub fn purge(&self) {
        self.difficulty.purge(Instant::now());
        metrics::gauge!("paredao_captcha_difficulty_keys").set(self.difficulty.len() as f64);
    }
}
