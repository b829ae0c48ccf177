//! Spawns the real API (and, where asked, a consumer) on random ports against the test
//! RabbitMQ and MongoDB-protocol server, each test with its own queue and database.

use std::time::Duration;

use api::anti_bot::altcha::ChallengeView;
use api::startup::Application;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use voting::configuration::Settings;
use voting::testing::eventually;

pub use voting::testing::{CLOSED, OPEN, SCHEDULED, test_settings};

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    api_stop: CancellationToken,
    api: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    consumer_stop: CancellationToken,
}

/// The API and a consumer, ready (broker connected, store reachable, paredões loaded).
pub async fn spawn_app() -> TestApp {
    spawn_with(test_settings(), true).await
}

pub async fn spawn_with(settings: Settings, with_consumer: bool) -> TestApp {
    voting::telemetry::init_test_subscriber();
    let consumer_stop = CancellationToken::new();
    if with_consumer {
        let consumer = consumer::startup::Consumer::build(settings.clone()).await.expect("consumer builds");
        let stop = consumer_stop.clone();
        tokio::spawn(consumer.run_until_stopped(async move { stop.cancelled().await }));
    }
    let app = Application::build(settings.clone()).await.expect("api builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let api_stop = CancellationToken::new();
    let stop = api_stop.clone();
    let api = tokio::spawn(app.run_until_stopped(async move { stop.cancelled().await }));
    let test_app = TestApp {
        address,
        client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
        settings,
        api_stop,
        api: Some(api),
        consumer_stop,
    };
    test_app.wait_until_ready().await;
    test_app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn wait_until_ready(&self) {
        eventually("the api to be ready", Duration::from_secs(30), || async {
            let r = self.client.get(self.url("/health/ready")).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await
    }

    /// A vote as a browser casts it: fetch a challenge, solve it, post the vote with it.
    pub async fn vote(&self, paredao: &str, participant: &str) -> reqwest::Response {
        let solution = self.solved_challenge(paredao).await;
        self.vote_with(paredao, participant, Some(&solution)).await
    }

    pub async fn vote_with(&self, paredao: &str, participant: &str, captcha: Option<&str>) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/paredoes/{paredao}/votes")))
            .json(&serde_json::json!({ "participant_id": participant, "captcha": captcha }))
            .send()
            .await
            .expect("the api answers")
    }

    pub async fn challenge(&self, paredao: &str) -> ChallengeView {
        let r = self
            .client
            .get(self.url(&format!("/api/paredoes/{paredao}/challenge")))
            .send()
            .await
            .expect("the api answers");
        assert_eq!(r.status(), 200, "a challenge for {paredao}");
        r.json().await.expect("a challenge")
    }

    /// A challenge for `paredao`, solved: what the widget puts in the vote's `captcha`.
    pub async fn solved_challenge(&self, paredao: &str) -> String {
        // Closed or unknown paredões have challenges too (or a 404): the vote is refused later.
        match self.client.get(self.url(&format!("/api/paredoes/{paredao}/challenge"))).send().await {
            Ok(r) if r.status() == 200 => api::anti_bot::altcha::solve(&r.json().await.expect("a challenge")),
            _ => String::new(),
        }
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.expect("the api answers");
        let status = r.status().as_u16();
        (status, r.json().await.expect("a JSON body"))
    }

    /// The production statistics, asked for with the SRE bearer token.
    pub async fn stats(&self, paredao: &str) -> Value {
        let r = self
            .client
            .get(self.url(&format!("/api/paredoes/{paredao}/stats")))
            .bearer_auth(self.settings.admin.token().unwrap_or(ADMIN_TOKEN))
            .send()
            .await
            .expect("the api answers");
        let status = r.status().as_u16();
        let body: Value = r.json().await.expect("a JSON body");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until the statistics count exactly `expected` votes (failing if they ever
    /// count more), and returns them.
    pub async fn wait_for_total(&self, paredao: &str, expected: u64) -> Value {
        eventually(&format!("{expected} votes counted in {paredao}"), Duration::from_secs(60), || async {
            let stats = self.stats(paredao).await;
            let total = stats["total_votes"].as_u64().unwrap();
            assert!(total <= expected, "counted {total} votes, more than the {expected} accepted");
            (total == expected).then_some(stats)
        })
        .await
    }

    /// Waits until the statistics count at least `least` votes and then no more than `most`.
    pub async fn wait_for_total_between(&self, paredao: &str, least: u64, most: u64) -> Value {
        eventually(&format!("{least} to {most} votes counted in {paredao}"), Duration::from_secs(60), || async {
            let stats = self.stats(paredao).await;
            let total = stats["total_votes"].as_u64().unwrap();
            assert!(total <= most, "counted {total} votes, more than the {most} possible");
            (total >= least).then_some(stats)
        })
        .await
    }

    /// Stops the API the way SIGTERM does and waits until it has shut down.
    pub async fn stop_api(&mut self) {
        self.api_stop.cancel();
        if let Some(api) = self.api.take() {
            api.await.expect("the api task").expect("the api stops cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.api_stop.cancel();
        self.consumer_stop.cancel();
    }
}

/// The SRE bearer token of `test_settings`: an admin of the production team.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Settings whose only seeded paredão is the closed one: nothing is open, so a test may open
/// paredões of its own without overlapping a seeded window.
pub fn settings_with_nothing_open() -> Settings {
    let mut s = test_settings();
    s.seed.retain(|p| p.id.as_str() == CLOSED);
    s
}

impl TestApp {
    /// A request to the admin API as an admin (the SRE token), JSON in and out.
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.expect("the api answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a paredão through the admin API (asserting 201), with `participants` named, its
    /// window from `opens_in` to `closes_in` from now, and returns it.
    pub async fn create_paredao(
        &self,
        id: &str,
        participants: &[&str],
        opens_in: chrono::Duration,
        closes_in: chrono::Duration,
        visibility: &str,
    ) -> Value {
        let now = chrono::Utc::now();
        let body = serde_json::json!({
            "id": id,
            "title": format!("Paredão {id}"),
            "participants": participants.iter().map(|n| serde_json::json!({ "name": n })).collect::<Vec<_>>(),
            "opens_at": now + opens_in,
            "closes_at": now + closes_in,
            "results_visibility": visibility,
        });
        let (status, created) = self.admin(reqwest::Method::POST, "/api/admin/paredoes", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created
    }
}

/// The SRE bearer token of `test_settings`: a Producer (and an admin) for the team endpoints.
pub const TEAM_TOKEN: &str = "test-admin-token";

impl TestApp {
    /// A GET as a member of the production team (the bearer token).
    pub async fn team_get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(TEAM_TOKEN).send().await.expect("the api answers")
    }

    /// A GET as a member of the production team, answered 200 with JSON.
    pub async fn team_json(&self, path: &str) -> Value {
        let r = self.team_get(path).await;
        let status = r.status();
        let body: Value = r.json().await.expect("a JSON body");
        assert_eq!(status, 200, "{path}: {body}");
        body
    }
}

// ---------------------------------------------------------------------------------------------
// The production team's accounts and sessions
// ---------------------------------------------------------------------------------------------

/// A signed-in browser: its cookie and the session's CSRF token.
pub struct SignedIn {
    pub cookie: String,
    pub csrf_token: String,
    pub body: Value,
}

impl TestApp {
    /// Makes an account straight in the store, as `api admin create` does.
    pub async fn add_account(&self, name: &str, role: voting::accounts::Role, password: &str) {
        let store = voting::store::Store::connect(&self.settings.store).await.expect("the store");
        let account = voting::accounts::Account {
            name: voting::accounts::AccountName::parse(name).expect("a name"),
            role,
            password_hash: api::accounts::password::hash_now(password).expect("a hash"),
            created_at: chrono::Utc::now(),
            failed_logins: 0,
            locked_until: None,
        };
        store.create_account(&account).await.expect("the account is created");
    }

    pub async fn login_response(&self, name: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/auth/login"))
            .json(&serde_json::json!({ "name": name, "password": password }))
            .send()
            .await
            .expect("the api answers")
    }

    /// Signs in, failing the test unless it works.
    pub async fn login(&self, name: &str, password: &str) -> SignedIn {
        let r = self.login_response(name, password).await;
        assert_eq!(r.status(), 200, "login of {name}");
        let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        SignedIn { cookie, csrf_token: body["csrf_token"].as_str().unwrap().to_string(), body }
    }

    /// A request with the session's cookie (and its CSRF token, when `csrf` is given).
    pub fn as_signed_in(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &SignedIn,
        csrf: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self.client.request(method, self.url(path)).header("cookie", &who.cookie);
        if let Some(token) = csrf {
            request = request.header("x-csrf-token", token);
        }
        request
    }
}

impl TestApp {
    /// Makes the admin `root` and signs in as it.
    pub async fn login_with_new_admin(&self) -> SignedIn {
        self.add_account("root", voting::accounts::Role::Admin, "root password, long").await;
        self.login("root", "root password, long").await
    }
}
