//! The API's connection to RabbitMQ: one confirm-mode channel, kept alive by a supervisor that
//! reconnects with backoff (`voting::reconnect`). While it is down, `channel()` is `None` and
//! votes answer 503.
//!
//! Flow control: when RabbitMQ raises a memory or disk alarm it sends `connection.blocked` and
//! stops reading from publishing connections, so a publish would wait as long as the alarm
//! lasts. The link follows the connection's events: while blocked, `is_blocked()` is true,
//! votes are refused at once (503, before their captcha is spent), readiness is red and
//! `paredao_broker_blocked` is 1. Whatever else happens, a publish and its confirm each have a
//! bounded wait (`publish_timeout`, the batcher's confirm timeout).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, Event};
use tokio_util::sync::CancellationToken;
use voting::broker::{self, Topology};
use voting::configuration::BrokerSettings;
use voting::health::Dependency;
use voting::reconnect::{self, Session};
use voting::vote::VoteBatch;

use crate::batcher::{BatchSink, Confirm, PublishError};

pub struct BrokerLink {
    settings: BrokerSettings,
    topology: Topology,
    channel: RwLock<Option<Channel>>,
    /// The broker said `connection.blocked` and has not said `connection.unblocked` since.
    blocked: AtomicBool,
    /// The longest a publish may take to be handed to the connection.
    publish_timeout: Duration,
    /// Connected, as the supervisor last saw it (readiness asks the channel itself).
    connected: Dependency,
}

/// How often the supervisor looks at the connection; a lost connection is noticed within this.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);

impl BrokerLink {
    /// Starts the supervisor; it stops (closing the connection) when `stop` is cancelled.
    /// `publish_timeout`: how long a publish may wait to be handed to the connection.
    pub fn start(
        settings: BrokerSettings,
        publish_timeout: Duration,
        stop: CancellationToken,
    ) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let link = Arc::new(Self {
            topology: Topology::new(&settings),
            settings,
            channel: RwLock::new(None),
            blocked: AtomicBool::new(false),
            connected: Dependency::new().metered("paredao_broker_connected"),
            publish_timeout,
        });
        metrics::gauge!("paredao_broker_blocked").set(0.0);
        let task = {
            let link = link.clone();
            tokio::spawn(async move { reconnect::supervise(&*link, &stop).await })
        };
        (link, task)
    }

    pub fn channel(&self) -> Option<Channel> {
        self.channel.read().expect("lock").clone()
    }

    pub fn is_connected(&self) -> bool {
        self.channel().is_some_and(|c| c.status().connected())
    }

    /// The broker refuses new messages for now (a memory or disk alarm).
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }

    fn set_blocked(&self, blocked: bool, reason: &str) {
        let was = self.blocked.swap(blocked, Ordering::Relaxed);
        metrics::gauge!("paredao_broker_blocked").set(if blocked { 1.0 } else { 0.0 });
        if blocked && !was {
            tracing::error!(reason, "RabbitMQ blocked publishing (a resource alarm); votes answer 503 until it lifts");
        } else if was && !blocked {
            tracing::info!("RabbitMQ unblocked publishing; votes are accepted again");
        }
    }

    fn set_channel(&self, channel: Option<Channel>) {
        *self.channel.write().expect("lock") = channel;
    }

    /// Returns true when stopped on purpose, false when the connection or channel died.
    async fn watch(&self, connection: &Connection, channel: &Channel, stop: &CancellationToken) -> bool {
        let mut events = connection.events_listener();
        // A notice that came before the listener was attached.
        self.set_blocked(connection.status().blocked(), "blocked when connected");
        loop {
            tokio::select! {
                _ = stop.cancelled() => return true,
                event = events.next() => match event {
                    Some(Event::ConnectionBlocked(reason)) => self.set_blocked(true, &reason),
                    Some(Event::ConnectionUnblocked) => self.set_blocked(false, ""),
                    Some(_) => {}
                    // The listener ends with the connection; the status check below sees it.
                    None => tokio::time::sleep(WATCH_INTERVAL).await,
                },
                _ = tokio::time::sleep(WATCH_INTERVAL) => {}
            }
            if !connection.status().connected() || !channel.status().connected() {
                return false;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("RabbitMQ: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the connection or its channel closed")]
    Lost,
}

/// The supervisor's view: one confirm-mode channel on a connection of its own.
impl Session for &BrokerLink {
    type Connection = (Connection, Channel);
    type Error = LinkError;
    const CANNOT_CONNECT: &'static str = "cannot connect to RabbitMQ; retrying";
    const LOST: &'static str = "lost the connection to RabbitMQ; votes answer 503 until it is back";

    fn health(&self) -> &Dependency {
        &self.connected
    }

    async fn connect(&mut self) -> Result<(Connection, Channel), LinkError> {
        let connection = broker::connect(&self.settings, "paredao-api").await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        self.topology.declare(&channel).await?;
        Ok((connection, channel))
    }

    async fn serve(
        &mut self,
        (connection, channel): (Connection, Channel),
        stop: &CancellationToken,
    ) -> Result<(), LinkError> {
        tracing::info!(queue = %self.topology.queue, "connected to RabbitMQ");
        self.set_channel(Some(channel.clone()));
        let stopped = self.watch(&connection, &channel, stop).await;
        self.set_channel(None);
        // A new connection starts unblocked; the broker says so again if it is not.
        self.set_blocked(false, "");
        if !stopped {
            return Err(LinkError::Lost);
        }
        let _ = connection.close(200, "api shutting down".into()).await;
        Ok(())
    }
}

impl BatchSink for BrokerLink {
    fn publish<'a>(&'a self, batch: &'a VoteBatch) -> BoxFuture<'a, Result<Confirm, PublishError>> {
        Box::pin(async move {
            if self.is_blocked() {
                return Err(PublishError::BrokerBlocked);
            }
            let channel = self.channel().ok_or(PublishError::BrokerUnavailable)?;
            let properties = BasicProperties::default()
                .with_delivery_mode(2) // persistent: on disk before the broker confirms
                .with_content_type("application/json".into())
                .with_message_id(batch.id.to_string().into())
                .with_timestamp((batch.sealed_at_ms / 1000) as u64);
            let body = batch.encode();
            let publish = channel.basic_publish(
                "".into(),
                self.topology.queue.as_str().into(),
                // mandatory: a batch that reaches no queue comes back instead of vanishing.
                BasicPublishOptions { mandatory: true, ..Default::default() },
                &body,
                properties,
            );
            let confirm = tokio::time::timeout(self.publish_timeout, publish)
                .await
                .map_err(|_| {
                    tracing::warn!(timeout = ?self.publish_timeout, "publishing a vote batch did not finish in time");
                    PublishError::PublishTimeout
                })?
                .map_err(|e| {
                    tracing::warn!(error = %e, "publishing a vote batch failed");
                    PublishError::BrokerUnavailable
                })?;
            let confirm: Confirm = Box::pin(async move {
                match confirm.await {
                    Ok(Confirmation::Ack(None)) => Ok(()),
                    Ok(Confirmation::Ack(Some(_returned))) => Err(PublishError::Unroutable),
                    Ok(Confirmation::Nack(_)) => Err(PublishError::Nacked),
                    Ok(Confirmation::NotRequested) => Err(PublishError::BrokerUnavailable),
                    Err(e) => {
                        tracing::warn!(error = %e, "waiting for a publisher confirm failed");
                        Err(PublishError::BrokerUnavailable)
                    }
                }
            });
            Ok(confirm)
        })
    }
}
