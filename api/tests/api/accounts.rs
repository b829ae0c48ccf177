//! The admins manage the team's accounts; every change is in the audit trail.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{SignedIn, TestApp, spawn_with, test_settings};

const PASSWORD: &str = "correct horse battery";

async fn send(app: &TestApp, admin: &SignedIn, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.as_signed_in(method, path, admin, Some(&admin.csrf_token));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_admin_creates_changes_and_deletes_accounts_and_deleting_ends_their_sessions() {
    let app = spawn_with(test_settings(), false).await;
    let root = app.login_with_new_admin().await;

    let (status, body) = send(
        &app,
        &root,
        Method::POST,
        "/api/admin/accounts",
        Some(json!({"name": "bia", "role": "producer", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "bia");
    assert!(body.get("password_hash").is_none(), "the hash never leaves the store");
    let (status, body) = send(
        &app,
        &root,
        Method::POST,
        "/api/admin/accounts",
        Some(json!({"name": "bia", "role": "admin", "password": PASSWORD})),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("account_exists")));
    let (status, body) = send(
        &app,
        &root,
        Method::POST,
        "/api/admin/accounts",
        Some(json!({"name": "cai", "role": "producer", "password": "short"})),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_password")));
    let (status, body) = send(
        &app,
        &root,
        Method::POST,
        "/api/admin/accounts",
        Some(json!({"name": "Cai Souza", "role": "producer", "password": PASSWORD})),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_name")));

    let (status, list) = send(&app, &root, Method::GET, "/api/admin/accounts", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["bia", "root"]);

    // A promotion reaches bia's open session.
    let bia = app.login("bia", PASSWORD).await;
    let (status, body) =
        send(&app, &root, Method::PUT, "/api/admin/accounts/bia", Some(json!({"role": "admin"}))).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("admin")));
    let r = app.as_signed_in(Method::GET, "/api/admin/accounts", &bia, None).send().await.unwrap();
    assert_eq!(r.status(), 200, "bia is an admin now, in the session she has");

    // A new password ends the sessions of the old one.
    let (status, _) =
        send(&app, &root, Method::PUT, "/api/admin/accounts/bia", Some(json!({"password": "a brand new password"})))
            .await;
    assert_eq!(status, 200);
    assert_eq!(app.as_signed_in(Method::GET, "/api/auth/session", &bia, None).send().await.unwrap().status(), 401);
    assert_eq!(app.login_response("bia", PASSWORD).await.status(), 401);
    let bia = app.login("bia", "a brand new password").await;

    let (status, _) = send(&app, &root, Method::DELETE, "/api/admin/accounts/bia", None).await;
    assert_eq!(status, 204);
    assert_eq!(app.as_signed_in(Method::GET, "/api/auth/session", &bia, None).send().await.unwrap().status(), 401);
    assert_eq!(app.login_response("bia", "a brand new password").await.status(), 401);
    let (status, _) = send(&app, &root, Method::DELETE, "/api/admin/accounts/bia", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_last_admin_can_be_neither_deleted_nor_demoted() {
    let app = spawn_with(test_settings(), false).await;
    let root = app.login_with_new_admin().await;
    let (status, body) = send(&app, &root, Method::DELETE, "/api/admin/accounts/root", None).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("last_admin")));
    let (status, body) =
        send(&app, &root, Method::PUT, "/api/admin/accounts/root", Some(json!({"role": "producer"}))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("last_admin")));

    // With a second admin, the first may go.
    let (status, _) = send(
        &app,
        &root,
        Method::POST,
        "/api/admin/accounts",
        Some(json!({"name": "bia", "role": "admin", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) =
        send(&app, &root, Method::PUT, "/api/admin/accounts/root", Some(json!({"role": "producer"}))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_audit_trail_lists_logins_failures_and_account_changes_newest_first() {
    let app = spawn_with(test_settings(), false).await;
    assert_eq!(app.login_response("root", "a wrong password").await.status(), 401);
    let root = app.login_with_new_admin().await;
    let (status, _) = send(
        &app,
        &root,
        Method::POST,
        "/api/admin/accounts",
        Some(json!({"name": "bia", "role": "producer", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201);
    let r = app.as_signed_in(Method::POST, "/api/auth/logout", &root, Some(&root.csrf_token)).send().await.unwrap();
    assert_eq!(r.status(), 204);

    let r = app.client.get(app.url("/api/admin/audit")).bearer_auth("test-admin-token").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let entries: Vec<Value> = r.json().await.unwrap();
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["auth.logout", "account.create", "auth.login", "auth.login_failed"]);
    let create = &entries[1];
    assert_eq!(create["who"], "root");
    assert_eq!(create["role"], "admin");
    assert_eq!(create["target"], "bia");
    assert_eq!(create["detail"]["role"], "producer");
    assert_eq!(create["address"], "127.0.0.1");
    assert!(create["at"].is_string());
    assert_eq!(entries[3]["role"], Value::Null, "nobody was signed in");

    let r = app.client.get(app.url("/api/admin/audit?limit=2")).bearer_auth("test-admin-token").send().await.unwrap();
    assert_eq!(r.json::<Vec<Value>>().await.unwrap().len(), 2);
}
