//! Committed offsets and group administration: OffsetCommit, OffsetFetch, OffsetDelete,
//! DescribeGroups, ListGroups, DeleteGroups.

use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use tokio::time::Instant;

use super::codec::{CommittedOffset, MetaRecord};
use super::coordinator::{Committed, Coordinator, lock};
use super::state::{Group, GroupState};
use super::{GroupDescription, GroupError, MemberDescription, now_ms};
use crate::Error;

impl Coordinator {
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
        let mut accepted = Vec::with_capacity(offsets.len());
        for (topic, partition, value) in offsets {
            let len = value.metadata.as_ref().map_or(0, String::len);
            if len > max {
                errors.push(Some(GroupError::MetadataTooLarge { len, max }));
                continue;
            }
            errors.push(None);
            accepted.push((topic, partition, value));
        }
        let end = self.store_offsets(&mut g, accepted)?;
        Ok(Committed { errors, end })
    }

    /// Applies `offsets` to the group and appends them to the offsets log in one append; the
    /// end to await with [`Self::wait_durable`], if anything was appended.
    fn store_offsets(
        &self,
        g: &mut Group,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<Option<u64>, GroupError> {
        let mut records = Vec::with_capacity(offsets.len());
        for (topic, partition, value) in offsets {
            g.offsets.insert((topic.clone(), partition), value.clone());
            records.push(MetaRecord::Commit {
                group: g.id.clone(),
                topic,
                partition,
                value,
            });
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

    /// Applies the offsets of a committed transaction (TxnOffsetCommit's, checked when they
    /// were sent) whatever the group's generation is now; await [`Self::wait_durable`] on the
    /// end returned.
    pub fn commit_transactional(
        &self,
        group_id: &str,
        offsets: Vec<(String, i32, CommittedOffset)>,
    ) -> Result<Option<u64>, GroupError> {
        self.check_open()?;
        let group = self.live_group_or_create(group_id);
        let mut g = lock(&group);
        self.store_offsets(&mut g, offsets)
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
}
