//! API integration tests: the real app on a random port, against the real RabbitMQ and
//! MongoDB-protocol server started by `./run.sh test`.

mod broker_alarm;
mod captcha;
mod crash;
mod client_cookie;
mod docs;
mod external_captcha;
mod fault;
mod gelf;
mod health;
mod helpers;
mod input;
mod memory;
mod outage;
mod replay;
mod overload;
mod secrets;
mod shutdown;
mod votes;
