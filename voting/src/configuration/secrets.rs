//! The secrets as read: the admin token and the captcha key refuse the examples' placeholder
//! when parsed; the secrets a service needs set are checked before it connects anything.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::Settings;

/// `admin.token` as read: empty (the admin endpoints are off) or a token, never the
/// placeholder.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct AdminToken(Option<SecretString>);

impl TryFrom<String> for AdminToken {
    type Error = SecretNotSet;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        refuse_placeholder("admin.token", "APP_ADMIN__TOKEN", &value)?;
        Ok(Self(Some(value).filter(|t| !t.is_empty()).map(SecretString::from)))
    }
}

impl AdminToken {
    /// The token, or `None` when the admin endpoints are off.
    pub fn expose(&self) -> Option<&str> {
        self.0.as_ref().map(|t| t.expose_secret())
    }
}

impl std::str::FromStr for AdminToken {
    type Err = SecretNotSet;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.to_string().try_into()
    }
}

/// `captcha.hmac_key` as read: never the placeholder. It may be empty where nothing is signed
/// (the consumer); the API refuses that before it starts (`Settings::check_api_secrets`).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct HmacKey(SecretString);

impl TryFrom<String> for HmacKey {
    type Error = SecretNotSet;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        refuse_placeholder("captcha.hmac_key", "APP_CAPTCHA__HMAC_KEY", &value)?;
        Ok(Self(value.into()))
    }
}

impl std::str::FromStr for HmacKey {
    type Err = SecretNotSet;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.to_string().try_into()
    }
}

impl HmacKey {
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
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

/// The placeholder is refused wherever a secret is read, set or not.
fn refuse_placeholder(setting: &'static str, variable: &'static str, value: &str) -> Result<(), SecretNotSet> {
    if value.trim() == PLACEHOLDER_SECRET {
        return Err(SecretNotSet { setting, variable, problem: "the placeholder 'change-me'" });
    }
    Ok(())
}

/// A secret that must be set: neither empty nor the placeholder.
pub(super) fn check_secret(
    setting: &'static str,
    variable: &'static str,
    value: &SecretString,
) -> Result<(), SecretNotSet> {
    let value = value.expose_secret();
    refuse_placeholder(setting, variable, value)?;
    if value.trim().is_empty() {
        return Err(SecretNotSet { setting, variable, problem: "not set" });
    }
    Ok(())
}

impl Settings {
    /// The API's secrets: the captcha key (it signs challenges and client cookies, whatever the
    /// mode; the placeholder is refused when read, but only the API needs it set), the broker
    /// and store URLs (they carry credentials). Checked before anything connects.
    pub fn check_api_secrets(&self) -> Result<(), SecretNotSet> {
        check_secret("captcha.hmac_key", "APP_CAPTCHA__HMAC_KEY", &self.captcha.hmac_key.0)?;
        self.check_consumer_secrets()
    }

    /// The consumer's: the broker and store URLs. It signs nothing, so the captcha key and admin
    /// token may be unset (a placeholder in them is refused when they are read, for both
    /// services: it says the deployment's Secret was never filled in).
    pub fn check_consumer_secrets(&self) -> Result<(), SecretNotSet> {
        check_secret("broker.url", "APP_BROKER__URL", &self.broker.url)?;
        check_secret("store.url", "APP_STORE__URL", &self.store.url)
    }
}
