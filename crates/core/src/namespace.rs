//! The name space a vhost's classic queues and streams share.
//!
//! AMQP sees both as queues and Kafka sees streams as topics, so a name belongs to at most one
//! of them. Each registry keeps its own map for lookups; this is the one place that decides
//! who may take a name, so "declare a queue" and "create a topic" cannot both win a race for
//! the same name.
//!
//! ```text
//! queue.declare ─ queues map (write) ─┐
//!                                     ├─> Namespace::claim(name, kind)   one short lock
//! CreateTopics / stream declare ──────┘   (held by the other kind: NameInUse)
//! queue deleted / stream deleted ───────> Namespace::release(name, kind)
//! ```
//!
//! # Invariants
//! - A name is claimed before its object becomes visible and released after it is gone, so
//!   at no moment can a queue and a stream of one vhost share a name.
//! - The lock is held only for a map lookup and insert; nothing blocks under it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::Error;

/// Which registry holds a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A classic (or quorum) queue.
    Queue,
    /// A stream: a Kafka topic and an AMQP stream queue.
    Stream,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Queue => "queue",
            Self::Stream => "stream",
        })
    }
}

/// The names taken in one vhost.
#[derive(Debug)]
pub struct Namespace {
    vhost: String,
    names: Mutex<HashMap<String, NameKind>>,
    /// The vhost's `max-queues` limit (`u64::MAX`: none): queues and streams count alike.
    limit: AtomicU64,
}

impl Namespace {
    pub fn new(vhost: impl Into<String>) -> Self {
        Self {
            vhost: vhost.into(),
            names: Mutex::new(HashMap::new()),
            limit: AtomicU64::new(u64::MAX),
        }
    }

    /// Sets the vhost's `max-queues` limit (`None`: no limit). Names already taken stay.
    pub fn set_limit(&self, limit: Option<u64>) {
        self.limit
            .store(limit.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Names taken (queues and streams).
    pub fn len(&self) -> usize {
        self.names().len()
    }

    pub fn is_empty(&self) -> bool {
        self.names().is_empty()
    }

    /// [`Namespace::claim`] for an object being created by a client: a name not yet taken
    /// is refused with [`Error::QueueLimit`] once the vhost holds `max-queues` names.
    pub fn claim_new(&self, name: &str, kind: NameKind) -> Result<(), Error> {
        self.claim_within(name, kind, self.limit.load(Ordering::Relaxed))
    }

    fn names(&self) -> std::sync::MutexGuard<'_, HashMap<String, NameKind>> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `name` for `kind`. Succeeds if the name is free or already held by `kind` (the
    /// kind's own registry resolves duplicates); fails with [`Error::NameInUse`] if the
    /// other kind holds it.
    pub fn claim(&self, name: &str, kind: NameKind) -> Result<(), Error> {
        self.claim_within(name, kind, u64::MAX)
    }

    fn claim_within(&self, name: &str, kind: NameKind, limit: u64) -> Result<(), Error> {
        let mut names = self.names();
        match names.get(name) {
            Some(holder) if *holder != kind => Err(Error::NameInUse {
                name: name.to_owned(),
                vhost: self.vhost.clone(),
                holder: *holder,
            }),
            Some(_) => Ok(()),
            None if names.len() as u64 >= limit => Err(Error::QueueLimit {
                name: name.to_owned(),
                vhost: self.vhost.clone(),
                limit,
            }),
            None => {
                names.insert(name.to_owned(), kind);
                Ok(())
            }
        }
    }

    /// Gives `name` back if `kind` holds it.
    pub fn release(&self, name: &str, kind: NameKind) {
        let mut names = self.names();
        if names.get(name) == Some(&kind) {
            names.remove(name);
        }
    }

    /// Who holds `name`, if anyone.
    pub fn holder(&self, name: &str) -> Option<NameKind> {
        self.names().get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_name_belongs_to_one_kind_until_released() {
        let ns = Namespace::new("/");
        ns.claim("orders", NameKind::Stream).unwrap();
        ns.claim("orders", NameKind::Stream).unwrap();
        let err = ns.claim("orders", NameKind::Queue).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a stream named 'orders' exists in vhost '/' (queues and streams share one namespace)"
        );
        ns.release("orders", NameKind::Queue);
        assert_eq!(ns.holder("orders"), Some(NameKind::Stream));
        ns.release("orders", NameKind::Stream);
        ns.claim("orders", NameKind::Queue).unwrap();
        assert_eq!(ns.holder("orders"), Some(NameKind::Queue));
    }

    #[test]
    fn the_queue_limit_counts_queues_and_streams_and_spares_what_exists() {
        let ns = Namespace::new("/");
        ns.claim_new("a", NameKind::Queue).unwrap();
        ns.claim_new("t", NameKind::Stream).unwrap();
        ns.set_limit(Some(2));
        let err = ns.claim_new("b", NameKind::Queue).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot declare queue 'b': queue limit in vhost '/' (2) is reached"
        );
        assert!(ns.claim_new("u", NameKind::Stream).is_err());
        // Redeclaring what exists is no new queue; recovery is never limited.
        ns.claim_new("a", NameKind::Queue).unwrap();
        ns.claim("restored", NameKind::Queue).unwrap();
        assert_eq!(ns.len(), 3);
        ns.release("a", NameKind::Queue);
        ns.release("t", NameKind::Stream);
        ns.claim_new("b", NameKind::Queue).unwrap();
        ns.set_limit(None);
        ns.claim_new("c", NameKind::Queue).unwrap();
    }

    #[test]
    fn queues_and_streams_of_a_vhost_never_share_a_name() {
        use crate::queue::QueueSpec;
        use crate::stream::StreamConfig;
        use crate::{Broker, BrokerConfig};
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
        let vhost = broker.vhost("/").unwrap();
        let streams = vhost.streams();
        vhost.declare_queue(QueueSpec::new("q"), false, 1).unwrap();
        let err = streams.create("q", 1, StreamConfig::default()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NameInUse {
                    holder: NameKind::Queue,
                    ..
                }
            ),
            "{err}"
        );
        assert!(streams.validate_create("q", 1).is_err());
        streams.create("s", 1, StreamConfig::default()).unwrap();
        let err = vhost
            .declare_queue(QueueSpec::new("s"), false, 1)
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::NameInUse {
                    holder: NameKind::Stream,
                    ..
                }
            ),
            "{err}"
        );
        // Deleting gives the name back to whoever asks next.
        vhost.delete_queue("q", false, false, 1).unwrap();
        streams.delete("s").unwrap();
        streams.create("q", 1, StreamConfig::default()).unwrap();
        vhost.declare_queue(QueueSpec::new("s"), false, 1).unwrap();
    }

    #[test]
    fn racing_claims_have_exactly_one_winner() {
        for _ in 0..50 {
            let ns = Arc::new(Namespace::new("/"));
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let racers: Vec<_> = [NameKind::Queue, NameKind::Stream]
                .into_iter()
                .map(|kind| {
                    let (ns, barrier) = (Arc::clone(&ns), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        ns.claim("x", kind).is_ok()
                    })
                })
                .collect();
            let wins: Vec<bool> = racers.into_iter().map(|t| t.join().unwrap()).collect();
            assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
        }
    }
}
