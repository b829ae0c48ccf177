use crate::helpers::{OPEN, spawn_app};

#[tokio::test]
async fn the_openapi_spec_documents_every_route_and_swagger_ui_is_served() {
    let app = spawn_app().await;
    let (status, spec) = app.get_json("/api-docs/openapi.json").await;
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/api/paredoes/{paredao_id}",
        "/api/paredoes/{paredao_id}/votes",
        "/api/paredoes/{paredao_id}/results",
        "/api/paredoes/{paredao_id}/stats",
        "/health/live",
        "/health/ready",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert!(paths["/api/paredoes/{paredao_id}/votes"]["post"]["responses"]["503"].is_object());

    // Swagger UI can act as a signed-in team member: the browser sends the session cookie, and
    // "Authorize" takes the CSRF token that every change needs with it.
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["session"]["in"], "cookie", "{schemes}");
    assert_eq!(schemes["csrf"]["in"], "header", "{schemes}");
    assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token", "{schemes}");
    let open = &paths["/api/admin/paredoes/{paredao_id}/open"]["post"]["security"];
    assert!(
        open.as_array().unwrap().iter().any(|r| r.get("session").is_some() && r.get("csrf").is_some()),
        "a change takes the session with its CSRF token: {open}"
    );
    // Logout without a session only clears a stale cookie: its security is optional.
    let logout = &paths["/api/auth/logout"]["post"]["security"];
    assert!(logout.as_array().unwrap().iter().any(|r| r.as_object().is_some_and(|o| o.is_empty())), "{logout}");
    let stats = &paths["/api/paredoes/{paredao_id}/stats"]["get"]["security"];
    assert!(stats.as_array().unwrap().iter().any(|r| r.get("session").is_some()), "{stats}");

    let r = app.client.get(app.url("/swagger/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "the Swagger UI page is served");
    let r = app.client.get(app.url("/swagger/swagger-ui-bundle.js")).send().await.unwrap();
    assert_eq!(r.status(), 200, "Swagger UI's script is served from the binary, not a CDN");
}

#[tokio::test]
async fn metrics_expose_request_latency_and_vote_counters() {
    let app = spawn_app().await;
    assert_eq!(app.vote(OPEN, "ana").await.status(), 202);
    assert_eq!(app.vote(OPEN, "zeca").await.status(), 422);
    let body = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(body.contains("axum_http_requests_total"), "axum-prometheus request counter");
    assert!(
        body.contains("axum_http_requests_duration_seconds_bucket{") && body.contains("le=\"0.0001\""),
        "sub-millisecond buckets"
    );
    assert!(body.contains("paredao_votes_accepted_total"));
    assert!(body.contains("paredao_votes_rejected_total{reason=\"unknown_participant\"}"));
    assert!(body.contains("paredao_batch_size_votes_bucket"));
    assert!(body.contains("paredao_publish_confirm_seconds_bucket"));
}

#[tokio::test]
async fn a_request_id_from_nginx_is_echoed_back() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/health/live")).header("x-request-id", "abc123").send().await.unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc123");
    let r = app.client.get(app.url("/health/live")).send().await.unwrap();
    assert!(!r.headers()["x-request-id"].is_empty(), "one is made when none is given");
}
