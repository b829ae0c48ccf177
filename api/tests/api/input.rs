//! Bad input always gets a 4xx with a JSON body that says what was wrong, and counts nothing.

use crate::helpers::{OPEN, spawn_app};

async fn post_raw(app: &crate::helpers::TestApp, path: &str, content_type: &str, body: String) -> (u16, serde_json::Value) {
    let r = app
        .client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
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
        ("wrong content type", votes.clone(), "text/plain", r#"{"participant_id":"ana"}"#.into(), 415, "unsupported_media_type"),
        ("missing field", votes.clone(), json, "{}".into(), 422, "invalid_body"),
        ("body too large", votes.clone(), json, format!(r#"{{"participant_id":"ana","captcha":"{}"}}"#, "x".repeat(10_000)), 413, "body_too_large"),
        ("unknown paredão", "/api/paredoes/nope/votes".into(), json, r#"{"participant_id":"ana"}"#.into(), 404, "unknown_paredao"),
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
