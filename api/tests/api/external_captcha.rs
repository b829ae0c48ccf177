//! The external captcha mode, against a local stand-in for the provider's siteverify endpoint
//! (the real hCaptcha / Turnstile / reCAPTCHA endpoints are unreachable from here).

use std::sync::{Arc, Mutex};

use axum::{Form, Json, Router, routing::post};
use voting::configuration::{CaptchaMode, ExternalCaptchaSettings, Provider};

use crate::helpers::{OPEN, spawn_with, test_settings};

/// The form fields of each request the fake provider was sent.
type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// Answers like hCaptcha: "good" passes, anything else fails; records what it was sent.
async fn fake_siteverify() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = Router::new().route(
        "/siteverify",
        post(move |Form(form): Form<Vec<(String, String)>>| {
            let s = s.clone();
            async move {
                let good = form.iter().any(|(k, v)| k == "response" && v == "good");
                s.lock().unwrap().push(form);
                if good {
                    Json(serde_json::json!({ "success": true }))
                } else {
                    Json(serde_json::json!({ "success": false, "error-codes": ["invalid-input-response"] }))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/siteverify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test]
async fn with_an_external_captcha_each_vote_is_checked_with_the_provider() {
    let (url, seen) = fake_siteverify().await;
    let mut settings = test_settings();
    settings.captcha.mode = CaptchaMode::External(ExternalCaptchaSettings {
        provider: Provider::Hcaptcha,
        secret: "provider-secret".to_string().into(),
        verify_url: Some(url),
        min_score: None,
        timeout_ms: 2000,
    });
    let app = spawn_with(settings, true).await;

    assert_eq!(app.vote_with(OPEN, "ana", Some("good")).await.status(), 202);
    let r = app.vote_with(OPEN, "ana", Some("bad")).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "captcha_rejected");
    let r = app.vote_with(OPEN, "ana", None).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "captcha_missing");
    // No proof-of-work challenges in this mode.
    let (status, body) = app.get_json(&format!("/api/paredoes/{OPEN}/challenge")).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("captcha_off")));

    let forms = seen.lock().unwrap().clone();
    assert_eq!(forms.len(), 2, "a missing token costs the provider nothing");
    let first: std::collections::HashMap<_, _> = forms[0].iter().cloned().collect();
    assert_eq!(first["secret"], "provider-secret");
    assert_eq!(first["remoteip"], "127.0.0.1");
    app.wait_for_total(OPEN, 1).await;
}
