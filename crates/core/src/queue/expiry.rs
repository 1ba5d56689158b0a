//! The timer of a queue: expires messages at the head (queue and per-message TTL) and
//! deletes the queue once it has been unused for `x-expires`.
//!
//! One task per queue that needs one, started lazily, holding only a `Weak` to the queue
//! and sleeping until the earliest deadline or until the queue pokes it (`timer` notify).
//! It uses `tokio::time`, so tests can run it under `tokio::time::pause()`.

use std::sync::{Arc, Weak};

use tokio::sync::Notify;
use tokio::time::{Duration, Instant};

use super::dispatch::Effects;
use super::{DeathReason, Queue, State};

impl Queue {
    /// Starts the timer task if it is not running (no-op outside a tokio runtime).
    pub(super) fn ensure_timer(self: &Arc<Self>, st: &mut State) {
        if st.timer_running {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            st.timer_running = true;
            handle.spawn(run(Arc::downgrade(self), self.timer.clone()));
        }
    }

    /// Expires what is due; returns the next deadline, or `None` once deleted.
    fn on_timer(self: &Arc<Self>) -> Option<Option<Instant>> {
        let mut fx = Effects::default();
        let next = {
            let mut st = self.lock();
            if st.deleted {
                return None;
            }
            let now = Instant::now();
            let mut expired = Vec::new();
            st.ready.take_expired(now, &mut expired);
            fx.dead
                .extend(expired.into_iter().map(|e| (e, DeathReason::Expired)));
            self.seal(&mut st, &fx);
            self.update_memory(&st);
            let unused_deadline = match self.args.expires {
                Some(ms) if st.consumers.is_empty() => {
                    Some(st.last_used + Duration::from_millis(ms))
                }
                _ => None,
            };
            if unused_deadline.is_some_and(|d| d <= now) {
                fx.delete = true;
                None
            } else {
                Some(match (st.ready.next_expiry(), unused_deadline) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                })
            }
        };
        self.finish(fx);
        next
    }
}

async fn run(queue: Weak<Queue>, notify: Arc<Notify>) {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = match queue.upgrade() {
            Some(queue) => queue.on_timer(),
            None => None,
        };
        let Some(next) = next else {
            return;
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {}
                    () = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Lets the timer task (which holds only the notify) see the queue is gone.
        self.timer.notify_one();
    }
}
