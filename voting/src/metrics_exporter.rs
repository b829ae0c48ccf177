//! The process's Prometheus recorder. `metrics` has one global recorder per process; both the
//! API's axum-prometheus layer and our own counters write to it, and `/metrics` renders it.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Latency buckets from 50 µs to 10 s: the API answers most requests in well under a
/// millisecond, which the usual 5 ms lowest bucket would hide.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Buckets for sizes counted in votes (batch sizes).
pub const VOTES_BUCKETS: &[f64] =
    &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];

/// Buckets for the captcha work asked of a client (`maxnumber`: hashes at most), from the
/// trivial benchmark setting to the adaptive ceiling.
pub const WORK_BUCKETS: &[f64] = &[1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 2e7, 5e7, 1e8];

/// Installs the recorder on first use and returns its handle ever after, so that several apps
/// in one test process share it instead of panicking on a second install.
pub fn prometheus_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_votes".into()), VOTES_BUCKETS))
                // Without buckets a histogram is rendered as a summary, which cannot be
                // aggregated across replicas.
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("paredao_captcha_max_number".into()), WORK_BUCKETS)
                })
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).expect("no other metrics recorder is installed");
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// Histograms keep their samples until rendered; drain them on a timer so memory stays flat
/// between scrapes, on the runtime that installed the recorder. Never stopped: the recorder
/// lives as long as the process.
fn spawn_upkeep(handle: PrometheusHandle) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    crate::periodic::spawn_every(Duration::from_secs(5), CancellationToken::new(), move || {
        handle.run_upkeep();
        std::future::ready(())
    });
}
