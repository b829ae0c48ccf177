//! An API replica killed with SIGKILL while votes stream in: every vote it answered 202 is
//! counted (the 202 came after the broker's confirm), and nothing is counted that was not sent.
//! The votes in flight at the kill got no answer; each of them may or may not be counted, which
//! is what the client is told to assume of any unanswered vote.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret;
use voting::configuration::Settings;
use voting::testing::eventually;

use crate::helpers::test_settings;

/// The seeded paredão of `configuration/local.yaml`, which the API process loads.
const LOCAL_PAREDAO: &str = "paredao-1";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_api_process(settings: &Settings, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_api"))
        .env("APP_ENVIRONMENT", "local")
        .env("APP_APPLICATION__PORT", port.to_string())
        .env("APP_BROKER__URL", settings.broker.url.expose_secret())
        .env("APP_BROKER__QUEUE", &settings.broker.queue)
        .env("APP_STORE__URL", settings.store.url.expose_secret())
        .env("APP_STORE__DATABASE", &settings.store.database)
        .env("APP_CAPTCHA__HMAC_KEY", settings.captcha.hmac_key())
        // This test is about durability; the captcha has tests of its own.
        .env("APP_CAPTCHA__MODE", "off")
        .env("APP_RATE_LIMIT__ENABLED", "false")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the api binary starts")
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    eventually("the api process to be ready", Duration::from_secs(30), || async {
        let r = client.get(format!("{base}/health/ready")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_api_replica_killed_mid_stream_loses_no_vote_it_answered_202() {
    voting::telemetry::init_test_subscriber();
    let settings = test_settings();
    let consumer = consumer::startup::Consumer::build(settings.clone()).await.unwrap();
    tokio::spawn(consumer.run_until_stopped(std::future::pending()));
    let store = voting::store::Store::connect(&settings.store).await.unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    let (accepted, unanswered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    for round in 0..2 {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut api = start_api_process(&settings, port);
        wait_ready(&client, &base).await;
        // Eight clients voting as fast as they can; the kill lands among their requests.
        let stop = tokio_util::sync::CancellationToken::new();
        let voters: Vec<_> = (0..8)
            .map(|_| {
                let (client, url, stop) =
                    (client.clone(), format!("{base}/api/paredoes/{LOCAL_PAREDAO}/votes"), stop.clone());
                let (accepted, unanswered) = (accepted.clone(), unanswered.clone());
                tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        match client.post(&url).json(&serde_json::json!({ "participant_id": "ana" })).send().await {
                            Ok(r) if r.status() == 202 => accepted.fetch_add(1, Ordering::Relaxed),
                            Ok(r) => panic!("a vote answered {}", r.status()),
                            Err(_) => {
                                // No answer: the replica is gone. The vote may or may not count.
                                unanswered.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                        };
                    }
                })
            })
            .collect();
        let target = accepted.load(Ordering::Relaxed) + 300;
        eventually("votes to be accepted", Duration::from_secs(30), || async {
            (accepted.load(Ordering::Relaxed) >= target).then_some(())
        })
        .await;
        if round == 0 {
            api.kill().unwrap();
        } else {
            stop.cancel();
        }
        for v in voters {
            v.await.unwrap();
        }
        let _ = api.kill();
        let _ = api.wait();
    }

    let (accepted, unanswered) = (accepted.load(Ordering::Relaxed), unanswered.load(Ordering::Relaxed));
    assert!(unanswered > 0, "the kill landed while votes were in flight");
    let counted = eventually("every accepted vote counted", Duration::from_secs(60), || async {
        let total = store.load_counters().await.ok()?.total();
        assert!(total <= accepted + unanswered, "counted {total}, more than the {} votes sent", accepted + unanswered);
        (total >= accepted).then_some(total)
    })
    .await;
    eprintln!("accepted {accepted}, unanswered {unanswered}, counted {counted}");
}
