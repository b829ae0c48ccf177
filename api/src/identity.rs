//! Who on the production team is asking, as extractors: `Producer` (watch, export) and
//! `AdminUser` (also create, open, close, manage accounts, the error switch). A handler that
//! takes one cannot run for anybody else; nothing else decides who may do what.
//!
//! Today the only identity is the SRE bearer token (`admin.token`), which counts as an admin
//! named `sre-token`. The production team's accounts and session cookies plug in here.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use serde::Serialize;
use subtle::ConstantTimeEq;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

/// What a member of the production team may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches the night and exports results.
    Producer,
    /// Also creates, opens and closes paredões, manages accounts and the error switch.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Admin => "admin",
        }
    }
}

/// The member of the production team behind a request, and where it came from (for the audit).
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// The client's address as the API sees it (behind nginx, the one nginx forwards).
    pub address: String,
}

/// Any signed-in member of the production team (a producer or an admin).
pub struct Producer(pub Identity);

/// A member of the production team with the admin role.
pub struct AdminUser(pub Identity);

impl FromRequestParts<AppState> for Producer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        identify(parts, state).await.map(Producer)
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let who = identify(parts, state).await?;
        if who.role != Role::Admin {
            return Err(ApiError::Forbidden("this needs the admin role"));
        }
        Ok(AdminUser(who))
    }
}

/// The identity a request proves, or 401.
async fn identify(parts: &mut Parts, state: &AppState) -> Result<Identity, ApiError> {
    let address = request_address(parts, state);
    let given = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared in constant time: the token must not leak through response timing.
    if let (Some(token), Some(given)) = (state.admin_token.as_deref(), given)
        && bool::from(given.as_bytes().ct_eq(token.as_bytes()))
    {
        return Ok(Identity { name: "sre-token".into(), role: Role::Admin, address });
    }
    Err(ApiError::Unauthorized)
}

/// The client's address, as the rate limiters see it.
pub(crate) fn request_address(parts: &Parts, state: &AppState) -> String {
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => {
            crate::client::address::client_ip(&parts.headers, *peer, &state.trusted_proxies).to_string()
        }
        None => "unknown".into(),
    }
}
