use std::time::Duration;

use tokio_util::sync::CancellationToken;
use voting::testing::{eventually, test_settings};

#[tokio::test]
async fn the_consumer_answers_liveness_readiness_and_metrics() {
    voting::telemetry::init_test_subscriber();
    let mut settings = test_settings();
    settings.consumer.port = 0;
    let consumer = consumer::startup::Consumer::build(settings).await.expect("consumer builds");
    let base = format!("http://127.0.0.1:{}", consumer.port());
    let stop = CancellationToken::new();
    let running = {
        let stop = stop.clone();
        tokio::spawn(consumer.run_until_stopped(async move { stop.cancelled().await }))
    };
    let ready = eventually("the consumer to be ready", Duration::from_secs(30), || async {
        let r = reqwest::get(format!("{base}/health/ready")).await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json::<serde_json::Value>().await.ok()
    })
    .await;
    assert_eq!(ready, serde_json::json!({ "ready": true, "broker_connected": true, "store_reachable": true }));

    let live: serde_json::Value = reqwest::get(format!("{base}/health/live")).await.unwrap().json().await.unwrap();
    assert_eq!(live, serde_json::json!({ "status": "alive" }));

    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(metrics.headers()["content-type"], "text/plain; version=0.0.4");
    let body = metrics.text().await.unwrap();
    assert!(body.contains("paredao_consumer_broker_connected 1"), "{body}");
    assert!(body.contains("paredao_consumer_store_reachable 1"), "{body}");

    stop.cancel();
    running.await.unwrap().unwrap();
}
