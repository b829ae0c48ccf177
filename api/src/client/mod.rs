//! Who is asking, as far as the API can tell: the client's address (behind nginx, the one
//! nginx forwards, `address`) and the browser's own id (the signed `paredao_cid` cookie,
//! `cookie`). A handler takes a `Client` as an argument; nothing else reads those headers.

pub mod address;
pub mod cookie;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;

pub use cookie::{CLIENT_COOKIE, ClientId, ClientIds};

use crate::error::ApiError;
use crate::state::AppState;

/// The client of one request: its address, and its id when its cookie is one we issued
/// (anything else is as good as no cookie). Not `Debug`: what the browser sent stays unprinted.
#[derive(Clone)]
pub struct Client {
    pub ip: IpAddr,
    /// `ip` as text: the rate limiters' key.
    pub address: String,
    /// The `paredao_cid` value as sent, checked on first use: a flood refused by the rate limit
    /// costs no signature check.
    presented: Option<String>,
    id: OnceLock<Option<ClientId>>,
    ids: Arc<ClientIds>,
}

impl Client {
    pub fn new(ip: IpAddr, presented: Option<String>, ids: Arc<ClientIds>) -> Self {
        Self { ip, address: ip.to_string(), presented, id: OnceLock::new(), ids }
    }

    /// The browser's id, when its cookie is one we issued.
    pub fn id(&self) -> Option<ClientId> {
        *self.id.get_or_init(|| self.ids.verify(self.presented.as_deref()?))
    }

    /// The `Set-Cookie` that gives this browser an id, when it has none of ours: whatever it
    /// sent is replaced. The fresh id counts from the next request on (only an id that comes
    /// back signed becomes a key, so a script that drops its cookies adds nothing to the
    /// per-client maps).
    pub fn cookie_to_set(&self) -> Option<Cookie<'static>> {
        self.id().is_none().then(|| self.ids.fresh_cookie())
    }
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Connect info: the peer address decides whose X-Real-IP is believed.
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied() else {
            return Err(anyhow::anyhow!("served without connect info: the client's address is unknown").into());
        };
        let ip = address::client_ip(&parts.headers, peer, &state.trusted_proxies);
        let presented = CookieJar::from_headers(&parts.headers).get(CLIENT_COOKIE).map(|c| c.value().to_owned());
        Ok(Self::new(ip, presented, state.client_ids.clone()))
    }
}
