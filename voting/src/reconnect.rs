//! Keeping a connection alive: connect, serve on it until it ends or fails, log the failure,
//! wait (`Backoff`), connect again; mark its `Dependency` up and down on the way; stop when
//! told. The API's publishing link, the consumer's queue session and the API's listener for
//! spent challenges are each a `Session`; this is the loop they share.
//!
//! A failure to connect is logged at the first attempt of an outage and then at every 12th
//! (about once a minute at the 5 s cap), not at every retry. A session that was up and failed
//! is logged each time: it took a connect to get there. The backoff starts over at each
//! connect, so a broker that comes back is found within 100 ms of the next outage.

use std::fmt::Display;
use std::future::Future;

use tokio_util::sync::CancellationToken;
use tracing::Level;

use crate::backoff::Backoff;
use crate::health::Dependency;

/// One connection's life, from connecting to its end.
pub trait Session: Send {
    /// What `connect` opens and `serve` runs on.
    type Connection: Send;
    type Error: Display + Send;

    /// Logged, with the error, when connecting fails.
    const CANNOT_CONNECT: &'static str;
    /// Logged, with the error, when a session that was up fails.
    const LOST: &'static str;
    /// The level of both.
    const LEVEL: Level = Level::ERROR;

    /// Up from a connect to the end of its `serve`, down otherwise.
    fn health(&self) -> &Dependency;

    /// Opens the connection and what the session needs on it (channels, queues, a consumer).
    fn connect(&mut self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// Runs on an open connection until `stop` or an end of its own (`Ok`: not reconnected),
    /// or until it fails (`Err`: reconnected after the backoff).
    fn serve(
        &mut self,
        connection: Self::Connection,
        stop: &CancellationToken,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A tracing event at a level known only as a value (the macros want it written out).
macro_rules! at_level {
    ($level:expr, $($event:tt)+) => {
        match $level {
            Level::ERROR => tracing::error!($($event)+),
            Level::WARN => tracing::warn!($($event)+),
            Level::INFO => tracing::info!($($event)+),
            Level::DEBUG => tracing::debug!($($event)+),
            _ => tracing::trace!($($event)+),
        }
    };
}

/// Connects and serves `session` again and again, until `stop` is cancelled or a session ends
/// on its own. A connect under way when `stop` comes is let finish (and its session told to
/// stop at once), so that nothing is left half-open.
pub async fn supervise<S: Session>(mut session: S, stop: &CancellationToken) {
    let mut backoff = Backoff::default();
    // Failed connects since the last connection.
    let mut failures: u64 = 0;
    while !stop.is_cancelled() {
        match session.connect().await {
            Ok(connection) => {
                backoff.reset();
                failures = 0;
                session.health().record(true);
                let served = session.serve(connection, stop).await;
                session.health().record(false);
                match served {
                    Ok(()) => return,
                    Err(e) => at_level!(S::LEVEL, error = %e, "{}", S::LOST),
                }
            }
            Err(e) => {
                session.health().record(false);
                failures += 1;
                if failures == 1 || failures.is_multiple_of(12) {
                    at_level!(S::LEVEL, error = %e, failures, "{}", S::CANNOT_CONNECT);
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;

    /// Connects and serves as scripted; when a script runs out, connects succeed and serves
    /// last until `stop`. Writes down when each connect was tried, and whether it was up.
    struct Scripted {
        connects: VecDeque<Result<(), &'static str>>,
        serves: VecDeque<Result<(), &'static str>>,
        tried: Arc<Mutex<Vec<(Duration, bool)>>>,
        started: Instant,
        health: Arc<Dependency>,
    }

    impl Session for Scripted {
        type Connection = ();
        type Error = &'static str;
        const CANNOT_CONNECT: &'static str = "cannot connect";
        const LOST: &'static str = "lost";

        fn health(&self) -> &Dependency {
            &self.health
        }

        async fn connect(&mut self) -> Result<(), &'static str> {
            self.tried.lock().unwrap().push((self.started.elapsed(), self.health.is_up()));
            self.connects.pop_front().unwrap_or(Ok(()))
        }

        async fn serve(&mut self, (): (), stop: &CancellationToken) -> Result<(), &'static str> {
            assert!(self.health.is_up(), "up while serving");
            match self.serves.pop_front() {
                Some(ended) => ended,
                None => {
                    stop.cancelled().await;
                    Ok(())
                }
            }
        }
    }

    struct Run {
        tried: Arc<Mutex<Vec<(Duration, bool)>>>,
        health: Arc<Dependency>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    fn run(connects: &[Result<(), &'static str>], serves: &[Result<(), &'static str>]) -> Run {
        let tried = Arc::new(Mutex::new(Vec::new()));
        let health = Arc::new(Dependency::new());
        let stop = CancellationToken::new();
        let session = Scripted {
            connects: connects.iter().copied().collect(),
            serves: serves.iter().copied().collect(),
            tried: tried.clone(),
            started: Instant::now(),
            health: health.clone(),
        };
        let task = {
            let stop = stop.clone();
            tokio::spawn(async move { supervise(session, &stop).await })
        };
        Run { tried, health, stop, task }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn it_reconnects_after_failures_with_a_backoff_that_starts_over_at_each_connect() {
        let r = run(&[Err("refused"), Err("refused"), Ok(())], &[Err("connection reset")]);
        tokio::time::sleep(ms(1_000)).await;
        let tried = r.tried.lock().unwrap().clone();
        assert_eq!(
            tried,
            vec![(ms(0), false), (ms(100), false), (ms(300), false), (ms(400), false)],
            "100 ms then 200 ms after failed connects; 100 ms again after a session that was up failed"
        );
        assert!(r.health.is_up(), "the fourth connection is up and serving");
        r.stop.cancel();
        r.task.await.unwrap();
        assert!(!r.health.is_up(), "down once stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn it_stops_at_shutdown_while_waiting_to_reconnect() {
        let r = run(&[Err("refused"); 10], &[]);
        tokio::time::sleep(ms(350)).await;
        r.stop.cancel();
        let stopped_at = Instant::now();
        r.task.await.unwrap();
        assert_eq!(stopped_at.elapsed(), ms(0), "not after the 400 ms delay under way");
        assert_eq!(r.tried.lock().unwrap().len(), 3, "at 0, 100 and 300 ms");
        assert!(!r.health.is_up());
    }

    #[tokio::test(start_paused = true)]
    async fn it_does_not_connect_once_stopped() {
        let r = run(&[], &[]);
        r.stop.cancel();
        r.task.await.unwrap();
        assert!(r.tried.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_ends_on_its_own_is_not_reconnected() {
        let r = run(&[], &[Ok(())]);
        r.task.await.unwrap();
        assert_eq!(r.tried.lock().unwrap().len(), 1);
        assert!(!r.health.is_up());
    }
}
