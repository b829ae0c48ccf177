//! Consumer integration tests: the real consumer (in-process, or its binary where a crash is
//! the point) against the real RabbitMQ and MongoDB-protocol server.

mod crash;
mod delivery;
mod freeze;
mod helpers;
mod http;
mod rollup;
mod store;
mod store_crash;
