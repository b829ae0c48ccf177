use std::time::Duration;

use chrono::Utc;
use lapin::options::BasicGetOptions;
use voting::paredao::{ParedaoId, ParticipantId};
use voting::store::Store;
use voting::testing::{eventually, test_settings};
use voting::vote::VoteBatch;

use crate::helpers::{
    Publisher, batch, batch_spending, seeded_store, spawn_consumer, start_store, wait_for_counted, wait_for_port,
};

#[tokio::test]
async fn the_same_batch_delivered_twice_is_counted_once() {
    let settings = test_settings();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;

    // A redelivery looks exactly like this: the same message, same batch id, twice.
    let twice = batch("ana", 7);
    publisher.publish(&twice.encode()).await;
    publisher.publish(&twice.encode()).await;
    let _stop = spawn_consumer(&settings).await;
    wait_for_counted(&store, 7).await;

    // A later batch, behind both copies in the queue: once it is counted, both copies have
    // been through the consumer, and the duplicate added nothing.
    let marker = batch("bia", 3);
    publisher.publish(&marker.encode()).await;
    wait_for_counted(&store, 10).await;
    eventually("the queue to drain", Duration::from_secs(10), || async {
        (publisher.ready_in(&publisher.topology.queue).await == 0).then_some(())
    })
    .await;
    assert_eq!(store.load_counters().await.unwrap().total(), 10);
}

#[tokio::test]
async fn poison_of_every_kind_is_dead_lettered_with_its_reason_and_counting_goes_on() {
    let settings = test_settings();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;
    let _stop = spawn_consumer(&settings).await;

    let with = |f: &dyn Fn(&mut VoteBatch)| {
        let mut b = batch("ana", 2);
        f(&mut b);
        b.encode()
    };
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", b"this is not a vote batch".to_vec()),
        ("malformed", br#"{"id":"not-a-uuid","votes":[]}"#.to_vec()),
        ("empty_batch", VoteBatch::seal(vec![], Utc::now()).encode()),
        // Cast in the year 2264: it used to panic the hour arithmetic, and the redelivered
        // message crash-looped the consumer.
        ("cast_time_out_of_range", with(&|b| b.votes[1].cast_at_ms = 9_300_000_000_000)),
        // Well-formed, but nothing our API could have sent for the paredões the store holds.
        ("unknown_paredao", with(&|b| b.votes[1].paredao = ParedaoId::parse("no-such-paredao").unwrap())),
        ("unknown_participant", with(&|b| b.votes[0].participant = ParticipantId::parse("nobody").unwrap())),
        ("cast_outside_window", with(&|b| b.votes[1].cast_at_ms -= 3 * 3_600_000)),
        ("malformed_challenge", with(&|b| b.votes[0].challenge = Some("x".repeat(300)))),
    ];
    for (_, body) in &poison {
        publisher.publish(body).await;
    }
    publisher.publish(&batch("caio", 5).encode()).await;
    wait_for_counted(&store, 5).await;

    let dead = &publisher.topology.dead_letter_queue;
    eventually("every poison message in the dead-letter queue", Duration::from_secs(10), || async {
        (publisher.ready_in(dead).await == poison.len() as u32).then_some(())
    })
    .await;
    assert_eq!(store.load_counters().await.unwrap().total(), 5, "nothing of a poison batch is counted");
    for (reason, body) in &poison {
        let got =
            publisher.channel.basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
        assert_eq!(&got.delivery.data, body, "dead letters keep their order and their bytes");
        let headers = got.delivery.properties.headers().clone().unwrap_or_default();
        let said = headers.inner().get("x-paredao-reason").and_then(|v| v.as_long_string()).map(|s| s.to_string());
        assert_eq!(said.as_deref(), Some(*reason), "the dead letter says why");
    }
}

#[tokio::test]
async fn two_consumers_count_a_replay_once_however_old_the_backlog() {
    let settings = test_settings();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;
    // A backlog: votes cast 20 minutes ago (the paredão opened an hour ago), longer ago than a
    // challenge lives, each challenge sent twice (to both API replicas) and queued while no
    // consumer ran. Their challenges expired 15 minutes ago; their records are kept for as long as
    // the queue has not passed them, however old.
    let cast = Utc::now() - chrono::TimeDelta::minutes(20);
    let keys: Vec<String> = (0..40).map(|i| format!("{:032x}", 0xabc000 + i)).collect();
    for k in &keys {
        for participant in ["ana", "bia"] {
            let mut b = batch_spending(participant, &[k]);
            b.votes[0].cast_at_ms = cast.timestamp_millis();
            b.votes[0].challenge_expires = Some(cast.timestamp() + 300);
            publisher.publish(&b.encode()).await;
        }
    }
    let _one = spawn_consumer(&settings).await;
    let _two = spawn_consumer(&settings).await;
    publisher.publish(&batch("caio", 3).encode()).await;
    wait_for_counted(&store, 43).await;
    eventually("the queue drained", Duration::from_secs(10), || async {
        (publisher.ready_in(&publisher.topology.queue).await == 0).then_some(())
    })
    .await;
    assert_eq!(store.load_counters().await.unwrap().total(), 43, "each challenge counted once");
}

#[tokio::test]
async fn the_consumer_reconnects_when_the_broker_and_the_store_come_back() {
    use voting::testing::{TcpProxy, amqp_url, mongo_url, port_of, with_port};
    let settings = test_settings();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;
    let broker_proxy = TcpProxy::start(port_of(&amqp_url())).await;
    let store_proxy = TcpProxy::start(port_of(&mongo_url())).await;
    let mut through_proxies = settings.clone();
    through_proxies.broker.url = with_port(&amqp_url(), broker_proxy.port).into();
    through_proxies.store.url = with_port(&mongo_url(), store_proxy.port).into();
    let _stop = spawn_consumer(&through_proxies).await;

    publisher.publish(&batch("ana", 2).encode()).await;
    wait_for_counted(&store, 2).await;

    // The broker goes away and comes back: the consumer reconnects on its own.
    broker_proxy.cut();
    publisher.publish(&batch("ana", 3).encode()).await;
    broker_proxy.restore();
    wait_for_counted(&store, 5).await;

    // The store goes away: the votes wait (unacked) and are written once it is back.
    store_proxy.cut();
    publisher.publish(&batch("bia", 4).encode()).await;
    eventually("the consumer to hold the message", Duration::from_secs(10), || async {
        (publisher.ready_in(&publisher.topology.queue).await == 0).then_some(())
    })
    .await;
    // Give it a couple of write attempts against the dead store; nothing may be counted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.load_counters().await.unwrap().total(), 5);
    store_proxy.restore();
    wait_for_counted(&store, 9).await;
}

#[tokio::test]
async fn a_replayed_challenge_is_not_counted_again_even_by_a_restarted_consumer() {
    let settings = test_settings();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;
    let (spent, fresh) = ("d".repeat(32), "e".repeat(32));

    let first = spawn_consumer(&settings).await;
    publisher.publish(&batch_spending("ana", &[&spent]).encode()).await;
    wait_for_counted(&store, 1).await;
    first.cancel();

    // A new consumer knows only what the store tells it. The replay comes before a fresh vote
    // in the queue: once the fresh one is counted, the replay has been through.
    let _second = spawn_consumer(&settings).await;
    publisher.publish(&batch_spending("bia", &[&spent]).encode()).await;
    publisher.publish(&batch_spending("caio", &[&fresh]).encode()).await;
    wait_for_counted(&store, 2).await;
    let counts = store.load_counters().await.unwrap().by_paredao();
    let open = &counts[&voting::paredao::ParedaoId::parse(voting::testing::OPEN).unwrap()];
    assert!(
        !open.by_participant.contains_key(&voting::paredao::ParticipantId::parse("bia").unwrap()),
        "the replay was discarded"
    );
}

/// Sets (or with `mode: "off"` clears) a `failCommand` failpoint for the clients named `app`.
async fn fail_inserts(store: &Store, app: &str, mode: bson::Bson, code: i32) {
    store
        .admin_command(bson::doc! {
            "configureFailPoint": "failCommand",
            "mode": mode,
            "data": { "failCommands": ["insert"], "errorCode": code, "appName": app },
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_batch_the_store_refuses_for_good_is_dead_lettered_and_a_passing_error_is_retried() {
    // A store of its own: failpoints are test-only commands, and server-wide.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("paredao-store-refuses-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let _store_process = start_store(port, &dir, &["--enable-test-commands"]);
    wait_for_port(port).await;
    let mut settings = test_settings();
    let app = format!("consumer-{}", uuid::Uuid::new_v4().simple());
    settings.store.url =
        format!("mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true&appName={app}").into();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;
    let _stop = spawn_consumer(&settings).await;
    let dead = &publisher.topology.dead_letter_queue;

    // The store refuses the data itself (BadValue): the batch leaves with its reason instead of
    // being retried forever, and counting goes on.
    fail_inserts(&store, &app, "alwaysOn".into(), 2).await;
    publisher.publish(&batch("ana", 2).encode()).await;
    eventually("the refused batch dead-lettered", Duration::from_secs(20), || async {
        (publisher.ready_in(dead).await == 1).then_some(())
    })
    .await;
    fail_inserts(&store, &app, "off".into(), 2).await;
    let got =
        publisher.channel.basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    let headers = got.delivery.properties.headers().clone().unwrap_or_default();
    let said = headers.inner().get("x-paredao-reason").and_then(|v| v.as_long_string()).map(|s| s.to_string());
    assert_eq!(said.as_deref(), Some("store_refused"));

    // An error that does not say the data is refused (MaxTimeMSExpired) three times in a row:
    // retried, then counted.
    fail_inserts(&store, &app, bson::doc! { "times": 3 }.into(), 50).await;
    publisher.publish(&batch("bia", 3).encode()).await;
    wait_for_counted(&store, 3).await;
    assert_eq!(publisher.ready_in(dead).await, 0, "a passing error dead-letters nothing");
}
