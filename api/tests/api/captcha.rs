//! Only people vote: each vote needs a freshly solved challenge of its paredão, once.

use std::time::Duration;

use api::anti_bot::altcha::{ChallengeView, encode_solution, solve};
use voting::testing::eventually;

use crate::helpers::{CLOSED, OPEN, spawn_app, spawn_with, test_settings};

async fn refused(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_solved_challenge_is_accepted_once_and_refused_the_second_time() {
    let app = spawn_app().await;
    let solution = app.solved_challenge(OPEN).await;
    assert_eq!(app.vote_with(OPEN, "ana", Some(&solution)).await.status(), 202);
    assert_eq!(refused(app.vote_with(OPEN, "bia", Some(&solution)).await).await, (403, "captcha_already_used".into()));
    app.wait_for_total(OPEN, 1).await;
}

#[tokio::test]
async fn a_replay_sent_to_another_replica_is_refused_there() {
    let settings = test_settings();
    let first = spawn_with(settings.clone(), true).await;
    let second = spawn_with(settings, false).await;
    let solution = first.solved_challenge(OPEN).await;
    assert_eq!(first.vote_with(OPEN, "ana", Some(&solution)).await.status(), 202);
    // The news travels through the broker in milliseconds; wait until it has arrived.
    eventually("the second replica to hear of the spend", Duration::from_secs(10), || async {
        let (_, ready) = second.get_json("/health/ready").await;
        (ready["spent_challenges_known"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    assert_eq!(
        refused(second.vote_with(OPEN, "ana", Some(&solution)).await).await,
        (403, "captcha_already_used".into())
    );
    first.wait_for_total(OPEN, 1).await;
}

#[tokio::test]
async fn a_replay_that_a_replica_accepts_unknowingly_is_still_counted_once() {
    // A replica that started after the challenge was spent never heard of the spend: it may
    // accept the replay, but the vote carries its challenge and the consumer counts it once.
    let settings = test_settings();
    let first = spawn_with(settings.clone(), true).await;
    let solution = first.solved_challenge(OPEN).await;
    assert_eq!(first.vote_with(OPEN, "ana", Some(&solution)).await.status(), 202);
    first.wait_for_total(OPEN, 1).await;

    let late = spawn_with(settings, false).await;
    let replay = late.vote_with(OPEN, "bia", Some(&solution)).await.status();
    assert!(replay == 202 || replay == 403, "replay answered {replay}");
    // A fresh vote behind the replay in the queue: once it is counted, the replay has been through.
    let fresh = late.solved_challenge(OPEN).await;
    assert_eq!(late.vote_with(OPEN, "caio", Some(&fresh)).await.status(), 202);
    let stats = first.wait_for_total(OPEN, 2).await;
    let votes_of = |id: &str| {
        stats["participants"].as_array().unwrap().iter().find(|p| p["id"] == id).unwrap()["votes"].as_u64().unwrap()
    };
    assert_eq!((votes_of("ana"), votes_of("bia"), votes_of("caio")), (1, 0, 1));
}

#[tokio::test]
async fn forged_tampered_expired_foreign_and_missing_solutions_are_refused_with_their_reason() {
    let mut settings = test_settings();
    let app = spawn_with(settings.clone(), true).await;
    let challenge = app.challenge(OPEN).await;
    let number = altcha_number(&challenge);

    // Signed with another key: a forgery.
    settings.captcha.hmac_key = "not-the-servers-key".parse().unwrap();
    let forger = api::anti_bot::altcha::Altcha::new(settings.captcha.hmac_key(), 300);
    let forged = forger.challenge(&voting::paredao::ParedaoId::parse(OPEN).unwrap(), 500, chrono::Utc::now());
    // The salt moved to another paredão: the signature no longer matches.
    let mut tampered = challenge.clone();
    tampered.salt = challenge.salt.replace(&format!("{OPEN}:"), "outro-paredao:");
    // Expired: a challenge signed with the right key, but an hour old.
    let right = api::anti_bot::altcha::Altcha::new(app.settings.captcha.hmac_key(), 300);
    let old = right.challenge(
        &voting::paredao::ParedaoId::parse(OPEN).unwrap(),
        500,
        chrono::Utc::now() - chrono::TimeDelta::hours(1),
    );

    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no captcha", None, 400, "captcha_missing"),
        ("not a payload", Some("hello".into()), 400, "captcha_malformed"),
        ("wrong number", Some(encode_solution(&challenge, number + 1)), 403, "captcha_bad_signature"),
        ("forged signature", Some(solve(&forged)), 403, "captcha_bad_signature"),
        ("tampered salt", Some(encode_solution(&tampered, number)), 403, "captcha_bad_signature"),
        ("expired", Some(solve(&old)), 403, "captcha_expired"),
    ];
    for (what, captcha, status, code) in cases {
        let r = app.vote_with(OPEN, "ana", captcha.as_deref()).await;
        assert_eq!(refused(r).await, (status, code.to_string()), "{what}");
    }
    // A challenge of another paredão: the closed one hands out challenges too.
    let foreign = app.solved_challenge(CLOSED).await;
    assert_eq!(refused(app.vote_with(OPEN, "ana", Some(&foreign)).await).await, (403, "captcha_wrong_paredao".into()));

    // Each reason is a metric label.
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for code in
        ["captcha_missing", "captcha_malformed", "captcha_bad_signature", "captcha_expired", "captcha_wrong_paredao"]
    {
        assert!(metrics.contains(&format!("paredao_votes_rejected_total{{reason=\"{code}\"}}")), "{code} is counted");
    }
    // None of them was counted; the honest vote is.
    assert_eq!(app.vote_with(OPEN, "ana", Some(&encode_solution(&challenge, number))).await.status(), 202);
    app.wait_for_total(OPEN, 1).await;
}

fn altcha_number(c: &ChallengeView) -> u64 {
    altcha_lib_rs::solve_challenge(&c.challenge, &c.salt, None, Some(c.maxnumber), 0).unwrap()
}

#[tokio::test]
async fn the_next_challenge_rides_on_the_vote_response() {
    let app = spawn_app().await;
    let r = app.vote(OPEN, "ana").await;
    assert_eq!(r.status(), 202);
    let body: serde_json::Value = r.json().await.unwrap();
    let next: ChallengeView = serde_json::from_value(body["next_challenge"].clone()).expect("a next challenge");
    assert_eq!(app.vote_with(OPEN, "bia", Some(&solve(&next))).await.status(), 202, "voting again costs one request");
    app.wait_for_total(OPEN, 2).await;
}

#[tokio::test]
async fn a_client_voting_fast_gets_harder_challenges_which_fall_back_when_it_slows_down() {
    let mut settings = test_settings();
    settings.captcha.difficulty.base = 1_000;
    settings.captcha.difficulty.max = 1_000_000;
    settings.captcha.difficulty.free_per_window = 3;
    settings.captcha.difficulty.growth = 2.0;
    settings.captcha.difficulty.window_secs = 1;
    let app = spawn_with(settings, false).await;
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(app.challenge(OPEN).await.maxnumber);
    }
    assert_eq!(seen[0], 1_000, "the first challenges cost the base");
    assert!(seen[9] >= 16 * seen[0], "a burst makes it grow: {seen:?}");
    assert!(seen.windows(2).all(|w| w[1] >= w[0]), "{seen:?}");
    // The client slows down: a pause of four time constants (the pause is the behaviour under
    // test, so it is a real wait, not a readiness check), then it is back near the base.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let back = app.challenge(OPEN).await.maxnumber;
    assert!(back <= 2_000, "back to {back}");
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("paredao_captcha_max_number"), "the curve is visible in metrics");
}

#[tokio::test]
async fn a_client_over_the_rate_limit_gets_429_with_retry_after_and_recovers() {
    let mut settings = test_settings();
    settings.rate_limit.enabled = true;
    settings.rate_limit.per_second = 2.0;
    settings.rate_limit.burst = 3;
    let app = spawn_with(settings, true).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.vote(OPEN, "ana").await);
    }
    let limited = statuses.into_iter().find(|r| r.status() == 429).expect("some votes are limited");
    let wait: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    eventually("the client to be let through again", Duration::from_secs(10), || async {
        (app.vote(OPEN, "bia").await.status() == 202).then_some(())
    })
    .await;
}

#[tokio::test]
async fn behind_nginx_the_limit_applies_to_the_forwarded_address() {
    let mut settings = test_settings();
    settings.rate_limit.enabled = true;
    settings.rate_limit.per_second = 0.5;
    settings.rate_limit.burst = 1;
    let app = spawn_with(settings, false).await;
    let vote_from = |ip: &'static str| {
        let app = &app;
        async move {
            let solution = app.solved_challenge(OPEN).await;
            app.client
                .post(app.url(&format!("/api/paredoes/{OPEN}/votes")))
                .header("x-real-ip", ip)
                .json(&serde_json::json!({ "participant_id": "ana", "captcha": solution }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(vote_from("203.0.113.1").await, 202);
    assert_eq!(vote_from("203.0.113.1").await, 429, "the same viewer is limited");
    assert_eq!(vote_from("203.0.113.2").await, 202, "another viewer behind the same nginx is not");
}

#[tokio::test]
async fn challenges_beyond_their_burst_get_429_with_retry_after_before_any_work() {
    let mut settings = test_settings();
    settings.rate_limit.enabled = true;
    settings.rate_limit.challenges.per_second = 1.0;
    settings.rate_limit.challenges.burst = 3;
    let app = spawn_with(settings, false).await;
    let challenge_from = |ip: &'static str| {
        let app = &app;
        async move {
            app.client
                .get(app.url(&format!("/api/paredoes/{OPEN}/challenge")))
                .header("x-real-ip", ip)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(challenge_from("203.0.113.1").await.status(), 200);
    }
    let limited = challenge_from("203.0.113.1").await;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert!(limited.headers().get("set-cookie").is_none(), "refused before a cookie is made");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited");
    assert!(body["message"].as_str().unwrap().contains("challenges"), "{body}");
    assert_eq!(challenge_from("203.0.113.2").await.status(), 200, "another viewer is not limited");
    // Votes have a limiter of their own: the challenge limit does not refuse them.
    let solution = app.solved_challenge(OPEN).await;
    assert_eq!(app.vote_with(OPEN, "ana", Some(&solution)).await.status(), 202);
    eventually("the client to be let through again", Duration::from_secs(10), || async {
        (challenge_from("203.0.113.1").await.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn with_the_rate_limit_off_challenges_are_not_limited_either() {
    // What the benchmark runs with (APP_RATE_LIMIT__ENABLED=false): one address for a crowd.
    let mut settings = test_settings();
    settings.rate_limit.enabled = false;
    settings.rate_limit.challenges.per_second = 1.0;
    settings.rate_limit.challenges.burst = 1;
    let app = spawn_with(settings, false).await;
    for _ in 0..20 {
        app.challenge(OPEN).await;
    }
}
