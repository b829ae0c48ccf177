//! The rollup: once frozen, a paredão's per-minute counters go (the frozen result keeps the
//! series) and every total stays equal.

use std::time::Duration;

use voting::testing::eventually;

use crate::freeze::{batch_for, closing_paredao, fast_freeze, wait_for_final};
use crate::helpers::{Publisher, seeded_store, spawn_consumer, wait_for_counted};

#[tokio::test]
async fn the_rollup_removes_the_minute_counters_and_every_total_stays_equal() {
    let settings = fast_freeze();
    let publisher = Publisher::connect(&settings).await;
    let store = seeded_store(&settings).await;
    let paredao = closing_paredao(&settings, &store, "rolled-up", Duration::from_secs(3)).await;
    let _stop = spawn_consumer(&settings).await;
    publisher.publish(&batch_for(&paredao, "ana", 7).encode()).await;
    publisher.publish(&batch_for(&paredao, "caio", 2).encode()).await;
    wait_for_counted(&store, 9).await;

    // While it runs, the minute counters hold the same votes as the hourly ones.
    let minutes = store.load_minutes_of(&paredao.id).await.unwrap();
    let minute_sum: u64 = minutes.values().flat_map(|by| by.values()).sum();
    assert_eq!(minute_sum, 9, "per-minute counters count every vote: {minutes:?}");

    let result = wait_for_final(&store, &paredao).await;
    eventually("the minute counters to be rolled up", Duration::from_secs(30), || async {
        store.load_minutes_of(&paredao.id).await.unwrap().is_empty().then_some(())
    })
    .await;

    let hourly_sum: u64 = result.hourly.iter().map(|h| h.total).sum();
    let minute_sum: u64 = result.per_minute.iter().map(|m| m.total).sum();
    let participants_sum: u64 = result.participants.iter().map(|p| p.votes).sum();
    let counters = store.load_counts_of(&paredao.id).await.unwrap();
    assert_eq!(result.total_votes, 9);
    assert_eq!((hourly_sum, minute_sum, participants_sum, counters.total), (9, 9, 9, 9));
    for h in &result.hourly {
        let in_hour: u64 =
            result.per_minute.iter().filter(|m| voting::tally::hour_of(m.minute) == h.hour).map(|m| m.total).sum();
        assert_eq!(in_hour, h.total, "the minutes of {} add up to the hour", h.hour);
    }
    let mut frozen_minutes = result.series().by_minute;
    for by in frozen_minutes.values_mut() {
        by.retain(|_, n| *n > 0);
    }
    assert_eq!(frozen_minutes, minutes, "the frozen series is what the minute counters held");
    assert!(!result.per_minute.is_empty());
    // The hourly counters stay.
    assert_eq!(store.load_counts_of(&paredao.id).await.unwrap().total, 9);
}
