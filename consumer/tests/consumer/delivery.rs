use std::time::Duration;

use lapin::options::BasicGetOptions;
use voting::store::Store;
use voting::testing::{eventually, test_settings};

use crate::helpers::{Publisher, batch, batch_spending, spawn_consumer, wait_for_counted};

#[tokio::test]
async fn the_same_batch_delivered_twice_is_counted_once() {
    let settings = test_settings();
    let publisher = Publisher::connect(&settings).await;
    let store = Store::connect(&settings.store).await.unwrap();

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
async fn a_poison_message_lands_in_the_dead_letter_queue_and_the_consumer_goes_on() {
    let settings = test_settings();
    let publisher = Publisher::connect(&settings).await;
    let store = Store::connect(&settings.store).await.unwrap();
    let _stop = spawn_consumer(&settings).await;

    publisher.publish(b"this is not a vote batch").await;
    publisher.publish(br#"{"id":"not-a-uuid","votes":[]}"#).await;
    // Well-formed but cast in the year 2264: it used to panic the hour arithmetic, and the
    // redelivered message crash-looped the consumer.
    let mut far_future = batch("ana", 2);
    far_future.votes[1].cast_at_ms = 9_300_000_000_000;
    publisher.publish(&far_future.encode()).await;
    publisher.publish(&batch("caio", 5).encode()).await;
    wait_for_counted(&store, 5).await;

    let dead = &publisher.topology.dead_letter_queue;
    let dead_count = eventually("the three poison messages in the dead-letter queue", Duration::from_secs(10), || async {
        let n = publisher.ready_in(dead).await;
        (n == 3).then_some(n)
    })
    .await;
    assert_eq!(dead_count, 3);
    assert_eq!(store.load_counters().await.unwrap().total(), 5, "nothing of a poison batch is counted");
    let first = publisher.channel.basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    assert_eq!(first.delivery.data, b"this is not a vote batch");
}

#[tokio::test]
async fn the_consumer_reconnects_when_the_broker_and_the_store_come_back() {
    use voting::testing::{TcpProxy, amqp_url, mongo_url, port_of, with_port};
    let settings = test_settings();
    let publisher = Publisher::connect(&settings).await;
    let store = Store::connect(&settings.store).await.unwrap();
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
    let store = Store::connect(&settings.store).await.unwrap();
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
    assert!(!open.by_participant.contains_key(&voting::paredao::ParticipantId::parse("bia").unwrap()), "the replay was discarded");
}
