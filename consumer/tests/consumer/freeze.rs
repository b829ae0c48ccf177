//! The final result: frozen once a closed paredão has drained, once whatever the number of
//! consumers, with a digest anyone can recompute from the per-hour export.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use voting::configuration::Settings;
use voting::final_results::{FinalResult, ResultSeries};
use voting::paredao::{Paredao, ParedaoId, ParticipantId};
use voting::store::Store;
use voting::testing::{eventually, test_settings};
use voting::vote::{Vote, VoteBatch};

use crate::helpers::{Publisher, seeded_store, spawn_consumer};

/// Test settings whose freezer looks often and waits little: the API's linger and confirm
/// timeout (the floor of the grace) made short too.
pub fn fast_freeze() -> Settings {
    let mut s = test_settings();
    s.batcher.max_wait_ms = 5;
    s.batcher.confirm_timeout_ms = 200;
    s.consumer.freeze.grace_ms = 300;
    s.consumer.freeze.settle_ms = 300;
    s.consumer.freeze.every_ms = 100;
    s
}

/// A paredão of the test's own that opened an hour ago and closes `closes_in` from now, stored.
pub async fn closing_paredao(settings: &Settings, store: &Store, id: &str, closes_in: Duration) -> Paredao {
    let mut p = settings.seed[0].clone();
    p.id = ParedaoId::parse(id).unwrap();
    p.title = format!("Paredão {id}");
    p.opens_at = Utc::now() - chrono::Duration::hours(1);
    p.closes_at = Utc::now() + chrono::Duration::from_std(closes_in).unwrap();
    store.upsert_paredao(&p).await.unwrap();
    p
}

pub fn batch_for(paredao: &Paredao, participant: &str, n: usize) -> VoteBatch {
    let votes =
        (0..n).map(|_| Vote::new(paredao.id.clone(), ParticipantId::parse(participant).unwrap(), Utc::now())).collect();
    VoteBatch::seal(votes, Utc::now())
}

pub async fn wait_for_final(store: &Store, paredao: &Paredao) -> FinalResult {
    eventually(&format!("the final result of {}", paredao.id), Duration::from_secs(60), || async {
        store.load_final(&paredao.id).await.unwrap()
    })
    .await
}

/// The per-hour CSV of the live hourly counters, as the export serves it before the freeze.
pub async fn hourly_csv_of_counters(store: &Store, paredao: &Paredao) -> String {
    let counts = store.load_counts_of(&paredao.id).await.unwrap();
    ResultSeries::live(paredao, Some(&counts), Default::default()).hourly_csv()
}

#[tokio::test]
async fn votes_for_a_paredao_that_closes_are_frozen_once_drained_with_the_digest_of_the_hourly_csv() {
    let settings = fast_freeze();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;
    let paredao = closing_paredao(&settings, &store, "closing-now", Duration::from_secs(2)).await;
    publisher.publish(&batch_for(&paredao, "ana", 5).encode()).await;
    publisher.publish(&batch_for(&paredao, "bia", 3).encode()).await;
    let _stop = spawn_consumer(&settings).await;

    let result = wait_for_final(&store, &paredao).await;
    assert!(result.frozen_at >= paredao.closes_at, "frozen only after the close");
    assert_eq!(result.total_votes, 8);
    let votes: Vec<(String, u64)> = result.participants.iter().map(|p| (p.id.to_string(), p.votes)).collect();
    assert_eq!(votes, vec![("ana".into(), 5), ("bia".into(), 3), ("caio".into(), 0)]);

    let counters = store.load_counts_of(&paredao.id).await.unwrap();
    assert_eq!(counters.total, result.total_votes, "the frozen totals are the counters'");
    let csv = hourly_csv_of_counters(&store, &paredao).await;
    assert_eq!(csv, result.series().hourly_csv(), "the frozen per-hour export is the counters'");
    assert_eq!(result.digest, hex::encode(Sha256::digest(csv.as_bytes())), "the digest is SHA-256 of the CSV");
}

#[tokio::test]
async fn two_freezers_freeze_a_paredao_once() {
    let settings = fast_freeze();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;
    let paredao = closing_paredao(&settings, &store, "closing-twice", Duration::from_secs(2)).await;
    publisher.publish(&batch_for(&paredao, "caio", 4).encode()).await;
    // Two consumers count (and each runs a freezer of its own).
    let _one = spawn_consumer(&settings).await;
    let _two = spawn_consumer(&settings).await;
    let first = wait_for_final(&store, &paredao).await;
    assert_eq!(first.total_votes, 4);

    // Two more freezers racing over the same drained paredão: neither writes it again.
    let mut a = consumer::freezer::Freezer::new(&settings, store.clone());
    let mut b = consumer::freezer::Freezer::new(&settings, store.clone());
    let (va, vb) = tokio::join!(a.round(), b.round());
    for verdicts in [va.unwrap(), vb.unwrap()] {
        assert_eq!(verdicts[&paredao.id], consumer::freezer::Verdict::AlreadyFinal);
    }
    assert_eq!(store.load_final(&paredao.id).await.unwrap(), Some(first), "the first freeze stands");
}

#[tokio::test]
async fn of_freezers_racing_over_a_drained_paredao_exactly_one_writes_it() {
    use consumer::freezer::{Freezer, Verdict};
    let settings = fast_freeze();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;
    let paredao = closing_paredao(&settings, &store, "closing-race", Duration::from_secs(1)).await;
    publisher.publish(&batch_for(&paredao, "ana", 2).encode()).await;
    let stop = spawn_consumer(&settings).await;
    crate::helpers::wait_for_counted(&store, 2).await;
    // Counted: stop this consumer (and its freezer) so that only the two below decide.
    stop.cancel();

    let a = Mutex::new(Freezer::new(&settings, store.clone()));
    let b = Mutex::new(Freezer::new(&settings, store.clone()));
    let frozen = AtomicUsize::new(0);
    eventually("both freezers to see the paredão final", Duration::from_secs(60), || async {
        let (mut a, mut b) = (a.lock().await, b.lock().await);
        let (va, vb) = tokio::join!(a.round(), b.round());
        let (va, vb) = (va.unwrap().remove(&paredao.id), vb.unwrap().remove(&paredao.id));
        let done = |v: &Option<Verdict>| {
            matches!(v, Some(Verdict::Frozen(_) | Verdict::FrozenByAnother | Verdict::AlreadyFinal))
        };
        let wrote = [&va, &vb].into_iter().filter(|v| matches!(v, Some(Verdict::Frozen(_)))).count();
        frozen.fetch_add(wrote, Ordering::Relaxed);
        (done(&va) && done(&vb)).then_some(())
    })
    .await;
    let frozen = frozen.load(Ordering::Relaxed);
    assert_eq!(frozen, 1, "exactly one freezer wrote the final result");
    assert_eq!(store.load_final(&paredao.id).await.unwrap().unwrap().total_votes, 2);
}

#[tokio::test]
async fn a_vote_still_in_the_queue_delays_the_freeze() {
    use consumer::freezer::{Freezer, Verdict};
    let settings = fast_freeze();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;
    let paredao = closing_paredao(&settings, &store, "closing-backlog", Duration::from_secs(1)).await;
    // No consumer yet: the vote waits in the queue, past the close and the grace.
    publisher.publish(&batch_for(&paredao, "bia", 6).encode()).await;

    let freezer = Mutex::new(Freezer::new(&settings, store.clone()));
    eventually("the freezer to see the backlog once the grace is over", Duration::from_secs(30), || async {
        (freezer.lock().await.round().await.unwrap().get(&paredao.id) == Some(&Verdict::Backlog(1))).then_some(())
    })
    .await;
    // More rounds, well past the settle time, with the backlog still there.
    let watched_since = tokio::time::Instant::now();
    let settle = Duration::from_millis(settings.consumer.freeze.settle_ms);
    eventually("rounds for longer than the settle time", Duration::from_secs(30), || async {
        assert_eq!(freezer.lock().await.round().await.unwrap().get(&paredao.id), Some(&Verdict::Backlog(1)));
        (watched_since.elapsed() > 3 * settle).then_some(())
    })
    .await;
    assert_eq!(store.load_final(&paredao.id).await.unwrap(), None, "not frozen while a vote waits");

    // Once a consumer counts it, the paredão drains and is frozen with that vote in it.
    let _stop = spawn_consumer(&settings).await;
    let result = wait_for_final(&store, &paredao).await;
    assert_eq!(result.total_votes, 6);
}
