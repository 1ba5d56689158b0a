//! One consumer group's membership state machine (Kafka's classic group protocol).
//!
//! ```text
//!            join (first member)             all known members rejoined,
//!   Empty ───────────────────> Preparing ── or rebalance timeout ──> Completing
//!     ^                        Rebalance  <── join / leave / expiry ──  Rebalance
//!     │ last member leaves          ^                                      │ leader's SyncGroup
//!     └─────────────────────────────┴──────── join / leave / expiry ── Stable <┘
//! ```
//! Every transition happens under the group's own lock; waiting JoinGroup and SyncGroup
//! callers hold a oneshot receiver that a transition completes.
//!
//! # Invariants
//! - `generation` grows by one each time a rebalance completes; responses carry it, and
//!   SyncGroup, Heartbeat and OffsetCommit from another generation get ILLEGAL_GENERATION.
//! - A member awaiting a JoinGroup or SyncGroup response does not expire by session timeout;
//!   the rebalance timeout bounds those waits instead.
//! - A static member (`group.instance.id`) is known by its instance id: a rejoin under a
//!   new member id fences the old one.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::codec::{CommittedOffset, StoredGroup, StoredMember};
use super::{GroupError, JoinResponse, JoinedMember, SyncResponse};

/// Where a group is in its life cycle (Kafka's names, as DescribeGroups reports them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::PreparingRebalance => "PreparingRebalance",
            Self::CompletingRebalance => "CompletingRebalance",
            Self::Stable => "Stable",
            Self::Dead => "Dead",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    pub join_waiter: Option<oneshot::Sender<JoinResponse>>,
    pub sync_waiter: Option<oneshot::Sender<SyncResponse>>,
}

impl Member {
    fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| Some(name.as_str()) == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn expired(&self, now: Instant) -> bool {
        self.join_waiter.is_none()
            && self.sync_waiter.is_none()
            && now.saturating_duration_since(self.last_heartbeat) > self.session_timeout
    }
}

/// A group: members, generation, committed offsets.
#[derive(Debug)]
pub(crate) struct Group {
    pub id: String,
    pub state: GroupState,
    pub state_since_ms: i64,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, and their deadline.
    pub pending: HashMap<String, Instant>,
    pub statics: HashMap<String, String>,
    pub rebalance_deadline: Option<Instant>,
    pub join_delay_until: Option<Instant>,
    pub sync_deadline: Option<Instant>,
    pub offsets: HashMap<(String, i32), CommittedOffset>,
}

impl Group {
    pub fn new(id: String, now_ms: i64) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: Vec::new(),
            pending: HashMap::new(),
            statics: HashMap::new(),
            rebalance_deadline: None,
            join_delay_until: None,
            sync_deadline: None,
            offsets: HashMap::new(),
        }
    }

    /// Rebuilds a group persisted with `stored` (members get a fresh session).
    pub fn restore(id: String, stored: StoredGroup, now: Instant) -> Self {
        let mut group = Self::new(id, stored.state_ms);
        group.generation = stored.generation;
        group.protocol_type = stored.protocol_type;
        group.protocol = stored.protocol;
        group.leader = stored.leader;
        for m in stored.members {
            if let Some(instance) = &m.instance_id {
                group.statics.insert(instance.clone(), m.member_id.clone());
            }
            let protocol = group.protocol.clone().unwrap_or_default();
            group.members.push(Member {
                id: m.member_id,
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout: Duration::from_millis(
                    u64::try_from(m.session_timeout_ms).unwrap_or(0),
                ),
                rebalance_timeout: Duration::from_millis(
                    u64::try_from(m.rebalance_timeout_ms).unwrap_or(0),
                ),
                protocol_type: group.protocol_type.clone().unwrap_or_default(),
                protocols: vec![(protocol, m.metadata)],
                assignment: m.assignment,
                last_heartbeat: now,
                join_waiter: None,
                sync_waiter: None,
            });
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }

    /// What to persist about the group now.
    pub fn stored(&self) -> StoredGroup {
        StoredGroup {
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_ms: self.state_since_ms,
            members: self
                .members
                .iter()
                .map(|m| StoredMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: i32::try_from(m.rebalance_timeout.as_millis())
                        .unwrap_or(i32::MAX),
                    session_timeout_ms: i32::try_from(m.session_timeout.as_millis())
                        .unwrap_or(i32::MAX),
                    metadata: m.metadata_for(self.protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    pub fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    pub fn set_state(&mut self, state: GroupState, now_ms: i64) {
        if self.state != state {
            self.state = state;
            self.state_since_ms = now_ms;
        }
    }

    /// The error for a request naming `member_id` (and maybe an instance) that is not the
    /// current holder, if any.
    pub fn check_member(&self, member_id: &str, instance: Option<&str>) -> Result<(), GroupError> {
        if let Some(instance) = instance
            && let Some(owner) = self.statics.get(instance)
            && owner != member_id
        {
            return Err(GroupError::FencedInstance {
                group: self.id.clone(),
                instance_id: instance.to_owned(),
                member_id: member_id.to_owned(),
            });
        }
        if self.member(member_id).is_none() {
            return Err(GroupError::UnknownMember {
                group: self.id.clone(),
                member_id: member_id.to_owned(),
            });
        }
        Ok(())
    }

    pub fn check_generation(&self, generation: i32) -> Result<(), GroupError> {
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration {
                group: self.id.clone(),
                got: generation,
                current: self.generation,
            });
        }
        Ok(())
    }

    /// Whether every member supports one of `protocols` in common and types agree.
    pub fn accepts(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        ignoring: Option<&str>,
    ) -> bool {
        let others: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| Some(m.id.as_str()) != ignoring)
            .collect();
        if others.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != protocol_type)
        {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            others
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// The protocol all members support with the most first-choice votes.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let votes = |name: &String| {
            self.members
                .iter()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .map(|(n, _)| n)
                        .find(|n| candidates.contains(n))
                        == Some(name)
                })
                .count()
        };
        let mut best: Option<(&String, usize)> = None;
        for candidate in &candidates {
            let v = votes(candidate);
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((candidate, v));
            }
        }
        best.map(|(n, _)| n.clone())
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(60))
    }

    /// Starts a rebalance: every member must rejoin within the rebalance timeout.
    pub fn prepare_rebalance(&mut self, now: Instant, now_ms: i64, initial_delay: Duration) {
        if self.state == GroupState::CompletingRebalance {
            for m in &mut self.members {
                if let Some(waiter) = m.sync_waiter.take() {
                    let _ = waiter.send(SyncResponse::error(GroupError::RebalanceInProgress {
                        group: self.id.clone(),
                    }));
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        let deadline = now + self.max_rebalance_timeout();
        self.rebalance_deadline = Some(deadline);
        self.sync_deadline = None;
        self.join_delay_until =
            (was_empty && !initial_delay.is_zero()).then(|| (now + initial_delay).min(deadline));
        self.set_state(GroupState::PreparingRebalance, now_ms);
    }

    /// A new member joined during the initial delay: wait a little longer for others.
    pub fn extend_initial_delay(&mut self, now: Instant, initial_delay: Duration) {
        if let (Some(until), Some(deadline)) = (self.join_delay_until, self.rebalance_deadline)
            && until > now
        {
            self.join_delay_until = Some((now + initial_delay).min(deadline));
        }
    }

    /// Completes the join phase if every member has rejoined (or `force`, at the deadline).
    /// Returns true when a new generation started.
    pub fn maybe_complete_join(&mut self, now: Instant, now_ms: i64, force: bool) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        let all_joined =
            self.pending.is_empty() && self.members.iter().all(|m| m.join_waiter.is_some());
        let delayed = self.join_delay_until.is_some_and(|until| now < until);
        if !force && (!all_joined || delayed) {
            return false;
        }
        // Members that did not rejoin in time leave the group.
        let (stay, gone): (Vec<Member>, Vec<Member>) = std::mem::take(&mut self.members)
            .into_iter()
            .partition(|m| m.join_waiter.is_some());
        self.members = stay;
        for m in gone {
            if let Some(instance) = &m.instance_id {
                self.statics.remove(instance);
            }
        }
        self.pending.clear();
        self.generation += 1;
        self.rebalance_deadline = None;
        self.join_delay_until = None;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            return true;
        }
        self.protocol = self.select_protocol();
        self.protocol_type = self.members.first().map(|m| m.protocol_type.clone());
        if self
            .leader
            .as_ref()
            .is_none_or(|l| self.member(l).is_none())
        {
            self.leader = self.members.first().map(|m| m.id.clone());
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<JoinedMember> = self
            .members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(self.protocol.as_deref()),
            })
            .collect();
        for m in &mut self.members {
            m.last_heartbeat = now;
            let Some(waiter) = m.join_waiter.take() else {
                continue;
            };
            let _ = waiter.send(JoinResponse {
                error: None,
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol: self.protocol.clone(),
                leader: leader.clone(),
                member_id: m.id.clone(),
                members: if m.id == leader {
                    all.clone()
                } else {
                    Vec::new()
                },
                skip_assignment: false,
            });
        }
        true
    }

    /// Removes a member; returns whether it was there.
    pub fn remove_member(&mut self, id: &str) -> bool {
        let Some(pos) = self.members.iter().position(|m| m.id == id) else {
            return self.pending.remove(id).is_some();
        };
        let member = self.members.remove(pos);
        if let Some(instance) = &member.instance_id
            && self
                .statics
                .get(instance)
                .is_some_and(|owner| *owner == member.id)
        {
            self.statics.remove(instance);
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        true
    }

    /// After membership shrank: rebalance the others, or become empty.
    pub fn on_member_left(&mut self, now: Instant, now_ms: i64) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.generation += 1;
                    self.protocol = None;
                    self.leader = None;
                    self.sync_deadline = None;
                    self.set_state(GroupState::Empty, now_ms);
                } else {
                    self.prepare_rebalance(now, now_ms, Duration::ZERO);
                }
            }
            GroupState::PreparingRebalance => {
                self.maybe_complete_join(now, now_ms, false);
            }
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Session expiry, join and sync deadlines. Returns true if membership changed.
    pub fn tick(&mut self, now: Instant, now_ms: i64) -> bool {
        let before = (self.generation, self.members.len(), self.state);
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.expired(now))
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(id);
        }
        if !expired.is_empty() {
            self.on_member_left(now, now_ms);
        }
        if self.state == GroupState::PreparingRebalance {
            let forced = self.rebalance_deadline.is_some_and(|d| now >= d);
            self.maybe_complete_join(now, now_ms, forced);
        }
        if self.state == GroupState::CompletingRebalance
            && self.sync_deadline.is_some_and(|d| now >= d)
        {
            let late: Vec<String> = self
                .members
                .iter()
                .filter(|m| m.sync_waiter.is_none())
                .map(|m| m.id.clone())
                .collect();
            for id in &late {
                self.remove_member(id);
            }
            self.prepare_rebalance(now, now_ms, Duration::ZERO);
            if self.members.is_empty() {
                self.maybe_complete_join(now, now_ms, true);
            }
        }
        before != (self.generation, self.members.len(), self.state)
    }
}
