//! The production team's login, sessions, CSRF tokens and the limits on guessing.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use voting::accounts::Role::{Admin, Producer};
use voting::testing::eventually;

use crate::helpers::{OPEN, spawn_with, test_settings};

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn a_login_sets_a_strict_http_only_cookie_that_opens_the_statistics() {
    let app = spawn_with(test_settings(), false).await;
    app.add_account("ana", Producer, PASSWORD).await;

    let r = app.login_response("ana", PASSWORD).await;
    assert_eq!(r.status(), 200);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["paredao_session=", "HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(set_cookie.contains(part), "{part} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP from a client: no Secure");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["name"], "ana");
    assert_eq!(body["role"], "producer");
    assert!(body["csrf_token"].as_str().unwrap().len() >= 40);
    assert!(body["expires_at"].is_string());

    let who = app.login("ana", PASSWORD).await;
    let r = app.as_signed_in(Method::GET, "/api/auth/session", &who, None).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let session: Value = r.json().await.unwrap();
    assert_eq!(session["csrf_token"], who.body["csrf_token"], "the page learns its CSRF token here");
    let r = app.as_signed_in(Method::GET, &format!("/api/paredoes/{OPEN}/stats"), &who, None).send().await.unwrap();
    assert_eq!(r.status(), 200, "a producer reads the statistics");
}

#[tokio::test]
async fn the_password_is_stored_as_an_argon2id_hash() {
    let app = spawn_with(test_settings(), false).await;
    let admin = app.login_with_new_admin().await;
    let r = app
        .as_signed_in(Method::POST, "/api/admin/accounts", &admin, Some(&admin.csrf_token))
        .json(&json!({ "name": "bia", "role": "producer", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let store = voting::store::Store::connect(&app.settings.store).await.unwrap();
    let stored = store.find_account(&voting::accounts::AccountName::parse("bia").unwrap()).await.unwrap().unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$v=19$"), "{}", stored.password_hash);
    assert!(!stored.password_hash.contains(PASSWORD));
    app.login("bia", PASSWORD).await;
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_name_get_the_same_401() {
    let app = spawn_with(test_settings(), false).await;
    app.add_account("ana", Producer, PASSWORD).await;
    for (name, password) in [("ana", "wrong password!"), ("nobody", PASSWORD), ("Not A Name", PASSWORD)] {
        let r = app.login_response(name, password).await;
        assert_eq!(r.status(), 401, "{name}");
        assert!(r.headers().get("set-cookie").is_none());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_credentials");
        assert_eq!(body["message"], "wrong name or password");
    }
}

#[tokio::test]
async fn an_account_is_locked_after_repeated_failures_even_for_the_right_password() {
    let mut settings = test_settings();
    settings.auth.max_failed_logins = 3;
    settings.auth.lockout_secs = 2;
    // This test waits for the lock by trying again and again: the per-address limit is another test's.
    settings.auth.login_rate = voting::configuration::Rate { per_second: 1000.0, burst: 1000 };
    let app = spawn_with(settings, false).await;
    app.add_account("ana", Producer, PASSWORD).await;

    for _ in 0..2 {
        assert_eq!(app.login_response("ana", "wrong password!").await.status(), 401);
    }
    let r = app.login_response("ana", "wrong password!").await;
    assert_eq!(r.status(), 429, "the third failure locks");
    let r = app.login_response("ana", PASSWORD).await;
    assert_eq!(r.status(), 429, "locked: even the right password waits");
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "login_rate_limited");

    eventually("the lock to end", Duration::from_secs(10), || async {
        (app.login_response("ana", PASSWORD).await.status() == 200).then_some(())
    })
    .await;
    // A success forgets the failures before it.
    for _ in 0..2 {
        assert_eq!(app.login_response("ana", "wrong password!").await.status(), 401);
    }
}

#[tokio::test]
async fn logins_from_one_address_are_rate_limited() {
    let mut settings = test_settings();
    settings.auth.login_rate = voting::configuration::Rate { per_second: 0.01, burst: 3 };
    let app = spawn_with(settings, false).await;
    for name in ["a1", "a2", "a3"] {
        assert_eq!(app.login_response(name, PASSWORD).await.status(), 401);
    }
    let r = app.login_response("a4", PASSWORD).await;
    assert_eq!(r.status(), 429, "whatever the name");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "login_rate_limited");
}

#[tokio::test]
async fn a_session_expires() {
    let mut settings = test_settings();
    settings.auth.session_ttl_secs = 1;
    settings.auth.session_cache_ms = 100;
    let app = spawn_with(settings, false).await;
    app.add_account("ana", Producer, PASSWORD).await;
    let who = app.login("ana", PASSWORD).await;
    assert_eq!(app.as_signed_in(Method::GET, "/api/auth/session", &who, None).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    for path in ["/api/auth/session".to_string(), format!("/api/paredoes/{OPEN}/stats")] {
        let r = app.as_signed_in(Method::GET, &path, &who, None).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} after the session ended");
    }
}

#[tokio::test]
async fn a_change_without_the_csrf_token_is_refused() {
    let app = spawn_with(test_settings(), false).await;
    let admin = app.login_with_new_admin().await;
    let body = json!({ "vote_error_ratio": 0.0 });
    for wrong in [None, Some("not-the-token"), Some("")] {
        let r = app.as_signed_in(Method::PUT, "/api/admin/fault", &admin, wrong).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 403, "{wrong:?}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "csrf_failed");
    }
    let r = app.as_signed_in(Method::PUT, "/api/admin/fault", &admin, Some(&admin.csrf_token)).json(&body).send().await;
    assert_eq!(r.unwrap().status(), 200);
    // Reads need no token; the bearer token needs none either.
    assert_eq!(app.as_signed_in(Method::GET, "/api/admin/fault", &admin, None).send().await.unwrap().status(), 200);
    let r = app.client.put(app.url("/api/admin/fault")).bearer_auth("test-admin-token").json(&body).send().await;
    assert_eq!(r.unwrap().status(), 200);
    // Nor does logging out work without it.
    let r = app.as_signed_in(Method::POST, "/api/auth/logout", &admin, None).send().await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_producer_can_neither_set_the_fault_nor_manage_accounts() {
    let app = spawn_with(test_settings(), false).await;
    app.add_account("ana", Producer, PASSWORD).await;
    let who = app.login("ana", PASSWORD).await;
    let csrf = Some(who.csrf_token.as_str());
    let r = app
        .as_signed_in(Method::PUT, "/api/admin/fault", &who, csrf)
        .json(&json!({ "vote_error_ratio": 1.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "forbidden");
    let attempts = [
        (Method::GET, "/api/admin/accounts", None),
        (Method::POST, "/api/admin/accounts", Some(json!({ "name": "eve", "role": "admin", "password": PASSWORD }))),
        (Method::PUT, "/api/admin/accounts/ana", Some(json!({ "role": "admin" }))),
        (Method::DELETE, "/api/admin/accounts/ana", None),
    ];
    for (method, path, body) in attempts {
        let mut request = app.as_signed_in(method.clone(), path, &who, csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        assert_eq!(request.send().await.unwrap().status(), 403, "{method} {path}");
    }
    // The audit is a producer's to read.
    assert_eq!(app.as_signed_in(Method::GET, "/api/admin/audit", &who, None).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn without_credentials_the_team_endpoints_answer_401() {
    let app = spawn_with(test_settings(), false).await;
    for path in [
        format!("/api/paredoes/{OPEN}/stats"),
        "/api/paredoes/current/stats".to_string(),
        "/api/admin/audit".to_string(),
        "/api/admin/accounts".to_string(),
        "/api/auth/session".to_string(),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["error"], "unauthorized");
        // A made-up cookie is no better.
        let r = app.client.get(app.url(&path)).header("cookie", "paredao_session=made-up").send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} with a forged cookie");
    }
    // The viewers' side stays public.
    assert_eq!(app.get_json(&format!("/api/paredoes/{OPEN}/results")).await.0, 200);
    assert_eq!(app.get_json(&format!("/api/paredoes/{OPEN}")).await.0, 200);
}

#[tokio::test]
async fn logout_ends_the_session_on_every_replica() {
    let mut settings = test_settings();
    settings.auth.session_cache_ms = 300;
    let first = spawn_with(settings.clone(), false).await;
    let second = spawn_with(settings, false).await;
    first.add_account("ana", Admin, PASSWORD).await;
    let who = first.login("ana", PASSWORD).await;
    let session = |app: &'static str| {
        let app = if app == "first" { &first } else { &second };
        let who = &who;
        async move { app.as_signed_in(Method::GET, "/api/auth/session", who, None).send().await.unwrap().status() }
    };
    assert_eq!(session("second").await, 200, "the other replica knows the session");

    let r = first.as_signed_in(Method::POST, "/api/auth/logout", &who, Some(&who.csrf_token)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let cleared = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("paredao_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(session("first").await, 401, "at once where it was ended");
    eventually("the other replica to forget the session", Duration::from_secs(5), || async {
        (session("second").await == 401).then_some(())
    })
    .await;
    // Logging out again is harmless.
    let r = first.as_signed_in(Method::POST, "/api/auth/logout", &who, Some(&who.csrf_token)).send().await.unwrap();
    assert_eq!(r.status(), 204);
}

#[tokio::test]
async fn secure_is_set_when_the_trusted_proxy_says_the_browser_used_tls() {
    let app = spawn_with(test_settings(), false).await;
    app.add_account("ana", Producer, PASSWORD).await;
    let r = app
        .client
        .post(app.url("/api/auth/login"))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "name": "ana", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The test client connects from 127.0.0.1, a trusted proxy in the test settings.
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
}
