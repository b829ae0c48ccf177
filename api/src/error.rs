//! The one error type of the HTTP boundary. Every failure becomes a JSON body
//! `{"error": "<code>", "message": "<what was wrong>"}` with the right status; client mistakes
//! are logged at WARN, the unexpected at ERROR, and internals never leak into a 500.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use voting::paredao::ParedaoState;

use crate::anti_bot::AntiBotError;
use crate::anti_bot::altcha::CaptchaRejection;
use crate::batcher::PublishError;

/// The anti-robot check's verdict, in one place: a refused captcha is the client's fault (400/403
/// with its code), a provider that cannot be reached is ours (503, retry-safe).
impl From<AntiBotError> for ApiError {
    fn from(e: AntiBotError) -> Self {
        match e {
            AntiBotError::Rejected(r) => ApiError::Captcha(r),
            AntiBotError::ProviderUnavailable => ApiError::Unavailable("the captcha provider cannot be reached"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest { status: StatusCode, code: &'static str, message: String },
    #[error("paredão '{0}' does not exist")]
    UnknownParedao(String),
    #[error("no paredão has been scheduled yet")]
    NoParedao,
    #[error("participant '{participant}' is not in paredão '{paredao}'")]
    UnknownParticipant { paredao: String, participant: String },
    #[error("paredão '{paredao}' is {}: votes are accepted only while it is open", state.as_str())]
    ParedaoNotOpen { paredao: String, state: ParedaoState },
    #[error("paredão '{0}' has closed: the vote has ended")]
    ParedaoClosed(String),
    #[error("no such resource: {0}")]
    NotFound(String),
    #[error("the vote was not accepted: {0}; nothing was counted, try again")]
    NotDurable(PublishError),
    #[error(
        "the vote is busy right now: this request was not read, nothing was counted and its captcha was not used; try again in a moment"
    )]
    Overloaded,
    #[error("the service is not ready: {0}")]
    Unavailable(&'static str),
    #[error("{0}")]
    Captcha(CaptchaRejection),
    #[error("too many votes from this client; wait {}s and try again", .0.as_secs().max(1))]
    RateLimited(std::time::Duration),
    #[error("too many challenges asked for by this client; wait {}s and try again", .0.as_secs().max(1))]
    ChallengesRateLimited(std::time::Duration),
    #[error("the request's headers are too large: at most {max_headers} header lines of {max_bytes} bytes in all")]
    HeadersTooLarge { max_bytes: usize, max_headers: usize },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("this deployment hands out no proof-of-work challenges (captcha mode off or external)")]
    CaptchaOff,
    #[error("sign in first: this needs a session of the production team (or the SRE bearer token)")]
    Unauthorized,
    #[error("wrong name or password")]
    InvalidCredentials,
    #[error("too many login attempts; wait {}s and try again", .0.as_secs().max(1))]
    LoginRateLimited(std::time::Duration),
    #[error("the X-CSRF-Token header is missing or does not match the session (GET /api/auth/session tells it)")]
    CsrfFailed,
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    #[error("paredão '{0}' has no final result yet: it is open, or its last votes are still being counted")]
    NotFinal(String),
    #[error("this vote failed on purpose: fault injection is on (an SRE drill); nothing was counted, try again")]
    InjectedFault,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable, machine-readable code, e.g. `paredao_not_open`.
    #[schema(example = "paredao_not_open")]
    pub error: String,
    /// What was wrong, for a person.
    pub message: String,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { status, .. } => *status,
            ApiError::UnknownParedao(_) | ApiError::NoParedao | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::UnknownParticipant { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ParedaoNotOpen { .. } => StatusCode::CONFLICT,
            ApiError::ParedaoClosed(_) => StatusCode::GONE,
            ApiError::NotDurable(_) | ApiError::Unavailable(_) | ApiError::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Captcha(CaptchaRejection::Missing | CaptchaRejection::Malformed) => StatusCode::BAD_REQUEST,
            ApiError::Captcha(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited(_) | ApiError::ChallengesRateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::CaptchaOff => StatusCode::NOT_FOUND,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::LoginRateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::CsrfFailed => StatusCode::FORBIDDEN,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFinal(_) => StatusCode::CONFLICT,
            ApiError::InjectedFault => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::UnknownParedao(_) => "unknown_paredao",
            ApiError::NoParedao => "no_paredao",
            ApiError::UnknownParticipant { .. } => "unknown_participant",
            ApiError::ParedaoNotOpen { .. } => "paredao_not_open",
            ApiError::ParedaoClosed(_) => "paredao_closed",
            ApiError::NotFound(_) => "not_found",
            ApiError::NotDurable(_) => "vote_not_durable",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Overloaded => "overloaded",
            ApiError::Captcha(r) => r.code(),
            ApiError::RateLimited(_) | ApiError::ChallengesRateLimited(_) => "rate_limited",
            ApiError::HeadersTooLarge { .. } => "headers_too_large",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::CaptchaOff => "captcha_off",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::LoginRateLimited(_) => "login_rate_limited",
            ApiError::CsrfFailed => "csrf_failed",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFinal(_) => "not_final",
            ApiError::InjectedFault => "injected_fault",
            ApiError::Unexpected(_) => "internal_error",
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (code, message) = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ("unsupported_media_type", "send the body as JSON with 'Content-Type: application/json'".to_string())
            }
            JsonRejection::JsonSyntaxError(_) => {
                ("malformed_json", format!("the body is not valid JSON: {}", rejection.body_text()))
            }
            JsonRejection::JsonDataError(_) => ("invalid_body", rejection.body_text()),
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ("body_too_large", "the body is too large".to_string())
            }
            _ => ("bad_request", rejection.body_text()),
        };
        // A syntax error is a 400 whatever axum would say; the others keep axum's status
        // (415 wrong content type, 422 wrong fields, 413 too large).
        let status = if code == "malformed_json" { StatusCode::BAD_REQUEST } else { rejection.status() };
        ApiError::BadRequest { status, code, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let message = match &self {
            // Details of the unexpected go to the log, not to the client.
            ApiError::Unexpected(_) => "something went wrong on our side; try again".to_string(),
            other => other.to_string(),
        };
        match &self {
            // Shed under a surge, thousands a second: the request's access line (status 503)
            // and `paredao_requests_shed_total` say it; a line more each would cost the CPU
            // that shedding is meant to save.
            ApiError::Overloaded => {}
            _ if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE => {
                tracing::error!(status = status.as_u16(), error_code = code, detail = ?self, "request failed");
            }
            _ => tracing::warn!(status = status.as_u16(), error_code = code, reason = %message, "request rejected"),
        }
        let mut response = (status, Json(ErrorBody { error: code.to_string(), message })).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // The broker or store is usually back within seconds.
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let ApiError::RateLimited(wait) | ApiError::ChallengesRateLimited(wait) | ApiError::LoginRateLimited(wait) =
            &self
        {
            // Whole seconds, rounded up: a client that waits this long is let through.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
