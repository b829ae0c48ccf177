//! A paredão from its opening to its final result: vote, close, the freeze; then the history,
//! the export and the statistics all say the same, and the digest matches the per-hour CSV.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};
use voting::configuration::Settings;
use voting::paredao::{Paredao, ParedaoId};
use voting::store::Store;
use voting::testing::eventually;

use crate::helpers::{TestApp, spawn_with, test_settings};

/// Test settings whose consumer freezes a closed paredão within about a second.
pub fn fast_freeze() -> Settings {
    let mut s = test_settings();
    s.batcher.confirm_timeout_ms = 1_000;
    s.consumer.freeze.grace_ms = 300;
    s.consumer.freeze.settle_ms = 300;
    s.consumer.freeze.every_ms = 100;
    s
}

/// A paredão of the test's own, open since an hour ago and closing `closes_in` from now, stored
/// and known to the API.
pub async fn closing_paredao(app: &TestApp, id: &str, closes_in: Duration) -> Paredao {
    let store = Store::connect(&app.settings.store).await.unwrap();
    let mut p = app.settings.seed[0].clone();
    p.id = ParedaoId::parse(id).unwrap();
    p.title = format!("Paredão {id}");
    p.opens_at = Utc::now() - chrono::Duration::hours(1);
    p.closes_at = Utc::now() + chrono::Duration::from_std(closes_in).unwrap();
    store.upsert_paredao(&p).await.unwrap();
    eventually("the api to know the new paredão", Duration::from_secs(10), || async {
        let r = app.client.get(app.url(&format!("/api/paredoes/{id}"))).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    p
}

/// Waits for the frozen result (409 `not_final` until then).
pub async fn wait_for_final(app: &TestApp, id: &str) -> Value {
    eventually(&format!("the final result of {id}"), Duration::from_secs(60), || async {
        let r = app.team_get(&format!("/api/paredoes/{id}/final")).await;
        match r.status().as_u16() {
            200 => Some(r.json().await.unwrap()),
            409 => {
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["error"], "not_final");
                None
            }
            other => panic!("GET final answered {other}"),
        }
    })
    .await
}

#[tokio::test]
async fn a_closed_paredao_is_frozen_and_history_export_and_statistics_agree_with_the_digest() {
    let app = spawn_with(fast_freeze(), true).await;
    let id = "closing-history";
    closing_paredao(&app, id, Duration::from_secs(4)).await;
    for participant in ["ana", "ana", "ana", "bia", "bia"] {
        assert_eq!(app.vote(id, participant).await.status(), 202);
    }
    let r = app.team_get(&format!("/api/paredoes/{id}/final")).await;
    assert_eq!(r.status(), 409, "no final result while it is open");

    let frozen = wait_for_final(&app, id).await;
    assert_eq!(frozen["total_votes"], 5);
    let digest = frozen["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);

    // The statistics: the same totals, and the final mark once the snapshot has it.
    let stats = eventually("the statistics to mark the result final", Duration::from_secs(10), || async {
        let stats = app.team_json(&format!("/api/paredoes/{id}/stats")).await;
        (!stats["final"].is_null()).then_some(stats)
    })
    .await;
    assert_eq!(stats["final"]["digest"], digest.as_str());
    assert_eq!(stats["final"]["drained"], true);
    assert_eq!(stats["total_votes"], 5);
    let stats_votes: Vec<(String, u64)> = stats["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_string(), p["votes"].as_u64().unwrap()))
        .collect();
    assert_eq!(stats_votes, vec![("ana".into(), 3), ("bia".into(), 2), ("caio".into(), 0)]);

    // The history: final, with the same totals and digest, newest first.
    let history = app.team_json("/api/history").await;
    let entries = history["paredoes"].as_array().unwrap();
    assert_eq!(entries[0]["paredao_id"], id, "the last to close first: {history}");
    assert_eq!(entries[0]["status"], "final");
    assert_eq!(entries[0]["digest"], digest.as_str());
    assert_eq!(entries[0]["total_votes"], 5);
    let history_votes: Vec<(String, u64)> = entries[0]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_string(), p["votes"].as_u64().unwrap()))
        .collect();
    assert_eq!(history_votes, stats_votes);
    let closes: Vec<&str> = entries.iter().map(|e| e["closes_at"].as_str().unwrap()).collect();
    let mut sorted = closes.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(closes, sorted, "newest first");

    // The per-hour CSV hashes to the digest, byte for byte.
    let r = app.team_get(&format!("/api/paredoes/{id}/export?format=csv&granularity=hour")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.headers()["content-disposition"], format!("attachment; filename=\"paredao-{id}-hour.csv\""));
    let csv = r.bytes().await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&csv)), digest, "sha256sum of the export is the digest");
    let csv = String::from_utf8(csv.to_vec()).unwrap();
    assert!(csv.starts_with("hour,participant,votes\n"), "{csv}");
    assert_eq!(sum_last_column(&csv), 5);

    // The totals as JSON equal the statistics.
    let r = app.team_get(&format!("/api/paredoes/{id}/export?format=json&granularity=total")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["content-disposition"], format!("attachment; filename=\"paredao-{id}-total.json\""));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["final"], true);
    assert_eq!(body["digest"], digest.as_str());
    let export_votes: Vec<(String, u64)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["participant"].as_str().unwrap().to_string(), p["votes"].as_u64().unwrap()))
        .collect();
    assert_eq!(export_votes, stats_votes);

    // Per minute, from the frozen series (the minute counters are rolled up): the same 5.
    let r = app.team_get(&format!("/api/paredoes/{id}/export?format=csv&granularity=minute")).await;
    assert_eq!(r.headers()["content-disposition"], format!("attachment; filename=\"paredao-{id}-minute.csv\""));
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("minute,participant,votes\n"), "{csv}");
    assert_eq!(sum_last_column(&csv), 5);
    let minutes: u64 = frozen["per_minute"].as_array().unwrap().iter().map(|m| m["total"].as_u64().unwrap()).sum();
    let hours: u64 = frozen["hourly"].as_array().unwrap().iter().map(|h| h["total"].as_u64().unwrap()).sum();
    assert_eq!((minutes, hours), (5, 5));
}

pub fn sum_last_column(csv: &str) -> u64 {
    csv.lines().skip(1).map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap()).sum()
}

#[tokio::test]
async fn the_history_lists_a_closed_paredao_still_counting_as_counting() {
    // No consumer: nothing is ever frozen.
    let app = spawn_with(test_settings(), false).await;
    let history = app.team_json("/api/history").await;
    let entries = history["paredoes"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "only the closed seed: {history}");
    assert_eq!(entries[0]["paredao_id"], crate::helpers::CLOSED);
    assert_eq!(entries[0]["status"], "counting");
    assert!(entries[0]["digest"].is_null());
}
