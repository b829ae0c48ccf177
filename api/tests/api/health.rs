use crate::helpers::{spawn_app, test_settings};

#[tokio::test]
async fn liveness_answers_while_the_process_runs() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/health/live").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "alive");
}

#[tokio::test]
async fn readiness_reports_broker_store_and_paredoes() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/health/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["broker_connected"], true);
    assert_eq!(body["store_reachable"], true);
    assert_eq!(body["paredoes_loaded"], true);
}

#[tokio::test]
async fn readiness_fails_while_the_broker_is_unreachable() {
    let mut settings = test_settings();
    // Nothing listens on port 1.
    settings.broker.url = voting::testing::with_port(&voting::testing::amqp_url(), 1).into();
    let app = api::startup::Application::build(settings).await.unwrap();
    let port = app.port();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let r = reqwest::get(format!("http://127.0.0.1:{port}/health/ready")).await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["broker_connected"], false);
}
