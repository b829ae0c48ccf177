//! The anti-bot check every vote passes before it is batched.
//!
//! This is the seam where the proof-of-work captcha plugs in: a vote carries an optional
//! `captcha` field, and `AntiBot::check` decides whether it proves a person cast it. Until the
//! captcha is built, the only policy is `Off`, chosen explicitly, and named so in the logs and
//! the readiness report: it verifies nothing and pretends nothing.

use voting::paredao::Paredao;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AntiBot {
    /// No check: every well-formed vote for an open paredão is accepted.
    Off,
}

impl AntiBot {
    pub fn name(&self) -> &'static str {
        match self {
            AntiBot::Off => "off",
        }
    }

    pub fn check(&self, _paredao: &Paredao, _captcha: Option<&str>) -> Result<(), ApiError> {
        match self {
            AntiBot::Off => Ok(()),
        }
    }
}
