//! The Paredão HTTP API: the paredão, votes (group-committed to RabbitMQ), results and
//! statistics (served from memory), health and metrics.

pub mod accounts;
pub mod admission;
pub mod anti_bot;
pub mod audit;
pub mod batcher;
pub mod bounded_map;
pub mod broker_link;
pub mod client;
pub mod error;
pub mod fault;
pub mod header_limit;
pub mod health;
pub mod identity;
pub mod openapi;
pub mod paredao_cache;
pub mod photos;
pub mod results_cache;
pub mod routes;
pub mod startup;
pub mod state;
