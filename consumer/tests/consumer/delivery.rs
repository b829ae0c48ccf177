use std::time::Duration;

use lapin::options::BasicGetOptions;
use voting::store::Store;
use voting::testing::{eventually, test_settings};

use crate::helpers::{Publisher, batch, spawn_consumer, wait_for_counted};

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
    publisher.publish(&batch("caio", 5).encode()).await;
    wait_for_counted(&store, 5).await;

    let dead = &publisher.topology.dead_letter_queue;
    let dead_count = eventually("both poison messages in the dead-letter queue", Duration::from_secs(10), || async {
        let n = publisher.ready_in(dead).await;
        (n == 2).then_some(n)
    })
    .await;
    assert_eq!(dead_count, 2);
    let first = publisher.channel.basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().unwrap();
    assert_eq!(first.delivery.data, b"this is not a vote batch");
}
