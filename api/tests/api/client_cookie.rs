//! The `paredao_cid` cookie is the API's own: issued signed, followed when it comes back, and
//! anything else a client writes there is replaced, never remembered.

use crate::helpers::{OPEN, TestApp, spawn_with, test_settings};

/// A challenge asked for as a viewer behind nginx (`X-Real-IP`) with `cookie`, if any: the
/// challenge's `maxnumber` and the `paredao_cid` value the response sets, if it sets one.
async fn challenge_as(app: &TestApp, ip: &str, cookie: Option<&str>) -> (u64, Option<String>) {
    let mut request = app.client.get(app.url(&format!("/api/paredoes/{OPEN}/challenge"))).header("x-real-ip", ip);
    if let Some(value) = cookie {
        request = request.header("cookie", format!("paredao_cid={value}"));
    }
    let r = request.send().await.expect("the api answers");
    assert_eq!(r.status(), 200);
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.strip_prefix("paredao_cid=")?.split(';').next().map(String::from))
        .next();
    let challenge: serde_json::Value = r.json().await.unwrap();
    (challenge["maxnumber"].as_u64().unwrap(), set)
}

/// Difficulty that rises after 3 quick challenges and takes minutes to fall back.
async fn app() -> TestApp {
    let mut settings = test_settings();
    settings.captcha.difficulty.base = 1_000;
    settings.captcha.difficulty.max = 1_000_000;
    settings.captcha.difficulty.free_per_window = 3;
    settings.captcha.difficulty.growth = 2.0;
    settings.captcha.difficulty.window_secs = 600;
    spawn_with(settings, false).await
}

fn is_signed_id(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn a_browser_without_a_cookie_gets_a_signed_one_of_fixed_length_which_is_then_followed() {
    let app = app().await;
    let (base, issued) = challenge_as(&app, "203.0.113.1", None).await;
    assert_eq!(base, 1_000);
    let issued = issued.expect("a cookie is set");
    assert!(is_signed_id(&issued), "{issued}");

    // Kept by the browser: not set again, and its history follows it to another address.
    for _ in 0..10 {
        let (_, again) = challenge_as(&app, "203.0.113.1", Some(&issued)).await;
        assert_eq!(again, None, "a cookie we issued is kept");
    }
    let (elsewhere, _) = challenge_as(&app, "198.51.100.9", Some(&issued)).await;
    assert!(elsewhere > 1_000, "the same browser behind another address still pays: {elsewhere}");
}

#[tokio::test]
async fn a_7_kb_cookie_is_replaced_with_a_signed_one_and_never_stored() {
    let app = app().await;
    let huge = "a".repeat(7 * 1024);
    for _ in 0..10 {
        let (_, set) = challenge_as(&app, "203.0.113.1", Some(&huge)).await;
        let set = set.expect("the cookie is replaced");
        assert!(is_signed_id(&set), "{set}");
    }
    // Had the value become a key, its ten challenges would follow it to another address.
    let (elsewhere, _) = challenge_as(&app, "198.51.100.9", Some(&huge)).await;
    assert_eq!(elsewhere, 1_000, "the value the client wrote was not remembered");
}

#[tokio::test]
async fn a_forged_or_foreign_cookie_is_replaced_and_never_stored() {
    let app = app().await;
    let (_, issued) = challenge_as(&app, "203.0.113.1", None).await;
    let issued = issued.unwrap();
    // The right shape, the wrong signature: one digit of the id changed.
    let mut forged = issued.clone().into_bytes();
    forged[0] = if forged[0] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).unwrap();
    // Signed, but by another deployment's key.
    let (_, foreign) = api::client::ClientIds::new("another-deployment").issue();

    for (i, value) in [&forged, &foreign, &"0".repeat(64), &"not even hex".to_string()].into_iter().enumerate() {
        for _ in 0..10 {
            let (_, set) = challenge_as(&app, "203.0.113.2", Some(value)).await;
            let set = set.unwrap_or_else(|| panic!("{value} is replaced"));
            assert!(is_signed_id(&set) && &set != value, "{set}");
        }
        // Each time from an address of its own, which has no history either.
        let (elsewhere, _) = challenge_as(&app, &format!("198.51.100.{i}"), Some(value)).await;
        assert_eq!(elsewhere, 1_000, "{value} was not remembered");
    }
}
