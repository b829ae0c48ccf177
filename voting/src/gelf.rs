//! Logs to Graylog: every tracing event (and every finished HTTP request) as a GELF 1.1 message
//! over TCP, null-byte framed, next to the bunyan lines on stdout.
//!
//! Written here rather than taken from `tracing-gelf`, which maps INFO to level 5 and DEBUG to 6,
//! sends no timestamp and panics if installed twice. Levels here are syslog's: error 3, warn 4,
//! info 6, debug and trace 7; `timestamp` is when the event happened, not when Graylog got it.
//! The fields of the spans an event happened in (`request_id`, `paredao`, `participant`, ...,
//! kept by the bunyan `JsonStorageLayer`) become additional fields, so a message can be found
//! by request id and joined with nginx's access log.
//!
//! Logging must never slow a vote down: events are encoded on the caller's thread and handed to a
//! bounded queue; one background thread writes them, reconnecting with backoff when Graylog is
//! away. When the queue is full, messages are dropped and counted (`paredao_gelf_dropped_total`).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_bunyan_formatter::JsonStorage;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::backoff::Backoff;

/// How many messages may wait for the writer: a few seconds of a busy replica's logs.
const QUEUE: usize = 65_536;

/// The span whose end is logged as the request's access line.
const REQUEST_SPAN: &str = "http_request";

pub fn syslog_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

pub struct GelfLayer {
    service: String,
    host: String,
    queue: SyncSender<Vec<u8>>,
    pending: Arc<AtomicUsize>,
}

/// Waits (a little) on drop for the queued messages to be written, so that the last lines of a
/// process that shuts down cleanly reach Graylog.
pub struct GelfFlushGuard {
    pending: Arc<AtomicUsize>,
}

impl Drop for GelfFlushGuard {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.pending.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl GelfLayer {
    /// A layer that sends to `address` (`host:port` of a GELF TCP input) as `service`.
    pub fn new(service: &str, address: String) -> (Self, GelfFlushGuard) {
        let (queue, outbox) = sync_channel(QUEUE);
        let pending = Arc::new(AtomicUsize::new(0));
        {
            let pending = pending.clone();
            std::thread::Builder::new()
                .name("gelf-writer".into())
                .spawn(move || write_forever(&address, outbox, &pending))
                .expect("a thread can be started");
        }
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into());
        (Self { service: service.to_string(), host, queue, pending: pending.clone() }, GelfFlushGuard { pending })
    }

    fn send(&self, message: Map<String, Value>) {
        let Ok(mut bytes) = serde_json::to_vec(&message) else { return };
        bytes.push(0);
        self.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.queue.try_send(bytes) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            metrics::counter!("paredao_gelf_dropped_total").increment(1);
        }
    }

    fn base(&self, short_message: String, level: u8, timestamp: f64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("version".into(), "1.1".into());
        m.insert("host".into(), self.host.clone().into());
        m.insert(
            "short_message".into(),
            (if short_message.is_empty() { "-".to_string() } else { short_message }).into(),
        );
        m.insert("timestamp".into(), timestamp.into());
        m.insert("level".into(), level.into());
        m.insert("_service".into(), self.service.clone().into());
        m
    }
}

fn now_seconds() -> f64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    // Milliseconds are what Graylog keeps.
    (d.as_millis() as f64) / 1000.0
}

/// A field as GELF allows it: `_` + word characters, dots and dashes; never `_id`.
fn add_field(message: &mut Map<String, Value>, name: &str, value: Value) {
    let clean: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '_' }).collect();
    let key = if clean == "id" { "_field_id".to_string() } else { format!("_{clean}") };
    // GELF values are strings or numbers.
    let value = match value {
        Value::String(_) | Value::Number(_) => value,
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Null => return,
        other => Value::String(other.to_string()),
    };
    // An empty string says nothing (an unset request id) and Graylog refuses empty fields.
    if value.as_str() == Some("") {
        return;
    }
    message.insert(key, value);
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: BTreeMap<String, Value>,
}

impl Visit for FieldVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.insert(field.name().to_string(), value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().to_string(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.insert(field.name().to_string(), text.into());
        }
    }
}

/// When a span began, to log a request's duration when it ends.
struct Started(Instant);

impl<S> Layer<S> for GelfLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && span.name() == REQUEST_SPAN
        {
            span.extensions_mut().insert(Started(Instant::now()));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        let mut message = self.base(visitor.message, syslog_level(meta.level()), now_seconds());
        // Outer spans first, so the innermost value of a field wins.
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(storage) = span.extensions().get::<JsonStorage>() {
                    for (k, v) in storage.values() {
                        add_field(&mut message, k, v.clone());
                    }
                }
            }
        }
        for (k, v) in visitor.fields {
            add_field(&mut message, &k, v);
        }
        add_field(&mut message, "target", meta.target().into());
        self.send(message);
    }

    /// A finished request is one info message, the access line: method, path, status, duration.
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        if span.name() != REQUEST_SPAN {
            return;
        }
        let extensions = span.extensions();
        let elapsed_ms = extensions.get::<Started>().map(|s| s.0.elapsed().as_secs_f64() * 1000.0);
        let Some(storage) = extensions.get::<JsonStorage>() else { return };
        let values = storage.values();
        let text = |k: &str| {
            values.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())).unwrap_or_default()
        };
        let short = format!("{} {} {}", text("method"), text("path"), text("status"));
        let mut message = self.base(short, syslog_level(&Level::INFO), now_seconds());
        for (k, v) in values {
            add_field(&mut message, k, v.clone());
        }
        if let Some(ms) = elapsed_ms {
            add_field(&mut message, "elapsed_ms", ((ms * 1000.0).round() / 1000.0).into());
        }
        add_field(&mut message, "target", "access".into());
        self.send(message);
    }
}

/// The writer thread: connect, write what comes, reconnect with backoff when the write fails.
/// A message being written when the connection breaks is retried once on the next connection.
fn write_forever(address: &str, outbox: Receiver<Vec<u8>>, pending: &AtomicUsize) {
    let mut backoff = Backoff::default();
    let mut carried: Option<Vec<u8>> = None;
    loop {
        let stream = match TcpStream::connect(address) {
            Ok(s) => s,
            Err(_) => {
                std::thread::sleep(backoff.next_delay());
                continue;
            }
        };
        backoff.reset();
        let _ = stream.set_nodelay(true);
        let mut writer = std::io::BufWriter::with_capacity(64 * 1024, stream);
        loop {
            let next = match carried.take() {
                Some(m) => m,
                None => match outbox.recv_timeout(Duration::from_millis(200)) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => {
                        if writer.flush().is_err() {
                            break;
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        let _ = writer.flush();
                        return;
                    }
                },
            };
            if writer.write_all(&next).is_err() {
                carried = Some(next);
                break;
            }
            // Flush when nothing else waits: a quiet service's lines go out at once, a busy
            // one's in large writes.
            let done = match outbox.try_recv() {
                Ok(m) => {
                    carried = Some(m);
                    Ok(())
                }
                Err(_) => writer.flush(),
            };
            pending.fetch_sub(1, Ordering::AcqRel);
            if done.is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_syslogs() {
        assert_eq!(syslog_level(&Level::ERROR), 3);
        assert_eq!(syslog_level(&Level::WARN), 4);
        assert_eq!(syslog_level(&Level::INFO), 6);
        assert_eq!(syslog_level(&Level::DEBUG), 7);
        assert_eq!(syslog_level(&Level::TRACE), 7);
    }

    #[test]
    fn fields_are_named_and_typed_as_gelf_allows() {
        let mut m = Map::new();
        add_field(&mut m, "request id", "abc".into());
        add_field(&mut m, "id", "x".into());
        add_field(&mut m, "ok", true.into());
        add_field(&mut m, "empty", "".into());
        add_field(&mut m, "n", 3.into());
        assert_eq!(m["_request_id"], "abc");
        assert_eq!(m["_field_id"], "x");
        assert_eq!(m["_ok"], "true");
        assert_eq!(m["_n"], 3);
        assert!(!m.contains_key("_empty"));
    }
}
