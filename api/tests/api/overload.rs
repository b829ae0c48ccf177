//! Admission control: a replica holding as many votes as it may refuses the next one at once,
//! spends nothing on it, and takes votes again as soon as room is made.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use voting::testing::{TcpProxy, amqp_url, eventually, port_of, with_port};

use crate::helpers::{OPEN, TestApp, spawn_with, test_settings};

/// The value of one sample line of the replica's /metrics, e.g. `paredao_requests_in_flight{class="votes"}`.
async fn metric(app: &TestApp, sample: &str) -> Option<f64> {
    let text = app.client.get(app.url("/metrics")).send().await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

#[tokio::test]
async fn a_saturated_api_refuses_votes_at_once_without_spending_their_captcha_and_recovers() {
    const BOUND: usize = 3;
    let proxy = TcpProxy::start(port_of(&amqp_url())).await;
    let mut settings = test_settings();
    // The consumer keeps its own direct connection; only the API's broker link is held.
    let consumer = consumer::startup::Consumer::build(settings.clone()).await.unwrap();
    tokio::spawn(consumer.run_until_stopped(std::future::pending()));
    settings.broker.url = with_port(&amqp_url(), proxy.port).into();
    settings.admission.max_votes_in_flight = NonZeroUsize::new(BOUND).unwrap();
    let app = Arc::new(spawn_with(settings, false).await);

    // A broker that is alive but does not confirm: each vote holds its place until it does.
    let mut captchas = Vec::new();
    for _ in 0..=BOUND {
        captchas.push(app.solved_challenge(OPEN).await);
    }
    let last = captchas.pop().unwrap();
    proxy.freeze();
    let held: Vec<_> = captchas
        .into_iter()
        .map(|c| {
            let app = app.clone();
            tokio::spawn(async move { app.vote_with(OPEN, "ana", Some(&c)).await.status() })
        })
        .collect();
    eventually("the replica to hold its bound of votes", Duration::from_secs(10), || async {
        (metric(&app, r#"paredao_requests_in_flight{class="votes"}"#).await? == BOUND as f64).then_some(())
    })
    .await;

    // The next vote is refused at once, with a reason and a time to come back.
    let started = Instant::now();
    let refused = app.vote_with(OPEN, "bia", Some(&last)).await;
    assert!(started.elapsed() < Duration::from_millis(500), "refused in {:?}", started.elapsed());
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "overloaded", "{body}");
    // Reads have a room of their own: the page and the results still answer.
    let (status, _) = app.get_json(&format!("/api/paredoes/{OPEN}/results")).await;
    assert_eq!(status, 200);
    assert_eq!(metric(&app, r#"paredao_votes_rejected_total{reason="overloaded"}"#).await, Some(1.0));

    // The broker confirms again: the held votes are accepted, and the refused vote, sent again
    // with the same captcha, is too, since nothing was spent on it.
    proxy.thaw();
    for h in held {
        assert_eq!(h.await.unwrap(), 202);
    }
    assert_eq!(app.vote_with(OPEN, "bia", Some(&last)).await.status(), 202);
    let stats = app.wait_for_total(OPEN, BOUND as u64 + 1).await;
    let votes = |id: &str| {
        stats["participants"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap()["votes"].as_u64().unwrap()
    };
    assert_eq!((votes("ana"), votes("bia")), (BOUND as u64, 1));
}
