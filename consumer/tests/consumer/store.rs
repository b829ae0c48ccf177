use voting::store::{Applied, Store};
use voting::testing::test_settings;

use crate::helpers::batch;

#[tokio::test]
async fn applying_the_same_batches_again_counts_nothing_more() {
    let settings = test_settings();
    let store = Store::connect(&settings.store).await.unwrap();
    let (a, b) = (batch("ana", 3), batch("bia", 2));

    let first = store.apply(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(first, Applied { batches: 2, duplicates: 0, votes: 5 });
    // A redelivery of one of them next to a new one, and the same batch twice in one call.
    let c = batch("ana", 4);
    let second = store.apply(&[b.clone(), c.clone(), c.clone()]).await.unwrap();
    assert_eq!(second, Applied { batches: 1, duplicates: 2, votes: 4 });

    let counts = store.load_counters().await.unwrap().by_paredao();
    let open = &counts[&voting::paredao::ParedaoId::parse(voting::testing::OPEN).unwrap()];
    assert_eq!(open.total, 9);
    assert_eq!(open.by_participant[&voting::paredao::ParticipantId::parse("ana").unwrap()], 7);
    store.drop_database().await.unwrap();
}
