//! Configuration, in one place for both services.
//!
//! Layers, later ones winning: `configuration/base.yaml`, then `configuration/$APP_ENVIRONMENT.yaml`
//! (`local` by default; `e2e`, `production` or `container`; the file must exist), then environment variables prefixed `APP_` with `__`
//! between levels: `APP_APPLICATION__PORT=8081`, `APP_BROKER__URL=amqp://…`.
//!
//! What is read is checked before either service starts anything: the captcha mode is a tagged
//! enum (`external` cannot exist without its provider's settings), the captcha key and the admin
//! token refuse the examples' placeholder, and the limits are checked (`Settings::check_limits`).
//! A bad setting fails start-up with one line naming it and the variable that sets it.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::paredao::Paredao;

mod captcha;
mod environment;
mod limits;
mod secrets;

pub use captcha::{CaptchaMode, CaptchaSettings, DifficultySettings, ExternalCaptchaSettings, Provider};
pub use environment::Environment;
pub use limits::InvalidSetting;
pub use secrets::{AdminToken, HmacKey, PLACEHOLDER_SECRET, SecretNotSet};

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
    /// The production team's logins and sessions.
    #[serde(default)]
    pub auth: AuthSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub uploads: UploadsSettings,
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
    /// How the final result is frozen once a paredão has closed (see `consumer::freezer`).
    #[serde(default)]
    pub freeze: FreezeSettings,
}

/// When a closed paredão's counters are final: `grace_ms` after its closing (at least the API's
/// `batcher.max_wait_ms + batcher.confirm_timeout_ms`, the longest a vote accepted before the
/// close may take to reach the queue), with no vote ready in the queue and its counters
/// unchanged for `settle_ms` (votes some consumer holds unacked). Checked every `every_ms`.
#[derive(Debug, Clone, Deserialize)]
pub struct FreezeSettings {
    pub grace_ms: u64,
    pub settle_ms: u64,
    pub every_ms: u64,
}

impl Default for FreezeSettings {
    fn default() -> Self {
        Self { grace_ms: 10_000, settle_ms: 3_000, every_ms: 1_000 }
    }
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

/// Where the participants' photos uploaded from the admin area are written; nginx serves that
/// folder at `/fotos/`.
#[derive(Debug, Clone, Deserialize)]
pub struct UploadsSettings {
    pub dir: PathBuf,
    /// Largest photo accepted, in bytes (the body limit of the photo route only).
    #[serde(default = "default_max_photo_bytes")]
    pub max_photo_bytes: usize,
}

fn default_max_photo_bytes() -> usize {
    5 * 1024 * 1024
}

impl Default for UploadsSettings {
    fn default() -> Self {
        Self { dir: PathBuf::from("run/uploads"), max_photo_bytes: default_max_photo_bytes() }
    }
}

/// The SRE-only endpoints (fault injection). Disabled while the token is empty.
#[derive(Debug, Clone, Deserialize)]
pub struct AdminSettings {
    /// Bearer token for `/api/admin/*`. Generated on first local run (run/secrets), never
    /// committed; every replica of a deployment shares it.
    pub token: AdminToken,
}

/// The production team's logins and sessions (`api::accounts`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// How long a session lasts after its login (the cookie's Max-Age too).
    pub session_ttl_secs: u64,
    /// How long a replica trusts a session it has read from the store before reading it again:
    /// a logout or an account deleted on another replica takes effect within this.
    pub session_cache_ms: u64,
    /// Consecutive failed logins after which an account is locked for `lockout_secs`.
    pub max_failed_logins: u32,
    pub lockout_secs: u64,
    /// Login attempts per client address, per replica.
    pub login_rate: Rate,
    /// Password hashes computed at once per replica (argon2 takes ~19 MiB and tens of ms each).
    pub max_concurrent_hashes: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            session_ttl_secs: 8 * 3600,
            session_cache_ms: 2_000,
            max_failed_logins: 5,
            lockout_secs: 300,
            login_rate: Rate { per_second: 0.2, burst: 10 },
            max_concurrent_hashes: 2,
        }
    }
}

impl AdminSettings {
    /// The token, or `None` when the admin endpoints are disabled.
    pub fn token(&self) -> Option<&str> {
        self.token.expose()
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
    let settings = config::Config::builder()
        .add_source(config::File::from(dir.join("base.yaml")))
        .add_source(config::File::from(layer))
        .add_source(config::Environment::with_prefix("APP").prefix_separator("_").separator("__").source(variables))
        .build()?
        .try_deserialize::<Settings>()
        .map_err(one_line)?;
    settings.check_limits().map_err(|e| config::ConfigError::Message(e.to_string()))?;
    Ok(settings)
}

/// The config crate adds "for key `captcha.hmac_key`" to an error raised while reading that
/// key; our own messages already start with the setting's name, so the suffix only repeats it.
fn one_line(error: config::ConfigError) -> config::ConfigError {
    match error {
        config::ConfigError::At { error, key: Some(key), .. } if matches!(&*error, config::ConfigError::Message(m) if m.starts_with(&key)) => {
            *error
        }
        other => other,
    }
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

    /// The one line start-up would fail with, given these variables.
    fn error_of(pairs: &[(&str, &str)]) -> String {
        match from_variables(pairs) {
            Ok(_) => panic!("{pairs:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    fn with_key(hmac_key: &str) -> Settings {
        let mut settings = get_configuration().expect("parses");
        settings.captcha.hmac_key = hmac_key.parse().expect("not the placeholder");
        settings
    }

    #[test]
    fn the_placeholder_is_refused_when_the_captcha_key_or_the_admin_token_is_read() {
        assert_eq!(
            error_of(&[("APP_CAPTCHA__HMAC_KEY", "change-me")]),
            "captcha.hmac_key is the placeholder 'change-me': set APP_CAPTCHA__HMAC_KEY"
        );
        assert_eq!(
            error_of(&[("APP_ADMIN__TOKEN", " change-me ")]),
            "admin.token is the placeholder 'change-me': set APP_ADMIN__TOKEN"
        );
        // Both services read them: the consumer refuses a Secret never filled in as well.
        assert!("change-me".parse::<HmacKey>().is_err() && "change-me".parse::<AdminToken>().is_err());
        // An empty admin token is how the admin endpoints are turned off.
        let off = from_variables(&[("APP_ADMIN__TOKEN", "")]).expect("parses");
        assert_eq!(off.admin.token(), None);
    }

    #[test]
    fn the_api_refuses_a_missing_captcha_key_and_placeholder_urls() {
        let refused = |s: Settings| s.check_api_secrets().unwrap_err().to_string();
        assert_eq!(refused(with_key("")), "captcha.hmac_key is not set: set APP_CAPTCHA__HMAC_KEY");
        assert_eq!(refused(with_key("  ")), "captcha.hmac_key is not set: set APP_CAPTCHA__HMAC_KEY");
        let mut placeholder_url = with_key("a-real-key");
        placeholder_url.broker.url = "change-me".to_string().into();
        assert!(refused(placeholder_url).starts_with("broker.url is the placeholder"));
        assert_eq!(with_key("a-real-key").check_api_secrets(), Ok(()));
        let mut with_token = with_key("a-real-key");
        with_token.admin.token = "a-real-token".parse().expect("a token");
        assert_eq!(with_token.check_api_secrets(), Ok(()));
    }

    const EXTERNAL: [(&str, &str); 2] =
        [("APP_CAPTCHA__MODE", "external"), ("APP_CAPTCHA__EXTERNAL__PROVIDER", "turnstile")];

    fn external(more: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        EXTERNAL.iter().chain(more).copied().collect()
    }

    #[test]
    fn the_external_mode_is_read_with_its_provider_and_secret_or_not_at_all() {
        let settings = from_variables(&external(&[("APP_CAPTCHA__EXTERNAL__SECRET", "s3cret")])).expect("parses");
        let CaptchaMode::External(provider) = &settings.captcha.mode else {
            panic!("{:?}", settings.captcha.mode);
        };
        assert_eq!((provider.provider, provider.timeout_ms), (Provider::Turnstile, 3000));
        assert_eq!(settings.captcha.mode.name(), "external");

        assert_eq!(
            error_of(&[("APP_CAPTCHA__MODE", "external")]),
            "captcha.mode is external but captcha.external is not set: set APP_CAPTCHA__EXTERNAL__PROVIDER and \
             APP_CAPTCHA__EXTERNAL__SECRET"
        );
        assert_eq!(
            error_of(&external(&[("APP_CAPTCHA__EXTERNAL__SECRET", "change-me")])),
            "captcha.external.secret is the placeholder 'change-me': set APP_CAPTCHA__EXTERNAL__SECRET"
        );
        assert_eq!(
            error_of(&external(&[("APP_CAPTCHA__EXTERNAL__SECRET", "")])),
            "captcha.external.secret is not set: set APP_CAPTCHA__EXTERNAL__SECRET"
        );
        // Another mode ignores the provider's settings, as it always has.
        let mut off = external(&[("APP_CAPTCHA__EXTERNAL__SECRET", "s3cret")]);
        off[0] = ("APP_CAPTCHA__MODE", "off");
        assert!(matches!(from_variables(&off).expect("parses").captcha.mode, CaptchaMode::Off));
    }

    #[test]
    fn the_consumer_needs_no_captcha_key_but_refuses_placeholder_urls() {
        assert_eq!(with_key("").check_consumer_secrets(), Ok(()));
        let mut settings = with_key("");
        settings.store.url = " change-me ".to_string().into();
        assert_eq!(settings.check_consumer_secrets().unwrap_err().setting, "store.url");
    }

    #[test]
    fn a_limit_that_cannot_work_fails_in_one_line_naming_the_setting_and_its_variable() {
        assert_eq!(
            error_of(&[("APP_RATE_LIMIT__CHALLENGES__BURST", "0")]),
            "rate_limit.challenges.burst is 0, but it must be at least 1: set APP_RATE_LIMIT__CHALLENGES__BURST"
        );
        assert_eq!(
            error_of(&[("APP_CAPTCHA__DIFFICULTY__MAX", "10")]),
            "captcha.difficulty.max is 10, but it must be at least captcha.difficulty.base (100000): set \
             APP_CAPTCHA__DIFFICULTY__MAX"
        );
        for (variable, value, setting) in [
            ("APP_APPLICATION__BODY_LIMIT_BYTES", "0", "application.body_limit_bytes"),
            ("APP_APPLICATION__PAREDOES_REFRESH_MS", "0", "application.paredoes_refresh_ms"),
            ("APP_APPLICATION__RESULTS_REFRESH_MS", "0", "application.results_refresh_ms"),
            ("APP_BATCHER__MAX_VOTES", "0", "batcher.max_votes"),
            ("APP_BATCHER__MAX_IN_FLIGHT", "0", "batcher.max_in_flight"),
            ("APP_BATCHER__QUEUE_CAPACITY", "0", "batcher.queue_capacity"),
            ("APP_BATCHER__CONFIRM_TIMEOUT_MS", "0", "batcher.confirm_timeout_ms"),
            ("APP_CONSUMER__PREFETCH", "0", "consumer.prefetch"),
            ("APP_CONSUMER__MAX_MESSAGES_PER_WRITE", "0", "consumer.max_messages_per_write"),
            ("APP_BROKER__QUEUE_TYPE", "qorum", "broker.queue_type"),
            ("APP_CAPTCHA__EXPIRES_SECS", "0", "captcha.expires_secs"),
            ("APP_CAPTCHA__EXPIRES_SECS", "86401", "captcha.expires_secs"),
            ("APP_CAPTCHA__DIFFICULTY__BASE", "0", "captcha.difficulty.base"),
            ("APP_CAPTCHA__DIFFICULTY__WINDOW_SECS", "0", "captcha.difficulty.window_secs"),
            ("APP_CAPTCHA__DIFFICULTY__GROWTH", "1", "captcha.difficulty.growth"),
            ("APP_CAPTCHA__DIFFICULTY__GROWTH", "NaN", "captcha.difficulty.growth"),
            ("APP_RATE_LIMIT__PER_SECOND", "0", "rate_limit.per_second"),
            ("APP_RATE_LIMIT__PER_SECOND", "-5", "rate_limit.per_second"),
            ("APP_RATE_LIMIT__BURST", "0", "rate_limit.burst"),
            ("APP_RATE_LIMIT__CHALLENGES__PER_SECOND", "0", "rate_limit.challenges.per_second"),
        ] {
            let error = error_of(&[(variable, value)]);
            assert!(error.starts_with(&format!("{setting} is {value}, but it must be ")), "{error}");
            assert!(error.ends_with(&format!(": set {variable}")) && !error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn the_external_providers_limits_are_checked_in_external_mode() {
        let with = |variable, value| error_of(&external(&[("APP_CAPTCHA__EXTERNAL__SECRET", "s"), (variable, value)]));
        assert_eq!(
            with("APP_CAPTCHA__EXTERNAL__TIMEOUT_MS", "0"),
            "captcha.external.timeout_ms is 0, but it must be at least 1: set APP_CAPTCHA__EXTERNAL__TIMEOUT_MS"
        );
        assert_eq!(
            with("APP_CAPTCHA__EXTERNAL__MIN_SCORE", "1.5"),
            "captcha.external.min_score is 1.5, but it must be between 0 and 1: set APP_CAPTCHA__EXTERNAL__MIN_SCORE"
        );
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
