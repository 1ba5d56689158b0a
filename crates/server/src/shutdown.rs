//! Graceful shutdown: which signals stop the broker, and the bounded wait for connections.
//!
//! SIGINT or SIGTERM starts a graceful shutdown. The handlers are installed before the ready
//! line is logged, so a signal sent as soon as a supervisor sees that line is never lost. A
//! second signal during the wait stops waiting for connections (storage is still flushed).
//!
//! # Invariants
//!
//! When [`drain`] returns, no connection task is running: those that did not finish in time
//! were aborted (their futures dropped). So storage can be flushed after it with no connection
//! appending behind its back.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The process's shutdown signals, installed once.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; from now on SIGINT/SIGTERM no longer kill the process outright.
    pub fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())
                    .context("installing the SIGTERM handler")?,
                interrupt: signal(SignalKind::interrupt())
                    .context("installing the SIGINT handler")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next shutdown signal and returns its name.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => "SIGTERM",
                _ = self.interrupt.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "ctrl-c",
                // Without a handler we can never be told to stop; keep running.
                Err(_) => std::future::pending().await,
            }
        }
    }
}

/// What every listener and connection task shares to learn about shutdown.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Cancelled first: stop accepting; handlers close their connections politely.
    pub polite: CancellationToken,
    /// Cancelled when the polite wait is over: connection futures still running are dropped.
    pub abort: CancellationToken,
    /// Every accept loop and connection task, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

impl Shutdown {
    /// Spawns a connection task that is dropped if it outlives the polite shutdown.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let abort = self.abort.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = task => {}
                () = abort.cancelled() => {}
            }
        });
    }
}

/// How waiting for connections to finish ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every connection task returned.
    All,
    /// The timeout passed with this many connection tasks still running.
    TimedOut(usize),
    /// Another signal cut the wait short with this many still running.
    Interrupted(usize),
}

/// Cancels `polite`, waits for every task on the tracker at most `timeout` or until `cut_short`
/// (the next signal) resolves, then aborts whatever is left and waits for that.
pub async fn drain(
    shutdown: &Shutdown,
    timeout: Duration,
    cut_short: impl Future<Output = &'static str>,
) -> Drained {
    let tracker = &shutdown.tracker;
    shutdown.polite.cancel();
    tracker.close();
    let drained = tokio::select! {
        () = tracker.wait() => Drained::All,
        () = tokio::time::sleep(timeout) => Drained::TimedOut(tracker.len()),
        signal = cut_short => {
            info!(signal, "second signal: no longer waiting for connections");
            Drained::Interrupted(tracker.len())
        }
    };
    match drained {
        Drained::All => info!("all connections closed"),
        Drained::TimedOut(open) => warn!(
            open,
            ?timeout,
            "connections still open after the shutdown timeout; closing them"
        ),
        Drained::Interrupted(open) => warn!(open, "closing connections still open"),
    }
    shutdown.abort.cancel();
    tracker.wait().await;
    drained
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_polite_tasks_and_aborts_the_rest() {
        let five = Duration::from_secs(5);
        let shutdown = Shutdown::default();
        let polite = shutdown.polite.clone();
        shutdown.spawn(async move {
            polite.cancelled().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let started = tokio::time::Instant::now();
        assert_eq!(
            drain(&shutdown, five, std::future::pending()).await,
            Drained::All
        );
        assert_eq!(started.elapsed(), Duration::from_secs(1));

        // A task ignoring the polite token is dropped at the timeout.
        let shutdown = Shutdown::default();
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        shutdown.spawn(async move {
            let _dropped_tx = dropped_tx;
            std::future::pending::<()>().await;
        });
        let started = tokio::time::Instant::now();
        assert_eq!(
            drain(&shutdown, five, std::future::pending()).await,
            Drained::TimedOut(1)
        );
        assert_eq!(started.elapsed(), five);
        assert!(dropped_rx.await.is_err(), "the task's future was dropped");
        assert!(shutdown.tracker.is_empty());

        let shutdown = Shutdown::default();
        shutdown.spawn(std::future::pending::<()>());
        let signal = async { "SIGINT" };
        assert_eq!(
            drain(&shutdown, five, signal).await,
            Drained::Interrupted(1)
        );
        assert!(shutdown.tracker.is_empty());
    }
}
