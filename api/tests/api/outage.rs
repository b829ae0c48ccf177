//! The broker or the store going away, simulated with a TCP proxy in front of the real service
//! (so the services other tests share keep running).

use std::time::Duration;

use voting::testing::{TcpProxy, amqp_url, eventually, mongo_url, port_of, with_port};

use crate::helpers::{OPEN, spawn_with, test_settings};

#[tokio::test]
async fn a_broker_outage_answers_503_and_votes_succeed_again_after_it_returns() {
    let proxy = TcpProxy::start(port_of(&amqp_url())).await;
    let mut settings = test_settings();
    // Only the API goes through the proxy; the consumer keeps its own direct connection.
    let consumer = consumer::startup::Consumer::build(settings.clone()).await.unwrap();
    tokio::spawn(consumer.run_until_stopped(std::future::pending()));
    settings.broker.url = with_port(&amqp_url(), proxy.port).into();
    let app = spawn_with(settings, false).await;

    assert_eq!(app.vote(OPEN, "ana").await.status(), 202);
    proxy.cut();

    // Every vote during the outage is refused with 503 and a Retry-After; none is lost silently.
    let refused = eventually("votes to be refused while the broker is away", Duration::from_secs(10), || async {
        let r = app.vote(OPEN, "bia").await;
        (r.status() == 503).then_some(r)
    })
    .await;
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "vote_not_durable");
    let (status, ready) = app.get_json("/health/ready").await;
    assert_eq!(status, 503);
    assert_eq!(ready["broker_connected"], false);
    for _ in 0..5 {
        assert_eq!(app.vote(OPEN, "bia").await.status(), 503);
    }

    proxy.restore();
    eventually("votes to be accepted again", Duration::from_secs(30), || async {
        (app.vote(OPEN, "caio").await.status() == 202).then_some(())
    })
    .await;

    // Exactly the accepted votes are counted: the first one and the one after recovery.
    let stats = app.wait_for_total(OPEN, 2).await;
    let votes = |id: &str| {
        stats["participants"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap()["votes"].as_u64().unwrap()
    };
    assert_eq!((votes("ana"), votes("bia"), votes("caio")), (1, 0, 1));
}

#[tokio::test]
async fn readiness_fails_while_the_store_is_unreachable_and_recovers() {
    let proxy = TcpProxy::start(port_of(&mongo_url())).await;
    let mut settings = test_settings();
    settings.store.url = with_port(&mongo_url(), proxy.port).into();
    let app = spawn_with(settings, true).await;

    proxy.cut();
    let body = eventually("readiness to fail", Duration::from_secs(15), || async {
        let (status, body) = app.get_json("/health/ready").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(body["store_reachable"], false);
    assert_eq!(body["broker_connected"], true);

    // Votes are still accepted (they wait in the durable queue) and results are served from
    // the last snapshot.
    assert_eq!(app.vote(OPEN, "ana").await.status(), 202);
    let (status, _) = app.get_json(&format!("/api/paredoes/{OPEN}/results")).await;
    assert_eq!(status, 200);

    proxy.restore();
    app.wait_until_ready().await;
    app.wait_for_total(OPEN, 1).await;
}

#[tokio::test]
async fn after_a_503_the_same_solved_challenge_may_be_sent_again_and_counts_once() {
    let proxy = TcpProxy::start(port_of(&amqp_url())).await;
    let mut settings = test_settings();
    let consumer = consumer::startup::Consumer::build(settings.clone()).await.unwrap();
    tokio::spawn(consumer.run_until_stopped(std::future::pending()));
    settings.broker.url = with_port(&amqp_url(), proxy.port).into();
    settings.batcher.confirm_timeout_ms = 300;
    let app = spawn_with(settings, false).await;
    app.wait_until_ready().await;

    let mut solutions = Vec::new();
    for _ in 0..10 {
        solutions.push(app.solved_challenge(OPEN).await);
    }
    // The broker stops answering: the votes are published but not confirmed in time, so they
    // answer 503. Their messages reach the broker once it answers again, so some or all of
    // them may be counted: a 503 does not say "not counted", it says "retrying is safe".
    proxy.freeze();
    let first = futures::future::join_all(solutions.iter().map(|s| app.vote_with(OPEN, "ana", Some(s)))).await;
    for r in first {
        assert_eq!(r.status(), 503);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "vote_not_durable", "{body}");
    }
    proxy.thaw();

    // The viewer's page sends the same vote again with the same solved challenge: accepted.
    for s in &solutions {
        let retried = eventually("the retry to be accepted", Duration::from_secs(20), || async {
            let r = app.vote_with(OPEN, "ana", Some(s)).await;
            let status = r.status().as_u16();
            assert!(status == 202 || status == 503, "a retry after a 503 is never refused as a replay: {status}");
            (status == 202).then_some(())
        })
        .await;
        let () = retried;
    }
    // A vote after them all: once it is counted, the queue ahead of it has been (one consumer).
    assert_eq!(app.vote(OPEN, "bia").await.status(), 202);
    let stats = app.wait_for_total(OPEN, 11).await;
    let ana = stats["participants"].as_array().unwrap().iter().find(|p| p["id"] == "ana").unwrap()["votes"].as_u64();
    assert_eq!(ana, Some(10), "each challenge counted once, whichever copies reached the store");
}
