//! What the API and the consumer share: the voting domain (paredão, vote, tally), and the
//! configuration, telemetry, broker and store code both services stand on.

pub mod accounts;
pub mod altcha;
pub mod audit_log;
pub mod backoff;
pub mod broker;
pub mod challenge_key;
pub mod configuration;
pub mod final_results;
pub mod gelf;
pub mod health;
pub mod ip_net;
pub mod metrics_exporter;
pub mod minute_counters;
pub mod paredao;
pub mod paredao_store;
pub mod periodic;
pub mod reconnect;
pub mod shutdown;
pub mod slug;
pub mod store;
pub mod tally;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod vote;
