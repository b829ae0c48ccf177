//! One solved challenge sent to two API replicas at the same instant: both may accept it
//! (neither has heard of the other's spend yet), and with two consumers on the queue it must
//! still be counted once. It used to be counted twice (each consumer judged replays from its own
//! memory).

use crate::helpers::{OPEN, spawn_with, test_settings};

#[tokio::test]
async fn a_challenge_sent_to_two_replicas_at_once_counts_once_with_two_consumers() {
    let settings = test_settings();
    // Two replicas, each with a consumer of its own, sharing the queue and the store.
    let one = spawn_with(settings.clone(), true).await;
    let two = spawn_with(settings, true).await;

    let mut accepted_by_both = 0;
    let tries = 10;
    for _ in 0..tries {
        let solution = one.solved_challenge(OPEN).await;
        let (a, b) = tokio::join!(one.vote_with(OPEN, "ana", Some(&solution)), two.vote_with(OPEN, "bia", Some(&solution)));
        let (a, b) = (a.status().as_u16(), b.status().as_u16());
        assert!(a == 202 || b == 202, "one copy at least is accepted: {a} {b}");
        for status in [a, b] {
            assert!(status == 202 || status == 403, "a replay is accepted or refused as used: {status}");
        }
        if a == 202 && b == 202 {
            accepted_by_both += 1;
        }
    }
    // Votes after them all, through both replicas: once they are counted, so is every replay.
    assert_eq!(one.vote(OPEN, "caio").await.status(), 202);
    assert_eq!(two.vote(OPEN, "caio").await.status(), 202);
    let stats = one.wait_for_total(OPEN, tries + 2).await;
    eprintln!("{accepted_by_both} of {tries} challenges were accepted by both replicas");
    let votes = |id: &str| stats["participants"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap()["votes"].as_u64().unwrap();
    assert_eq!(votes("ana") + votes("bia"), tries, "{stats}");
}
