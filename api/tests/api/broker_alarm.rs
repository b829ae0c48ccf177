//! RabbitMQ's flow control: a resource alarm blocks publishing connections. These tests raise
//! a real memory alarm on the shared test broker, which would block every other test's
//! publishes meanwhile, so they are `#[ignore]`d and `./run.sh test` runs them alone afterwards
//! (`--run-ignored only --test-threads 1`), with `PAREDAO_TEST_RABBITMQCTL` pointing at the
//! stack's rabbitmqctl.

use std::process::Command;
use std::time::{Duration, Instant};

use voting::testing::eventually;

use crate::helpers::{OPEN, spawn_with, test_settings};

/// Raises a memory alarm on the test broker; clears it when dropped, whatever the test did.
struct MemoryAlarm {
    rabbitmqctl: String,
}

impl MemoryAlarm {
    fn raise() -> Self {
        let rabbitmqctl = std::env::var("PAREDAO_TEST_RABBITMQCTL")
            .expect("PAREDAO_TEST_RABBITMQCTL: the test stack's rabbitmqctl (./run.sh test sets it)");
        let alarm = Self { rabbitmqctl };
        alarm.eval("rabbit_alarm:set_alarm({{resource_limit, memory, node()}, []}).");
        alarm
    }

    fn eval(&self, expression: &str) {
        let out = Command::new(&self.rabbitmqctl).args(["eval", expression]).output().expect("rabbitmqctl runs");
        assert!(out.status.success(), "rabbitmqctl eval failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        self.eval("rabbit_alarm:clear_alarm({resource_limit, memory, node()}).");
    }
}

#[tokio::test]
#[ignore = "raises an alarm on the shared broker: ./run.sh test runs it alone"]
async fn while_the_broker_is_blocked_votes_are_refused_at_once_and_readiness_is_red() {
    let mut settings = test_settings();
    settings.batcher.confirm_timeout_ms = 1_500;
    let app = spawn_with(settings, true).await;
    app.wait_until_ready().await;
    assert_eq!(app.vote(OPEN, "ana").await.status(), 202);

    let alarm = MemoryAlarm::raise();
    // RabbitMQ blocks a connection (and says `connection.blocked`) when it next publishes: the
    // first vote after the alarm waits for its confirm, within the bounded confirm timeout.
    let started = Instant::now();
    let first = app.vote(OPEN, "bia").await;
    assert_eq!(first.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(3), "the first vote waited {:?}", started.elapsed());
    let ready = eventually("readiness to turn red", Duration::from_secs(10), || async {
        let (status, body) = app.get_json("/health/ready").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(ready["broker_blocked"], true, "{ready}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "paredao_broker_blocked 1"), "the gauge says so");

    // Refused at once, not after a publish that waits for the alarm, and before the captcha is
    // spent: the same solved challenge works once the alarm is over.
    let solution = app.solved_challenge(OPEN).await;
    let started = Instant::now();
    let refused = app.vote_with(OPEN, "bia", Some(&solution)).await;
    assert!(started.elapsed() < Duration::from_secs(1), "refused in {:?}", started.elapsed());
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "vote_not_durable", "{body}");
    assert!(body["message"].as_str().unwrap().contains("alarm"), "{body}");

    drop(alarm);
    app.wait_until_ready().await;
    assert_eq!(app.vote_with(OPEN, "bia", Some(&solution)).await.status(), 202);
    // The first vote's message may still reach the queue once the broker reads again; its
    // challenge was released with its 503, so at most one more vote can be counted.
    let stats = app.wait_for_total_between(OPEN, 2, 3).await;
    let bia = stats["participants"].as_array().unwrap().iter().find(|p| p["id"] == "bia").unwrap()["votes"].as_u64();
    assert!(matches!(bia, Some(1 | 2)), "{stats}");
}
