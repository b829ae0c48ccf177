//! Start-up in one place: build everything from `Settings`, bind (port 0 allowed), run until
//! told to stop, then shut down in the order that loses nothing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Request, Uri};
use axum_prometheus::{EndpointLabel, PrometheusMetricLayerBuilder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;
use voting::configuration::Settings;
use voting::store::Store;

use crate::admission::Admission;
use crate::anti_bot::AntiBot;
use crate::anti_bot::rate_limit::RateLimiter;
use crate::anti_bot::spent_challenges::{SpentChallenges, spawn_gossip};
use crate::batcher::{Batcher, BatcherTask};
use crate::broker_link::BrokerLink;
use crate::client::ClientIds;
use crate::error::ApiError;
use crate::fault::FaultInjector;
use crate::header_limit::HeaderLimit;
use crate::openapi::{ApiDoc, SPEC_PATH};
use crate::paredao_cache::ParedaoCache;
use crate::results_cache::ResultsCache;
use crate::routes;
use crate::state::AppState;

pub struct Application {
    listener: TcpListener,
    port: u16,
    router: Router,
    background: Background,
}

/// What runs beside the HTTP server, stopped after it.
struct Background {
    batcher: BatcherTask,
    refreshers_stop: CancellationToken,
    refreshers: Vec<tokio::task::JoinHandle<()>>,
    broker_stop: CancellationToken,
    broker_task: tokio::task::JoinHandle<()>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        // Before anything connects or starts: a placeholder key would sign challenges anybody
        // can forge, and a half-started replica would leave its broker task behind.
        settings.check_api_secrets()?;
        let metrics = voting::metrics_exporter::prometheus_handle();
        // Connecting is lazy: a store that is down at start-up only delays readiness.
        let store = Store::connect(&settings.store).await?;
        let store_health = Arc::new(crate::health::store_health());

        let broker_stop = CancellationToken::new();
        let (broker, broker_task) = BrokerLink::start(
            settings.broker.clone(),
            Duration::from_millis(settings.batcher.confirm_timeout_ms),
            broker_stop.clone(),
        );
        let (spent, spent_news) = SpentChallenges::new(settings.captcha.spent_remembered_max.get());
        let (batcher, batcher_task) = Batcher::start(settings.batcher.clone(), broker.clone());

        let refreshers_stop = CancellationToken::new();
        let paredoes = Arc::new(ParedaoCache::default());
        let results = Arc::new(ResultsCache::default());
        let app = &settings.application;
        let mut refreshers = vec![
            paredoes.clone().spawn_refresher(
                store.clone(),
                settings.seed.clone(),
                Duration::from_millis(app.paredoes_refresh_ms),
                store_health.clone(),
                refreshers_stop.clone(),
            ),
            results.clone().spawn_refresher(
                store.clone(),
                Duration::from_millis(app.results_refresh_ms),
                store_health.clone(),
                refreshers_stop.clone(),
            ),
        ];

        refreshers.push(spawn_gossip(spent.clone(), spent_news, settings.broker.clone(), refreshers_stop.clone()));
        let anti_bot = Arc::new(AntiBot::new(&settings.captcha, spent));
        {
            let anti_bot = anti_bot.clone();
            refreshers.push(voting::periodic::spawn_every(
                Duration::from_secs(30),
                refreshers_stop.clone(),
                move || {
                    anti_bot.purge();
                    std::future::ready(())
                },
            ));
        }
        let fault = Arc::new(FaultInjector::default());
        refreshers.push(fault.clone().spawn_refresher(store.clone(), Duration::from_secs(1), refreshers_stop.clone()));
        let rate_limiter = Arc::new(RateLimiter::votes(&settings.rate_limit));
        refreshers.push(rate_limiter.clone().spawn_purger(Duration::from_secs(30), refreshers_stop.clone()));
        let challenge_rate_limiter = Arc::new(RateLimiter::challenges(&settings.rate_limit));
        refreshers.push(challenge_rate_limiter.clone().spawn_purger(Duration::from_secs(30), refreshers_stop.clone()));

        let accounts = Arc::new(crate::accounts::Accounts::new(&settings.auth));
        accounts.passwords.warm_up();
        refreshers.push(accounts.clone().spawn_janitor(store.clone(), refreshers_stop.clone()));

        let state = AppState {
            admission: Arc::new(Admission::new(&settings.admission)),
            paredoes,
            results,
            batcher,
            broker,
            store_health,
            store: store.clone(),
            fault,
            admin_token: settings.admin.token().map(Arc::from),
            anti_bot: anti_bot.clone(),
            rate_limiter,
            challenge_rate_limiter,
            client_ids: Arc::new(ClientIds::new(settings.captcha.hmac_key())),
            trusted_proxies: Arc::new(app.trusted_proxies.clone()),
            metrics,
            uploads: Arc::new(settings.uploads.clone()),
            accounts,
        };
        let router = router(state, app.body_limit_bytes, HeaderLimit::new(app));

        let listener = TcpListener::bind((app.host.as_str(), app.port)).await?;
        let port = listener.local_addr()?.port();
        tracing::info!(port, anti_bot = anti_bot.name(), "api listening");
        Ok(Self {
            listener,
            port,
            router,
            background: Background { batcher: batcher_task, refreshers_stop, refreshers, broker_stop, broker_task },
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight requests finish
    /// (their votes are confirmed by the broker first), flushes the batcher, and closes the
    /// broker connection last.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        // Connect info: the peer address decides whose X-Real-IP is believed.
        let served =
            axum::serve(self.listener, self.router.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .with_graceful_shutdown(shutdown)
                .await;
        let bg = self.background;
        bg.batcher.close().await;
        bg.refreshers_stop.cancel();
        for r in bg.refreshers {
            let _ = r.await;
        }
        bg.broker_stop.cancel();
        let _ = bg.broker_task.await;
        tracing::info!("api stopped");
        Ok(served?)
    }
}

pub fn router(state: AppState, body_limit: usize, header_limit: HeaderLimit) -> Router {
    let (api_router, spec) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::paredao::get_paredao))
        .routes(routes!(routes::votes::cast_vote))
        .routes(routes!(routes::challenge::get_challenge))
        .routes(routes!(routes::results::get_results))
        .routes(routes!(routes::stats::get_stats))
        .routes(routes!(routes::final_result::get_final))
        .routes(routes!(routes::export::export))
        .routes(routes!(routes::history::get_history))
        .merge(voting::health::router(state.metrics.clone(), {
            let admission = state.admission.clone();
            move || admission.publish_gauges()
        }))
        .routes(routes!(routes::health::ready))
        .routes(routes!(routes::admin::get_fault, routes::admin::put_fault))
        .routes(routes!(routes::paredoes_admin::list_paredoes, routes::paredoes_admin::create_paredao))
        .routes(routes!(routes::paredoes_admin::get_paredao, routes::paredoes_admin::update_paredao))
        .routes(routes!(routes::paredoes_admin::open_paredao))
        .routes(routes!(routes::paredoes_admin::close_paredao))
        // The one route whose body may be larger than a vote's: a photo.
        .routes(
            routes!(routes::paredoes_admin::put_photo)
                .layer(DefaultBodyLimit::max(state.uploads.max_photo_bytes.saturating_add(1))),
        )
        .routes(routes!(crate::accounts::routes::login))
        .routes(routes!(crate::accounts::routes::get_session))
        .routes(routes!(crate::accounts::routes::logout))
        .routes(routes!(crate::accounts::admin::list_accounts, crate::accounts::admin::create_account))
        .routes(routes!(crate::accounts::admin::update_account, crate::accounts::admin::delete_account))
        .routes(routes!(crate::audit::get_audit))
        .split_for_parts();

    let (prometheus_layer, _) = PrometheusMetricLayerBuilder::new()
        // Unmatched paths would otherwise each become a label value.
        .with_endpoint_label_type(EndpointLabel::MatchedPathWithFallbackFn(|_| "unmatched".to_string()))
        .with_metrics_from_fn(|| state.metrics.clone())
        .build_pair();

    api_router
        .merge(SwaggerUi::new("/swagger").url(SPEC_PATH, spec))
        .fallback(not_found)
        // After every route: it applies to the routes already there.
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        // Inside the trace and metrics layers, so a refusal is in the access log and counted.
        .layer(axum::middleware::from_fn_with_state(header_limit, crate::header_limit::enforce))
        .layer(prometheus_layer)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    // nginx sends its $request_id; without nginx SetRequestIdLayer made one.
                    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    // One span per request; its END line (with `elapsed_milliseconds`) is the access
                    // log line, so no separate response event is written. Handlers record the
                    // paredão and participant into it.
                    tracing::info_span!(
                        "http_request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %request_id,
                        status = tracing::field::Empty,
                        paredao = tracing::field::Empty,
                        participant = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(|res: &axum::http::Response<_>, _latency: Duration, span: &tracing::Span| {
                    span.record("status", res.status().as_u16());
                })
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

/// The route exists, not with this method. axum adds the `Allow` header.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed { method: method.to_string(), path: uri.path().to_string() }
}
