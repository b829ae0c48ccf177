//! RabbitMQ: the connection and the topology both services declare (idempotently), so that
//! either may start first.
//!
//! ```text
//! votes (durable) --rejected--> votes.dlx (fanout) --> votes.dead (durable)
//! votes.spent (fanout, transient) --> one exclusive queue per API replica
//! ```
//!
//! `votes.spent` carries the API replicas' news of spent captcha challenges (the API's
//! `spent_challenges`): nothing in it needs to outlive a broker restart, so it is not durable,
//! and each replica's queue goes with its connection.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::configuration::BrokerSettings;

#[derive(Debug, Clone)]
pub struct Topology {
    pub queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub queue_type: String,
    pub spent_exchange: String,
}

impl Topology {
    pub fn new(settings: &BrokerSettings) -> Self {
        Self {
            queue: settings.queue.clone(),
            dead_letter_exchange: format!("{}.dlx", settings.queue),
            dead_letter_queue: format!("{}.dead", settings.queue),
            queue_type: settings.queue_type.clone(),
            spent_exchange: format!("{}.spent", settings.queue),
        }
    }

    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        channel
            .exchange_declare(
                self.dead_letter_exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        channel.queue_declare(self.dead_letter_queue.as_str().into(), durable, self.queue_arguments(None)).await?;
        channel
            .queue_bind(
                self.dead_letter_queue.as_str().into(),
                self.dead_letter_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(self.queue.as_str().into(), durable, self.queue_arguments(Some(&self.dead_letter_exchange)))
            .await?;
        Ok(())
    }

    /// Declares the spent-challenge fanout and a queue of this connection's own bound to it;
    /// returns the queue's name.
    pub async fn listen_to_spent(&self, channel: &Channel) -> lapin::Result<ShortString> {
        channel
            .exchange_declare(
                self.spent_exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                self.spent_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(queue.name().clone())
    }

    fn queue_arguments(&self, dead_letter_exchange: Option<&str>) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(ShortString::from("x-queue-type"), AMQPValue::LongString(self.queue_type.as_str().into()));
        if let Some(dlx) = dead_letter_exchange {
            args.insert(ShortString::from("x-dead-letter-exchange"), AMQPValue::LongString(dlx.into()));
        }
        args
    }
}

pub async fn connect(settings: &BrokerSettings, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(settings.url(), properties).await
}
