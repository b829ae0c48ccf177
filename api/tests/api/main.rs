//! API integration tests: the real app on a random port, against the real RabbitMQ and
//! MongoDB-protocol server started by `./run.sh test`.

mod captcha;
mod docs;
mod external_captcha;
mod fault;
mod gelf;
mod health;
mod helpers;
mod input;
mod outage;
mod overload;
mod shutdown;
mod votes;
