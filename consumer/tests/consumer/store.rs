use voting::store::{Applied, SPENT_SLOT_SECS, Store};
use voting::testing::test_settings;

use crate::helpers::{batch, batch_spending, seeded_store};

#[tokio::test]
async fn applying_the_same_batches_again_counts_nothing_more() {
    let settings = test_settings();
    let store = seeded_store(&settings).await;
    let (a, b) = (batch("ana", 3), batch("bia", 2));

    let first = store.apply(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(first, Applied { batches: 2, duplicates: 0, votes: 5, ..Default::default() });
    // A redelivery of one of them next to a new one, and the same batch twice in one call.
    let c = batch("ana", 4);
    let second = store.apply(&[b.clone(), c.clone(), c.clone()]).await.unwrap();
    assert_eq!(second, Applied { batches: 1, duplicates: 2, votes: 4, ..Default::default() });

    let counts = store.load_counters().await.unwrap().by_paredao();
    let open = &counts[&voting::paredao::ParedaoId::parse(voting::testing::OPEN).unwrap()];
    assert_eq!(open.total, 9);
    assert_eq!(open.by_participant[&voting::paredao::ParticipantId::parse("ana").unwrap()], 7);
    store.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_challenge_is_counted_once_whichever_batch_and_whichever_store_client_carries_it_again() {
    let settings = test_settings();
    let store = seeded_store(&settings).await;
    store.ensure_indexes().await.unwrap();
    let (k1, k2, k3) = ("a".repeat(32), "b".repeat(32), "c".repeat(32));

    // A replay inside one call: k1 twice.
    let first = store.apply(&[batch_spending("ana", &[&k1, &k2]), batch_spending("bia", &[&k1])]).await.unwrap();
    assert_eq!((first.votes, first.replays), (2, 1));
    // A replay in a later call through another client (another consumer), next to a fresh
    // challenge: nothing but the store knows k2 was counted.
    let other = Store::connect(&settings.store).await.unwrap();
    let second = other.apply(&[batch_spending("bia", &[&k2, &k3])]).await.unwrap();
    assert_eq!((second.votes, second.replays), (1, 1));
    assert_eq!(store.load_counters().await.unwrap().total(), 3);
    assert_eq!(store.spent_challenges_known().await.unwrap(), 3);
    store.drop_database().await.unwrap();
}

#[tokio::test]
async fn consumers_racing_on_the_same_challenges_count_each_once() {
    let settings = test_settings();
    let store = seeded_store(&settings).await;
    store.ensure_indexes().await.unwrap();
    // Four store clients (four consumers) each apply their own batches of the same 50
    // challenges at the same instant, as three consumers do with every vote replayed to both
    // API replicas.
    let keys: Vec<String> = (0..50).map(|i| format!("{i:032x}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(Store::connect(&settings.store).await.unwrap());
    }
    let applied = futures::future::join_all(clients.iter().enumerate().map(|(i, c)| {
        let b = batch_spending(if i % 2 == 0 { "ana" } else { "bia" }, &refs);
        async move { c.apply(&[b]).await.unwrap() }
    }))
    .await;
    assert_eq!(applied.iter().map(|a| a.votes).sum::<u64>(), 50, "{applied:?}");
    assert_eq!(applied.iter().map(|a| a.replays).sum::<u64>(), 150);
    assert_eq!(store.load_counters().await.unwrap().total(), 50);
    store.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_slot_of_counted_challenges_is_dropped_whole_and_only_once_the_bound_has_passed_it() {
    let settings = test_settings();
    let store = seeded_store(&settings).await;
    let now = chrono::Utc::now().timestamp();
    store.prepare_spent_slots(now, now + 300).await.unwrap();
    // Two challenges expiring ten minutes apart: two slots.
    let (early, late) = ("d".repeat(32), "e".repeat(32));
    let mut a = batch_spending("ana", &[&early]);
    a.votes[0].challenge_expires = Some(now + 60);
    let mut b = batch_spending("ana", &[&late]);
    b.votes[0].challenge_expires = Some(now + 660);
    store.apply(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(store.spent_challenges_known().await.unwrap(), 2);

    let early_slot = voting::store::spent_slot_of(now + 60);
    let kept = store.forget_spent_expiring_before(early_slot + SPENT_SLOT_SECS - 1).await.unwrap();
    assert!(!kept.contains(&early_slot), "the slot has not ended before the bound: {kept:?}");
    assert_eq!(store.spent_challenges_known().await.unwrap(), 2);
    let dropped = store.forget_spent_expiring_before(early_slot + SPENT_SLOT_SECS).await.unwrap();
    assert!(dropped.contains(&early_slot), "{dropped:?}");
    assert!(!dropped.contains(&voting::store::spent_slot_of(now + 660)), "{dropped:?}");
    assert_eq!(store.spent_challenges_known().await.unwrap(), 1);
    // The later challenge is still judged: a replay of it (another batch) is not counted.
    let mut replay = batch_spending("bia", &[&late]);
    replay.votes[0].challenge_expires = Some(now + 660);
    let applied = store.apply(&[replay]).await.unwrap();
    assert_eq!((applied.votes, applied.replays), (0, 1));
    store.drop_database().await.unwrap();
}
