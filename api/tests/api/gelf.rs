//! Logs reach Graylog: the real `api` binary, configured like a deployment, sends GELF over TCP to
//! a receiver in this test, with syslog levels, the event's time and the request's fields.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use voting::testing::{eventually, test_settings};

/// A GELF TCP input: null-byte framed JSON messages, from any number of connections.
async fn gelf_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 65536];
                while let Ok(n) = socket.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buffer.iter().position(|&b| b == 0) {
                        let frame: Vec<u8> = buffer.drain(..=end).collect();
                        let message = serde_json::from_slice(&frame[..frame.len() - 1]).unwrap_or_else(|e| {
                            panic!("a GELF frame is JSON ({e}): {}", String::from_utf8_lossy(&frame))
                        });
                        sink.lock().unwrap().push(message);
                    }
                }
            });
        }
    });
    (address, received)
}

fn find(received: &Arc<Mutex<Vec<Value>>>, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    received.lock().unwrap().iter().find(|m| pred(m)).cloned()
}

struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[tokio::test]
async fn the_api_logs_to_graylog_as_gelf_with_syslog_levels_and_request_fields() {
    let (address, received) = gelf_receiver().await;
    let settings = test_settings();
    let started = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_api"))
        .env("APP_ENVIRONMENT", "local")
        .env("APP_APPLICATION__PORT", "0")
        .env("APP_BROKER__URL", settings.broker.url())
        .env("APP_BROKER__QUEUE", &settings.broker.queue)
        .env("APP_STORE__URL", settings.store.url())
        .env("APP_STORE__DATABASE", &settings.store.database)
        .env("APP_CAPTCHA__HMAC_KEY", settings.captcha.hmac_key())
        .env("APP_CAPTCHA__DIFFICULTY__BASE", "200")
        .env("APP_ADMIN__TOKEN", "gelf-test-token")
        .env("APP_TELEMETRY__GELF_ADDRESS", &address)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the api binary starts");
    let mut api = Running(child);

    // The port it bound is in its own log line.
    let listening = eventually("the 'api listening' message", Duration::from_secs(30), || async {
        find(&received, |m| m["short_message"] == "api listening")
    })
    .await;
    let base = format!("http://127.0.0.1:{}", listening["_port"]);
    let client = reqwest::Client::new();
    eventually("the api to be ready", Duration::from_secs(30), || async {
        client.get(format!("{base}/health/ready")).send().await.ok()?.status().is_success().then_some(())
    })
    .await;

    // An accepted vote (info), a refused one (warn), and one failed on purpose (error), each with
    // a request id as nginx would send it.
    let challenge: api::anti_bot::altcha::ChallengeView =
        client.get(format!("{base}/api/paredoes/paredao-1/challenge")).send().await.unwrap().json().await.unwrap();
    let vote = |request_id: &'static str, captcha: Option<String>| {
        client
            .post(format!("{base}/api/paredoes/paredao-1/votes"))
            .header("x-request-id", request_id)
            .json(&serde_json::json!({ "participant_id": "ana", "captcha": captcha }))
            .send()
    };
    assert_eq!(vote("req-accepted", Some(api::anti_bot::altcha::solve(&challenge))).await.unwrap().status(), 202);
    assert_eq!(vote("req-refused", None).await.unwrap().status(), 400);
    let put = client
        .put(format!("{base}/api/admin/fault"))
        .bearer_auth("gelf-test-token")
        .json(&serde_json::json!({ "vote_error_ratio": 1.0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(vote("req-fault", None).await.unwrap().status(), 500);

    let access = eventually("the accepted vote's access line", Duration::from_secs(10), || async {
        find(&received, |m| m["_request_id"] == "req-accepted" && m["_target"] == "access")
    })
    .await;
    assert_eq!(access["level"], 6, "info is 6: {access}");
    assert_eq!(access["short_message"], "POST /api/paredoes/paredao-1/votes 202");
    assert_eq!(access["_status"], 202);
    assert_eq!(access["_paredao"], "paredao-1");
    assert_eq!(access["_participant"], "ana");
    assert!(access["_elapsed_ms"].as_f64().unwrap() >= 0.0);

    let warning = eventually("the refused vote's warning", Duration::from_secs(10), || async {
        find(&received, |m| m["_request_id"] == "req-refused" && m["level"] == 4)
    })
    .await;
    assert_eq!(warning["_error_code"], "captcha_missing", "{warning}");
    assert_eq!(warning["_paredao"], "paredao-1");

    let error = eventually("the injected fault's error", Duration::from_secs(10), || async {
        find(&received, |m| m["_request_id"] == "req-fault" && m["level"] == 3)
    })
    .await;
    assert_eq!(error["_error_code"], "injected_fault", "{error}");
    assert_eq!(error["_status"], 500);

    // Every message is valid GELF 1.1 with the event's own time.
    let finished = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    for m in received.lock().unwrap().iter() {
        assert_eq!(m["version"], "1.1", "{m}");
        assert!(m["host"].as_str().is_some_and(|h| !h.is_empty()), "{m}");
        assert!(m["short_message"].as_str().is_some_and(|s| !s.is_empty()), "{m}");
        let t = m["timestamp"].as_f64().expect("a numeric timestamp");
        assert!(t >= started - 1.0 && t <= finished + 1.0, "timestamp {t} outside the test's run: {m}");
        assert!([3, 4, 6, 7].contains(&m["level"].as_u64().unwrap()), "{m}");
        assert_eq!(m["_service"], "paredao-api");
        assert!(
            m.as_object().unwrap().keys().all(|k| k != "_id"
                && (k.starts_with('_')
                    || ["version", "host", "short_message", "full_message", "timestamp", "level"]
                        .contains(&k.as_str()))),
            "{m}"
        );
    }
    let _ = api.0.kill();
    let _ = api.0.wait();
}
