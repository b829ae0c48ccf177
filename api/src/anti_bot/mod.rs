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

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use voting::configuration::{CaptchaMode, CaptchaSettings};
use voting::paredao::ParedaoId;

use crate::client_id::ClientId;
use altcha::{Altcha, CaptchaRejection, ChallengeView};
use difficulty::{ClientKey, Difficulty};
use external_captcha::{ExternalCaptcha, ExternalCaptchaError};
use spent_challenges::{Spend, SpentChallenges};

pub struct AntiBot {
    mode: CaptchaMode,
    altcha: Altcha,
    difficulty: Difficulty,
    spent: Arc<SpentChallenges>,
    external: Option<ExternalCaptcha>,
}

/// Why a vote's proof was not checked or not accepted.
#[derive(Debug)]
pub enum AntiBotError {
    Rejected(CaptchaRejection),
    /// The external provider could not be asked: the vote is refused (fail closed) with 503.
    ProviderUnavailable,
}

/// Who is asking, as far as the API can tell: the address (behind nginx, the forwarded one) and
/// the browser's id, if its cookie is one we issued.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    /// `ip` as text: the rate limiter's key.
    pub address: String,
    pub cookie: Option<ClientId>,
}

impl Client {
    pub fn new(ip: IpAddr, cookie: Option<ClientId>) -> Self {
        Self { ip, address: ip.to_string(), cookie }
    }
}

impl AntiBot {
    /// # Errors
    /// When `mode: external` has no `captcha.external` settings.
    pub fn new(settings: &CaptchaSettings, spent: Arc<SpentChallenges>) -> anyhow::Result<Self> {
        let external = match (settings.mode, &settings.external) {
            (CaptchaMode::External, Some(e)) => Some(ExternalCaptcha::new(e.clone())),
            (CaptchaMode::External, None) => anyhow::bail!("captcha.mode is external but captcha.external is not set"),
            _ => None,
        };
        Ok(Self {
            mode: settings.mode,
            altcha: Altcha::new(settings.hmac_key(), settings.expires_secs),
            difficulty: Difficulty::new(settings.difficulty.clone()),
            spent,
            external,
        })
    }

    pub fn name(&self) -> &'static str {
        match self.mode {
            CaptchaMode::Off => "off",
            CaptchaMode::Altcha => "altcha",
            CaptchaMode::External => "external",
        }
    }

    /// A challenge for `client` to solve before voting in `paredao`; `None` when none is needed.
    pub fn challenge(&self, paredao: &ParedaoId, client: &Client) -> Option<ChallengeView> {
        match self.mode {
            CaptchaMode::Off | CaptchaMode::External => None,
            CaptchaMode::Altcha => {
                let address = ClientKey::Address(client.ip);
                let max_number = match client.cookie {
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
        match self.mode {
            CaptchaMode::Off => Ok(None),
            CaptchaMode::Altcha => {
                let solved = self.altcha.verify(paredao, solution).map_err(AntiBotError::Rejected)?;
                match self.spent.spend(solved.challenge_id, solved.expires_at) {
                    Some(spend) => Ok(Some(spend)),
                    None => Err(AntiBotError::Rejected(CaptchaRejection::AlreadyUsed)),
                }
            }
            CaptchaMode::External => {
                let external = self.external.as_ref().expect("built with external settings");
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
        self.mode != CaptchaMode::Altcha || self.spent.is_listening()
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
