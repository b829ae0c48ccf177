//! Bad input always gets a 4xx with a JSON body that says what was wrong, and counts nothing.

use crate::helpers::{OPEN, spawn_app};

async fn post_raw(
    app: &crate::helpers::TestApp,
    path: &str,
    content_type: &str,
    body: String,
) -> (u16, serde_json::Value) {
    let r = app.client.post(app.url(path)).header("content-type", content_type).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or_else(|e| panic!("a JSON error body for {status}: {e}"));
    (status, body)
}

#[tokio::test]
async fn bad_votes_get_a_clear_json_error() {
    let app = spawn_app().await;
    let votes = format!("/api/paredoes/{OPEN}/votes");
    let json = "application/json";
    let cases: Vec<(&str, String, &str, String, u16, &str)> = vec![
        ("malformed JSON", votes.clone(), json, "{\"participant_id\": ".into(), 400, "malformed_json"),
        (
            "wrong content type",
            votes.clone(),
            "text/plain",
            r#"{"participant_id":"ana"}"#.into(),
            415,
            "unsupported_media_type",
        ),
        ("missing field", votes.clone(), json, "{}".into(), 422, "invalid_body"),
        (
            "body too large",
            votes.clone(),
            json,
            format!(r#"{{"participant_id":"ana","captcha":"{}"}}"#, "x".repeat(10_000)),
            413,
            "body_too_large",
        ),
        (
            "unknown paredão",
            "/api/paredoes/nope/votes".into(),
            json,
            r#"{"participant_id":"ana"}"#.into(),
            404,
            "unknown_paredao",
        ),
        ("unknown participant", votes.clone(), json, r#"{"participant_id":"zeca"}"#.into(), 422, "unknown_participant"),
    ];
    for (what, path, content_type, body, status, code) in cases {
        let (got_status, got_body) = post_raw(&app, &path, content_type, body).await;
        assert_eq!(got_status, status, "{what}: {got_body}");
        assert_eq!(got_body["error"], code, "{what}: {got_body}");
        assert!(!got_body["message"].as_str().unwrap().is_empty(), "{what} says what was wrong");
    }
    // None of them was counted; the one good vote is.
    assert_eq!(app.vote(OPEN, "ana").await.status(), 202);
    app.wait_for_total(OPEN, 1).await;
}

#[tokio::test]
async fn an_unknown_route_gets_a_json_404() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/api/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn a_wrong_method_on_an_api_route_gets_a_json_405() {
    let app = spawn_app().await;
    let cases = [
        ("GET", format!("/api/paredoes/{OPEN}/votes"), "POST"),
        ("DELETE", format!("/api/paredoes/{OPEN}"), "GET"),
        ("POST", format!("/api/paredoes/{OPEN}/challenge"), "GET"),
    ];
    for (method, path, allowed) in cases {
        let r = app.client.request(method.parse().unwrap(), app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        let allow = r.headers().get("allow").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(allow.contains(allowed), "{method} {path}: Allow '{allow}'");
        let body: serde_json::Value = r.json().await.unwrap_or_else(|e| panic!("{method} {path}: a JSON body: {e}"));
        assert_eq!(body["error"], "method_not_allowed", "{body}");
        assert!(body["message"].as_str().unwrap().contains(method), "{body}");
    }
}

#[tokio::test]
async fn oversized_request_headers_get_a_json_431_and_the_api_keeps_serving() {
    let app = spawn_app().await;
    let path = format!("/api/paredoes/{OPEN}");
    let mut too_many = reqwest::header::HeaderMap::new();
    for i in 0..80 {
        too_many.insert(
            reqwest::header::HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap(),
            "1".parse().unwrap(),
        );
    }
    let cases = [
        ("one 20 KiB header", app.client.get(app.url(&path)).header("x-filler", "a".repeat(20 * 1024))),
        (
            "a 20 KiB cookie",
            app.client.get(app.url(&path)).header("cookie", format!("paredao_cid={}", "a".repeat(20 * 1024))),
        ),
        ("80 header lines", app.client.get(app.url(&path)).headers(too_many)),
    ];
    for (what, request) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 431, "{what}");
        let body: serde_json::Value = r.json().await.unwrap_or_else(|e| panic!("{what}: a JSON body: {e}"));
        assert_eq!(body["error"], "headers_too_large", "{what}: {body}");
    }
    // Far beyond any bound: hyper stops buffering at its own limit (a bare 431, or the
    // connection closed while the client still writes). Either way, nothing grows, nothing
    // crashes.
    let huge = app.client.get(app.url(&path)).header("x-filler", "a".repeat(2 * 1024 * 1024)).send().await;
    if let Ok(r) = huge {
        assert_eq!(r.status(), 431);
    }
    let (status, body) = app.get_json(&path).await;
    assert_eq!(status, 200, "still serving: {body}");
}
