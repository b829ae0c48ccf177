//! The Paredão HTTP API: the paredão, votes (group-committed to RabbitMQ), results and
//! statistics (served from memory), health and metrics.

pub mod anti_bot;
pub mod batcher;
pub mod broker_link;
pub mod error;
pub mod health;
pub mod openapi;
pub mod paredao_cache;
pub mod results_cache;
pub mod routes;
pub mod startup;
pub mod state;
