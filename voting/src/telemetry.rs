//! Logging, in one place for both services: bunyan JSON lines, one per event, on a sink
//! (stdout in the services, nothing in tests unless `TEST_LOG` is set).

use tracing::Subscriber;
use tracing::subscriber::set_global_default;
use tracing_bunyan_formatter::{BunyanFormattingLayer, JsonStorageLayer};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Registry, layer::SubscriberExt};

use crate::configuration::TelemetrySettings;
use crate::gelf::{GelfFlushGuard, GelfLayer};

/// `env_filter` is the default filter; `RUST_LOG` wins when set.
pub fn get_subscriber<Sink>(
    name: &str,
    env_filter: &str,
    sink: Sink,
) -> impl Subscriber + Send + Sync + for<'a> LookupSpan<'a>
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let env_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(env_filter));
    Registry::default().with(env_filter).with(JsonStorageLayer).with(BunyanFormattingLayer::new(name.into(), sink))
}

/// The services' logging: bunyan JSON on stdout, and GELF to Graylog when
/// `telemetry.gelf_address` is set. Keep the returned guard until the process ends: dropping it
/// waits briefly for the last messages to be sent.
pub fn init_service_telemetry(name: &str, settings: &TelemetrySettings) -> Option<GelfFlushGuard> {
    let base = get_subscriber(name, "info", std::io::stdout);
    match settings.gelf_address.as_deref().filter(|a| !a.trim().is_empty()) {
        Some(address) => {
            let (layer, guard) = GelfLayer::new(name, address.trim().to_string());
            init_subscriber(base.with(layer));
            tracing::info!(gelf_address = address, "logging to Graylog (GELF over TCP) too");
            Some(guard)
        }
        None => {
            init_subscriber(base);
            None
        }
    }
}

/// Installs the subscriber for the whole process; call once, at start-up.
pub fn init_subscriber(subscriber: impl Subscriber + Send + Sync) {
    // Libraries that still log through `log` (lapin's dependencies) reach the same JSON lines.
    let _ = tracing_log::LogTracer::init();
    set_global_default(subscriber).expect("the tracing subscriber is installed once");
}

/// For tests: logs on stdout when `TEST_LOG` is set, otherwise nowhere. Safe to call often.
pub fn init_test_subscriber() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            init_subscriber(get_subscriber("test", "info", std::io::stdout));
        } else {
            init_subscriber(get_subscriber("test", "info", std::io::sink));
        }
    });
}
