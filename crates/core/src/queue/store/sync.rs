//! Group commit for a queue's message log: publisher confirms wait for the durable offset.
//!
//! ```text
//! append (queue lock) ──> schedule(): a flusher task runs if none does
//! flusher: loop { target = log end; spawn_blocking(sync_to(target)); durable = target }
//! confirm wait: durable >= end of the message's append
//! ```
//! One fsync covers every append made before it started, so N publishers waiting at once
//! cost about one fsync per round. The fsync runs on the blocking pool, never on a runtime
//! worker.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ferrymq_log::Log;
use tokio::sync::watch;

#[derive(Debug, Default)]
struct Flusher {
    running: bool,
    again: bool,
}

/// The durable offset of one message log and the task that advances it.
#[derive(Debug)]
pub(crate) struct Syncer {
    log: Arc<Log>,
    durable: watch::Sender<u64>,
    flusher: Mutex<Flusher>,
    failed: AtomicBool,
    /// The queue is gone: waits resolve at once (its messages no longer need confirming).
    closed: AtomicBool,
}

impl Syncer {
    pub(crate) fn new(log: Arc<Log>) -> Arc<Self> {
        let durable = log.next_offset();
        Arc::new(Self {
            log,
            durable: watch::Sender::new(durable),
            flusher: Mutex::new(Flusher::default()),
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.durable.send_modify(|_| {});
    }

    /// Resolves `true` once every offset below `end` is on disk, `false` if the log failed
    /// first.
    pub(crate) fn wait(self: &Arc<Self>, end: u64) -> Pin<Box<dyn Future<Output = bool> + Send>> {
        let mut rx = self.durable.subscribe();
        let this = Arc::clone(self);
        Box::pin(async move {
            let reached = rx
                .wait_for(|durable| {
                    *durable >= end
                        || this.failed.load(Ordering::Acquire)
                        || this.closed.load(Ordering::Acquire)
                })
                .await
                .map(|durable| *durable >= end);
            match reached {
                Ok(true) => true,
                _ => this.closed.load(Ordering::Acquire) && !this.failed(),
            }
        })
    }

    /// Makes sure a sync covering everything appended so far runs.
    pub(crate) fn schedule(self: &Arc<Self>) {
        {
            let mut flusher = self.flusher.lock().unwrap_or_else(PoisonError::into_inner);
            if flusher.running {
                flusher.again = true;
                return;
            }
            flusher.running = true;
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
                        let mut flusher =
                            this.flusher.lock().unwrap_or_else(PoisonError::into_inner);
                        if flusher.again && !this.failed() {
                            flusher.again = false;
                        } else {
                            *flusher = Flusher::default();
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
                *self.flusher.lock().unwrap_or_else(PoisonError::into_inner) = Flusher::default();
            }
        }
    }

    fn advance(&self, offset: u64) {
        self.durable.send_if_modified(|durable| {
            let moved = offset > *durable;
            *durable = (*durable).max(offset);
            moved
        });
    }

    fn fail(&self, cause: &str) {
        tracing::error!(dir = %self.log.dir().display(),
            "queue fsync failed, the queue refuses further persistent messages: {cause}");
        self.failed.store(true, Ordering::Release);
        self.durable.send_modify(|_| {});
    }
}
