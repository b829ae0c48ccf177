//! The background loops of both services (reloading caches, purging expired entries): run a
//! step now and then every `every`, until told to stop. A slow step delays the next one instead
//! of bunching ticks up behind it.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub fn spawn_every<F, Fut>(every: Duration, stop: CancellationToken, mut step: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            step().await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn it_steps_at_once_then_every_period_until_stopped() {
        let steps = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        let counted = steps.clone();
        let task = spawn_every(Duration::from_secs(10), stop.clone(), move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(steps.load(Ordering::SeqCst), 3, "at 0, 10 and 20 s");
        stop.cancel();
        task.await.unwrap();
    }
}
