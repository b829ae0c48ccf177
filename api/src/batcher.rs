//! Group commit: many votes, one RabbitMQ message, one publisher confirm.
//!
//! Handlers `submit` a vote and wait. When no batch awaits its confirm, the batcher publishes
//! what is queued at once; otherwise it gathers votes until it holds `max_votes` or the first
//! one has waited `max_wait_ms`. It publishes them as one persistent
//! message, and answers every waiting vote when the broker confirms it: a 202 therefore means
//! the vote is on the broker's disk. A batch that fails (broker away, nack, unroutable, no
//! confirm in time) fails every vote in it, so none is half-accepted. Several batches may await
//! their confirms at once (`max_in_flight`), which is what makes this fast: confirms arrive
//! while the next batch fills.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::BoxFuture;
use thiserror::Error;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use voting::configuration::BatcherSettings;
use voting::vote::{Vote, VoteBatch};

#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum PublishError {
    #[error("the message broker is unavailable")]
    BrokerUnavailable,
    #[error("the message broker refused the batch")]
    Nacked,
    #[error("the vote queue does not exist")]
    Unroutable,
    #[error("the message broker did not confirm the batch in time")]
    ConfirmTimeout,
    #[error("the message broker did not take the batch in time")]
    PublishTimeout,
    #[error("the message broker refuses new messages for now (a memory or disk alarm)")]
    BrokerBlocked,
    #[error("the replica holds as many votes as it can")]
    QueueFull,
    #[error("the service is shutting down")]
    ShuttingDown,
}

impl PublishError {
    pub fn label(self) -> &'static str {
        match self {
            PublishError::BrokerUnavailable => "broker_unavailable",
            PublishError::Nacked => "nacked",
            PublishError::Unroutable => "unroutable",
            PublishError::ConfirmTimeout => "confirm_timeout",
            PublishError::PublishTimeout => "publish_timeout",
            PublishError::BrokerBlocked => "broker_blocked",
            PublishError::QueueFull => "queue_full",
            PublishError::ShuttingDown => "shutting_down",
        }
    }
}

/// Resolves when the broker has confirmed (or refused) a published batch.
pub type Confirm = BoxFuture<'static, Result<(), PublishError>>;

/// Where batches go. Publishing is sequential (it returns once the message is handed to the
/// connection); the returned `Confirm` is awaited concurrently with later batches.
pub trait BatchSink: Send + Sync + 'static {
    fn publish<'a>(&'a self, batch: &'a VoteBatch) -> BoxFuture<'a, Result<Confirm, PublishError>>;
}

struct Pending {
    vote: Vote,
    done: oneshot::Sender<Result<(), PublishError>>,
}

/// The handlers' side: cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
}

/// The task's side: closing it flushes what is queued and waits for every confirm.
pub struct BatcherTask {
    close: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl Batcher {
    pub fn start(settings: BatcherSettings, sink: Arc<dyn BatchSink>) -> (Batcher, BatcherTask) {
        let (tx, rx) = mpsc::channel(settings.queue_capacity.max(1));
        let close = CancellationToken::new();
        let handle = tokio::spawn(run(rx, settings, sink, close.clone()));
        (Batcher { tx }, BatcherTask { close, handle })
    }

    /// Resolves once the vote is durable in the broker, or with why it is not. Never waits for
    /// room: a full queue is refused at once (admission control keeps it from filling).
    pub async fn submit(&self, vote: Vote) -> Result<(), PublishError> {
        let (done, confirmed) = oneshot::channel();
        self.tx.try_send(Pending { vote, done }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PublishError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => PublishError::ShuttingDown,
        })?;
        confirmed.await.unwrap_or(Err(PublishError::ShuttingDown))
    }
}

impl BatcherTask {
    /// Stops taking votes, publishes those already queued and waits for all confirms.
    pub async fn close(self) {
        self.close.cancel();
        let _ = self.handle.await;
    }
}

async fn run(
    mut rx: mpsc::Receiver<Pending>,
    settings: BatcherSettings,
    sink: Arc<dyn BatchSink>,
    close: CancellationToken,
) {
    let max_votes = settings.max_votes.max(1);
    let max_wait = Duration::from_millis(settings.max_wait_ms);
    let confirm_timeout = Duration::from_millis(settings.confirm_timeout_ms);
    let max_in_flight = settings.max_in_flight.max(1);
    let in_flight = Arc::new(Semaphore::new(max_in_flight));
    let mut closing = false;
    let mut buf: Vec<Pending> = Vec::with_capacity(max_votes);

    loop {
        // Wait for the first vote of the next batch (or for the order to close).
        let received = if closing {
            rx.recv_many(&mut buf, max_votes).await
        } else {
            tokio::select! {
                n = rx.recv_many(&mut buf, max_votes) => n,
                _ = close.cancelled() => {
                    // No new votes from now on; those already queued are still received.
                    rx.close();
                    closing = true;
                    continue;
                }
            }
        };
        if received == 0 {
            break; // closed and drained
        }
        // With no batch awaiting its confirm, the broker is idle: publish what there is now, so
        // a quiet moment costs no waiting. Otherwise fill the batch while the earlier ones are
        // confirmed, until it is full or its first vote has waited long enough: batches grow
        // with the load by themselves (adaptive group commit).
        let broker_idle = in_flight.available_permits() == max_in_flight;
        let deadline = tokio::time::Instant::now() + max_wait;
        while !broker_idle && buf.len() < max_votes {
            let room = max_votes - buf.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut buf, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }

        let permit = in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (votes, waiters): (Vec<Vote>, Vec<_>) = buf.drain(..).map(|p| (p.vote, p.done)).unzip();
        let batch = VoteBatch::seal(votes, Utc::now());
        metrics::histogram!("paredao_batch_size_votes").record(batch.votes.len() as f64);
        let started = Instant::now();
        match sink.publish(&batch).await {
            Err(e) => finish(waiters, Err(e), started),
            Ok(confirm) => {
                tokio::spawn(async move {
                    let outcome = tokio::time::timeout(confirm_timeout, confirm)
                        .await
                        .unwrap_or(Err(PublishError::ConfirmTimeout));
                    finish(waiters, outcome, started);
                    drop(permit);
                });
            }
        }
    }
    // Every confirm task holds a permit: having them all back means every batch is answered.
    let _ = in_flight.acquire_many(max_in_flight as u32).await;
}

fn finish(
    waiters: Vec<oneshot::Sender<Result<(), PublishError>>>,
    outcome: Result<(), PublishError>,
    started: Instant,
) {
    let label = match outcome {
        Ok(()) => {
            // Counted here, where the votes became durable, rather than in the handler: a
            // client that hangs up after this point still has its vote counted.
            metrics::counter!("paredao_votes_accepted_total").increment(waiters.len() as u64);
            "confirmed"
        }
        Err(e) => {
            tracing::warn!(error = %e, votes = waiters.len(), "a vote batch was not confirmed; its votes answer 503");
            e.label()
        }
    };
    metrics::histogram!("paredao_publish_confirm_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("paredao_batches_published_total", "outcome" => label).increment(1);
    for w in waiters {
        // A waiter whose client went away no longer listens; its vote still counts.
        let _ = w.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use voting::paredao::{ParedaoId, ParticipantId};

    /// Records batches; confirms or refuses them as told.
    #[derive(Default)]
    struct RecordingSink {
        batches: Mutex<Vec<VoteBatch>>,
        refuse: bool,
    }

    impl BatchSink for RecordingSink {
        fn publish<'a>(&'a self, batch: &'a VoteBatch) -> BoxFuture<'a, Result<Confirm, PublishError>> {
            Box::pin(async move {
                self.batches.lock().unwrap().push(batch.clone());
                let outcome = if self.refuse { Err(PublishError::Nacked) } else { Ok(()) };
                Ok(Box::pin(async move { outcome }) as Confirm)
            })
        }
    }

    fn settings(max_votes: usize, max_wait_ms: u64) -> BatcherSettings {
        BatcherSettings { max_votes, max_wait_ms, max_in_flight: 4, queue_capacity: 10_000, confirm_timeout_ms: 1000 }
    }

    fn vote(i: usize) -> Vote {
        let c = if i.is_multiple_of(2) { "ana" } else { "bia" };
        Vote::new(ParedaoId::parse("p").unwrap(), ParticipantId::parse(c).unwrap(), Utc::now())
    }

    async fn submit_all(batcher: &Batcher, n: usize) -> Vec<Result<(), PublishError>> {
        futures::future::join_all((0..n).map(|i| batcher.submit(vote(i)))).await
    }

    #[tokio::test]
    async fn concurrent_votes_travel_in_few_full_batches() {
        let sink = Arc::new(RecordingSink::default());
        let (batcher, task) = Batcher::start(settings(100, 50), sink.clone());
        let outcomes = submit_all(&batcher, 1000).await;
        assert!(outcomes.iter().all(|o| o.is_ok()));
        task.close().await;
        let batches = sink.batches.lock().unwrap();
        let sizes: Vec<usize> = batches.iter().map(|b| b.votes.len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 1000);
        assert!(sizes.iter().all(|&s| s <= 100), "{sizes:?}");
        assert!(batches.len() <= 12, "expected about 10 batches, got {sizes:?}");
        let ids: std::collections::HashSet<_> = batches.iter().map(|b| b.id).collect();
        assert_eq!(ids.len(), batches.len(), "every batch has its own id");
    }

    #[tokio::test]
    async fn a_lone_vote_is_published_at_once_when_the_broker_is_idle() {
        let sink = Arc::new(RecordingSink::default());
        // A wait far longer than the test allows: the vote must not wait for it.
        let (batcher, task) = Batcher::start(settings(500, 5_000), sink.clone());
        let started = Instant::now();
        batcher.submit(vote(0)).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(1_000));
        assert_eq!(sink.batches.lock().unwrap().len(), 1);
        task.close().await;
    }

    #[tokio::test]
    async fn a_refused_batch_fails_every_vote_in_it() {
        let sink = Arc::new(RecordingSink { refuse: true, ..Default::default() });
        let (batcher, task) = Batcher::start(settings(10, 20), sink.clone());
        let outcomes = submit_all(&batcher, 25).await;
        assert!(outcomes.iter().all(|o| *o == Err(PublishError::Nacked)));
        task.close().await;
    }

    #[tokio::test]
    async fn closing_flushes_queued_votes_and_refuses_new_ones() {
        let sink = Arc::new(RecordingSink::default());
        let (batcher, task) = Batcher::start(settings(1000, 200), sink.clone());
        let mut pending: Vec<_> = (0..50).map(|i| Box::pin(batcher.submit(vote(i)))).collect();
        // One poll each puts every vote in the queue (there is room), then they wait for confirms.
        for p in pending.iter_mut() {
            assert!(futures::poll!(p.as_mut()).is_pending());
        }
        task.close().await;
        let outcomes = futures::future::join_all(pending).await;
        assert!(outcomes.iter().all(|o| o.is_ok()), "queued votes are published on close");
        assert_eq!(sink.batches.lock().unwrap().iter().map(|b| b.votes.len()).sum::<usize>(), 50);
        assert_eq!(batcher.submit(vote(0)).await, Err(PublishError::ShuttingDown));
    }
}
