//! The Paredão vote consumer: RabbitMQ → counters in MongoDB, each vote exactly once.

pub mod freezer;
pub mod http;
pub mod spent_janitor;
pub mod startup;
pub mod status;
pub mod worker;
