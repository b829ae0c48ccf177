//! The limits, checked once when read: a bad value fails start-up with one line naming the
//! setting and the variable that sets it.

use super::{CaptchaMode, Settings};

/// A setting whose value cannot work: names it, what it is, what it must be, and the variable
/// that sets it, in one line.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("{setting} is {value}, but it must be {rule}: set {}", variable_of(setting))]
pub struct InvalidSetting {
    pub setting: &'static str,
    pub value: String,
    pub rule: String,
}

/// `rate_limit.challenges.burst` → `APP_RATE_LIMIT__CHALLENGES__BURST`.
fn variable_of(setting: &str) -> String {
    format!("APP_{}", setting.to_uppercase().replace('.', "__"))
}

/// One check: `value` must pass `valid`, described by `rule`.
fn require<T: std::fmt::Display>(
    setting: &'static str,
    value: T,
    rule: impl Into<String>,
    valid: impl FnOnce(&T) -> bool,
) -> Result<(), InvalidSetting> {
    if valid(&value) {
        return Ok(());
    }
    Err(InvalidSetting { setting, value: value.to_string(), rule: rule.into() })
}

fn at_least_one<T: std::fmt::Display + PartialOrd + From<u8>>(
    setting: &'static str,
    value: T,
) -> Result<(), InvalidSetting> {
    require(setting, value, "at least 1", |v| *v >= T::from(1))
}

fn a_positive_rate(setting: &'static str, per_second: f64) -> Result<(), InvalidSetting> {
    require(setting, per_second, "a positive number", |v| v.is_finite() && *v > 0.0)
}

impl Settings {
    /// The limits, checked once when read, so that whatever is built from them can trust them:
    /// a zero refresh period would panic in a timer, a zero queue capacity in its channel, a
    /// rate of 0 in the rate limiter, a difficulty base above its max would be silently capped.
    pub(super) fn check_limits(&self) -> Result<(), InvalidSetting> {
        let app = &self.application;
        at_least_one("application.body_limit_bytes", app.body_limit_bytes)?;
        at_least_one("application.paredoes_refresh_ms", app.paredoes_refresh_ms)?;
        at_least_one("application.results_refresh_ms", app.results_refresh_ms)?;

        let batcher = &self.batcher;
        at_least_one("batcher.max_votes", batcher.max_votes)?;
        at_least_one("batcher.max_in_flight", batcher.max_in_flight)?;
        at_least_one("batcher.queue_capacity", batcher.queue_capacity)?;
        at_least_one("batcher.confirm_timeout_ms", batcher.confirm_timeout_ms)?;

        // RabbitMQ reads a prefetch of 0 as "no limit".
        at_least_one("consumer.prefetch", self.consumer.prefetch)?;
        at_least_one("consumer.max_messages_per_write", self.consumer.max_messages_per_write)?;

        let queue_type = self.broker.queue_type.as_str();
        require("broker.queue_type", queue_type, "classic or quorum", |t| matches!(*t, "classic" | "quorum"))?;

        let captcha = &self.captcha;
        // A day at most: beyond that a challenge is not a fresh proof of anything.
        require("captcha.expires_secs", captcha.expires_secs, "between 1 and 86400", |s| (1..=86_400).contains(s))?;
        let difficulty = &captcha.difficulty;
        at_least_one("captcha.difficulty.base", difficulty.base)?;
        let at_least_base = format!("at least captcha.difficulty.base ({})", difficulty.base);
        require("captcha.difficulty.max", difficulty.max, at_least_base, |m| *m >= difficulty.base)?;
        at_least_one("captcha.difficulty.window_secs", difficulty.window_secs)?;
        require("captcha.difficulty.growth", difficulty.growth, "a number above 1", |g| g.is_finite() && *g > 1.0)?;
        if let CaptchaMode::External(external) = &captcha.mode {
            at_least_one("captcha.external.timeout_ms", external.timeout_ms)?;
            if let Some(score) = external.min_score {
                require("captcha.external.min_score", score, "between 0 and 1", |s| (0.0..=1.0).contains(s))?;
            }
        }

        let limits = &self.rate_limit;
        a_positive_rate("rate_limit.per_second", limits.per_second)?;
        at_least_one("rate_limit.burst", limits.burst)?;
        a_positive_rate("rate_limit.challenges.per_second", limits.challenges.per_second)?;
        at_least_one("rate_limit.challenges.burst", limits.challenges.burst)
    }
}
