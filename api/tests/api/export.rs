//! Exports and the team's result endpoints: who may read them, what a bad request gets, and the
//! live export and per-minute statistics equal to the counters.

use std::time::Duration;

use serde_json::Value;
use voting::testing::eventually;

use crate::helpers::{OPEN, spawn_app};
use crate::history::sum_last_column;

#[tokio::test]
async fn the_team_endpoints_answer_401_without_credentials() {
    let app = spawn_app().await;
    for path in [
        format!("/api/paredoes/{OPEN}/final"),
        format!("/api/paredoes/{OPEN}/export?format=csv&granularity=hour"),
        "/api/history".to_string(),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["error"], "unauthorized");
    }
}

#[tokio::test]
async fn a_bad_format_or_granularity_is_422_with_the_json_error() {
    let app = spawn_app().await;
    for query in ["format=xml&granularity=hour", "format=csv&granularity=day", "granularity=week"] {
        let r = app.team_get(&format!("/api/paredoes/{OPEN}/export?{query}")).await;
        assert_eq!(r.status(), 422, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_export", "{body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn an_open_paredao_has_no_final_result_yet() {
    let app = spawn_app().await;
    let r = app.team_get(&format!("/api/paredoes/{OPEN}/final")).await;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "not_final");
}

#[tokio::test]
async fn the_live_export_and_the_per_minute_statistics_equal_the_counters() {
    let app = spawn_app().await;
    for participant in ["ana", "caio", "caio"] {
        assert_eq!(app.vote(OPEN, participant).await.status(), 202);
    }
    let stats = eventually("3 votes counted, per minute too", Duration::from_secs(60), || async {
        let stats = app.team_json(&format!("/api/paredoes/{OPEN}/stats")).await;
        let minutes: u64 = stats["per_minute"].as_array().unwrap().iter().map(|m| m["total"].as_u64().unwrap()).sum();
        (stats["total_votes"] == 3 && minutes == 3).then_some(stats)
    })
    .await;
    assert!(stats["final"].is_null(), "not final while open");
    let minute = &stats["per_minute"][0];
    assert_eq!(minute["votes"].as_object().unwrap().len(), 3, "every participant in each minute: {minute}");

    let r = app.team_get(&format!("/api/paredoes/{OPEN}/export?format=csv&granularity=total")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.headers()["content-disposition"], format!("attachment; filename=\"paredao-{OPEN}-total.csv\""));
    assert_eq!(r.text().await.unwrap(), "participant,votes\nana,1\nbia,0\ncaio,2\n");

    for granularity in ["hour", "minute"] {
        let r = app.team_get(&format!("/api/paredoes/{OPEN}/export?format=csv&granularity={granularity}")).await;
        assert_eq!(sum_last_column(&r.text().await.unwrap()), 3, "{granularity}");
        let r = app.team_get(&format!("/api/paredoes/{OPEN}/export?format=json&granularity={granularity}")).await;
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["final"], false);
        assert!(body["digest"].is_null());
        let rows = body["rows"].as_array().unwrap();
        assert!(rows.iter().all(|r| r[granularity].is_string()), "{body}");
        assert_eq!(rows.iter().map(|r| r["votes"].as_u64().unwrap()).sum::<u64>(), 3);
    }
}

#[tokio::test]
async fn the_new_endpoints_are_in_the_openapi_spec_with_their_security() {
    let app = spawn_app().await;
    let (_, spec) = app.get_json("/api-docs/openapi.json").await;
    for path in ["/api/paredoes/{paredao_id}/final", "/api/paredoes/{paredao_id}/export", "/api/history"] {
        let get = &spec["paths"][path]["get"];
        assert!(get.is_object(), "{path} is documented");
        assert!(get["security"].is_array(), "{path} names its security");
        assert!(get["responses"]["401"].is_object(), "{path} documents its 401");
    }
    assert!(spec["paths"]["/api/paredoes/{paredao_id}/export"]["get"]["responses"]["422"].is_object());
}
