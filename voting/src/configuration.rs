//! Configuration, in one place for both services.
//!
//! Layers, later ones winning: `configuration/base.yaml`, then `configuration/$APP_ENVIRONMENT.yaml`
//! (`local` by default; `e2e`, `production` or `container`; the file must exist), then environment variables prefixed `APP_` with `__`
//! between levels: `APP_APPLICATION__PORT=8081`, `APP_BROKER__URL=amqp://…`.

use std::num::NonZeroUsize;
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
    /// addresses or networks (`10.42.0.0/16` where the proxy's address is not fixed). A YAML
    /// list, or from the environment a comma-separated one:
    /// `APP_APPLICATION__TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1`.
    #[serde(deserialize_with = "crate::ip_net::list")]
    pub trusted_proxies: Vec<crate::ip_net::IpNet>,
    /// A request's header lines together (names and values), at most; beyond it 431.
    pub max_header_bytes: NonZeroUsize,
    /// How many header lines a request may carry; beyond it 431.
    pub max_headers: NonZeroUsize,
}

/// Requests per client address, per API replica (nginx has a coarser limit across replicas).
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// Votes: the steady rate a key may sustain.
    pub per_second: f64,
    /// Votes: how many a key that has been idle may cast at once.
    pub burst: u32,
    /// Off: neither votes nor challenges are limited (the benchmark, one address for a crowd).
    pub enabled: bool,
    /// Challenge requests, limited apart from votes.
    pub challenges: Rate,
    /// Addresses each limiter (votes, challenges) remembers at most; beyond it the least
    /// recently seen is forgotten (and has its full burst again).
    pub max_clients: NonZeroUsize,
}

/// A steady rate and the burst allowed on top of it.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl RateLimitSettings {
    pub fn votes(&self) -> Rate {
        Rate { per_second: self.per_second, burst: self.burst }
    }
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
    /// Spent challenges one API replica remembers, at most (~40 bytes each). Beyond it the
    /// ones nearest their expiry are forgotten first; a replay of one is accepted by the API
    /// and then not counted by the store.
    pub spent_remembered_max: std::num::NonZeroUsize,
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
    /// Clients (addresses and cookies, each a key) remembered at most; beyond it the least
    /// recently seen is forgotten and starts again at `base`.
    pub max_clients: NonZeroUsize,
}

impl CaptchaSettings {
    pub fn hmac_key(&self) -> &str {
        self.hmac_key.expose_secret()
    }
}

/// What deployment examples put where a secret goes (`k8s/secrets.example.yaml`): a service
/// started with it would sign with, or accept, a value anybody can read.
pub const PLACEHOLDER_SECRET: &str = "change-me";

/// A secret a service needs is unset or still the placeholder. Names the setting and the
/// variable that sets it, so start-up fails with one line that says what to do.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting} is {problem}: set {variable}")]
pub struct SecretNotSet {
    pub setting: &'static str,
    pub variable: &'static str,
    pub problem: &'static str,
}

/// One secret setting: its name, its variable, its value, and whether it may be empty.
struct SecretSetting<'a> {
    setting: &'static str,
    variable: &'static str,
    value: &'a SecretString,
    required: bool,
}

impl SecretSetting<'_> {
    fn check(&self) -> Result<(), SecretNotSet> {
        let value = self.value.expose_secret().trim();
        let problem = if value == PLACEHOLDER_SECRET {
            "the placeholder 'change-me'"
        } else if value.is_empty() && self.required {
            "not set"
        } else {
            return Ok(());
        };
        Err(SecretNotSet { setting: self.setting, variable: self.variable, problem })
    }
}

impl Settings {
    /// The API's secrets: the captcha key (it signs challenges and client cookies, whatever the
    /// mode), the provider secret in `external` mode, the admin token (empty: the admin
    /// endpoints are off), the broker and store URLs (they carry credentials). Checked before
    /// anything connects.
    pub fn check_api_secrets(&self) -> Result<(), SecretNotSet> {
        let mut secrets = self.shared_secrets(true);
        if let (CaptchaMode::External, Some(external)) = (self.captcha.mode, &self.captcha.external) {
            secrets.push(SecretSetting {
                setting: "captcha.external.secret",
                variable: "APP_CAPTCHA__EXTERNAL__SECRET",
                value: &external.secret,
                required: true,
            });
        }
        secrets.iter().try_for_each(SecretSetting::check)
    }

    /// The consumer's: the broker and store URLs. It signs nothing, so the captcha key and admin
    /// token may be unset, but a placeholder in them says the deployment's Secret was never
    /// filled in, and is refused all the same.
    pub fn check_consumer_secrets(&self) -> Result<(), SecretNotSet> {
        self.shared_secrets(false).iter().try_for_each(SecretSetting::check)
    }

    fn shared_secrets(&self, signs: bool) -> Vec<SecretSetting<'_>> {
        vec![
            SecretSetting {
                setting: "captcha.hmac_key",
                variable: "APP_CAPTCHA__HMAC_KEY",
                value: &self.captcha.hmac_key,
                required: signs,
            },
            SecretSetting {
                setting: "admin.token",
                variable: "APP_ADMIN__TOKEN",
                value: &self.admin.token,
                required: false,
            },
            SecretSetting {
                setting: "broker.url",
                variable: "APP_BROKER__URL",
                value: &self.broker.url,
                required: true,
            },
            SecretSetting { setting: "store.url", variable: "APP_STORE__URL", value: &self.store.url, required: true },
        ]
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

/// Which deployment the settings are for (`APP_ENVIRONMENT`, `local` when unset): it names the
/// file layered over `base.yaml`, which must exist. A typo used to run silently on the base
/// settings alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// `./run.sh up`: this machine's stack.
    Local,
    /// The test and browser-test stacks.
    E2e,
    /// Kubernetes, ansible, the container image.
    Production,
    /// docker compose: `production.yaml`'s settings plus the compose network's addresses
    /// (`deploy/config/container.yaml`, mounted over the image's configuration folder).
    Container,
}

impl Environment {
    const ALL: [Environment; 4] =
        [Environment::Local, Environment::E2e, Environment::Production, Environment::Container];

    pub fn name(self) -> &'static str {
        match self {
            Environment::Local => "local",
            Environment::E2e => "e2e",
            Environment::Production => "production",
            Environment::Container => "container",
        }
    }
}

impl std::str::FromStr for Environment {
    type Err = config::ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|e| e.name() == s).ok_or_else(|| {
            config::ConfigError::Message(format!(
                "APP_ENVIRONMENT is '{s}': expected one of local, e2e, production, container"
            ))
        })
    }
}

pub fn get_configuration() -> Result<Settings, config::ConfigError> {
    configuration_from(None)
}

/// The layers over `variables` instead of the process's environment when given (for tests).
fn configuration_from(variables: Option<config::Map<String, String>>) -> Result<Settings, config::ConfigError> {
    let dir = configuration_dir();
    let environment: Environment = match &variables {
        Some(v) => v.get("APP_ENVIRONMENT").cloned(),
        None => std::env::var("APP_ENVIRONMENT").ok(),
    }
    .unwrap_or_else(|| "local".into())
    .parse()?;
    let layer = dir.join(format!("{}.yaml", environment.name()));
    if !layer.exists() {
        return Err(config::ConfigError::Message(format!(
            "APP_ENVIRONMENT is '{}', but {} does not exist",
            environment.name(),
            layer.display()
        )));
    }
    // Every variable stays a string (no `try_parsing`: it would turn a token made of digits
    // into a number and drop its leading zeros); the fields that take lists from a variable
    // split it themselves (`ip_net::list`).
    config::Config::builder()
        .add_source(config::File::from(dir.join("base.yaml")))
        .add_source(config::File::from(layer))
        .add_source(config::Environment::with_prefix("APP").prefix_separator("_").separator("__").source(variables))
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

    fn from_variables(pairs: &[(&str, &str)]) -> Result<Settings, config::ConfigError> {
        configuration_from(Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn an_unknown_environment_or_one_without_its_file_fails_naming_the_variable() {
        let error = from_variables(&[("APP_ENVIRONMENT", "prodution")]).unwrap_err().to_string();
        assert!(error.contains("APP_ENVIRONMENT is 'prodution'"), "{error}");
        // `container` is real, but its file is mounted by docker compose, not in this folder.
        let error = from_variables(&[("APP_ENVIRONMENT", "container")]).unwrap_err().to_string();
        assert!(error.contains("container.yaml does not exist"), "{error}");
        for name in ["local", "e2e", "production"] {
            assert!(from_variables(&[("APP_ENVIRONMENT", name)]).is_ok(), "{name}");
        }
    }

    #[test]
    fn trusted_proxies_come_from_the_environment_as_a_comma_separated_list_of_networks() {
        let settings =
            from_variables(&[("APP_APPLICATION__TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,fd00::/8")]).expect("parses");
        let trusted = &settings.application.trusted_proxies;
        assert_eq!(trusted.len(), 3);
        let contains = |ip: &str| trusted.iter().any(|net| net.contains(ip.parse().unwrap()));
        assert!(contains("10.42.7.9") && contains("127.0.0.1") && contains("fd12::1"));
        assert!(!contains("192.168.0.1"));

        let one = from_variables(&[("APP_APPLICATION__TRUSTED_PROXIES", "172.28.0.10")]).expect("parses");
        assert_eq!(one.application.trusted_proxies, vec!["172.28.0.10".parse().unwrap()]);
    }

    #[test]
    fn a_bad_network_in_the_environment_fails_naming_it() {
        let error =
            from_variables(&[("APP_APPLICATION__TRUSTED_PROXIES", "10.0.0.0/8,nginx")]).unwrap_err().to_string();
        assert!(error.contains("'nginx' is not an IP address or network"), "{error}");
    }

    #[test]
    fn tokens_made_of_digits_stay_as_written() {
        let settings =
            from_variables(&[("APP_ADMIN__TOKEN", "007"), ("APP_CAPTCHA__HMAC_KEY", "0123456789")]).expect("parses");
        assert_eq!(settings.admin.token(), Some("007"));
        assert_eq!(settings.captcha.hmac_key(), "0123456789");
    }

    fn with_secrets(hmac_key: &str, admin_token: &str) -> Settings {
        let mut settings = get_configuration().expect("parses");
        settings.captcha.hmac_key = hmac_key.to_string().into();
        settings.admin.token = admin_token.to_string().into();
        settings
    }

    #[test]
    fn the_api_refuses_a_placeholder_or_missing_captcha_key_and_a_placeholder_token() {
        let refused = |s: Settings| s.check_api_secrets().unwrap_err().to_string();
        assert_eq!(
            refused(with_secrets("change-me", "")),
            "captcha.hmac_key is the placeholder 'change-me': set APP_CAPTCHA__HMAC_KEY"
        );
        assert_eq!(refused(with_secrets("", "")), "captcha.hmac_key is not set: set APP_CAPTCHA__HMAC_KEY");
        assert_eq!(
            refused(with_secrets("a-real-key", "change-me")),
            "admin.token is the placeholder 'change-me': set APP_ADMIN__TOKEN"
        );
        let mut placeholder_url = with_secrets("a-real-key", "");
        placeholder_url.broker.url = "change-me".to_string().into();
        assert!(refused(placeholder_url).starts_with("broker.url is the placeholder"));
        // An empty admin token is how the admin endpoints are turned off.
        assert_eq!(with_secrets("a-real-key", "").check_api_secrets(), Ok(()));
        assert_eq!(with_secrets("a-real-key", "a-real-token").check_api_secrets(), Ok(()));
    }

    #[test]
    fn the_external_providers_secret_is_required_in_external_mode() {
        let mut settings = with_secrets("a-real-key", "");
        settings.captcha.mode = CaptchaMode::External;
        settings.captcha.external = Some(ExternalCaptchaSettings {
            provider: Provider::Turnstile,
            secret: "change-me".to_string().into(),
            verify_url: None,
            min_score: None,
            timeout_ms: 1000,
        });
        assert_eq!(settings.check_api_secrets().unwrap_err().setting, "captcha.external.secret");
    }

    #[test]
    fn the_consumer_needs_no_captcha_key_but_refuses_placeholders() {
        assert_eq!(with_secrets("", "").check_consumer_secrets(), Ok(()));
        assert_eq!(with_secrets("change-me", "").check_consumer_secrets().unwrap_err().setting, "captcha.hmac_key");
        let mut settings = with_secrets("", "");
        settings.store.url = " change-me ".to_string().into();
        assert_eq!(settings.check_consumer_secrets().unwrap_err().setting, "store.url");
    }

    #[test]
    fn the_shipped_configuration_has_no_usable_secret() {
        // base.yaml leaves the key empty: nothing committed can sign a challenge.
        let settings = get_configuration().expect("parses");
        if std::env::var_os("APP_CAPTCHA__HMAC_KEY").is_none() {
            assert!(settings.check_api_secrets().is_err());
        }
    }
}
