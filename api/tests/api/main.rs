//! API integration tests: the real app on a random port, against the real RabbitMQ and
//! MongoDB-protocol server started by `./run.sh test`.

mod accounts;
mod auth;
mod broker_alarm;
mod captcha;
mod client_cookie;
mod crash;
mod docs;
mod export;
mod external_captcha;
mod fault;
mod gelf;
mod health;
mod helpers;
mod history;
mod input;
mod lifecycle;
mod memory;
mod outage;
mod overload;
mod paredoes_admin;
mod photos;
mod replay;
mod secrets;
mod shutdown;
mod votes;
