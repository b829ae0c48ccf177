//! An optional captcha checked by an outside service: hCaptcha, Cloudflare Turnstile or Google
//! reCAPTCHA.
//!
//! The browser solves the challenge and sends us a token; only the provider can tell whether it
//! is genuine, so we POST it to the provider's siteverify endpoint with our secret. The three
//! providers share that protocol (form fields `secret`, `response`, `remoteip`; a JSON answer
//! with `success` and `error-codes`), which is why one type serves all three.
//!
//! Transport: the api crate builds reqwest without TLS, so this client speaks plain HTTP only.
//! That is enough for the tests (a local fake), but the real siteverify endpoints are HTTPS:
//! production needs reqwest's `rustls-tls` feature. Without it every check against a real
//! provider ends as `Unavailable` (the request fails before leaving the process), so the
//! mistake fails closed rather than letting votes through unchecked.

use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use voting::configuration::{ExternalCaptchaSettings, Provider};

/// Google's suggested starting threshold for reCAPTCHA v3.
const DEFAULT_MIN_SCORE: f64 = 0.5;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExternalCaptchaError {
    #[error("no captcha token")]
    Missing,
    /// The provider answered `success: false` (its error codes, joined) or the score was too low.
    #[error("the captcha was not solved: {0}")]
    Rejected(String),
    /// Network error, timeout, non-2xx status or an answer we could not parse.
    #[error("the captcha service could not be reached")]
    Unavailable,
}

#[derive(Debug)]
pub struct ExternalCaptcha {
    provider: Provider,
    secret: SecretString,
    verify_url: String,
    min_score: f64,
    client: reqwest::Client,
}

#[derive(Serialize)]
struct SiteverifyForm<'a> {
    secret: &'a str,
    response: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    remoteip: Option<String>,
}

/// The fields we act on; the rest (`hostname`, `challenge_ts`, `action`…) are ignored.
#[derive(Deserialize)]
struct SiteverifyAnswer {
    success: bool,
    #[serde(default, rename = "error-codes")]
    error_codes: Vec<String>,
    #[serde(default)]
    score: Option<f64>,
}

impl ExternalCaptcha {
    pub fn new(settings: ExternalCaptchaSettings) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .build()
            // Building only fails when the TLS backend or system resolver configuration cannot
            // be loaded: a broken host, found once at start-up, not a per-request condition.
            .expect("the HTTP client for the captcha service could not be built");
        let verify_url = settings.verify_url.unwrap_or_else(|| settings.provider.default_verify_url().to_owned());
        Self {
            provider: settings.provider,
            secret: settings.secret,
            verify_url,
            min_score: settings.min_score.unwrap_or(DEFAULT_MIN_SCORE),
            client,
        }
    }

    pub async fn verify(&self, token: Option<&str>, remote_ip: Option<IpAddr>) -> Result<(), ExternalCaptchaError> {
        // An empty token is what a form sends when the widget never ran; asking the provider
        // about it would only spend a round trip to hear "missing-input-response".
        let Some(token) = token.filter(|t| !t.trim().is_empty()) else {
            return Err(ExternalCaptchaError::Missing);
        };
        let outcome = self.ask_provider(token, remote_ip).await;
        let label = match &outcome {
            Ok(()) => "ok",
            Err(ExternalCaptchaError::Rejected(reason)) => {
                // The reason holds only provider error codes or a score, never the token.
                tracing::warn!(provider = self.provider.name(), %reason, "captcha rejected");
                "rejected"
            }
            Err(_) => "unavailable",
        };
        metrics::counter!(
            "paredao_external_captcha_checks_total",
            "provider" => self.provider.name(),
            "outcome" => label,
        )
        .increment(1);
        outcome
    }

    async fn ask_provider(&self, token: &str, remote_ip: Option<IpAddr>) -> Result<(), ExternalCaptchaError> {
        let form = SiteverifyForm {
            secret: self.secret.expose_secret(),
            response: token,
            remoteip: remote_ip.map(|ip| ip.to_string()),
        };
        let answer = self
            .client
            .post(&self.verify_url)
            .form(&form)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| self.unavailable(&e))?
            .json::<SiteverifyAnswer>()
            .await
            .map_err(|e| self.unavailable(&e))?;

        if !answer.success {
            let reason = if answer.error_codes.is_empty() {
                "no error code given".to_owned()
            } else {
                answer.error_codes.join(", ")
            };
            return Err(ExternalCaptchaError::Rejected(reason));
        }
        // Only reCAPTCHA's score means "likely human" (1.0) to "likely bot" (0.0); hCaptcha
        // Enterprise also sends a `score`, but as a risk where higher is worse, so applying the
        // same threshold to it would turn away the best-looking voters.
        if self.provider == Provider::Recaptcha
            && let Some(score) = answer.score.filter(|s| *s < self.min_score)
        {
            return Err(ExternalCaptchaError::Rejected(format!(
                "score {score} is below the minimum {}",
                self.min_score
            )));
        }
        Ok(())
    }

    fn unavailable(&self, error: &reqwest::Error) -> ExternalCaptchaError {
        // The debug form carries the cause ("scheme is not http" is how a build without TLS
        // shows up); it names the URL and never the form body, so the secret and token stay out.
        tracing::warn!(provider = self.provider.name(), ?error, "captcha service unavailable");
        ExternalCaptchaError::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::{Form, Json, Router, routing::post};
    use serde_json::json;

    use super::*;

    const SECRET: &str = "test-secret";
    const TIMEOUT_MS: u64 = 300;

    /// What the fake siteverify endpoint saw: how many calls, and each call's form fields.
    #[derive(Default)]
    struct Seen {
        requests: AtomicUsize,
        forms: Mutex<Vec<HashMap<String, String>>>,
    }

    /// Answers like a provider would, chosen by the token the test sends.
    async fn siteverify(State(seen): State<Arc<Seen>>, Form(form): Form<HashMap<String, String>>) -> Response {
        seen.requests.fetch_add(1, Ordering::SeqCst);
        seen.forms.lock().unwrap().push(form.clone());
        if form.get("secret").map(String::as_str) != Some(SECRET) {
            return Json(json!({"success": false, "error-codes": ["invalid-input-secret"]})).into_response();
        }
        match form.get("response").map(String::as_str) {
            Some("good") => Json(json!({"success": true, "hostname": "localhost"})).into_response(),
            Some("bad") => Json(json!({"success": false, "error-codes": ["invalid-input-response"]})).into_response(),
            Some("slow") => {
                tokio::time::sleep(Duration::from_millis(TIMEOUT_MS * 10)).await;
                Json(json!({"success": true})).into_response()
            }
            Some("low-score") => Json(json!({"success": true, "score": 0.1})).into_response(),
            Some("high-score") => Json(json!({"success": true, "score": 0.9})).into_response(),
            Some("broken") => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            Some("garbled") => "<html>not json</html>".into_response(),
            _ => Json(json!({"success": false, "error-codes": ["missing-input-response"]})).into_response(),
        }
    }

    async fn spawn_fake_siteverify() -> (String, Arc<Seen>) {
        let seen = Arc::new(Seen::default());
        let app = Router::new().route("/siteverify", post(siteverify)).with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/siteverify", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    fn captcha(provider: Provider, url: &str, secret: &str) -> ExternalCaptcha {
        ExternalCaptcha::new(ExternalCaptchaSettings { secret: SecretString::from(secret), ..settings(provider, url) })
    }

    #[tokio::test]
    async fn a_good_token_passes() {
        let (url, _) = spawn_fake_siteverify().await;
        for provider in [Provider::Hcaptcha, Provider::Turnstile, Provider::Recaptcha] {
            let result = captcha(provider, &url, SECRET).verify(Some("good"), None).await;
            assert_eq!(result, Ok(()), "{provider:?}");
        }
    }

    #[tokio::test]
    async fn a_bad_token_is_rejected_with_the_providers_error_code() {
        let (url, _) = spawn_fake_siteverify().await;
        let err = captcha(Provider::Hcaptcha, &url, SECRET).verify(Some("bad"), None).await.unwrap_err();
        assert_eq!(err, ExternalCaptchaError::Rejected("invalid-input-response".into()));
        assert!(err.to_string().contains("invalid-input-response"));
    }

    #[tokio::test]
    async fn no_token_is_missing_and_the_provider_is_not_asked() {
        let (url, seen) = spawn_fake_siteverify().await;
        let captcha = captcha(Provider::Turnstile, &url, SECRET);
        assert_eq!(captcha.verify(None, None).await, Err(ExternalCaptchaError::Missing));
        assert_eq!(captcha.verify(Some(""), None).await, Err(ExternalCaptchaError::Missing));
        assert_eq!(seen.requests.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_slow_service_is_unavailable() {
        let (url, _) = spawn_fake_siteverify().await;
        let started = std::time::Instant::now();
        let result = captcha(Provider::Turnstile, &url, SECRET).verify(Some("slow"), None).await;
        assert_eq!(result, Err(ExternalCaptchaError::Unavailable));
        // The timeout, not the fake's sleep, ended the wait.
        assert!(started.elapsed() < Duration::from_millis(TIMEOUT_MS * 5));
    }

    #[tokio::test]
    async fn an_unreachable_service_is_unavailable() {
        // Bind then drop a listener: the port is free, so nothing answers on it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/siteverify", listener.local_addr().unwrap());
        drop(listener);
        let result = captcha(Provider::Hcaptcha, &url, SECRET).verify(Some("good"), None).await;
        assert_eq!(result, Err(ExternalCaptchaError::Unavailable));
    }

    #[tokio::test]
    async fn an_error_status_or_unparsable_answer_is_unavailable() {
        let (url, _) = spawn_fake_siteverify().await;
        let captcha = captcha(Provider::Recaptcha, &url, SECRET);
        for token in ["broken", "garbled"] {
            let result = captcha.verify(Some(token), None).await;
            assert_eq!(result, Err(ExternalCaptchaError::Unavailable), "{token}");
        }
    }

    #[tokio::test]
    async fn a_low_recaptcha_score_is_rejected() {
        let (url, _) = spawn_fake_siteverify().await;
        let captcha = captcha(Provider::Recaptcha, &url, SECRET);
        let err = captcha.verify(Some("low-score"), None).await.unwrap_err();
        assert!(matches!(&err, ExternalCaptchaError::Rejected(r) if r.contains("0.1")), "{err}");
        assert_eq!(captcha.verify(Some("high-score"), None).await, Ok(()));
    }

    #[tokio::test]
    async fn the_minimum_score_is_configurable() {
        let (url, _) = spawn_fake_siteverify().await;
        let lenient = ExternalCaptcha::new(ExternalCaptchaSettings {
            min_score: Some(0.05),
            ..settings(Provider::Recaptcha, &url)
        });
        assert_eq!(lenient.verify(Some("low-score"), None).await, Ok(()));
    }

    #[tokio::test]
    async fn a_score_from_another_provider_is_not_treated_as_recaptchas() {
        let (url, _) = spawn_fake_siteverify().await;
        let result = captcha(Provider::Hcaptcha, &url, SECRET).verify(Some("low-score"), None).await;
        assert_eq!(result, Ok(()));
    }

    #[tokio::test]
    async fn the_secret_token_and_remote_ip_reach_the_provider() {
        let (url, seen) = spawn_fake_siteverify().await;
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let result = captcha(Provider::Turnstile, &url, SECRET).verify(Some("good"), Some(ip)).await;
        assert_eq!(result, Ok(()));

        let forms = seen.forms.lock().unwrap();
        assert_eq!(forms.len(), 1);
        assert_eq!(forms[0].get("secret").map(String::as_str), Some(SECRET));
        assert_eq!(forms[0].get("response").map(String::as_str), Some("good"));
        assert_eq!(forms[0].get("remoteip").map(String::as_str), Some("203.0.113.7"));
    }

    #[tokio::test]
    async fn no_remote_ip_field_is_sent_when_the_ip_is_unknown() {
        let (url, seen) = spawn_fake_siteverify().await;
        captcha(Provider::Hcaptcha, &url, SECRET).verify(Some("good"), None).await.unwrap();
        assert!(!seen.forms.lock().unwrap()[0].contains_key("remoteip"));
    }

    #[tokio::test]
    async fn a_wrong_secret_is_rejected_by_the_provider() {
        let (url, _) = spawn_fake_siteverify().await;
        let result = captcha(Provider::Hcaptcha, &url, "wrong").verify(Some("good"), None).await;
        assert_eq!(result, Err(ExternalCaptchaError::Rejected("invalid-input-secret".into())));
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let captcha = captcha(Provider::Hcaptcha, "http://127.0.0.1:1/", SECRET);
        assert!(!format!("{captcha:?}").contains(SECRET));
    }

    #[test]
    fn settings_read_the_provider_in_lowercase_and_default_the_rest() {
        let settings: ExternalCaptchaSettings =
            serde_json::from_value(json!({"provider": "turnstile", "secret": "s"})).unwrap();
        assert_eq!(settings.provider, Provider::Turnstile);
        assert_eq!(settings.timeout_ms, 3000);
        assert_eq!(settings.verify_url, None);
        assert_eq!(settings.min_score, None);
    }

    #[tokio::test]
    async fn each_check_is_counted_by_provider_and_outcome() {
        let recorder = CountingRecorder::default();
        // Thread-local, and a #[tokio::test] runs everything on this one thread.
        let _guard = metrics::set_default_local_recorder(&recorder);
        let (url, _) = spawn_fake_siteverify().await;
        let captcha = captcha(Provider::Hcaptcha, &url, SECRET);
        captcha.verify(Some("good"), None).await.unwrap();
        captcha.verify(Some("bad"), None).await.unwrap_err();
        captcha.verify(Some("broken"), None).await.unwrap_err();
        captcha.verify(None, None).await.unwrap_err();

        let name = "paredao_external_captcha_checks_total";
        for outcome in ["ok", "rejected", "unavailable"] {
            assert_eq!(recorder.count(name, "hcaptcha", outcome), 1, "{outcome}");
        }
        assert_eq!(recorder.total(), 3, "a missing token is not a check");
    }

    fn settings(provider: Provider, url: &str) -> ExternalCaptchaSettings {
        ExternalCaptchaSettings {
            provider,
            secret: SecretString::from(SECRET),
            verify_url: Some(url.to_owned()),
            min_score: None,
            timeout_ms: TIMEOUT_MS,
        }
    }

    /// Just enough of a metrics recorder to count counter increments by name and labels.
    #[derive(Default)]
    struct CountingRecorder {
        counts: Arc<Mutex<HashMap<String, u64>>>,
    }

    impl CountingRecorder {
        fn count(&self, name: &str, provider: &str, outcome: &str) -> u64 {
            let key = format!("{name}{{outcome={outcome},provider={provider}}}");
            self.counts.lock().unwrap().get(&key).copied().unwrap_or(0)
        }

        fn total(&self) -> u64 {
            self.counts.lock().unwrap().values().sum()
        }
    }

    struct CountingCounter {
        key: String,
        counts: Arc<Mutex<HashMap<String, u64>>>,
    }

    impl metrics::CounterFn for CountingCounter {
        fn increment(&self, value: u64) {
            *self.counts.lock().unwrap().entry(self.key.clone()).or_default() += value;
        }
        fn absolute(&self, value: u64) {
            self.counts.lock().unwrap().insert(self.key.clone(), value);
        }
    }

    impl metrics::Recorder for CountingRecorder {
        fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
        fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

        fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
            let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            labels.sort();
            metrics::Counter::from_arc(Arc::new(CountingCounter {
                key: format!("{}{{{}}}", key.name(), labels.join(",")),
                counts: self.counts.clone(),
            }))
        }

        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }

        fn register_histogram(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }
}
