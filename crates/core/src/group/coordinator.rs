//! The group coordinator: the operations frontends call, each under one group's lock.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use bytes::Bytes;
use ferrymq_log::FsyncPolicy;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::codec::{CommittedOffset, MetaRecord};
use super::state::{Group, GroupState, Member};
use super::store::MetaStore;
use super::{
    GroupDescription, GroupError, JoinRequest, JoinResponse, MemberDescription, SyncResponse,
    now_ms,
};
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
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay: Duration::from_secs(3),
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
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

type GroupRef = Arc<Mutex<Group>>;

fn lock(group: &GroupRef) -> MutexGuard<'_, Group> {
    group.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every consumer group of the broker.
#[derive(Debug)]
pub struct Coordinator {
    config: GroupConfig,
    groups: RwLock<HashMap<String, GroupRef>>,
    store: Arc<MetaStore>,
    shutting_down: AtomicBool,
    ticker: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Result of an offset commit: per-partition errors, and the log offset to await.
#[derive(Debug)]
pub struct Committed {
    pub errors: Vec<Option<GroupError>>,
    pub end: Option<u64>,
}

fn new_member_id(client_id: &str) -> String {
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

    fn all(&self) -> Vec<GroupRef> {
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    fn group(&self, id: &str) -> Option<GroupRef> {
        self.groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn group_or_create(&self, id: &str) -> GroupRef {
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
    fn live_group_or_create(&self, id: &str) -> GroupRef {
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

    fn check_open(&self) -> Result<(), GroupError> {
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(GroupError::ShuttingDown);
        }
        Ok(())
    }

    fn persist_group(&self, g: &Group) {
        let record = MetaRecord::Group {
            group: g.id.clone(),
            value: g.stored(),
        };
        if let Err(e) = self.store.append(&[record]) {
            tracing::error!(group = %g.id, "group metadata not stored: {e}");
        }
    }

    /// JoinGroup.
    pub fn join(&self, req: &JoinRequest) -> Pending<JoinResponse> {
        let fail = |e: GroupError| Pending::Ready(JoinResponse::error(e, req.member_id.clone()));
        if let Err(e) = self.check_open() {
            return fail(e);
        }
        if req.group_id.is_empty() {
            return fail(GroupError::InvalidGroupId {
                group: String::new(),
                reason: "must not be empty".into(),
            });
        }
        let (min, max) = (
            self.config.min_session_timeout_ms,
            self.config.max_session_timeout_ms,
        );
        if u32::try_from(req.session_timeout_ms).is_ok_and(|t| t < min || t > max)
            || req.session_timeout_ms < 0
        {
            return fail(GroupError::InvalidSessionTimeout {
                timeout_ms: req.session_timeout_ms,
                min,
                max,
            });
        }
        if !req.member_id.is_empty() && self.group(&req.group_id).is_none() {
            return fail(GroupError::UnknownMember {
                group: req.group_id.clone(),
                member_id: req.member_id.clone(),
            });
        }
        let group = self.live_group_or_create(&req.group_id);
        let mut g = lock(&group);
        let ignoring = (!req.member_id.is_empty()).then_some(req.member_id.as_str());
        if !g.accepts(&req.protocol_type, &req.protocols, ignoring) {
            return fail(GroupError::InconsistentProtocol {
                group: g.id.clone(),
                reason: "protocol type or protocols do not match the group's".into(),
            });
        }
        let now = Instant::now();
        if req.member_id.is_empty() {
            let member_id = new_member_id(&req.client_id);
            if let Some(instance) = &req.instance_id
                && let Some(old) = g.statics.get(instance).cloned()
            {
                return self.replace_static(&mut g, &old, member_id, req, now);
            }
            if req.instance_id.is_none() && req.require_known_member_id {
                let deadline = now + millis(req.session_timeout_ms);
                g.pending.insert(member_id.clone(), deadline);
                let e = GroupError::MemberIdRequired {
                    group: g.id.clone(),
                    member_id: member_id.clone(),
                };
                return Pending::Ready(JoinResponse::error(e, member_id));
            }
            return Pending::Wait(self.add_member(&mut g, member_id, req, now));
        }
        if g.pending.remove(&req.member_id).is_some() {
            return Pending::Wait(self.add_member(&mut g, req.member_id.clone(), req, now));
        }
        if let Err(e) = g.check_member(&req.member_id, req.instance_id.as_deref()) {
            return fail(e);
        }
        self.rejoin(&mut g, req, now)
    }

    fn add_member(
        &self,
        g: &mut Group,
        member_id: String,
        req: &JoinRequest,
        now: Instant,
    ) -> oneshot::Receiver<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        if let Some(instance) = &req.instance_id {
            g.statics.insert(instance.clone(), member_id.clone());
        }
        g.members.push(Member {
            id: member_id,
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout: millis(req.session_timeout_ms),
            rebalance_timeout: millis(req.rebalance_timeout_ms.max(req.session_timeout_ms)),
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            last_heartbeat: now,
            join_waiter: Some(tx),
            sync_waiter: None,
        });
        if g.state == GroupState::PreparingRebalance {
            g.extend_initial_delay(now, self.config.initial_rebalance_delay);
        } else {
            g.prepare_rebalance(now, now_ms(), self.config.initial_rebalance_delay);
        }
        if g.maybe_complete_join(now, now_ms(), false) {
            self.persist_group(g);
        }
        rx
    }

    fn rejoin(&self, g: &mut Group, req: &JoinRequest, now: Instant) -> Pending<JoinResponse> {
        let leader = g.leader.clone();
        let Some(member) = g.member_mut(&req.member_id) else {
            return Pending::Ready(JoinResponse::error(
                GroupError::UnknownMember {
                    group: req.group_id.clone(),
                    member_id: req.member_id.clone(),
                },
                req.member_id.clone(),
            ));
        };
        let changed = member.protocols != req.protocols;
        member.protocols.clone_from(&req.protocols);
        member.session_timeout = millis(req.session_timeout_ms);
        member.rebalance_timeout = millis(req.rebalance_timeout_ms.max(req.session_timeout_ms));
        member.last_heartbeat = now;
        let is_leader = leader.as_deref() == Some(req.member_id.as_str());
        let must_rebalance = match g.state {
            GroupState::PreparingRebalance => false,
            GroupState::CompletingRebalance => changed,
            GroupState::Stable => changed || is_leader,
            GroupState::Empty | GroupState::Dead => true,
        };
        if g.state != GroupState::PreparingRebalance && !must_rebalance {
            return Pending::Ready(current_join_response(g, &req.member_id));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(member) = g.member_mut(&req.member_id)
            && let Some(old) = member.join_waiter.replace(tx)
        {
            let _ = old.send(JoinResponse::error(
                GroupError::RebalanceInProgress {
                    group: req.group_id.clone(),
                },
                req.member_id.clone(),
            ));
        }
        if g.state != GroupState::PreparingRebalance {
            g.prepare_rebalance(now, now_ms(), Duration::ZERO);
        }
        if g.maybe_complete_join(now, now_ms(), false) {
            self.persist_group(g);
        }
        Pending::Wait(rx)
    }

    fn replace_static(
        &self,
        g: &mut Group,
        old: &str,
        new_id: String,
        req: &JoinRequest,
        now: Instant,
    ) -> Pending<JoinResponse> {
        let group_id = g.id.clone();
        let instance = req.instance_id.clone().unwrap_or_default();
        let Some(member) = g.member_mut(old) else {
            g.statics.remove(&instance);
            return Pending::Wait(self.add_member(g, new_id, req, now));
        };
        let fenced = GroupError::FencedInstance {
            group: group_id,
            instance_id: instance.clone(),
            member_id: old.to_owned(),
        };
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResponse::error(fenced.clone(), old.to_owned()));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResponse::error(fenced));
        }
        member.id.clone_from(&new_id);
        member.protocols.clone_from(&req.protocols);
        member.client_id.clone_from(&req.client_id);
        member.client_host.clone_from(&req.client_host);
        member.session_timeout = millis(req.session_timeout_ms);
        member.rebalance_timeout = millis(req.rebalance_timeout_ms.max(req.session_timeout_ms));
        member.last_heartbeat = now;
        let was_leader = g.leader.as_deref() == Some(old);
        if was_leader {
            g.leader = Some(new_id.clone());
        }
        g.statics.insert(instance, new_id.clone());
        // Kafka compares only the protocol the group would select next: a restarted member's
        // metadata (e.g. the partitions it owned) may differ without it mattering.
        let changed = g.select_protocol() != g.protocol;
        if g.state == GroupState::Stable && !changed {
            // As Kafka (KIP-345): a static member coming back with the same subscription
            // keeps its assignment; a returning leader is told to skip assigning (KIP-814).
            self.persist_group(g);
            let mut response = current_join_response(g, &new_id);
            response.skip_assignment = was_leader;
            return Pending::Ready(response);
        }
        let (tx, rx) = oneshot::channel();
        if let Some(member) = g.member_mut(&new_id) {
            member.join_waiter = Some(tx);
        }
        if g.state != GroupState::PreparingRebalance {
            g.prepare_rebalance(now, now_ms(), Duration::ZERO);
        }
        if g.maybe_complete_join(now, now_ms(), false) {
            self.persist_group(g);
        }
        Pending::Wait(rx)
    }

    /// SyncGroup. `assignments` are the leader's, empty from followers.
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the SyncGroup request fields"
    )]
    pub fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> Pending<SyncResponse> {
        let fail = |e| Pending::Ready(SyncResponse::error(e));
        if let Err(e) = self.check_open() {
            return fail(e);
        }
        let unknown = || GroupError::UnknownMember {
            group: group_id.to_owned(),
            member_id: member_id.to_owned(),
        };
        let Some(group) = self.group(group_id) else {
            return fail(unknown());
        };
        let mut g = lock(&group);
        if let Err(e) = g
            .check_member(member_id, instance_id)
            .and_then(|()| g.check_generation(generation))
        {
            return fail(e);
        }
        let mismatch = |ours: &Option<String>, theirs: Option<&str>| {
            theirs.is_some_and(|t| ours.as_deref() != Some(t))
        };
        if mismatch(&g.protocol_type, protocol_type) || mismatch(&g.protocol, protocol) {
            return fail(GroupError::InconsistentProtocol {
                group: g.id.clone(),
                reason: "protocol type or name differs from the group's".into(),
            });
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => fail(unknown()),
            GroupState::PreparingRebalance => fail(GroupError::RebalanceInProgress {
                group: g.id.clone(),
            }),
            GroupState::Stable => {
                let m = g
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Pending::Ready(SyncResponse {
                    error: None,
                    protocol_type: g.protocol_type.clone(),
                    protocol: g.protocol.clone(),
                    assignment: m,
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.member_mut(member_id) {
                    m.sync_waiter = Some(tx);
                    m.last_heartbeat = Instant::now();
                }
                if g.leader.as_deref() == Some(member_id) {
                    let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                    let (ptype, proto) = (g.protocol_type.clone(), g.protocol.clone());
                    for m in &mut g.members {
                        m.assignment = by_member.remove(&m.id).unwrap_or_default();
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(SyncResponse {
                                error: None,
                                protocol_type: ptype.clone(),
                                protocol: proto.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    g.sync_deadline = None;
                    g.set_state(GroupState::Stable, now_ms());
                    self.persist_group(&g);
                }
                Pending::Wait(rx)
            }
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        self.check_open()?;
        let unknown = || GroupError::UnknownMember {
            group: group_id.to_owned(),
            member_id: member_id.to_owned(),
        };
        let group = self.group(group_id).ok_or_else(unknown)?;
        let mut g = lock(&group);
        g.check_member(member_id, instance_id)?;
        g.check_generation(generation)?;
        let state = g.state;
        if let Some(m) = g.member_mut(member_id) {
            m.last_heartbeat = Instant::now();
        }
        match state {
            GroupState::Stable | GroupState::CompletingRebalance => Ok(()),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress {
                group: g.id.clone(),
            }),
            GroupState::Empty | GroupState::Dead => Err(unknown()),
        }
    }

    /// LeaveGroup: each `(member id, instance id)`; an empty member id with an instance id
    /// removes whoever holds that instance.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check_open()?;
        let group = self
            .group(group_id)
            .ok_or_else(|| GroupError::UnknownMember {
                group: group_id.to_owned(),
                member_id: members.first().map(|m| m.0.clone()).unwrap_or_default(),
            })?;
        let mut g = lock(&group);
        let mut results = Vec::with_capacity(members.len());
        let mut removed = false;
        for (member_id, instance) in members {
            let target = match instance {
                Some(instance) => match g.statics.get(instance).cloned() {
                    Some(owner) if member_id.is_empty() || *member_id == owner => Ok(owner),
                    Some(_) => Err(GroupError::FencedInstance {
                        group: g.id.clone(),
                        instance_id: instance.clone(),
                        member_id: member_id.clone(),
                    }),
                    None => Err(GroupError::UnknownMember {
                        group: g.id.clone(),
                        member_id: member_id.clone(),
                    }),
                },
                None if g.member(member_id).is_some() || g.pending.contains_key(member_id) => {
                    Ok(member_id.clone())
                }
                None => Err(GroupError::UnknownMember {
                    group: g.id.clone(),
                    member_id: member_id.clone(),
                }),
            };
            results.push(target.map(|id| {
                tracing::info!(group = %g.id, member = %id, "member left");
                removed |= g.remove_member(&id);
            }));
        }
        if removed {
            g.on_member_left(Instant::now(), now_ms());
            self.persist_group(&g);
        }
        Ok(results)
    }

    /// OffsetCommit: applies and appends the offsets; await [`Self::wait_durable`] on `end`.
    pub fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<Committed, GroupError> {
        self.check_open()?;
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId {
                group: String::new(),
                reason: "must not be empty".into(),
            });
        }
        let group = match self.group(group_id) {
            Some(g) => g,
            None if generation < 0 => self.live_group_or_create(group_id),
            None => {
                return Err(GroupError::IllegalGeneration {
                    group: group_id.to_owned(),
                    got: generation,
                    current: -1,
                });
            }
        };
        let mut g = lock(&group);
        let simple = generation < 0 && g.state == GroupState::Empty;
        if !simple {
            if g.state == GroupState::CompletingRebalance {
                return Err(GroupError::RebalanceInProgress {
                    group: g.id.clone(),
                });
            }
            g.check_member(member_id, instance_id)?;
            g.check_generation(generation)?;
            if let Some(m) = g.member_mut(member_id) {
                m.last_heartbeat = Instant::now();
            }
        }
        let max = self.config.offset_metadata_max_bytes;
        let mut errors = Vec::with_capacity(offsets.len());
        let mut records = Vec::new();
        for (topic, partition, value) in offsets {
            let len = value.metadata.as_ref().map_or(0, String::len);
            if len > max {
                errors.push(Some(GroupError::MetadataTooLarge { len, max }));
                continue;
            }
            errors.push(None);
            g.offsets.insert((topic.clone(), partition), value.clone());
            records.push(MetaRecord::Commit {
                group: g.id.clone(),
                topic,
                partition,
                value,
            });
        }
        let end = if records.is_empty() {
            None
        } else {
            Some(
                self.store
                    .append(&records)
                    .map_err(|e| GroupError::Unstorable {
                        reason: e.to_string(),
                    })?,
            )
        };
        Ok(Committed { errors, end })
    }

    /// Waits until the offsets log is durable up to `end` (per the fsync policy).
    pub async fn wait_durable(&self, end: u64) -> Result<(), Error> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.sync_to(end))
            .await
            .map_err(|e| {
                Error::Group(GroupError::Unstorable {
                    reason: e.to_string(),
                })
            })?
    }

    /// OffsetFetch: the committed offset of each partition asked for (all with `None`).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, i32, Option<CommittedOffset>)> {
        let offsets = self
            .group(group_id)
            .map(|g| lock(&g).offsets.clone())
            .unwrap_or_default();
        match topics {
            Some(topics) => topics
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions.iter().map(|p| {
                        (
                            topic.clone(),
                            *p,
                            offsets.get(&(topic.clone(), *p)).cloned(),
                        )
                    })
                })
                .collect(),
            None => {
                let mut all: Vec<_> = offsets
                    .into_iter()
                    .map(|((t, p), o)| (t, p, Some(o)))
                    .collect();
                all.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                all
            }
        }
    }

    /// DescribeGroups for one group (`Dead` if unknown).
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let Some(group) = self.group(group_id) else {
            return GroupDescription {
                group_id: group_id.to_owned(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        let g = lock(&group);
        let stable = g.state == GroupState::Stable;
        GroupDescription {
            group_id: g.id.clone(),
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                g.protocol.clone().unwrap_or_default()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.protocols
                            .iter()
                            .find(|(n, _)| Some(n) == g.protocol.as_ref())
                            .map(|(_, b)| b.clone())
                            .unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// ListGroups: every group (without members).
    pub fn list(&self) -> Vec<GroupDescription> {
        let mut out: Vec<GroupDescription> = self
            .all()
            .iter()
            .map(|group| {
                let g = lock(group);
                GroupDescription {
                    group_id: g.id.clone(),
                    state: g.state,
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    protocol: String::new(),
                    members: Vec::new(),
                }
            })
            .filter(|d| d.state != GroupState::Dead)
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DeleteGroups: only empty groups; returns the log offset to await.
    pub fn delete_group(&self, group_id: &str) -> Result<u64, GroupError> {
        self.check_open()?;
        let group = self.group(group_id).ok_or_else(|| GroupError::NotFound {
            group: group_id.to_owned(),
        })?;
        let mut g = lock(&group);
        if g.state == GroupState::Dead {
            return Err(GroupError::NotFound {
                group: group_id.to_owned(),
            });
        }
        if !g.members.is_empty() {
            return Err(GroupError::NotEmpty {
                group: group_id.to_owned(),
            });
        }
        g.set_state(GroupState::Dead, now_ms());
        g.offsets.clear();
        self.groups
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(group_id);
        self.store
            .append(&[MetaRecord::DeleteGroup {
                group: group_id.to_owned(),
            }])
            .map_err(|e| GroupError::Unstorable {
                reason: e.to_string(),
            })
    }

    /// Offset-level state needed to refuse OffsetDelete on subscribed topics: the protocol
    /// type and the members' metadata for the current protocol, if the group has members.
    pub fn member_metadata(&self, group_id: &str) -> Option<(String, Vec<Bytes>)> {
        let group = self.group(group_id)?;
        let g = lock(&group);
        if g.members.is_empty() {
            return None;
        }
        let protocol = g.protocol.clone();
        let metadata = g
            .members
            .iter()
            .map(|m| {
                m.protocols
                    .iter()
                    .find(|(n, _)| protocol.as_ref().is_none_or(|p| p == n))
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default()
            })
            .collect();
        Some((g.protocol_type.clone().unwrap_or_default(), metadata))
    }

    /// OffsetDelete of partitions the caller found unsubscribed; returns the offset to await.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Option<u64>, GroupError> {
        self.check_open()?;
        let group = self.group(group_id).ok_or_else(|| GroupError::NotFound {
            group: group_id.to_owned(),
        })?;
        let mut g = lock(&group);
        let mut records = Vec::new();
        for (topic, partition) in partitions {
            if g.offsets.remove(&(topic.clone(), *partition)).is_some() {
                records.push(MetaRecord::DeleteOffset {
                    group: g.id.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                });
            }
        }
        if records.is_empty() {
            return Ok(None);
        }
        self.store
            .append(&records)
            .map(Some)
            .map_err(|e| GroupError::Unstorable {
                reason: e.to_string(),
            })
    }

    /// Forgets every committed offset of a deleted topic.
    pub fn remove_topic(&self, topic: &str) {
        for group in self.all() {
            let mut g = lock(&group);
            let gone: Vec<i32> = g
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .map(|(_, p)| *p)
                .collect();
            if gone.is_empty() {
                continue;
            }
            let records: Vec<MetaRecord> = gone
                .iter()
                .map(|p| MetaRecord::DeleteOffset {
                    group: g.id.clone(),
                    topic: topic.to_owned(),
                    partition: *p,
                })
                .collect();
            for p in gone {
                g.offsets.remove(&(topic.to_owned(), p));
            }
            if let Err(e) = self.store.append(&records) {
                tracing::error!(group = %g.id, "offset deletion not stored: {e}");
            }
        }
    }

    /// One pass of session expiry, rebalance deadlines and offset retention.
    pub fn tick(&self, now: Instant) {
        let now_ms = now_ms();
        let retention =
            i64::try_from(self.config.offsets_retention.as_millis()).unwrap_or(i64::MAX);
        let mut dead = Vec::new();
        for group in self.all() {
            let mut g = lock(&group);
            if g.tick(now, now_ms) {
                self.persist_group(&g);
            }
            let empty =
                g.state == GroupState::Empty && g.members.is_empty() && g.pending.is_empty();
            if empty
                && (g.offsets.is_empty() || now_ms.saturating_sub(g.state_since_ms) > retention)
            {
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

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The JoinGroup response describing the current generation to `member_id`.
fn current_join_response(g: &Group, member_id: &str) -> JoinResponse {
    let leader = g.leader.clone().unwrap_or_default();
    let members = if leader == member_id {
        g.members
            .iter()
            .map(|m| super::JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m
                    .protocols
                    .iter()
                    .find(|(n, _)| Some(n) == g.protocol.as_ref())
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default(),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinResponse {
        error: None,
        generation: g.generation,
        protocol_type: g.protocol_type.clone(),
        protocol: g.protocol.clone(),
        leader,
        member_id: member_id.to_owned(),
        members,
        skip_assignment: false,
    }
}
