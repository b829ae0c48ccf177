use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use tokio_util::sync::CancellationToken;
use voting::broker::Topology;
use voting::configuration::Settings;
use voting::paredao::{ParedaoId, ParticipantId};
use voting::store::Store;
use voting::testing::{OPEN, eventually};
use voting::vote::{Vote, VoteBatch};

/// A publisher straight to the test queue, as the API would, for messages the API never sends.
pub struct Publisher {
    _connection: Connection,
    pub channel: Channel,
    pub topology: Topology,
}

impl Publisher {
    pub async fn connect(settings: &Settings) -> Self {
        let connection = voting::broker::connect(&settings.broker, "test-publisher").await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let topology = Topology::new(&settings.broker);
        topology.declare(&channel).await.unwrap();
        Self { _connection: connection, channel, topology }
    }

    pub async fn publish(&self, payload: &[u8]) {
        let confirm = self
            .channel
            .basic_publish(
                "".into(),
                self.topology.queue.as_str().into(),
                BasicPublishOptions::default(),
                payload,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    /// Messages ready in a queue (not counting those delivered and unacked).
    pub async fn ready_in(&self, queue: &str) -> u32 {
        let q = self
            .channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        q.message_count()
    }
}

/// The test's store, holding the configuration's paredões as the API would have written them:
/// the consumer counts only votes for paredões the store holds.
pub async fn seeded_store(settings: &Settings) -> Store {
    let store = Store::connect(&settings.store).await.unwrap();
    for p in &settings.seed {
        store.upsert_paredao(p).await.unwrap();
    }
    store
}

pub fn batch(participant: &str, n: usize) -> VoteBatch {
    let votes = (0..n)
        .map(|_| Vote::new(ParedaoId::parse(OPEN).unwrap(), ParticipantId::parse(participant).unwrap(), Utc::now()))
        .collect();
    VoteBatch::seal(votes, Utc::now())
}

/// A consumer running in this process until the returned token is cancelled.
pub async fn spawn_consumer(settings: &Settings) -> CancellationToken {
    voting::telemetry::init_test_subscriber();
    let consumer = consumer::startup::Consumer::build(settings.clone()).await.unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(consumer.run_until_stopped(async move { s.cancelled().await }));
    stop
}

/// Waits until the store counts exactly `expected` votes (failing if it ever counts more).
pub async fn wait_for_counted(store: &Store, expected: u64) {
    // Longer than the store's 60 s limit on a transaction left open by a killed consumer.
    eventually(&format!("{expected} votes counted"), Duration::from_secs(120), || async {
        let counted = store.load_counters().await.ok()?.total();
        assert!(counted <= expected, "counted {counted} votes, more than the {expected} sent");
        (counted == expected).then_some(())
    })
    .await
}

/// A batch of one vote per challenge key, each spending that challenge, as the API sends them.
/// Every copy of a challenge carries the same expiry (the API reads it from the challenge): here
/// five minutes after the test process first asked.
pub fn batch_spending(participant: &str, challenges: &[&str]) -> VoteBatch {
    static EXPIRES: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let expires = *EXPIRES.get_or_init(|| Utc::now().timestamp() + 300);
    let votes = challenges
        .iter()
        .map(|k| {
            Vote::new(ParedaoId::parse(OPEN).unwrap(), ParticipantId::parse(participant).unwrap(), Utc::now())
                .spending(k.parse().expect("a test challenge key is 32 hex digits"), expires)
        })
        .collect();
    VoteBatch::seal(votes, Utc::now())
}

/// The MongoDB-protocol server of the test stack (run.sh exports its path).
pub fn secantusd() -> String {
    std::env::var("PAREDAO_TEST_SECANTUSD")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv/bin/secantusd-py").to_string())
}

/// The store's process, killed when the test ends, however it ends (a failed assertion too).
pub struct StoreProcess(Child);

impl StoreProcess {
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for StoreProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A store of the test's own, on `port`, keeping its data in `dir` across restarts, started with
/// `extra` arguments besides those run.sh gives the stack's.
pub fn start_store(port: u16, dir: &std::path::Path, extra: &[&str]) -> StoreProcess {
    StoreProcess(
        Command::new(secantusd())
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--sync-on-commit"])
            .args(extra)
            .arg("--storage-path")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the MongoDB-protocol server starts (./preflight.sh installs it)"),
    )
}

pub async fn wait_for_port(port: u16) {
    eventually("the store to accept connections", Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await;
}
