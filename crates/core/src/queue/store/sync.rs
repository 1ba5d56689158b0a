//! Group commit for a queue's message log: publisher confirms wait for the durable offset.
//!
//! ```text
//! append (queue lock) ──> wait(end): a waiter queued in offset order; schedule()
//! flusher: loop { target = log end; spawn_blocking(sync_to(target)); wake waiters <= target }
//! ```
//! One fsync covers every append made before it started, so N publishers waiting at once
//! cost about one fsync per round. Waiters are kept in offset order (appends happen under
//! the queue's lock), so a round wakes exactly the waiters it covers, never all of them. The
//! fsync runs on the blocking pool, never on a runtime worker.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ferrymq_log::Log;
use tokio::sync::oneshot;

use super::DurabilityWait;

#[derive(Debug, Default)]
struct State {
    running: bool,
    again: bool,
    /// Everything below is on disk.
    durable: u64,
    /// (end offset, waiter), ascending.
    waiters: VecDeque<(u64, oneshot::Sender<bool>)>,
}

/// The durable offset of one message log and the task that advances it.
#[derive(Debug)]
pub(crate) struct Syncer {
    log: Arc<Log>,
    state: Mutex<State>,
    failed: AtomicBool,
    /// The queue is gone: waits resolve at once (its messages no longer need confirming).
    closed: AtomicBool,
}

impl Syncer {
    pub(crate) fn new(log: Arc<Log>) -> Arc<Self> {
        let durable = log.next_offset();
        Arc::new(Self {
            log,
            state: Mutex::new(State {
                durable,
                ..State::default()
            }),
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The queue was deleted: every waiter is released as done.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let waiters = std::mem::take(&mut self.lock().waiters);
        for (_, waiter) in waiters {
            let _ = waiter.send(true);
        }
    }

    /// Resolves `true` once every offset below `end` is on disk, `false` if the log failed
    /// first. Call in offset order (under the queue's lock), then [`Self::schedule`].
    pub(crate) fn wait(&self, end: u64) -> DurabilityWait {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.lock();
            if self.failed() {
                let _ = tx.send(false);
            } else if state.durable >= end || self.closed.load(Ordering::Acquire) {
                let _ = tx.send(true);
            } else {
                state.waiters.push_back((end, tx));
            }
        }
        Box::pin(async move { rx.await.unwrap_or(false) })
    }

    /// Makes sure a sync covering everything appended so far runs.
    pub(crate) fn schedule(self: &Arc<Self>) {
        {
            let mut state = self.lock();
            if state.running {
                state.again = true;
                return;
            }
            state.running = true;
        }
        let this = Arc::clone(self);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    loop {
                        let target = this.log.next_offset();
                        let syncing = Arc::clone(&this);
                        let done =
                            tokio::task::spawn_blocking(move || syncing.log.sync_to(target)).await;
                        match done {
                            Ok(Ok(())) => this.advance(target),
                            Ok(Err(e)) => this.fail(&e.to_string()),
                            Err(e) => this.fail(&e.to_string()),
                        }
                        let mut state = this.lock();
                        if state.again && !this.failed() {
                            state.again = false;
                        } else {
                            state.running = false;
                            state.again = false;
                            return;
                        }
                    }
                });
            }
            Err(_) => {
                // No runtime (tools, tests): sync inline.
                let target = self.log.next_offset();
                match self.log.sync_to(target) {
                    Ok(()) => self.advance(target),
                    Err(e) => self.fail(&e.to_string()),
                }
                let mut state = self.lock();
                state.running = false;
                state.again = false;
            }
        }
    }

    fn advance(&self, offset: u64) {
        let mut done = Vec::new();
        {
            let mut state = self.lock();
            state.durable = state.durable.max(offset);
            while state.waiters.front().is_some_and(|(end, _)| *end <= offset) {
                if let Some((_, waiter)) = state.waiters.pop_front() {
                    done.push(waiter);
                }
            }
        }
        for waiter in done {
            let _ = waiter.send(true);
        }
    }

    fn fail(&self, cause: &str) {
        tracing::error!(dir = %self.log.dir().display(),
            "queue fsync failed, the queue refuses further persistent messages: {cause}");
        self.failed.store(true, Ordering::Release);
        let waiters = std::mem::take(&mut self.lock().waiters);
        for (_, waiter) in waiters {
            let _ = waiter.send(false);
        }
    }
}
