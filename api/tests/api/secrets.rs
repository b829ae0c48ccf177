//! A replica with a placeholder or missing secret refuses to start, before it connects to
//! anything: no half-started replica with a broker task left behind, no challenge signed with a
//! key anybody can read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use api::startup::Application;
use tokio::net::TcpListener;

use crate::helpers::test_settings;

/// A port that counts who connects to it.
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, connections)
}

#[tokio::test]
async fn the_api_refuses_a_placeholder_or_missing_captcha_key_before_connecting_to_anything() {
    voting::telemetry::init_test_subscriber();
    for (key, says) in [("change-me", "captcha.hmac_key is the placeholder"), ("", "captcha.hmac_key is not set")] {
        let (port, connections) = counting_listener().await;
        let mut settings = test_settings();
        settings.broker.url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f").into();
        settings.store.url =
            format!("mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=500").into();
        settings.captcha.hmac_key = key.to_string().into();
        let error = match Application::build(settings).await {
            Ok(_) => panic!("the api started with the key '{key}'"),
            Err(e) => e.to_string(),
        };
        assert!(error.contains(says) && error.contains("APP_CAPTCHA__HMAC_KEY"), "{error}");
        // Whatever had been started would be trying by now (the broker link at once, the store's
        // monitor within its first heartbeat).
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing connected with the key '{key}'");
    }
}

#[tokio::test]
async fn the_api_refuses_a_placeholder_admin_token() {
    let mut settings = test_settings();
    settings.admin.token = "change-me".to_string().into();
    let error = Application::build(settings).await.err().expect("refused").to_string();
    assert!(error.contains("admin.token is the placeholder"), "{error}");
}
