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
async fn the_api_refuses_a_missing_captcha_key_before_connecting_to_anything() {
    voting::telemetry::init_test_subscriber();
    let (port, connections) = counting_listener().await;
    let mut settings = test_settings();
    settings.broker.url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f").into();
    settings.store.url =
        format!("mongodb://127.0.0.1:{port}/?directConnection=true&serverSelectionTimeoutMS=500").into();
    settings.captcha.hmac_key = "".parse().expect("empty is not the placeholder");
    let error = match Application::build(settings).await {
        Ok(_) => panic!("the api started without a key"),
        Err(e) => e.to_string(),
    };
    assert_eq!(error, "captcha.hmac_key is not set: set APP_CAPTCHA__HMAC_KEY");
    // Whatever had been started would be trying by now (the broker link at once, the store's
    // monitor within its first heartbeat).
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing connected without a key");
}

/// The placeholder cannot even be read into the settings: the binary exits at once, with one
/// line naming the setting, before it connects to anything.
#[tokio::test]
async fn the_api_binary_refuses_a_placeholder_key_or_token_in_one_line_before_connecting_to_anything() {
    for (variable, says) in [
        ("APP_CAPTCHA__HMAC_KEY", "captcha.hmac_key is the placeholder 'change-me': set APP_CAPTCHA__HMAC_KEY"),
        ("APP_ADMIN__TOKEN", "admin.token is the placeholder 'change-me': set APP_ADMIN__TOKEN"),
    ] {
        let (port, connections) = counting_listener().await;
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_api"))
            .env("APP_ENVIRONMENT", "local")
            .env("APP_APPLICATION__PORT", "0")
            .env("APP_BROKER__URL", format!("amqp://guest:guest@127.0.0.1:{port}/%2f"))
            .env("APP_STORE__URL", format!("mongodb://127.0.0.1:{port}/?directConnection=true"))
            .env("APP_CAPTCHA__HMAC_KEY", "a-real-key")
            .env(variable, "change-me")
            // What a deployment prints, without the backtrace a test run asks for.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(20), output).await.expect("exits").expect("runs");
        assert!(!output.status.success(), "{variable}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim(), format!("Error: {says}"), "{variable}");
        assert_eq!(connections.load(Ordering::SeqCst), 0, "nothing connected with {variable}=change-me");
    }
}
