//! The store killed with SIGKILL while the consumer is counting, and restarted: every vote of
//! every message the consumer acked is still counted. The consumer acks only after its commit
//! is journaled (write concern majority, j: true), and the store makes a commit durable before
//! answering it (`--sync-on-commit`, as `run.sh` starts it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use voting::testing::{eventually, test_settings};

use crate::helpers::{Publisher, batch, seeded_store, spawn_consumer, start_store, wait_for_port};

#[tokio::test]
async fn a_store_killed_mid_stream_loses_no_vote_the_consumer_acked() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("paredao-store-crash-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut store_process = start_store(port, &dir, &[]);
    wait_for_port(port).await;

    let mut settings = test_settings();
    settings.store.url = format!("mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true").into();
    // Small, frequent commits: the kill lands right after some of them were acked.
    settings.consumer.max_messages_per_write = 2;
    settings.consumer.max_wait_ms = 1;
    let publisher = Arc::new(Publisher::connect(&settings).await);
    let _stop = spawn_consumer(&settings).await;

    // A steady stream of batches of 10 votes while the store is killed and restarted.
    let published = Arc::new(AtomicU64::new(0));
    let stream = {
        let (publisher, published) = (publisher.clone(), published.clone());
        tokio::spawn(async move {
            for _ in 0..300 {
                publisher.publish(&batch("ana", 10).encode()).await;
                published.fetch_add(10, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let store = seeded_store(&settings).await;
    eventually("votes being counted", Duration::from_secs(30), || async {
        (store.load_counters().await.ok()?.total() >= 200).then_some(())
    })
    .await;
    store_process.kill();
    store_process = start_store(port, &dir, &[]);
    wait_for_port(port).await;

    stream.await.unwrap();
    let expected = published.load(Ordering::Relaxed);
    let counted = eventually(
        &format!("all {expected} votes counted after the store's crash"),
        Duration::from_secs(90),
        || async {
            let total = store.load_counters().await.ok()?.total();
            assert!(total <= expected, "counted {total}, more than the {expected} published");
            (total == expected).then_some(total)
        },
    )
    .await;
    assert_eq!(counted, expected);
    drop(store_process);
    std::fs::remove_dir_all(&dir).ok();
}
