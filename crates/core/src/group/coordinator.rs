//! The group coordinator: the operations frontends call, each under one group's lock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use ferrymq_log::FsyncPolicy;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::codec::MetaRecord;
use super::state::{Group, GroupState};
use super::store::MetaStore;
use super::{GroupError, JoinResponse, SyncResponse, now_ms};
use crate::Error;
use crate::stream::StreamId;

/// How often sessions and rebalance deadlines are checked.
pub const TICK: Duration = Duration::from_millis(100);

/// How often the offsets log is checked for compaction, and the size that makes it worth it.
const COMPACTION_CHECK: Duration = Duration::from_secs(60);
const COMPACTION_BYTES: u64 = 64 << 20;

/// Group settings (Kafka's `group.*` and `offsets.*` broker configs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout_ms: u32,
    pub max_session_timeout_ms: u32,
    /// Offsets of a group that stayed empty this long are deleted.
    pub offsets_retention: Duration,
    /// An empty group without offsets is forgotten after this long (Kafka removes such groups
    /// at its next `offsets.retention.check.interval.ms` pass, 10 minutes by default), so a
    /// group that was just left can still be described and deleted.
    pub empty_group_retention: Duration,
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay: Duration::from_secs(3),
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            empty_group_retention: Duration::from_secs(10 * 60),
            offset_metadata_max_bytes: 4096,
        }
    }
}

/// A response now, or one that a later group transition delivers.
#[derive(Debug)]
pub enum Pending<T> {
    Ready(T),
    Wait(oneshot::Receiver<T>),
}

impl<T> Pending<T> {
    /// The response; `dropped` stands in if the coordinator went away before answering.
    pub async fn resolve(self, dropped: impl FnOnce() -> T) -> T {
        match self {
            Self::Ready(value) => value,
            Self::Wait(rx) => rx.await.unwrap_or_else(|_| dropped()),
        }
    }
}

pub(super) type GroupRef = Arc<Mutex<Group>>;

pub(super) fn lock(group: &GroupRef) -> MutexGuard<'_, Group> {
    group.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every consumer group of the broker.
#[derive(Debug)]
pub struct Coordinator {
    pub(super) config: GroupConfig,
    pub(super) groups: RwLock<HashMap<String, GroupRef>>,
    pub(super) store: Arc<MetaStore>,
    pub(super) shutting_down: AtomicBool,
    ticker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Result of an offset commit: per-partition errors, and the log offset to await.
#[derive(Debug)]
pub struct Committed {
    pub errors: Vec<Option<GroupError>>,
    pub end: Option<u64>,
}

pub(super) fn new_member_id(client_id: &str) -> String {
    let hex = StreamId::random().to_hex();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    let prefix = if client_id.is_empty() {
        "member"
    } else {
        client_id
    };
    format!("{prefix}-{uuid}")
}

impl Coordinator {
    /// Opens the coordinator, restoring groups and offsets from `<data_dir>/meta/offsets`.
    pub fn open(
        data_dir: &Path,
        fsync: FsyncPolicy,
        config: GroupConfig,
    ) -> Result<Arc<Self>, Error> {
        let (store, loaded) = MetaStore::open(data_dir, fsync)?;
        let now = Instant::now();
        let mut groups = HashMap::new();
        for (id, stored) in loaded.groups {
            groups.insert(id.clone(), Group::restore(id, stored, now));
        }
        for (id, offsets) in loaded.offsets {
            groups
                .entry(id.clone())
                .or_insert_with(|| Group::new(id, now_ms()))
                .offsets = offsets;
        }
        tracing::info!(groups = groups.len(), "consumer groups restored");
        let groups = groups
            .into_iter()
            .map(|(k, g)| (k, Arc::new(Mutex::new(g))))
            .collect();
        Ok(Arc::new(Self {
            config,
            groups: RwLock::new(groups),
            store: Arc::new(store),
            shutting_down: AtomicBool::new(false),
            ticker: Mutex::new(None),
        }))
    }

    pub fn config(&self) -> GroupConfig {
        self.config
    }

    /// Starts the session/deadline ticker (inside a tokio runtime).
    pub fn start(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let task = handle.spawn(async move {
            let mut ticker = tokio::time::interval(TICK);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut next_compaction = Instant::now() + COMPACTION_CHECK;
            loop {
                ticker.tick().await;
                let Some(coordinator) = weak.upgrade() else {
                    return;
                };
                let now = Instant::now();
                coordinator.tick(now);
                if now >= next_compaction {
                    next_compaction = now + COMPACTION_CHECK;
                    let store = Arc::clone(&coordinator.store);
                    let done = tokio::task::spawn_blocking(move || {
                        store.compact_if_large(COMPACTION_BYTES)
                    })
                    .await;
                    if let Ok(Err(e)) = done {
                        tracing::error!("offsets log compaction failed: {e}");
                    }
                }
            }
        });
        if let Some(old) = self
            .ticker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task)
        {
            old.abort();
        }
    }

    /// Refuses new work, answers every waiter with `ShuttingDown`, flushes (blocking).
    pub fn shutdown(&self) -> Result<(), Error> {
        self.shutting_down.store(true, Ordering::Release);
        if let Some(task) = self
            .ticker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        for group in self.all() {
            let mut g = lock(&group);
            for m in &mut g.members {
                if let Some(w) = m.join_waiter.take() {
                    let _ = w.send(JoinResponse::error(GroupError::ShuttingDown, m.id.clone()));
                }
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResponse::error(GroupError::ShuttingDown));
                }
            }
        }
        self.store.flush()
    }

    pub(super) fn all(&self) -> Vec<GroupRef> {
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    pub(super) fn group(&self, id: &str) -> Option<GroupRef> {
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub(super) fn group_or_create(&self, id: &str) -> GroupRef {
        if let Some(g) = self.group(id) {
            return g;
        }
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            groups
                .entry(id.to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(Group::new(id.to_owned(), now_ms())))),
        )
    }

    /// A group that the ticker has not just retired (it marks a group `Dead` under its lock
    /// before dropping it from the map).
    pub(super) fn live_group_or_create(&self, id: &str) -> GroupRef {
        loop {
            let group = self.group_or_create(id);
            if lock(&group).state != GroupState::Dead {
                return group;
            }
            self.groups
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(id);
        }
    }

    pub(super) fn check_open(&self) -> Result<(), GroupError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(GroupError::ShuttingDown);
        }
        Ok(())
    }

    pub(super) fn persist_group(&self, g: &Group) {
        let record = MetaRecord::Group {
            group: g.id.clone(),
            value: g.stored(),
        };
        if let Err(e) = self.store.append(&[record]) {
            tracing::error!(group = %g.id, "group metadata not stored: {e}");
        }
    }

    /// One pass of session expiry, rebalance deadlines and offset retention.
    pub fn tick(&self, now: Instant) {
        let now_ms = now_ms();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let (retention, empty_retention) = (
            ms(self.config.offsets_retention),
            ms(self.config.empty_group_retention),
        );
        let mut dead = Vec::new();
        for group in self.all() {
            let mut g = lock(&group);
            if g.tick(now, now_ms) {
                self.persist_group(&g);
            }
            let empty =
                g.state == GroupState::Empty && g.members.is_empty() && g.pending.is_empty();
            let keep_for = if g.offsets.is_empty() {
                empty_retention
            } else {
                retention
            };
            if empty && now_ms.saturating_sub(g.state_since_ms) > keep_for {
                g.set_state(GroupState::Dead, now_ms);
                dead.push(g.id.clone());
            }
        }
        if dead.is_empty() {
            return;
        }
        let mut groups = self.groups.write().unwrap_or_else(PoisonError::into_inner);
        for id in &dead {
            groups.remove(id);
        }
        drop(groups);
        let records: Vec<MetaRecord> = dead
            .into_iter()
            .map(|group| MetaRecord::DeleteGroup { group })
            .collect();
        if let Err(e) = self.store.append(&records) {
            tracing::error!("expired groups not stored: {e}");
        }
    }
}

pub(super) fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
