//! Test support shared by the API and consumer test suites (feature `testing`).
//!
//! Tests run against the real RabbitMQ and MongoDB-protocol server started by `./run.sh test`,
//! which exports their URLs. Each test gets its own queue and database names, so tests run in
//! parallel without seeing each other's votes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::configuration::{Settings, get_configuration};
use crate::paredao::{Paredao, ParedaoId, ParedaoSpec, Participant, ParticipantId};

pub const OPEN: &str = "open-paredao";
pub const CLOSED: &str = "closed-paredao";
pub const SCHEDULED: &str = "scheduled-paredao";
pub const PARTICIPANTS: [&str; 3] = ["ana", "bia", "caio"];

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with ./run.sh test, which starts RabbitMQ and the MongoDB-protocol server"
        )
    })
}

pub fn amqp_url() -> String {
    required_env("PAREDAO_TEST_AMQP_URL")
}

pub fn mongo_url() -> String {
    required_env("PAREDAO_TEST_MONGO_URL")
}

fn paredao(id: &str, opens_in_hours: i64, closes_in_hours: i64) -> Paredao {
    let now = Utc::now();
    Paredao::new(ParedaoSpec {
        id: ParedaoId::parse(id).unwrap(),
        title: format!("Paredão {id}"),
        participants: PARTICIPANTS
            .iter()
            .map(|p| Participant { id: ParticipantId::parse(*p).unwrap(), name: p.to_uppercase(), photo_url: None })
            .collect(),
        opens_at: now + ChronoDuration::hours(opens_in_hours),
        closes_at: now + ChronoDuration::hours(closes_in_hours),
        results_visibility: Default::default(),
    })
    .unwrap()
}

/// The shipped configuration, pointed at the test services, with a queue and a database of its
/// own, ports chosen by the OS, fast refreshes, and three paredões: open, closed, scheduled.
pub fn test_settings() -> Settings {
    let mut s = get_configuration().expect("the configuration parses");
    let unique = uuid::Uuid::new_v4().simple().to_string();
    s.application.port = 0;
    s.consumer.port = 0;
    s.application.results_refresh_ms = 100;
    s.application.paredoes_refresh_ms = 200;
    s.broker.url = amqp_url().into();
    s.broker.queue = format!("votes-test-{unique}");
    s.store.url = mongo_url().into();
    s.store.database = format!("paredao_test_{unique}");
    s.captcha.hmac_key = format!("test-{unique}").parse().expect("not the placeholder");
    s.admin.token = "test-admin-token".parse().expect("not the placeholder");
    s.uploads.dir = std::env::temp_dir().join(format!("paredao-uploads-{unique}"));
    // Trivial work: tests solve many challenges; the check costs the same at any difficulty.
    s.captcha.difficulty.base = 200;
    s.captcha.difficulty.max = 2_000;
    // Tests send hundreds of votes from one address; the tests of the limit turn it on.
    s.rate_limit.enabled = false;
    s.seed = vec![paredao(OPEN, -1, 24), paredao(CLOSED, -3, -1), paredao(SCHEDULED, 2, 5)];
    s
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`. The way to
/// wait for something asynchronous (a vote to be counted) without guessing a sleep.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Replaces the port of `scheme://[user@]host:port/...` with `port`.
pub fn with_port(url: &str, port: u16) -> String {
    let after_scheme = url.find("://").map(|i| i + 3).expect("a URL with a scheme");
    let authority_end = url[after_scheme..].find(['/', '?']).map(|i| i + after_scheme).unwrap_or(url.len());
    let host_start = url[after_scheme..authority_end].rfind('@').map(|i| i + after_scheme + 1).unwrap_or(after_scheme);
    let host = &url[host_start..authority_end];
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    format!("{}{}:{}{}", &url[..host_start], host, port, &url[authority_end..])
}

/// The port in `scheme://[user@]host:port/...`.
pub fn port_of(url: &str) -> u16 {
    let after_scheme = url.find("://").map(|i| i + 3).expect("a URL with a scheme");
    let authority_end = url[after_scheme..].find(['/', '?']).map(|i| i + after_scheme).unwrap_or(url.len());
    let authority = &url[after_scheme..authority_end];
    authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("a URL with a port")
}

/// A TCP proxy in front of a real service, to make it "go away" and "come back" for one test
/// without touching the service other tests share. `cut` drops every open connection and
/// refuses new ones; `restore` lets them through again. `freeze` keeps the connections open but
/// holds every byte (a service that is alive and stuck: a broker that does not confirm);
/// `thaw` lets the held bytes through.
pub struct TcpProxy {
    pub port: u16,
    state: Arc<Mutex<(bool, CancellationToken)>>,
    frozen: tokio::sync::watch::Sender<bool>,
    stop: CancellationToken,
}

/// Copies `from` to `to`, holding each chunk while `frozen` is true.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl TcpProxy {
    pub async fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target: SocketAddr = ([127, 0, 0, 1], target_port).into();
        let state = Arc::new(Mutex::new((true, CancellationToken::new())));
        let (frozen, _) = tokio::sync::watch::channel(false);
        let stop = CancellationToken::new();
        let (st, stp, fr) = (state.clone(), stop.clone(), frozen.clone());
        tokio::spawn(async move {
            loop {
                let (inbound, _) = tokio::select! {
                    _ = stp.cancelled() => return,
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                };
                let (open, generation) = st.lock().unwrap().clone();
                if !open {
                    drop(inbound);
                    continue;
                }
                let frozen = fr.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else { return };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::select! {
                        _ = generation.cancelled() => {}
                        _ = pump(in_read, out_write, frozen.clone()) => {}
                        _ = pump(out_read, in_write, frozen) => {}
                    }
                });
            }
        });
        Self { port, state, frozen, stop }
    }

    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    pub fn cut(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = false;
        s.1.cancel();
    }

    pub fn restore(&self) {
        *self.state.lock().unwrap() = (true, CancellationToken::new());
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.state.lock().unwrap().1.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_found_and_replaced_in_both_url_shapes() {
        let amqp = "amqp://guest:guest@127.0.0.1:25001/%2f";
        let mongo = "mongodb://127.0.0.1:25002/?retryWrites=false&directConnection=true";
        assert_eq!(port_of(amqp), 25001);
        assert_eq!(port_of(mongo), 25002);
        assert_eq!(with_port(amqp, 9), "amqp://guest:guest@127.0.0.1:9/%2f");
        assert_eq!(with_port(mongo, 9), "mongodb://127.0.0.1:9/?retryWrites=false&directConnection=true");
    }
}
