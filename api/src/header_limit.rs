//! A bound on a request's headers, answered with the API's JSON error (431 `headers_too_large`)
//! before any handler runs.
//!
//! hyper already bounds what it buffers while reading a request head (about 400 KiB and 100
//! header lines: beyond those it answers a bare 431 and closes the connection), but that is a lot
//! of memory per connection to hand to anyone, and every header reaches the handlers (a 7 KiB
//! cookie, say). This bound is the one the API means: a browser sends a couple of KiB. axum's
//! `serve` does not expose hyper's own limits, hence this layer.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use voting::configuration::ApplicationSettings;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct HeaderLimit {
    /// Names and values together, with the `: ` and line end of each line.
    pub max_bytes: usize,
    pub max_headers: usize,
}

impl HeaderLimit {
    pub fn new(settings: &ApplicationSettings) -> Self {
        Self { max_bytes: settings.max_header_bytes.get(), max_headers: settings.max_headers.get() }
    }

    fn admits(&self, request: &Request) -> bool {
        let headers = request.headers();
        if headers.len() > self.max_headers {
            return false;
        }
        // As on the wire: `name: value\r\n`.
        let bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
        bytes <= self.max_bytes
    }
}

pub async fn enforce(State(limit): State<HeaderLimit>, request: Request, next: Next) -> Response {
    if !limit.admits(&request) {
        return ApiError::HeadersTooLarge { max_bytes: limit.max_bytes, max_headers: limit.max_headers }
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, String)]) -> Request {
        let mut builder = Request::builder().uri("/");
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn counts_both_the_bytes_and_the_lines() {
        let limit = HeaderLimit { max_bytes: 100, max_headers: 3 };
        assert!(limit.admits(&request(&[("a", "x".repeat(50))])));
        // 1 + 95 + 4 = 100: exactly the bound.
        assert!(limit.admits(&request(&[("a", "x".repeat(95))])));
        assert!(!limit.admits(&request(&[("a", "x".repeat(96))])));
        let line = ("b", "1".to_string());
        assert!(limit.admits(&request(&[line.clone(), line.clone(), line.clone()])));
        assert!(!limit.admits(&request(&[line.clone(), line.clone(), line.clone(), line])));
    }
}
