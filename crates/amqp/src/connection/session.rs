//! What a connection knows once it is open, shared by every channel handler.

use std::sync::{Arc, Mutex, PoisonError};

use amq_protocol::protocol::AMQPClass;
use bytes::BytesMut;
use ferrymq_auth::{Action, DecisionCache, ResourceType, User};
use ferrymq_core::VHost;
use ferrymq_core::connections::Registered;
use ferrymq_core::queue::{DurabilityWait, Queue};
use tokio::sync::mpsc;

use super::outbox::Outbox;
use crate::codec::method::encode_method;
use crate::context::AmqpContext;
use crate::error::{AmqpError, AmqpResult, ReplyCode};

/// Per-connection state handlers read and update.
#[derive(Debug)]
pub struct Session {
    pub ctx: Arc<AmqpContext>,
    pub vhost: Arc<VHost>,
    pub user: Arc<User>,
    /// Owner id for exclusive queues and consumers (the registered connection's id).
    pub conn_id: u64,
    /// The connection as listings see it; deregistered when the session is dropped.
    pub registration: Registered,
    pub outbox: Arc<Outbox>,
    /// Exclusive queues declared here: deleted when the connection closes.
    pub exclusive: Vec<Arc<Queue>>,
    /// The client handles broker-initiated basic.cancel.
    pub cancel_notify: bool,
    /// Frames being built for the outbox; flushed once per read batch.
    pub pending: BytesMut,
    /// The connection has published (it is blocked while the memory alarm is on).
    pub published: bool,
    /// Where durability confirmations for publishes come back to the reader.
    pub durable_tx: mpsc::Sender<(u16, u64, bool)>,
    /// A request changed durable definitions: replies wait until the journal is synced.
    pub sync_definitions: bool,
    /// The user has topic permissions on this vhost: publishes to topic exchanges check
    /// their routing key (otherwise they pay nothing).
    pub topic_checks: bool,
    /// Cached permission decisions, one cache per (resource type, action).
    pub decisions: Mutex<[DecisionCache<String>; 6]>,
}

impl Session {
    /// RabbitMQ's configure/write/read check of the user on this vhost: 403 ACCESS_REFUSED.
    /// Decisions are cached per connection until users or permissions change, so a publish
    /// path checks a map, not a pattern.
    pub fn authorize(&self, kind: ResourceType, name: &str, action: Action) -> AmqpResult<()> {
        let check = || {
            self.ctx
                .users
                .authorize(&self.user.name, self.vhost.name(), kind, name, action)
        };
        let slot = kind as usize * 3 + action as usize;
        let allowed = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(slot)
            .is_some_and(|cache| cache.get_or(&self.ctx.users, name, || check().is_ok()));
        if allowed {
            return Ok(());
        }
        check().map_err(|refusal| AmqpError::new(ReplyCode::AccessRefused, refusal.text))
    }

    /// The topic-permission check of a routing key on topic exchange `exchange`.
    pub fn authorize_topic(&self, exchange: &str, key: &str, action: Action) -> AmqpResult<()> {
        if !self.topic_checks {
            return Ok(());
        }
        self.ctx
            .users
            .authorize_topic(&self.user.name, self.vhost.name(), exchange, key, action)
            .map_err(|refusal| AmqpError::new(ReplyCode::AccessRefused, refusal.text))
    }

    /// Queues a method reply (sent at the end of the current read batch).
    pub fn send(&mut self, channel: u16, method: &AMQPClass) {
        encode_method(channel, method, &mut self.pending);
    }

    /// Hands frames built so far to the writer.
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.outbox.push_frames(self.pending.split().freeze());
        }
    }

    /// Waits for a persistent message to be durable, then lets the reader settle its confirm.
    pub fn await_durability(&self, channel: u16, seq: u64, wait: DurabilityWait) {
        let tx = self.durable_tx.clone();
        tokio::spawn(async move {
            let ok = wait.await;
            let _ = tx.send((channel, seq, ok)).await;
        });
    }

    /// Where the definitions journal ends now (see [`Self::note_definitions`]).
    pub fn definitions_mark(&self) -> u64 {
        self.vhost.definitions().end()
    }

    /// If definitions changed since `mark`, replies of this batch wait for them to be durable
    /// (declare-ok, bind-ok and delete-ok promise that the change survives a crash).
    pub fn note_definitions(&mut self, mark: u64) {
        if self.vhost.definitions().end() != mark {
            self.sync_definitions = true;
        }
    }

    /// Forgets exclusive queues that were deleted.
    pub fn prune_exclusive(&mut self) {
        self.exclusive.retain(|q| !q.is_deleted());
    }
}
