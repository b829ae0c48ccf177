//! The production team runs the paredões through the admin API: create, edit, open, close.

use chrono::Duration;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{CLOSED, OPEN, SCHEDULED, settings_with_nothing_open, spawn_app, spawn_with, test_settings};

#[tokio::test]
async fn an_admin_creates_opens_and_closes_a_paredao_and_votes_follow() {
    let app = spawn_with(settings_with_nothing_open(), true).await;
    let now = chrono::Utc::now();
    let (status, created) = app
        .admin(
            Method::POST,
            "/api/admin/paredoes",
            Some(json!({
                "title": "5º Paredão",
                "participants": [{ "name": "Fábio Luz" }, { "name": "Gabi Rocha" }],
                "opens_at": now + Duration::hours(1),
                "closes_at": now + Duration::hours(2),
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    // Ids derived from the title and the names; live results by default.
    assert_eq!(created["id"], "5o-paredao");
    assert_eq!(created["state"], "scheduled");
    assert_eq!(created["results_visibility"], "live");
    assert_eq!(created["participants"][0]["id"], "fabio-luz");
    assert_eq!(created["participants"][1]["name"], "Gabi Rocha");

    let before = app.vote("5o-paredao", "fabio-luz").await;
    assert_eq!(before.status(), 409);
    assert_eq!(before.json::<serde_json::Value>().await.unwrap()["error"], "paredao_not_open");

    let (status, opened) = app.admin(Method::POST, "/api/admin/paredoes/5o-paredao/open", None).await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!(opened["state"], "open");
    assert_eq!(app.vote("5o-paredao", "fabio-luz").await.status(), 202);

    let (status, closed) = app.admin(Method::POST, "/api/admin/paredoes/5o-paredao/close", None).await;
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["state"], "closed");
    let after = app.vote("5o-paredao", "gabi-rocha").await;
    assert_eq!(after.status(), 410);
    assert_eq!(after.json::<serde_json::Value>().await.unwrap()["error"], "paredao_closed");
    // The vote accepted before the close is counted.
    app.wait_for_total("5o-paredao", 1).await;

    // Closing twice, or opening a closed one, is refused.
    let (status, body) = app.admin(Method::POST, "/api/admin/paredoes/5o-paredao/close", None).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("paredao_not_open")));
    let (status, body) = app.admin(Method::POST, "/api/admin/paredoes/5o-paredao/open", None).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("paredao_not_scheduled")));

    // The list: the newest opening first, with states.
    let (status, list) = app.admin(Method::GET, "/api/admin/paredoes", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["5o-paredao", CLOSED]);
    assert_eq!(list[0]["state"], "closed");
    let (status, one) = app.admin(Method::GET, "/api/admin/paredoes/5o-paredao", None).await;
    assert_eq!((status, one["title"].as_str()), (200, Some("5º Paredão")));
}

#[tokio::test]
async fn windows_never_overlap_so_at_most_one_paredao_is_open() {
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    let overlapping = json!({
        "id": "another",
        "title": "Another",
        "participants": [{ "name": "Ana" }, { "name": "Bia" }],
        "opens_at": now + Duration::hours(3),
        "closes_at": now + Duration::hours(30),
    });
    let (status, body) = app.admin(Method::POST, "/api/admin/paredoes", Some(overlapping)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "paredao_overlap");
    assert!(body["message"].as_str().unwrap().contains(OPEN) || body["message"].as_str().unwrap().contains(SCHEDULED));

    // Opening the scheduled one now would have two open at once.
    let (status, body) = app.admin(Method::POST, &format!("/api/admin/paredoes/{SCHEDULED}/open"), None).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("paredao_overlap")), "{body}");
    assert!(body["message"].as_str().unwrap().contains(OPEN), "{body}");

    // After the open one closes there is room.
    let (status, _) = app.admin(Method::POST, &format!("/api/admin/paredoes/{OPEN}/close"), None).await;
    assert_eq!(status, 200);
    let (status, body) = app.admin(Method::POST, &format!("/api/admin/paredoes/{SCHEDULED}/open"), None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn two_admins_opening_overlapping_paredoes_at_once_open_only_one() {
    let app = spawn_with(settings_with_nothing_open(), false).await;
    app.create_paredao("first", &["Ana", "Bia"], Duration::hours(10), Duration::hours(12), "live").await;
    app.create_paredao("second", &["Ana", "Bia"], Duration::hours(15), Duration::hours(17), "live").await;
    let (a, b) = tokio::join!(
        app.admin(Method::POST, "/api/admin/paredoes/first/open", None),
        app.admin(Method::POST, "/api/admin/paredoes/second/open", None),
    );
    let opened = [a.0, b.0].iter().filter(|s| **s == 200).count();
    assert_eq!(opened, 1, "exactly one opens: {a:?} {b:?}");
    let loser = if a.0 == 200 { &b.1 } else { &a.1 };
    assert_eq!(loser["error"], "paredao_overlap", "{loser}");
    let (_, list) = app.admin(Method::GET, "/api/admin/paredoes", None).await;
    let open = list.as_array().unwrap().iter().filter(|p| p["state"] == "open").count();
    assert_eq!(open, 1, "{list}");
}

#[tokio::test]
async fn participants_are_locked_once_the_paredao_opens_and_a_closed_one_does_not_change() {
    let app = spawn_with(settings_with_nothing_open(), false).await;
    app.create_paredao("lock", &["Ana", "Bia"], Duration::hours(1), Duration::hours(2), "live").await;
    let path = "/api/admin/paredoes/lock";
    let (status, edited) = app
        .admin(
            Method::PUT,
            path,
            Some(json!({ "participants": [{ "name": "Ana" }, { "name": "Bia" }, { "id": "caio", "name": "Caio" }] })),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["participants"].as_array().unwrap().len(), 3);

    let (status, _) = app.admin(Method::POST, &format!("{path}/open"), None).await;
    assert_eq!(status, 200);
    let (status, body) =
        app.admin(Method::PUT, path, Some(json!({ "participants": [{ "name": "Ana" }, { "name": "Bia" }] }))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("participants_locked")), "{body}");
    // The title, the closing and the visibility may still change.
    let closes_at = chrono::Utc::now() + Duration::hours(5);
    let (status, body) = app
        .admin(
            Method::PUT,
            path,
            Some(json!({ "title": "Novo título", "closes_at": closes_at, "results_visibility": "never" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["title"], "Novo título");
    assert_eq!(body["results_visibility"], "never");
    // An open paredão keeps its opening.
    let (status, body) =
        app.admin(Method::PUT, path, Some(json!({ "opens_at": chrono::Utc::now() + Duration::hours(1) }))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("paredao_already_open")), "{body}");

    let (status, _) = app.admin(Method::POST, &format!("{path}/close"), None).await;
    assert_eq!(status, 200);
    let (status, body) = app.admin(Method::PUT, path, Some(json!({ "title": "Outro" }))).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("paredao_already_closed")), "{body}");
}

#[tokio::test]
async fn a_bad_paredao_is_refused_with_what_was_wrong() {
    let app = spawn_with(settings_with_nothing_open(), false).await;
    let now = chrono::Utc::now();
    let base = json!({
        "id": "bad",
        "title": "Bad",
        "participants": [{ "name": "Ana" }, { "name": "Bia" }],
        "opens_at": now + Duration::hours(1),
        "closes_at": now + Duration::hours(2),
    });
    let cases = [
        ("participants", json!([{ "name": "Ana" }]), "invalid_paredao"),
        ("participants", json!([{ "name": "Ana" }, { "name": "ana" }]), "invalid_paredao"),
        ("id", json!("Not A Slug"), "invalid_paredao"),
        ("title", json!("  "), "invalid_paredao"),
        ("closes_at", json!(now - Duration::hours(1)), "invalid_schedule"),
        ("closes_at", json!(now + Duration::minutes(30)), "invalid_paredao"),
    ];
    for (field, value, code) in cases {
        let mut body = base.clone();
        body[field] = value;
        let (status, answer) = app.admin(Method::POST, "/api/admin/paredoes", Some(body)).await;
        assert_eq!((status, answer["error"].as_str()), (422, Some(code)), "{field}: {answer}");
    }
    let (status, _) = app.admin(Method::POST, "/api/admin/paredoes", Some(base.clone())).await;
    assert_eq!(status, 201);
    let (status, answer) = app.admin(Method::POST, "/api/admin/paredoes", Some(base)).await;
    assert_eq!((status, answer["error"].as_str()), (409, Some("paredao_exists")));
    // Opening a paredão whose closing has passed is not possible; one that does not exist is 404.
    let (status, _) = app.admin(Method::POST, "/api/admin/paredoes/nope/open", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_admin_api_needs_an_identity() {
    let app = spawn_with(settings_with_nothing_open(), false).await;
    for (method, path) in [
        (Method::GET, "/api/admin/paredoes"),
        (Method::POST, "/api/admin/paredoes"),
        (Method::GET, "/api/admin/paredoes/closed-paredao"),
        (Method::PUT, "/api/admin/paredoes/closed-paredao"),
        (Method::POST, "/api/admin/paredoes/closed-paredao/open"),
        (Method::POST, "/api/admin/paredoes/closed-paredao/close"),
        (Method::PUT, "/api/admin/paredoes/closed-paredao/participants/davi/photo"),
    ] {
        let r = app.client.request(method.clone(), app.url(path)).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
    }
}

#[tokio::test]
async fn the_seed_does_not_overwrite_what_the_team_edited() {
    let settings = test_settings();
    let first = spawn_with(settings.clone(), false).await;
    let (status, _) =
        first.admin(Method::PUT, &format!("/api/admin/paredoes/{OPEN}"), Some(json!({ "title": "Editado" }))).await;
    assert_eq!(status, 200);
    // Another replica starts with the same configuration: the edit stays.
    let second = spawn_with(settings, false).await;
    let (_, paredao) = second.get_json(&format!("/api/paredoes/{OPEN}")).await;
    assert_eq!(paredao["title"], "Editado");
    let (_, paredao) = second.get_json(&format!("/api/paredoes/{CLOSED}")).await;
    assert_eq!(paredao["title"], format!("Paredão {CLOSED}"));
}
