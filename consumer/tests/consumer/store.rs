use voting::store::{Applied, SPENT_BLOCK_BITS, Store};
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
    assert_eq!(store.spent_challenges_known().await.unwrap().0, 3);
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
async fn the_challenges_a_replica_issues_in_a_row_are_recorded_in_one_document() {
    // A record per challenge cost the local store an insert and later a delete per vote, and at
    // 3,500 votes/s it fell behind (the soak); a block holds thousands.
    let settings = test_settings();
    let store = seeded_store(&settings).await;
    store.ensure_indexes().await.unwrap();
    let issuer = "0123456789abcdef";
    let keys: Vec<String> =
        (0..SPENT_BLOCK_BITS).map(|i| format!("{issuer}{:016x}", 3 * SPENT_BLOCK_BITS + i)).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let applied =
        store.apply(&[batch_spending("ana", &refs[..1000]), batch_spending("bia", &refs[1000..])]).await.unwrap();
    assert_eq!((applied.votes, applied.replays), (SPENT_BLOCK_BITS, 0));
    assert_eq!(store.spent_challenges_known().await.unwrap(), (SPENT_BLOCK_BITS, 1));
    // Every one of them is judged: replays of the first and last are not counted.
    let replays = store.apply(&[batch_spending("bia", &[refs[0], refs[refs.len() - 1]])]).await.unwrap();
    assert_eq!((replays.votes, replays.replays), (0, 2));
    store.drop_database().await.unwrap();
}

#[tokio::test]
async fn a_block_is_forgotten_only_once_the_bound_has_passed_every_challenge_counted_in_it() {
    let settings = test_settings();
    let store = seeded_store(&settings).await;
    store.ensure_indexes().await.unwrap();
    let now = chrono::Utc::now().timestamp();
    // Two blocks: one with challenges expiring ten minutes apart, one with an early one.
    let (early, late, other) =
        (format!("{:032x}", 1), format!("{:032x}", 2), format!("{:016x}{:016x}", 1, 5 * SPENT_BLOCK_BITS));
    let spending = |participant, key: &str, expires| {
        let mut b = batch_spending(participant, &[key]);
        b.votes[0].challenge_expires = Some(expires);
        b
    };
    store
        .apply(&[
            spending("ana", &early, now + 60),
            spending("ana", &late, now + 660),
            spending("bia", &other, now + 60),
        ])
        .await
        .unwrap();
    assert_eq!(store.spent_challenges_known().await.unwrap(), (3, 2));

    assert_eq!(store.forget_spent_expiring_before(now + 60).await.unwrap(), 0, "nothing expired before the bound");
    assert_eq!(store.forget_spent_expiring_before(now + 61).await.unwrap(), 1);
    assert_eq!(store.spent_challenges_known().await.unwrap(), (2, 1));
    // The block with the later challenge is kept whole, so its early one is still judged too.
    let replays = store.apply(&[spending("bia", &early, now + 60), spending("bia", &late, now + 660)]).await.unwrap();
    assert_eq!((replays.votes, replays.replays), (0, 2));
    assert_eq!(store.forget_spent_expiring_before(now + 661).await.unwrap(), 1);
    assert_eq!(store.spent_challenges_known().await.unwrap(), (0, 0));
    store.drop_database().await.unwrap();
}

#[tokio::test]
async fn the_records_an_earlier_version_kept_are_dropped_once_the_queue_has_passed_them() {
    let settings = test_settings();
    let store = seeded_store(&settings).await;
    let now = chrono::Utc::now().timestamp();
    let db = mongodb::Client::with_uri_str(settings.store.url()).await.unwrap().database(&settings.store.database);
    let slot = |start: i64| db.collection::<bson::Document>(&format!("spent_expiring_{start}"));
    let (passed, ahead) = (now - now.rem_euclid(120) - 240, now - now.rem_euclid(120) + 240);
    for start in [passed, ahead] {
        slot(start).insert_many((0..3).map(|i| bson::doc! { "_id": format!("{start}-{i}") })).await.unwrap();
    }
    db.collection::<bson::Document>("spent_challenges").insert_one(bson::doc! { "_id": "k" }).await.unwrap();

    store.forget_spent_expiring_before(now).await.unwrap();
    let names = db.list_collection_names().await.unwrap();
    assert!(!names.contains(&format!("spent_expiring_{passed}")), "{names:?}");
    assert!(names.contains(&format!("spent_expiring_{ahead}")), "a slot not yet passed is kept: {names:?}");
    assert!(!names.iter().any(|n| n == "spent_challenges"), "{names:?}");
    store.drop_database().await.unwrap();
}

#[tokio::test]
async fn the_ids_of_batches_counted_before_the_bound_are_forgotten_and_the_others_kept() {
    // Without this the record of applied batches grows by a document per batch for ever.
    let settings = test_settings();
    let store = seeded_store(&settings).await;
    store.ensure_indexes().await.unwrap();
    let now = chrono::Utc::now().timestamp();
    let (old, recent) = (batch("ana", 1), batch("bia", 1));
    store.apply(&[old.clone(), recent.clone()]).await.unwrap();
    // As if `old` had been counted ten minutes ago.
    let db = mongodb::Client::with_uri_str(settings.store.url()).await.unwrap().database(&settings.store.database);
    db.collection::<bson::Document>("applied_batches")
        .update_one(
            bson::doc! { "_id": old.id.to_string() },
            bson::doc! { "$set": { "applied_at": bson::DateTime::from_millis((now - 600) * 1000) } },
        )
        .await
        .unwrap();

    assert_eq!(store.forget_applied_batches_before(now - 300).await.unwrap(), 1);
    assert_eq!(store.forget_applied_batches_before(now - 300).await.unwrap(), 0);
    // The recent one is still known: delivered again, it is skipped.
    let again = store.apply(&[recent]).await.unwrap();
    assert_eq!((again.batches, again.duplicates), (0, 1));
    store.drop_database().await.unwrap();
}

#[tokio::test]
async fn batch_ids_are_forgotten_a_slice_of_their_counting_time_at_a_time() {
    // One command for ten seconds of batch ids held counting up for seconds under the local
    // store's global lock; the janitor now forgets a second's worth per command.
    let settings = test_settings();
    let store = seeded_store(&settings).await;
    store.ensure_indexes().await.unwrap();
    let batches: Vec<_> = (0..4).map(|_| batch("ana", 1)).collect();
    store.apply(&batches).await.unwrap();
    let db = mongodb::Client::with_uri_str(settings.store.url()).await.unwrap().database(&settings.store.database);
    let base = (chrono::Utc::now().timestamp() - 600) * 1000;
    // Counted 0.0 s, 0.5 s, 1.0 s and 1.9 s after `base`.
    for (b, offset) in batches.iter().zip([0, 500, 1_000, 1_900]) {
        db.collection::<bson::Document>("applied_batches")
            .update_one(
                bson::doc! { "_id": b.id.to_string() },
                bson::doc! { "$set": { "applied_at": bson::DateTime::from_millis(base + offset) } },
            )
            .await
            .unwrap();
    }

    assert_eq!(store.forget_applied_batches_between(base, base + 1_000).await.unwrap(), 2, "[0, 1 s)");
    assert_eq!(store.forget_applied_batches_between(base, base + 1_000).await.unwrap(), 0, "already gone");
    // The others are still known: delivered again, they are skipped.
    let again = store.apply(&batches[2..]).await.unwrap();
    assert_eq!((again.batches, again.duplicates), (0, 2));
    assert_eq!(store.forget_applied_batches_between(base + 1_000, base + 2_000).await.unwrap(), 2, "[1 s, 2 s)");
    store.drop_database().await.unwrap();
}
