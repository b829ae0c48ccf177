//! The consumer killed with SIGKILL in the middle of a stream of votes, twice, and restarted:
//! every vote the API accepted is counted, exactly once.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret;
use voting::configuration::Settings;
use voting::testing::{OPEN, eventually, test_settings};

use crate::helpers::{Publisher, seeded_store, wait_for_counted};

fn start_consumer_process(settings: &Settings) -> Child {
    Command::new(env!("CARGO_BIN_EXE_consumer"))
        .env("APP_ENVIRONMENT", "local")
        .env("APP_BROKER__URL", settings.broker.url.expose_secret())
        .env("APP_BROKER__QUEUE", &settings.broker.queue)
        .env("APP_STORE__URL", settings.store.url.expose_secret())
        .env("APP_STORE__DATABASE", &settings.store.database)
        .env("APP_CONSUMER__PORT", "0")
        // Small writes, so that a kill lands between a commit and its acks now and then.
        .env("APP_CONSUMER__MAX_MESSAGES_PER_WRITE", "3")
        .env("APP_CONSUMER__PREFETCH", "20")
        .env("RUST_LOG", "warn")
        .env("APP_CAPTCHA__HMAC_KEY", settings.captcha.hmac_key())
        .stdout(Stdio::null())
        .spawn()
        .expect("the consumer binary starts")
}

#[tokio::test]
async fn a_consumer_killed_mid_stream_counts_every_accepted_vote_exactly_once() {
    voting::telemetry::init_test_subscriber();
    let mut settings = test_settings();
    // Many small messages: more kills land mid-message-stream.
    settings.batcher.max_votes = 10;
    // This test is about the consumer; votes come straight from a client without a captcha.
    settings.captcha.mode = voting::configuration::CaptchaMode::Off;
    settings.batcher.max_wait_ms = 1;
    let store = seeded_store(&settings).await;
    let publisher = Publisher::connect(&settings).await;

    let api = api::startup::Application::build(settings.clone()).await.unwrap();
    let url = format!("http://127.0.0.1:{}/api/paredoes/{OPEN}/votes", api.port());
    tokio::spawn(api.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::new();
    eventually("the api to accept votes", Duration::from_secs(30), || async {
        let r = client.post(&url).json(&serde_json::json!({ "participant_id": "ana" })).send().await.ok()?;
        (r.status() == 202).then_some(())
    })
    .await;
    let accepted = Arc::new(AtomicU64::new(1));

    let mut consumer = start_consumer_process(&settings);
    let mut senders = Vec::new();
    for i in 0..8 {
        let (client, url, accepted) = (client.clone(), url.clone(), accepted.clone());
        senders.push(tokio::spawn(async move {
            let who = ["ana", "bia", "caio"][i % 3];
            for _ in 0..500 {
                let r = client.post(&url).json(&serde_json::json!({ "participant_id": who })).send().await.unwrap();
                assert_eq!(r.status(), 202, "the API keeps accepting while the consumer is down");
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }

    for round in 1..=2 {
        // Kill it once it is visibly counting, then start a new one.
        let before = store.load_counters().await.unwrap().total();
        // A consumer killed mid-transaction leaves it open on the store until the store aborts
        // it (60 s, transactionLifetimeLimitSeconds); until then the next one's writes conflict
        // and are retried. So the wait is longer than that limit.
        eventually(&format!("round {round}: the consumer to count"), Duration::from_secs(120), || async {
            (store.load_counters().await.ok()?.total() > before + 200).then_some(())
        })
        .await;
        consumer.kill().expect("SIGKILL");
        consumer.wait().unwrap();
        consumer = start_consumer_process(&settings);
    }

    for s in senders {
        s.await.unwrap();
    }
    let accepted = accepted.load(Ordering::SeqCst);
    assert_eq!(accepted, 4001);
    wait_for_counted(&store, accepted).await;
    // And it stays there once the queue is empty (no late redelivery adds to it).
    eventually("the queue to drain", Duration::from_secs(30), || async {
        (publisher.ready_in(&publisher.topology.queue).await == 0).then_some(())
    })
    .await;
    consumer.kill().unwrap();
    consumer.wait().unwrap();
    assert_eq!(store.load_counters().await.unwrap().total(), accepted);
}

#[tokio::test]
async fn a_consumer_stopped_with_sigterm_exits_cleanly_and_promptly() {
    let settings = test_settings();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_consumer"))
        .env("APP_BROKER__URL", settings.broker.url.expose_secret())
        .env("APP_BROKER__QUEUE", &settings.broker.queue)
        .env("APP_STORE__URL", settings.store.url.expose_secret())
        .env("APP_STORE__DATABASE", &settings.store.database)
        .env("APP_CONSUMER__PORT", port.to_string())
        .env("APP_CAPTCHA__HMAC_KEY", settings.captcha.hmac_key())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the consumer to be ready", Duration::from_secs(30), || async {
        let r = reqwest::get(format!("http://127.0.0.1:{port}/health/ready")).await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = eventually("the consumer to exit", Duration::from_secs(15), || {
        let status = child.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(status.success(), "exit status {status:?}");
}
