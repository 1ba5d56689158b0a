//! Membership operations of the coordinator: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use super::coordinator::{Coordinator, Pending, lock, millis, new_member_id};
use super::state::{Group, GroupState, Member};
use super::{GroupError, JoinRequest, JoinResponse, SyncResponse, now_ms};

impl Coordinator {
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
