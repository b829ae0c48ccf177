use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::helpers::{OPEN, spawn_app};

/// Stopping the API while votes pour in: each vote that got a 202 is counted, and nothing else.
#[tokio::test]
async fn graceful_shutdown_loses_no_accepted_vote() {
    let mut app = spawn_app().await;
    let accepted = Arc::new(AtomicU64::new(0));
    let url = app.url(&format!("/api/paredoes/{OPEN}/votes"));
    let challenge_url = app.url(&format!("/api/paredoes/{OPEN}/challenge"));
    let mut senders = Vec::new();
    for _ in 0..16 {
        let (client, url, challenge_url, accepted) =
            (app.client.clone(), url.clone(), challenge_url.clone(), accepted.clone());
        senders.push(tokio::spawn(async move {
            for _ in 0..200 {
                // As a browser does: a challenge per vote (refused once the API is stopping).
                let Ok(r) = client.get(&challenge_url).send().await else { continue };
                let Ok(challenge) = r.json::<api::anti_bot::altcha::ChallengeView>().await else { continue };
                let captcha = api::anti_bot::altcha::solve(&challenge);
                match client
                    .post(&url)
                    .json(&serde_json::json!({ "participant_id": "ana", "captcha": captcha }))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 202 => {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    // Refused or cut off by the shutdown: not accepted, must not be counted.
                    _ => {}
                }
            }
        }));
    }
    voting::testing::eventually("some votes to be accepted", std::time::Duration::from_secs(30), || async {
        (accepted.load(Ordering::SeqCst) >= 100).then_some(())
    })
    .await;
    app.stop_api().await;
    for s in senders {
        s.await.unwrap();
    }
    let accepted = accepted.load(Ordering::SeqCst);
    assert!((100..3200).contains(&accepted), "the shutdown happened mid-stream ({accepted} accepted)");

    // The consumer is still running; the API is gone, so read the counters from the store.
    let store = voting::store::Store::connect(&app.settings.store).await.unwrap();
    voting::testing::eventually(&format!("{accepted} votes counted"), std::time::Duration::from_secs(60), || async {
        let counted = store.load_counters().await.ok()?.total();
        assert!(counted <= accepted, "counted {counted}, more than the {accepted} accepted");
        (counted == accepted).then_some(())
    })
    .await;
}
