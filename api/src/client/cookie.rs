//! The browser's own id, the `paredao_cid` cookie: issued and signed by the API, so that only
//! ids a replica handed out become keys of the per-client maps.
//!
//! The value is 64 lowercase hex digits: 16 random bytes (the id) and the first 16 bytes of an
//! HMAC-SHA256 of them. The key is derived from the captcha HMAC key (which every replica
//! shares), so any replica recognises any replica's cookies, and a key for cookies cannot be
//! used to sign a challenge nor the other way round. A value of any other length, not hex, or
//! with a wrong signature is not a client id: the client is treated as having none, and is sent
//! a fresh one. Nothing the client wrote is ever stored.
//!
//! Forging is not the only attack: a script may take as many fresh ids as it likes, one per
//! challenge request. Those are bounded by the challenge rate limit per address and, whatever
//! the number of addresses, by the difficulty map's own bound.

use axum_extra::extract::cookie::{Cookie, SameSite};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The cookie's name.
pub const CLIENT_COOKIE: &str = "paredao_cid";

const ID_BYTES: usize = 16;
/// Half of the HMAC: 128 bits are far beyond guessing, and the cookie stays short.
const TAG_BYTES: usize = 16;
/// The length of every value we issue, and of every value we accept.
pub const VALUE_LEN: usize = 2 * (ID_BYTES + TAG_BYTES);

/// A client id one of our replicas issued. Fixed size: a map keyed by it costs the same per
/// client whatever the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId([u8; ID_BYTES]);

/// Issues and recognises client ids.
#[derive(Clone)]
pub struct ClientIds {
    /// Keyed once; cloned for each id (cheaper than keying again).
    mac: Hmac<Sha256>,
}

impl ClientIds {
    pub fn new(captcha_hmac_key: &str) -> Self {
        // HMAC(captcha key, purpose): a key of its own, derived rather than configured, so a
        // deployment has one secret to share between replicas, not two.
        let mut derive =
            Hmac::<Sha256>::new_from_slice(captcha_hmac_key.as_bytes()).expect("HMAC takes a key of any size");
        derive.update(b"paredao client id cookie v1");
        let key = derive.finalize().into_bytes();
        Self { mac: Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any size") }
    }

    /// A fresh id and the cookie value that carries it.
    pub fn issue(&self) -> (ClientId, String) {
        let mut id = [0u8; ID_BYTES];
        id.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let id = ClientId(id);
        let mut value = String::with_capacity(VALUE_LEN);
        value.push_str(&hex::encode(id.0));
        value.push_str(&hex::encode(&self.tag(&id)[..TAG_BYTES]));
        (id, value)
    }

    /// A fresh id, as the `Set-Cookie` that hands it over: for the whole site, out of scripts'
    /// reach, sent along on navigations from elsewhere (Lax) and kept across browser restarts.
    pub fn fresh_cookie(&self) -> Cookie<'static> {
        let (_, value) = self.issue();
        let mut cookie = Cookie::new(CLIENT_COOKIE, value);
        cookie.set_path("/");
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Lax);
        cookie.make_permanent();
        cookie
    }

    /// The id in `value`, when it is one we issued.
    pub fn verify(&self, value: &str) -> Option<ClientId> {
        if value.len() != VALUE_LEN {
            return None;
        }
        let bytes = decode_hex::<{ ID_BYTES + TAG_BYTES }>(value)?;
        let (id, tag) = bytes.split_at(ID_BYTES);
        // The cookie comes from the client: no panic even where the sizes make one impossible.
        let id = ClientId(id.try_into().ok()?);
        let mut mac = self.mac.clone();
        mac.update(&id.0);
        // Constant time: the comparison must not tell a forger how much of a tag is right.
        mac.verify_truncated_left(tag).ok().map(|()| id)
    }

    fn tag(&self, id: &ClientId) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(&id.0);
        mac.finalize().into_bytes().into()
    }
}

/// Exactly `2 * N` lowercase hex digits, nothing else (no sign, no upper case: one id, one
/// spelling).
fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_id_is_recognised_by_every_replica_sharing_the_key() {
        let (id, value) = ClientIds::new("key").issue();
        assert_eq!(value.len(), VALUE_LEN);
        assert_eq!(ClientIds::new("key").verify(&value), Some(id));
    }

    #[test]
    fn ids_are_unique() {
        let ids = ClientIds::new("key");
        assert_ne!(ids.issue().0, ids.issue().0);
    }

    #[test]
    fn forged_tampered_and_malformed_values_are_not_ids() {
        let ids = ClientIds::new("key");
        let (_, value) = ids.issue();
        let (_, foreign) = ClientIds::new("another-key").issue();
        assert_eq!(ids.verify(&foreign), None, "signed with another key");

        let mut flipped = value.clone().into_bytes();
        flipped[3] = if flipped[3] == b'0' { b'1' } else { b'0' };
        assert_eq!(ids.verify(std::str::from_utf8(&flipped).unwrap()), None, "another id under the same tag");

        assert_eq!(ids.verify(&value.to_uppercase()), None, "one spelling only");
        assert_eq!(ids.verify(&format!("+{}", &value[1..])), None);
        assert_eq!(ids.verify(&value[..VALUE_LEN - 2]), None, "too short");
        assert_eq!(ids.verify(&format!("{value}00")), None, "too long");
        assert_eq!(ids.verify(&"x".repeat(7000)), None);
        assert_eq!(ids.verify(""), None);
        assert_eq!(ids.verify(&"é".repeat(VALUE_LEN / 2)), None, "not ASCII");
    }

    #[test]
    fn the_cookie_key_is_not_the_captcha_key() {
        // A cookie's tag is not an HMAC under the captcha key itself: it cannot be replayed as a
        // challenge signature.
        let ids = ClientIds::new("key");
        let (id, value) = ids.issue();
        let mut direct = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        direct.update(&id.0);
        assert!(direct.verify_truncated_left(&decode_hex::<32>(&value).unwrap()[ID_BYTES..]).is_err());
    }
}
