use voting::spent_ledger::SpentLedger;
use voting::store::{Applied, Store};
use voting::testing::test_settings;

use crate::helpers::{batch, batch_spending};

#[tokio::test]
async fn applying_the_same_batches_again_counts_nothing_more() {
    let settings = test_settings();
    let store = Store::connect(&settings.store).await.unwrap();
    let (a, b) = (batch("ana", 3), batch("bia", 2));

    let first = store.apply(&[a.clone(), b.clone()], &SpentLedger::default(), 360).await.unwrap();
    assert_eq!(first, Applied { batches: 2, duplicates: 0, votes: 5, ..Default::default() });
    // A redelivery of one of them next to a new one, and the same batch twice in one call.
    let c = batch("ana", 4);
    let second = store.apply(&[b.clone(), c.clone(), c.clone()], &SpentLedger::default(), 360).await.unwrap();
    assert_eq!(second, Applied { batches: 1, duplicates: 2, votes: 4, ..Default::default() });

    let counts = store.load_counters().await.unwrap().by_paredao();
    let open = &counts[&voting::paredao::ParedaoId::parse(voting::testing::OPEN).unwrap()];
    assert_eq!(open.total, 9);
    assert_eq!(open.by_participant[&voting::paredao::ParticipantId::parse("ana").unwrap()], 7);
    store.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_challenge_is_counted_once_whichever_batch_carries_it_again() {
    let settings = test_settings();
    let store = Store::connect(&settings.store).await.unwrap();
    store.ensure_indexes().await.unwrap();
    let (k1, k2, k3) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));

    let mut ledger = SpentLedger::default();
    // A replay inside one call: k1 twice.
    let first = store.apply(&[batch_spending("ana", &[&k1, &k2]), batch_spending("bia", &[&k1])], &ledger, 360).await.unwrap();
    assert_eq!((first.votes, first.replays), (2, 1));
    for (key, forget_at) in &first.spent {
        ledger.insert(*key, *forget_at);
    }
    // A replay in a later call, next to a fresh challenge.
    let second = store.apply(&[batch_spending("bia", &[&k2, &k3])], &ledger, 360).await.unwrap();
    assert_eq!((second.votes, second.replays), (1, 1));
    assert_eq!(store.load_counters().await.unwrap().total(), 3);

    // What a restarting consumer reloads: every challenge counted, none it did not count.
    let mut reloaded = store.load_spent(chrono::Utc::now() - chrono::TimeDelta::minutes(5)).await.unwrap();
    reloaded.sort();
    let mut expected: Vec<u128> = [&k1, &k2, &k3].iter().map(|k| voting::spent_ledger::key_of(k)).collect();
    expected.sort();
    assert_eq!(reloaded, expected);
    assert!(store.load_spent(chrono::Utc::now() + chrono::TimeDelta::minutes(1)).await.unwrap().is_empty());
    store.drop_database().await.unwrap();
}
