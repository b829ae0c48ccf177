//! Start-up in one place: build from `Settings`, bind the HTTP side (port 0 allowed), consume
//! until told to stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use voting::configuration::Settings;
use voting::store::Store;

use crate::freezer::{self, Freezer};
use crate::spent_janitor::{self, Janitor, QueuePosition};
use crate::status::Status;
use crate::worker::Worker;

pub struct Consumer {
    listener: TcpListener,
    port: u16,
    worker: Worker,
    store: Store,
    status: Arc<Status>,
    position: Arc<QueuePosition>,
    freezer: Freezer,
    freeze_every: Duration,
}

/// How often an idle consumer checks that the store still answers (for readiness).
const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(1);

impl Consumer {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        voting::metrics_exporter::prometheus_handle();
        let store = Store::connect(&settings.store).await?;
        let status = Arc::new(Status::default());
        let position = Arc::new(QueuePosition::default());
        let worker = Worker::new(
            settings.consumer.clone(),
            settings.broker.clone(),
            store.clone(),
            status.clone(),
            position.clone(),
        );
        let listener = TcpListener::bind((settings.consumer.host.as_str(), settings.consumer.port)).await?;
        let port = listener.local_addr()?.port();
        tracing::info!(port, "consumer health and metrics listening");
        let freezer = Freezer::new(&settings, store.clone());
        let freeze_every = freezer::every(&settings);
        Ok(Self { listener, port, worker, store, status, position, freezer, freeze_every })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let http_stop = CancellationToken::new();
        let router = crate::http::router(self.status.clone(), voting::metrics_exporter::prometheus_handle());
        let http = {
            let http_stop = http_stop.clone();
            tokio::spawn(async move {
                axum::serve(self.listener, router).with_graceful_shutdown(http_stop.cancelled_owned()).await
            })
        };
        let probe = {
            let (store, status) = (self.store.clone(), self.status.clone());
            voting::periodic::spawn_every(STORE_PROBE_INTERVAL, stop.clone(), move || {
                let (store, status) = (store.clone(), status.clone());
                async move { status.store.record(store.ping().await.is_ok()) }
            })
        };
        let janitor = {
            let (store, position) = (self.store.clone(), self.position.clone());
            let janitor = Arc::new(tokio::sync::Mutex::new(Janitor::new(spent_janitor::MARGIN)));
            voting::periodic::spawn_every(spent_janitor::EVERY, stop.clone(), move || {
                let (store, position, janitor) = (store.clone(), position.clone(), janitor.clone());
                async move { spent_janitor::tidy(&store, &mut *janitor.lock().await, &position).await }
            })
        };
        let freezer = {
            let freezer = Arc::new(tokio::sync::Mutex::new(self.freezer));
            let task = {
                let freezer = freezer.clone();
                voting::periodic::spawn_every(self.freeze_every, stop.clone(), move || {
                    let freezer = freezer.clone();
                    async move { freezer::step(&mut *freezer.lock().await).await }
                })
            };
            (freezer, task)
        };
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                shutdown.await;
                stop.cancel();
            });
        }
        self.worker.run(stop.clone()).await;
        stop.cancel();
        let _ = probe.await;
        let _ = janitor.await;
        let _ = freezer.1.await;
        freezer.0.lock().await.close().await;
        http_stop.cancel();
        http.await??;
        Ok(())
    }
}
