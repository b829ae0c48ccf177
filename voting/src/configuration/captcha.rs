//! The captcha settings: which proof a vote needs (a tagged enum, so `external` cannot exist
//! without its provider's settings) and how hard the proof of work is.

use std::num::NonZeroUsize;

use secrecy::SecretString;
use serde::Deserialize;

use super::secrets::{HmacKey, check_secret};

/// Which proof that a person votes the API demands, with what each needs: `captcha.mode` and,
/// for `external`, `captcha.external` (refused at start when missing, so never missing here).
#[derive(Debug, Clone)]
pub enum CaptchaMode {
    /// No check at all: for load tests of the pipeline alone, never in production.
    Off,
    /// ALTCHA proof of work, verified here (one hash), single-use across replicas. Its work and
    /// lifetime are `captcha.difficulty` and `captcha.expires_secs`.
    Altcha,
    /// hCaptcha, Turnstile or reCAPTCHA, verified against the provider's siteverify endpoint.
    External(ExternalCaptchaSettings),
}

impl CaptchaMode {
    /// The label used in logs and the readiness answer.
    pub fn name(&self) -> &'static str {
        match self {
            CaptchaMode::Off => "off",
            CaptchaMode::Altcha => "altcha",
            CaptchaMode::External(_) => "external",
        }
    }
}

/// `captcha.mode` as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ModeName {
    Off,
    Altcha,
    External,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "CaptchaFile")]
pub struct CaptchaSettings {
    pub mode: CaptchaMode,
    /// Signs the challenges and the client cookies, whatever the mode. Generated on first local
    /// run (run/local/secrets), never committed; every replica of a deployment must share it.
    pub hmac_key: HmacKey,
    /// How long a challenge may be solved and spent.
    pub expires_secs: u64,
    /// Spent challenges one API replica remembers, at most (~40 bytes each). Beyond it the
    /// ones nearest their expiry are forgotten first; a replay of one is accepted by the API
    /// and then not counted by the store.
    pub spent_remembered_max: NonZeroUsize,
    pub difficulty: DifficultySettings,
}

/// The `captcha` keys as the files and variables write them: the mode's name, and the external
/// provider's settings beside it, required with `mode: external` (ignored otherwise).
#[derive(Deserialize)]
struct CaptchaFile {
    mode: ModeName,
    hmac_key: HmacKey,
    expires_secs: u64,
    spent_remembered_max: NonZeroUsize,
    difficulty: DifficultySettings,
    #[serde(default)]
    external: Option<ExternalCaptchaSettings>,
}

impl TryFrom<CaptchaFile> for CaptchaSettings {
    type Error = String;

    fn try_from(file: CaptchaFile) -> Result<Self, Self::Error> {
        let mode = match (file.mode, file.external) {
            (ModeName::Off, _) => CaptchaMode::Off,
            (ModeName::Altcha, _) => CaptchaMode::Altcha,
            (ModeName::External, Some(external)) => {
                check_secret("captcha.external.secret", "APP_CAPTCHA__EXTERNAL__SECRET", &external.secret)
                    .map_err(|e| e.to_string())?;
                CaptchaMode::External(external)
            }
            (ModeName::External, None) => {
                return Err("captcha.mode is external but captcha.external is not set: set \
                            APP_CAPTCHA__EXTERNAL__PROVIDER and APP_CAPTCHA__EXTERNAL__SECRET"
                    .into());
            }
        };
        Ok(Self {
            mode,
            hmac_key: file.hmac_key,
            expires_secs: file.expires_secs,
            spent_remembered_max: file.spent_remembered_max,
            difficulty: file.difficulty,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Hcaptcha,
    Turnstile,
    Recaptcha,
}

impl Provider {
    /// The label used in logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Hcaptcha => "hcaptcha",
            Provider::Turnstile => "turnstile",
            Provider::Recaptcha => "recaptcha",
        }
    }

    pub fn default_verify_url(&self) -> &'static str {
        match self {
            Provider::Hcaptcha => "https://api.hcaptcha.com/siteverify",
            Provider::Turnstile => "https://challenges.cloudflare.com/turnstile/v0/siteverify",
            Provider::Recaptcha => "https://www.google.com/recaptcha/api/siteverify",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ExternalCaptchaSettings {
    pub provider: Provider,
    pub secret: SecretString,
    /// Overrides the provider's siteverify URL (tests point it at a local fake).
    #[serde(default)]
    pub verify_url: Option<String>,
    /// reCAPTCHA v3 only: minimum score accepted (default 0.5).
    #[serde(default)]
    pub min_score: Option<f64>,
    /// Bounds the whole siteverify round trip, so a slow provider cannot hold votes hostage.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    3000
}

/// The work a client must do: ALTCHA's `maxnumber` (the expected work is half of it, in
/// SHA-256 hashes). It grows with the client's recent vote rate: `base` while it votes at most
/// `free_per_window` times per `window_secs`, then multiplied by `growth` for every vote beyond,
/// up to `max`.
#[derive(Debug, Clone, Deserialize)]
pub struct DifficultySettings {
    pub base: u64,
    pub max: u64,
    pub window_secs: u64,
    pub free_per_window: u32,
    pub growth: f64,
    /// Clients (addresses and cookies, each a key) remembered at most; beyond it the least
    /// recently seen is forgotten and starts again at `base`.
    pub max_clients: NonZeroUsize,
}

impl CaptchaSettings {
    pub fn hmac_key(&self) -> &str {
        self.hmac_key.expose_secret()
    }
}
