//! The deliberate error path: an SRE makes a share of votes fail on purpose, on every replica.

use std::time::Duration;

use voting::testing::eventually;

use crate::helpers::{OPEN, spawn_with, test_settings};

async fn put_fault(app: &crate::helpers::TestApp, token: Option<&str>, body: serde_json::Value) -> reqwest::Response {
    let mut request = app.client.put(app.url("/api/admin/fault")).json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn fault_injection_needs_the_token_and_fails_votes_on_every_replica_until_turned_off() {
    let settings = test_settings();
    let token = settings.admin.token().unwrap().to_string();
    let first = spawn_with(settings.clone(), true).await;
    let second = spawn_with(settings, false).await;

    // Without the right token nothing changes.
    for wrong in [None, Some("nope")] {
        let r = put_fault(&first, wrong, serde_json::json!({"vote_error_ratio": 1.0})).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "unauthorized");
    }
    let r = put_fault(&first, Some(&token), serde_json::json!({"vote_error_ratio": 1.5})).await;
    assert_eq!(r.status(), 422, "a ratio over 1 is refused");
    assert_eq!(first.vote(OPEN, "ana").await.status(), 202);
    let accepted = std::sync::atomic::AtomicU64::new(1);
    let vote_on = |app: &'static str, status: u16| {
        let accepted = &accepted;
        let app = if app == "first" { &first } else { &second };
        async move {
            let got = app.vote(OPEN, "ana").await.status().as_u16();
            if got == 202 {
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            (got == status).then_some(())
        }
    };

    // On, through one replica: the other follows, and says so in its metrics.
    assert_eq!(put_fault(&first, Some(&token), serde_json::json!({"vote_error_ratio": 1.0})).await.status(), 200);
    eventually("the other replica to inject faults too", Duration::from_secs(10), || vote_on("second", 500)).await;
    let r = first.vote(OPEN, "bia").await;
    assert_eq!(r.status(), 500);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["error"], "injected_fault");
    let metrics = second.client.get(second.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("paredao_fault_vote_error_ratio 1"), "the state is visible in metrics");
    assert!(metrics.contains("paredao_votes_rejected_total{reason=\"injected_fault\"}"));

    // Off again: votes go through; the failed ones were never counted.
    assert_eq!(put_fault(&first, Some(&token), serde_json::json!({"vote_error_ratio": 0.0})).await.status(), 200);
    eventually("the other replica to stop injecting", Duration::from_secs(10), || vote_on("second", 202)).await;
    first.wait_for_total(OPEN, accepted.load(std::sync::atomic::Ordering::Relaxed)).await;
}
