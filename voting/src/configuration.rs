//! Configuration, in one place for both services.
//!
//! Layers, later ones winning: `configuration/base.yaml`, then `configuration/$APP_ENVIRONMENT.yaml`
//! (`local` by default, or `production`), then environment variables prefixed `APP_` with `__`
//! between levels: `APP_APPLICATION__PORT=8081`, `APP_BROKER__URL=amqp://…`.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::paredao::Paredao;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub application: ApplicationSettings,
    pub admission: AdmissionSettings,
    pub batcher: BatcherSettings,
    pub consumer: ConsumerSettings,
    pub broker: BrokerSettings,
    pub store: StoreSettings,
    pub captcha: CaptchaSettings,
    pub rate_limit: RateLimitSettings,
    pub admin: AdminSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// Paredões written to the store at start-up (an upsert by id), until the admin area exists.
    #[serde(default)]
    pub seed: Vec<Paredao>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApplicationSettings {
    pub host: String,
    pub port: u16,
    /// Largest request body accepted, in bytes; a vote is well under 1 KiB.
    pub body_limit_bytes: usize,
    /// How often each replica reloads the paredões and the counters it serves from memory.
    pub paredoes_refresh_ms: u64,
    pub results_refresh_ms: u64,
    /// Peers whose X-Real-IP / X-Forwarded-For headers are believed: the nginx in front, as
    /// addresses or networks (`10.42.0.0/16` where the proxy's address is not fixed).
    pub trusted_proxies: Vec<crate::ip_net::IpNet>,
}

/// Votes per client address, per API replica (nginx has a coarser limit across replicas).
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// The steady rate a key may sustain.
    pub per_second: f64,
    /// How many requests a key that has been idle may make at once.
    pub burst: u32,
    pub enabled: bool,
}

/// How much work one API replica holds at once; beyond it a request is refused at once with
/// 503 `overloaded` (see `api::admission`). Zero is not a bound, so it does not parse.
#[derive(Debug, Clone, Deserialize)]
pub struct AdmissionSettings {
    /// Votes between their first byte and their broker confirm.
    pub max_votes_in_flight: std::num::NonZeroUsize,
    /// Challenges, paredões, results and statistics being answered.
    pub max_reads_in_flight: std::num::NonZeroUsize,
}

/// Group commit: a batch is published when it holds `max_votes` or its first vote has waited
/// `max_wait_ms`, whichever comes first.
#[derive(Debug, Clone, Deserialize)]
pub struct BatcherSettings {
    pub max_votes: usize,
    pub max_wait_ms: u64,
    /// Batches published and not yet confirmed, at most; beyond it the batcher waits.
    pub max_in_flight: usize,
    /// Votes waiting for a batch, at most; beyond it new votes wait for room.
    pub queue_capacity: usize,
    /// A batch not confirmed by then is answered 503.
    pub confirm_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerSettings {
    pub host: String,
    /// Port of the consumer's health and metrics endpoints.
    pub port: u16,
    /// Messages RabbitMQ hands over before the first ack.
    pub prefetch: u16,
    /// Messages folded into one MongoDB transaction, at most.
    pub max_messages_per_write: usize,
    /// How long to wait for more messages once the first arrived, before writing.
    pub max_wait_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BrokerSettings {
    pub url: SecretString,
    /// The durable vote queue; its dead letters go to `<queue>.dead` through `<queue>.dlx`.
    pub queue: String,
    /// `classic` locally; `quorum` where RabbitMQ runs as a cluster.
    pub queue_type: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StoreSettings {
    /// MongoDB connection string. With the local MongoDB-protocol server it must carry
    /// `retryWrites=false` (with retryable writes it slows to a crawl after ~10k writes).
    pub url: SecretString,
    pub database: String,
}

/// Where logs go besides stdout.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TelemetrySettings {
    /// `host:port` of a Graylog GELF TCP input; unset or empty: stdout only.
    #[serde(default)]
    pub gelf_address: Option<String>,
}

/// The SRE-only endpoints (fault injection). Disabled while the token is empty.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminSettings {
    /// Bearer token for `/api/admin/*`. Generated on first local run (run/secrets), never
    /// committed; every replica of a deployment shares it.
    pub token: SecretString,
}

impl AdminSettings {
    /// The token, or `None` when the admin endpoints are disabled.
    pub fn token(&self) -> Option<&str> {
        Some(self.token.expose_secret()).filter(|t| !t.is_empty())
    }
}

/// Which proof that a person votes the API demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptchaMode {
    /// No check at all: for load tests of the pipeline alone, never in production.
    Off,
    /// ALTCHA proof of work, verified here (one hash), single-use across replicas.
    Altcha,
    /// hCaptcha, Turnstile or reCAPTCHA, verified against the provider's siteverify endpoint
    /// (`captcha.external`).
    External,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CaptchaSettings {
    pub mode: CaptchaMode,
    /// Signs the challenges. Generated on first local run (run/local/secrets), never committed;
    /// every replica of a deployment must share it.
    pub hmac_key: SecretString,
    /// How long a challenge may be solved and spent.
    pub expires_secs: u64,
    pub difficulty: DifficultySettings,
    /// Required with `mode: external`.
    #[serde(default)]
    pub external: Option<ExternalCaptchaSettings>,
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
}

impl CaptchaSettings {
    pub fn hmac_key(&self) -> &str {
        self.hmac_key.expose_secret()
    }
}

impl BrokerSettings {
    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }
}

impl StoreSettings {
    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }
}

/// The folder holding `base.yaml`: `$APP_CONFIG_DIR`, else `./configuration`, else the one in
/// this source tree (so tests run from any crate folder find it).
pub fn configuration_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("APP_CONFIG_DIR") {
        return dir.into();
    }
    let here = PathBuf::from("configuration");
    if here.join("base.yaml").exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configuration")
}

pub fn get_configuration() -> Result<Settings, config::ConfigError> {
    let dir = configuration_dir();
    let environment = std::env::var("APP_ENVIRONMENT").unwrap_or_else(|_| "local".into());
    config::Config::builder()
        .add_source(config::File::from(dir.join("base.yaml")))
        .add_source(config::File::from(dir.join(format!("{environment}.yaml"))).required(false))
        .add_source(config::Environment::with_prefix("APP").prefix_separator("_").separator("__"))
        .build()?
        .try_deserialize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_configuration_parses_and_seeds_an_open_paredao_locally() {
        let settings = get_configuration().expect("base.yaml + local.yaml parse");
        assert!(!settings.seed.is_empty(), "local.yaml seeds a paredão");
        assert!(settings.batcher.max_votes > 1);
        assert!(settings.store.url().contains("retryWrites=false"));
    }
}
