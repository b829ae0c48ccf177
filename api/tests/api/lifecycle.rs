//! Every replica follows an opening or a closing within a second, and the viewers' results
//! follow each paredão's visibility.

use std::time::Duration;

use chrono::Duration as Span;
use reqwest::Method;
use voting::testing::eventually;

use crate::helpers::{settings_with_nothing_open, spawn_with};

#[tokio::test]
async fn every_replica_refuses_votes_within_a_second_of_the_close() {
    let settings = settings_with_nothing_open();
    let first = spawn_with(settings.clone(), true).await;
    let second = spawn_with(settings, false).await;
    first.create_paredao("replicas", &["Ana", "Bia"], Span::hours(1), Span::hours(2), "live").await;
    eventually("the other replica knows the new paredão", Duration::from_secs(1), || async {
        (second.vote("replicas", "ana").await.status() == 409).then_some(())
    })
    .await;

    let (status, _) = first.admin(Method::POST, "/api/admin/paredoes/replicas/open", None).await;
    assert_eq!(status, 200);
    eventually("the other replica takes votes once it opened", Duration::from_secs(1), || async {
        (second.vote("replicas", "ana").await.status() == 202).then_some(())
    })
    .await;

    let (status, _) = first.admin(Method::POST, "/api/admin/paredoes/replicas/close", None).await;
    assert_eq!(status, 200);
    // This replica at once.
    assert_eq!(first.vote("replicas", "bia").await.status(), 410);
    eventually("the other replica refuses votes once it closed", Duration::from_secs(1), || async {
        (second.vote("replicas", "bia").await.status() == 410).then_some(())
    })
    .await;
}

#[tokio::test]
async fn results_shown_only_after_the_close_are_hidden_until_then() {
    let app = spawn_with(settings_with_nothing_open(), true).await;
    app.create_paredao("later", &["Ana", "Bia"], Span::hours(1), Span::hours(2), "after_close").await;
    let (status, _) = app.admin(Method::POST, "/api/admin/paredoes/later/open", None).await;
    assert_eq!(status, 200);
    assert_eq!(app.vote("later", "ana").await.status(), 202);
    app.wait_for_total("later", 1).await;

    let (status, results) = app.get_json("/api/paredoes/later/results").await;
    assert_eq!(status, 200);
    assert_eq!(results["state"], "open");
    assert_eq!(results["visible"], false);
    assert_eq!(results["hidden_reason"], "after_close");
    assert_eq!(results["participants"][0]["name"], "Ana");
    assert!(results["participants"][0].get("percentage").is_none(), "{results}");

    let (status, _) = app.admin(Method::POST, "/api/admin/paredoes/later/close", None).await;
    assert_eq!(status, 200);
    let (_, results) = app.get_json("/api/paredoes/later/results").await;
    assert_eq!(results["visible"], true);
    assert_eq!(results["participants"][0]["percentage"], 100.0);
    assert!(results.get("hidden_reason").is_none());
}

#[tokio::test]
async fn results_never_shown_stay_hidden_after_the_close() {
    let app = spawn_with(settings_with_nothing_open(), true).await;
    app.create_paredao("secret", &["Ana", "Bia"], Span::hours(1), Span::hours(2), "never").await;
    app.admin(Method::POST, "/api/admin/paredoes/secret/open", None).await;
    assert_eq!(app.vote("secret", "bia").await.status(), 202);
    app.wait_for_total("secret", 1).await;
    app.admin(Method::POST, "/api/admin/paredoes/secret/close", None).await;
    let (_, results) = app.get_json("/api/paredoes/secret/results").await;
    assert_eq!(results["state"], "closed");
    assert_eq!(results["visible"], false);
    assert_eq!(results["hidden_reason"], "never");
    assert!(results["participants"][1].get("percentage").is_none(), "{results}");
}

#[tokio::test]
async fn seeded_paredoes_show_live_results() {
    let app = spawn_with(crate::helpers::test_settings(), false).await;
    let (_, results) = app.get_json(&format!("/api/paredoes/{}/results", crate::helpers::OPEN)).await;
    assert_eq!(results["visible"], true);
    assert_eq!(results["results_visibility"], "live");
    assert_eq!(results["participants"][0]["percentage"], 0.0);
}

#[tokio::test]
async fn a_paredao_stored_before_visibility_existed_loads_with_live_results() {
    let settings = settings_with_nothing_open();
    let client = mongodb::Client::with_uri_str(settings.store.url()).await.unwrap();
    let now = chrono::Utc::now();
    client
        .database(&settings.store.database)
        .collection::<mongodb::bson::Document>("paredoes")
        .insert_one(mongodb::bson::doc! {
            "_id": "legacy",
            "title": "Antigo",
            "participants": [{ "id": "ana", "name": "Ana" }, { "id": "bia", "name": "Bia" }],
            "opens_at": mongodb::bson::DateTime::from_chrono(now + Span::hours(1)),
            "closes_at": mongodb::bson::DateTime::from_chrono(now + Span::hours(2)),
        })
        .await
        .unwrap();
    let app = spawn_with(settings, false).await;
    let (status, paredao) = app.get_json("/api/paredoes/legacy").await;
    assert_eq!(status, 200, "{paredao}");
    assert_eq!(paredao["results_visibility"], "live");
}
