//! Who is connected: every client connection of every protocol, its channels, and a way to
//! close one from outside (the management API).
//!
//! A frontend registers a connection once it is open and holds the returned
//! [`Registered`] for the connection's life (dropping it deregisters). Byte and frame counts
//! are relaxed atomics the frontend bumps per socket read or write batch; everything else is
//! read only when someone asks (a channel is a [`ChannelView`] the frontend implements and
//! that snapshots its own state on demand), so the registry costs the publish and delivery
//! paths nothing.
//!
//! ```text
//! Connections ── id -> Connection ── info (protocol, peer, user, vhost, client properties)
//!                                ├── counters (recv/send octets and frames)
//!                                ├── channels: number -> dyn ChannelView
//!                                └── close request (reason) -> the frontend's serve loop
//! ```
//!
//! Connection ids double as the [`crate::queue::OwnerId`] of exclusive queues and consumers.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::Error;
use crate::message::FieldTable;

/// The wire protocol of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Amqp091,
    Kafka,
}

impl Protocol {
    /// As RabbitMQ's management API names protocols.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Amqp091 => "AMQP 0-9-1",
            Self::Kafka => "Kafka",
        }
    }
}

/// What TLS negotiated on a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// As RabbitMQ names it: `tlsv1.2`, `tlsv1.3`.
    pub protocol: String,
    /// The cipher suite, as rustls names it (`TLS13_AES_256_GCM_SHA384`).
    pub cipher: String,
    /// The client's certificate, when it sent one that the CA bundle verified.
    pub peer: Option<PeerCertificate>,
}

/// Where a connection comes from: addresses, and what TLS negotiated (None: plaintext).
#[derive(Debug, Clone)]
pub struct Transport {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: Option<TlsInfo>,
}

/// A verified client certificate, as the broker identifies its holder by it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject as an RFC 2253 string (`CN=alice,O=Example`), Kafka's SSL principal name.
    pub subject: String,
    pub issuer: String,
    /// The subject's first common name (AMQP EXTERNAL's user name).
    pub common_name: Option<String>,
    /// `not_before - not_after`, RFC 3339.
    pub validity: String,
}

/// What a connection said about itself when it opened.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub protocol: Protocol,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: String,
    /// The vhost it opened (for Kafka, the Kafka vhost).
    pub vhost: String,
    pub auth_mechanism: String,
    /// AMQP client properties; for Kafka, `product` = the client id.
    pub client_properties: FieldTable,
    /// A name the client gave (`connection_name`), if any.
    pub user_provided_name: Option<String>,
    pub frame_max: u32,
    pub channel_max: u16,
    /// Negotiated heartbeat, seconds.
    pub heartbeat: u16,
    /// None on a plaintext listener.
    pub tls: Option<TlsInfo>,
}

/// A channel as the frontend reports it when asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelSnapshot {
    pub number: u16,
    /// Per-consumer prefetch (`basic.qos` global=false).
    pub prefetch_count: u32,
    /// Channel-wide prefetch (`basic.qos` global=true).
    pub global_prefetch_count: u32,
    pub messages_unacknowledged: u64,
    pub messages_unconfirmed: u64,
    pub consumer_count: u32,
    pub confirm: bool,
    pub transactional: bool,
    /// channel.flow off from the client.
    pub flow_blocked: bool,
}

/// A frontend's channel, readable from outside.
pub trait ChannelView: Send + Sync + fmt::Debug {
    fn snapshot(&self) -> ChannelSnapshot;
}

/// Socket traffic of one connection.
#[derive(Debug, Default)]
pub struct Counters {
    pub recv_oct: AtomicU64,
    pub recv_cnt: AtomicU64,
    pub send_oct: AtomicU64,
    pub send_cnt: AtomicU64,
}

impl Counters {
    pub fn received(&self, bytes: usize, frames: u64) {
        self.recv_oct.fetch_add(bytes as u64, Ordering::Relaxed);
        self.recv_cnt.fetch_add(frames, Ordering::Relaxed);
    }

    pub fn sent(&self, bytes: usize, frames: u64) {
        self.send_oct.fetch_add(bytes as u64, Ordering::Relaxed);
        self.send_cnt.fetch_add(frames, Ordering::Relaxed);
    }
}

/// One registered connection.
#[derive(Debug)]
pub struct Connection {
    id: u64,
    name: String,
    connected_at_ms: u64,
    info: RwLock<ConnectionInfo>,
    /// Shared with the frontend's reader and writer tasks.
    pub counters: Arc<Counters>,
    channels: Mutex<BTreeMap<u16, Arc<dyn ChannelView>>>,
    /// Publishers blocked by a resource alarm.
    blocked: AtomicBool,
    close_reason: Mutex<Option<String>>,
    close: Notify,
}

impl Connection {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// RabbitMQ's connection name: `peer -> local`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Milliseconds since the Unix epoch.
    pub fn connected_at_ms(&self) -> u64 {
        self.connected_at_ms
    }

    pub fn info(&self) -> ConnectionInfo {
        self.info
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes what is known about the connection (a Kafka client's id arrives with its
    /// first request, its user with SASL).
    pub fn update(&self, change: impl FnOnce(&mut ConnectionInfo)) {
        change(&mut self.info.write().unwrap_or_else(PoisonError::into_inner));
    }

    pub fn add_channel(&self, number: u16, view: Arc<dyn ChannelView>) {
        self.lock_channels().insert(number, view);
    }

    pub fn remove_channel(&self, number: u16) {
        self.lock_channels().remove(&number);
    }

    /// Every open channel, by number.
    pub fn channels(&self) -> Vec<ChannelSnapshot> {
        let views: Vec<Arc<dyn ChannelView>> = self.lock_channels().values().cloned().collect();
        views.iter().map(|v| v.snapshot()).collect()
    }

    pub fn channel_count(&self) -> usize {
        self.lock_channels().len()
    }

    fn lock_channels(&self) -> std::sync::MutexGuard<'_, BTreeMap<u16, Arc<dyn ChannelView>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::Relaxed);
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Whether someone asked for it to close: listings no longer show it, as its close
    /// handshake may take a moment.
    pub fn is_closing(&self) -> bool {
        self.close_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Asks the connection's frontend to close it, telling the client `reason`.
    pub fn request_close(&self, reason: &str) {
        *self
            .close_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.to_owned());
        // A stored permit: the serve loop sees it even if it is not waiting right now.
        self.close.notify_one();
    }

    /// Resolves with the reason once [`Self::request_close`] was called.
    pub async fn close_requested(&self) -> String {
        loop {
            if let Some(reason) = self
                .close_reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
            {
                return reason;
            }
            self.close.notified().await;
        }
    }
}

/// The registry of one broker.
#[derive(Debug, Default)]
pub struct Connections {
    map: RwLock<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    /// Registered connections per protocol and per (protocol, vhost), for [`Admission`]:
    /// checked and counted under one lock, so concurrent opens never overshoot a limit.
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    per_protocol: HashMap<Protocol, usize>,
    per_vhost: HashMap<(Protocol, String), usize>,
}

/// Limits a connection must be within to be registered (see [`Connections::admit`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Admission {
    /// Connections of its protocol on this node (AMQP: `amqp.max_connections`, RabbitMQ's
    /// `connection_max`).
    pub node: Option<usize>,
    /// Connections of its protocol to its vhost (the vhost's `max-connections` limit).
    pub vhost: Option<u64>,
}

/// Keeps a connection registered; dropping it deregisters.
#[derive(Debug)]
pub struct Registered {
    registry: Arc<Connections>,
    connection: Arc<Connection>,
    /// The key it is counted under.
    protocol: Protocol,
    vhost: String,
}

impl Registered {
    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    pub fn id(&self) -> u64 {
        self.connection.id
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.connection.id);
        let mut counts = self.registry.lock_counts();
        let key = (self.protocol, std::mem::take(&mut self.vhost));
        if let Some(n) = counts.per_vhost.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                counts.per_vhost.remove(&key);
            }
        }
        if let Some(n) = counts.per_protocol.get_mut(&self.protocol) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Connections {
    /// A fresh connection id (also for connections that never register, such as tests).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers an open connection under a fresh id.
    pub fn register(self: &Arc<Self>, info: ConnectionInfo) -> Registered {
        self.register_as(self.next_id(), info)
    }

    /// Registers an open connection under an id taken from [`Self::next_id`].
    pub fn register_as(self: &Arc<Self>, id: u64, info: ConnectionInfo) -> Registered {
        match self.admit_as(id, info, Admission::default()) {
            Ok(registered) => registered,
            Err(_) => unreachable!("no limits to refuse by"),
        }
    }

    /// Registers an open connection under a fresh id if it is within `limits`; otherwise
    /// registers nothing and says which limit refused it ([`Error::NodeConnectionLimit`] or
    /// [`Error::ConnectionLimit`], RabbitMQ's texts).
    pub fn admit(
        self: &Arc<Self>,
        info: ConnectionInfo,
        limits: Admission,
    ) -> Result<Registered, Error> {
        self.admit_as(self.next_id(), info, limits)
    }

    fn lock_counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn admit_as(
        self: &Arc<Self>,
        id: u64,
        info: ConnectionInfo,
        limits: Admission,
    ) -> Result<Registered, Error> {
        let protocol = info.protocol;
        let vhost = info.vhost.clone();
        {
            let mut counts = self.lock_counts();
            let on_node = counts.per_protocol.get(&protocol).copied().unwrap_or(0);
            if let Some(limit) = limits.node
                && on_node >= limit
            {
                return Err(Error::NodeConnectionLimit { limit });
            }
            let key = (protocol, vhost.clone());
            let on_vhost = counts.per_vhost.get(&key).copied().unwrap_or(0);
            if let Some(limit) = limits.vhost
                && on_vhost as u64 >= limit
            {
                return Err(Error::ConnectionLimit {
                    vhost,
                    user: info.user,
                    limit,
                });
            }
            *counts.per_protocol.entry(protocol).or_insert(0) += 1;
            *counts.per_vhost.entry(key).or_insert(0) += 1;
        }
        let connected_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let connection = Arc::new(Connection {
            id,
            name: format!("{} -> {}", info.peer, info.local),
            connected_at_ms,
            info: RwLock::new(info),
            counters: Arc::new(Counters::default()),
            channels: Mutex::new(BTreeMap::new()),
            blocked: AtomicBool::new(false),
            close_reason: Mutex::new(None),
            close: Notify::new(),
        });
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::clone(&connection));
        Ok(Registered {
            registry: Arc::clone(self),
            connection,
            protocol,
            vhost,
        })
    }

    /// Every registered connection not asked to close (a snapshot, in id order).
    pub fn list(&self) -> Vec<Arc<Connection>> {
        let mut list: Vec<Arc<Connection>> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|c| !c.is_closing())
            .cloned()
            .collect();
        list.sort_by_key(|c| c.id);
        list
    }

    pub fn get(&self, id: u64) -> Option<Arc<Connection>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// The connection RabbitMQ would call `name`, unless it is closing.
    pub fn by_name(&self, name: &str) -> Option<Arc<Connection>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .find(|c| c.name == name && !c.is_closing())
            .cloned()
    }

    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks every connection on `vhost` to close (the vhost is being deleted).
    pub fn close_vhost(&self, vhost: &str, reason: &str) {
        for connection in self.list() {
            if connection.info().vhost == vhost {
                connection.request_close(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(ChannelSnapshot);

    impl ChannelView for Fixed {
        fn snapshot(&self) -> ChannelSnapshot {
            self.0.clone()
        }
    }

    fn info(vhost: &str) -> ConnectionInfo {
        ConnectionInfo {
            protocol: Protocol::Amqp091,
            peer: "127.0.0.1:50000".parse().unwrap(),
            local: "127.0.0.1:5672".parse().unwrap(),
            user: "guest".into(),
            vhost: vhost.into(),
            auth_mechanism: "PLAIN".into(),
            client_properties: FieldTable::new(),
            user_provided_name: None,
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            tls: None,
        }
    }

    #[test]
    fn admission_counts_per_protocol_and_vhost_and_frees_on_drop() {
        let registry = Arc::new(Connections::default());
        let vhost_two = Admission {
            node: Some(3),
            vhost: Some(2),
        };
        let a = registry.admit(info("/"), vhost_two).unwrap();
        let _b = registry.admit(info("/"), vhost_two).unwrap();
        let refused = registry.admit(info("/"), vhost_two).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "access to vhost '/' refused for user 'guest': connection limit (2) is reached"
        );
        let _c = registry.admit(info("other"), vhost_two).unwrap();
        let refused = registry.admit(info("third"), vhost_two).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "connection refused: node connection limit (3) is reached"
        );
        let mut kafka = info("/");
        kafka.protocol = Protocol::Kafka;
        let _k = registry.admit(kafka, vhost_two).unwrap();
        assert_eq!(registry.len(), 4, "a refusal registers nothing");
        drop(a);
        assert!(registry.admit(info("/"), vhost_two).is_ok());
    }

    #[test]
    fn concurrent_admissions_never_overshoot() {
        let registry = Arc::new(Connections::default());
        let limits = Admission {
            node: None,
            vhost: Some(5),
        };
        let admitted: Vec<Registered> = std::thread::scope(|scope| {
            let tries: Vec<_> = (0..32)
                .map(|_| scope.spawn(|| registry.admit(info("/"), limits).ok()))
                .collect();
            tries
                .into_iter()
                .filter_map(|t| t.join().unwrap())
                .collect()
        });
        assert_eq!(admitted.len(), 5);
    }

    #[test]
    fn registration_lives_as_long_as_its_guard() {
        let registry = Arc::new(Connections::default());
        let a = registry.register(info("/"));
        let b = registry.register(info("other"));
        assert_ne!(a.id(), b.id());
        assert_eq!(registry.len(), 2);
        assert_eq!(a.connection().name(), "127.0.0.1:50000 -> 127.0.0.1:5672");
        assert!(registry.by_name(a.connection().name()).is_some());
        drop(a);
        assert_eq!(registry.len(), 1);
        assert_eq!(registry.list()[0].info().vhost, "other");
    }

    #[test]
    fn channels_are_snapshotted_when_asked() {
        let registry = Arc::new(Connections::default());
        let conn = registry.register(info("/"));
        let snapshot = ChannelSnapshot {
            number: 1,
            prefetch_count: 10,
            ..ChannelSnapshot::default()
        };
        conn.connection()
            .add_channel(1, Arc::new(Fixed(snapshot.clone())));
        assert_eq!(conn.connection().channels(), vec![snapshot]);
        conn.connection().remove_channel(1);
        assert_eq!(conn.connection().channel_count(), 0);
    }

    #[tokio::test]
    async fn a_close_request_reaches_a_later_waiter() {
        let registry = Arc::new(Connections::default());
        let conn = registry.register(info("v"));
        registry.close_vhost("v", "vhost deleted");
        assert!(
            registry.list().is_empty(),
            "a closing connection is not listed"
        );
        assert!(registry.by_name(conn.connection().name()).is_none());
        let reason = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            conn.connection().close_requested(),
        )
        .await
        .unwrap();
        assert_eq!(reason, "vhost deleted");
    }
}
