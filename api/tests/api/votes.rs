use std::collections::HashMap;

use crate::helpers::{CLOSED, OPEN, SCHEDULED, spawn_app, spawn_with, test_settings};

#[tokio::test]
async fn a_vote_is_accepted_and_appears_in_results_and_statistics() {
    let app = spawn_app().await;

    let r = app.vote(OPEN, "ana").await;
    assert_eq!(r.status(), 202);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["participant_id"], "ana");

    let stats = app.wait_for_total(OPEN, 1).await;
    let ana = stats["participants"].as_array().unwrap().iter().find(|p| p["id"] == "ana").unwrap();
    assert_eq!(ana["votes"], 1);
    let hourly = stats["hourly"].as_array().unwrap();
    assert_eq!(hourly.len(), 1);
    assert_eq!(hourly[0]["total"], 1);
    assert_eq!(hourly[0]["votes"]["ana"], 1);
    assert_eq!(hourly[0]["votes"]["bia"], 0);

    let (status, results) = app.get_json(&format!("/api/paredoes/{OPEN}/results")).await;
    assert_eq!(status, 200);
    let shares: HashMap<String, f64> = results["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap().to_string(), p["percentage"].as_f64().unwrap()))
        .collect();
    assert_eq!(shares["ana"], 100.0);
    assert_eq!(shares["bia"], 0.0);
}

#[tokio::test]
async fn a_thousand_concurrent_votes_are_all_counted_exactly() {
    // Room for all of them at once: this is about counting, not shedding (overload.rs).
    let mut settings = test_settings();
    settings.admission.max_votes_in_flight = std::num::NonZeroUsize::new(1000).unwrap();
    let app = spawn_with(settings, true).await;
    let participants = ["ana", "bia", "caio"];
    let responses = futures::future::join_all((0..1000).map(|i| app.vote(OPEN, participants[i % 3]))).await;
    let accepted = responses.iter().filter(|r| r.status() == 202).count();
    // When one is not, say how it was answered: a refusal (503, 429) is a different fault from a
    // vote lost after its 202.
    let mut others = std::collections::BTreeMap::<u16, usize>::new();
    for r in responses.iter().filter(|r| r.status() != 202) {
        *others.entry(r.status().as_u16()).or_default() += 1;
    }
    assert_eq!(accepted, 1000, "every vote is accepted; the others were answered {others:?}");

    let stats = app.wait_for_total(OPEN, 1000).await;
    let votes: HashMap<&str, u64> = stats["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["votes"].as_u64().unwrap()))
        .collect();
    assert_eq!(votes["ana"], 334);
    assert_eq!(votes["bia"], 333);
    assert_eq!(votes["caio"], 333);

    let (_, results) = app.get_json(&format!("/api/paredoes/{OPEN}/results")).await;
    let sum: f64 = results["participants"].as_array().unwrap().iter().map(|p| p["percentage"].as_f64().unwrap()).sum();
    assert!((sum - 100.0).abs() < 1e-9, "percentages add up to 100, got {sum}");
}

#[tokio::test]
async fn votes_to_a_closed_or_scheduled_paredao_are_rejected() {
    let app = spawn_app().await;
    for (paredao, status, code, state) in
        [(CLOSED, 410, "paredao_closed", "closed"), (SCHEDULED, 409, "paredao_not_open", "scheduled")]
    {
        let r = app.vote(paredao, "ana").await;
        assert_eq!(r.status(), status, "{paredao}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], code);
        assert!(body["message"].as_str().unwrap().contains(state), "{body}");
    }
    // Nothing was counted for them: a vote to the open one is the only one that shows up.
    assert_eq!(app.vote(OPEN, "bia").await.status(), 202);
    app.wait_for_total(OPEN, 1).await;
    assert_eq!(app.stats(CLOSED).await["total_votes"], 0);
}

#[tokio::test]
async fn the_current_paredao_is_the_open_one() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/api/paredoes/current").await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], OPEN);
    assert_eq!(body["state"], "open");
    assert_eq!(body["participants"].as_array().unwrap().len(), 3);
    assert_eq!(body["participants"][0]["id"], "ana");

    let (status, body) = app.get_json(&format!("/api/paredoes/{CLOSED}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "closed");
}
