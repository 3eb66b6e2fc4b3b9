//! Waiting for connections that are not hyper's to finish (L4 sessions),
//! the way hyper-util's graceful shutdown waits for HTTP ones: each session
//! holds a [`DrainGuard`]; [`Drain::idle`] completes when none is left.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// The sessions of one listener.
#[derive(Debug, Default)]
pub struct Drain {
    open: AtomicUsize,
    closed: Notify,
}

impl Drain {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts a session until the guard drops.
    pub fn track(self: &Arc<Self>) -> DrainGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        DrainGuard(Arc::clone(self))
    }

    /// Sessions open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Completes once no session is open.
    pub async fn idle(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            // Registered before the count is read: a close between the two
            // still wakes us.
            closed.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// One open session.
#[derive(Debug)]
pub struct DrainGuard(Arc<Drain>);

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_for_the_last_session() {
        let drain = Drain::new();
        drain.idle().await;
        let a = drain.track();
        let b = drain.track();
        let waiter = tokio::spawn({
            let drain = Arc::clone(&drain);
            async move { drain.idle().await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(drain.open(), 0);
    }
}
