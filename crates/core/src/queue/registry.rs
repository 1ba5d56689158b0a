//! The queues of a vhost: declare, look up, delete; server-generated names; and the
//! per-channel reply queues behind direct reply-to (`amq.rabbitmq.reply-to`).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::{OwnerId, Queue, QueueArgs, QueueSpec};
use crate::error::ResourceKind;
use crate::exchange::Destination;
use crate::namespace::NameKind;
use crate::{Error, VHost};

/// The pseudo-queue a client consumes from (no-ack) to use direct reply-to.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Prefix of the reply addresses the broker writes into `reply_to`.
pub const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Name -> queue, for one vhost. Read-mostly: declare and delete take the write side.
#[derive(Debug, Default)]
pub struct Queues {
    map: RwLock<HashMap<String, Arc<Queue>>>,
    /// Direct reply-to queues, by their full reply address.
    reply: RwLock<HashMap<String, Arc<Queue>>>,
    /// Serializes the creation of durable queues (opening their logs happens outside the
    /// map's lock, so lookups never wait for file creation).
    creating: Mutex<()>,
}

/// The outcome of a queue declaration.
#[derive(Debug, Clone)]
pub struct Declared {
    pub queue: Arc<Queue>,
    pub message_count: u32,
    pub consumer_count: u32,
    /// False when the queue existed already.
    pub created: bool,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// 128 bits from the process's random hasher keys plus a counter: unique, unguessable
/// enough for names (not for secrets).
fn random_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    base64url(&bytes)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

impl VHost {
    /// The queue named `name`.
    pub fn queue(&self, name: &str) -> Result<Arc<Queue>, Error> {
        self.lookup_queue(name).ok_or_else(|| Error::NotFound {
            kind: ResourceKind::Queue,
            name: name.to_owned(),
            vhost: self.name().to_owned(),
        })
    }

    pub fn lookup_queue(&self, name: &str) -> Option<Arc<Queue>> {
        read(&self.queues.map).get(name).cloned()
    }

    /// Every queue (a snapshot), for the memory monitor and listings.
    pub fn queue_list(&self) -> Vec<Arc<Queue>> {
        read(&self.queues.map).values().cloned().collect()
    }

    /// queue.declare. `passive` only checks existence and access. An empty name gets a
    /// server-generated `amq.gen-...` name.
    pub fn declare_queue(
        self: &Arc<Self>,
        mut spec: QueueSpec,
        passive: bool,
        owner: OwnerId,
    ) -> Result<Declared, Error> {
        let found = |queue: Arc<Queue>| {
            let (message_count, consumer_count) = queue.counts();
            Declared {
                queue,
                message_count,
                consumer_count,
                created: false,
            }
        };
        if passive {
            let queue = self.queue(&spec.name)?;
            queue.check_access(owner)?;
            return Ok(found(queue));
        }
        if spec.name.is_empty() {
            spec.name = format!("amq.gen-{}", random_token());
        } else if spec.name.starts_with("amq.") {
            return Err(Error::ReservedName {
                kind: ResourceKind::Queue,
                name: spec.name,
            });
        }
        if let Some(queue) = self.lookup_queue(&spec.name) {
            self.check_equivalent(&queue, &spec, owner)?;
            queue.touch();
            return Ok(found(queue));
        }
        let durable = spec.durable && !spec.exclusive;
        let args = QueueArgs::parse(
            &spec.arguments,
            &spec.name,
            self.name(),
            (durable, spec.exclusive, spec.auto_delete),
        )?;
        if durable {
            return self.declare_durable(spec, args, owner);
        }
        let mut map = write(&self.queues.map);
        // Queues and streams (Kafka topics) share one namespace, claimed atomically.
        self.namespace().claim_new(&spec.name, NameKind::Queue)?;
        if let Some(queue) = map.get(&spec.name).cloned() {
            // Declared concurrently by someone else: treat as a redeclaration.
            drop(map);
            self.check_equivalent(&queue, &spec, owner)?;
            return Ok(found(queue));
        }
        let exclusive_owner = spec.exclusive.then_some(owner);
        let queue = Queue::new(self, spec, exclusive_owner, args);
        map.insert(queue.name().to_owned(), queue.clone());
        Ok(Declared {
            queue,
            message_count: 0,
            consumer_count: 0,
            created: true,
        })
    }

    /// Creates a durable queue: its logs, then its definition (the caller syncs the
    /// definitions journal before answering).
    fn declare_durable(
        self: &Arc<Self>,
        spec: QueueSpec,
        args: QueueArgs,
        owner: OwnerId,
    ) -> Result<Declared, Error> {
        let _creating = self
            .queues
            .creating
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = self.lookup_queue(&spec.name) {
            self.check_equivalent(&queue, &spec, owner)?;
            queue.touch();
            let (message_count, consumer_count) = queue.counts();
            return Ok(Declared {
                queue,
                message_count,
                consumer_count,
                created: false,
            });
        }
        // Queues and streams (Kafka topics) share one namespace, claimed atomically.
        let name = spec.name.clone();
        self.namespace().claim_new(&name, NameKind::Queue)?;
        let opened = super::persist::blocking(|| Queue::open_durable(self, spec, args))
            .and_then(|queue| self.save_queue(&queue).map(|()| queue));
        let queue = match opened {
            Ok(queue) => queue,
            Err(e) => {
                self.namespace().release(&name, NameKind::Queue);
                return Err(e);
            }
        };
        let (message_count, _) = queue.counts();
        write(&self.queues.map).insert(queue.name().to_owned(), queue.clone());
        Ok(Declared {
            queue,
            message_count,
            consumer_count: 0,
            created: true,
        })
    }

    /// Registers a restored durable queue.
    pub(crate) fn insert_queue(&self, queue: Arc<Queue>) -> Result<(), Error> {
        self.namespace().claim(queue.name(), NameKind::Queue)?;
        write(&self.queues.map).insert(queue.name().to_owned(), queue);
        Ok(())
    }

    fn check_equivalent(
        &self,
        queue: &Queue,
        spec: &QueueSpec,
        owner: OwnerId,
    ) -> Result<(), Error> {
        // Strict: exclusivity itself must match, and so must the owner.
        let same_owner = match queue.owner() {
            Some(o) => spec.exclusive && o == owner,
            None => !spec.exclusive,
        };
        if !same_owner {
            return Err(Error::ResourceLocked {
                name: queue.name().to_owned(),
                vhost: self.name().to_owned(),
            });
        }
        let flag = |arg: &str, current: bool, received: bool| {
            if current == received {
                Ok(())
            } else {
                Err(Error::Inequivalent {
                    kind: ResourceKind::Queue,
                    name: queue.name().to_owned(),
                    vhost: self.name().to_owned(),
                    mismatch: Box::new(crate::error::Mismatch {
                        arg: arg.to_owned(),
                        received: format!("'{received}'"),
                        current: format!("'{current}'"),
                    }),
                })
            }
        };
        flag(
            "durable",
            queue.is_durable(),
            spec.durable && !spec.exclusive,
        )?;
        flag("auto_delete", queue.is_auto_delete(), spec.auto_delete)?;
        queue.args().assert_equivalent(
            &queue.spec().arguments,
            &spec.arguments,
            queue.name(),
            self.name(),
        )
    }

    /// queue.delete: the number of ready messages it had. A missing queue is not an error.
    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        owner: OwnerId,
    ) -> Result<u32, Error> {
        let Some(queue) = self.lookup_queue(name) else {
            return Ok(0);
        };
        queue.check_access(owner)?;
        let (ready, consumers) = queue.counts();
        if if_unused && consumers > 0 {
            return Err(Error::InUse {
                kind: ResourceKind::Queue,
                name: name.to_owned(),
                vhost: self.name().to_owned(),
            });
        }
        if if_empty && ready > 0 {
            return Err(Error::NotEmpty {
                name: name.to_owned(),
                vhost: self.name().to_owned(),
            });
        }
        Ok(self.remove_queue(&queue))
    }

    /// Deletes a queue unconditionally (exclusive owner gone, auto-delete, x-expires):
    /// unregisters it, cancels its consumers, removes its bindings.
    pub fn remove_queue(&self, queue: &Arc<Queue>) -> u32 {
        {
            let mut map = write(&self.queues.map);
            if map.get(queue.name()).is_some_and(|q| Arc::ptr_eq(q, queue)) {
                map.remove(queue.name());
                self.namespace().release(queue.name(), NameKind::Queue);
            }
        }
        {
            let mut reply = write(&self.queues.reply);
            if reply
                .get(queue.name())
                .is_some_and(|q| Arc::ptr_eq(q, queue))
            {
                reply.remove(queue.name());
            }
        }
        let durable = queue.is_durable() && !queue.is_deleted();
        if durable {
            self.forget_queue(queue);
        }
        let (count, files) = queue.shut_down();
        self.remove_bindings_to(&Destination::Queue(queue.clone()));
        if let Some(dir) = files {
            let dir = super::store::retire(&dir);
            // The files go once the definition's removal is on disk.
            let pending = self.definitions().sync_all();
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => drop(handle.spawn(async move {
                    if let Err(e) = pending.durable().await {
                        tracing::error!("definitions sync before removing queue files: {e}");
                    }
                    super::persist::remove_files_later(dir);
                })),
                Err(_) => {
                    if let Err(e) = self.definitions().flush() {
                        tracing::error!("definitions sync before removing queue files: {e}");
                    }
                    super::persist::remove_files_later(dir);
                }
            }
        }
        count
    }

    /// Creates the reply queue of a direct reply-to consumer; its name is the reply address
    /// publishers will use as a routing key on the default exchange.
    pub fn create_reply_queue(self: &Arc<Self>, owner: OwnerId) -> Arc<Queue> {
        let name = format!("{REPLY_TO_PREFIX}{}", random_token());
        let mut spec = QueueSpec::new(name);
        spec.exclusive = true;
        let queue = Queue::new(self, spec, Some(owner), QueueArgs::default());
        write(&self.queues.reply).insert(queue.name().to_owned(), queue.clone());
        queue
    }

    /// The reply queue behind a reply address, if its consumer still exists.
    pub fn reply_queue(&self, address: &str) -> Option<Arc<Queue>> {
        read(&self.queues.reply).get(address).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_look_like_rabbitmqs() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 22);
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(base64url(b"\xfb\xff"), "-_8");
    }
}
