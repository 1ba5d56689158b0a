//! OffsetCommit (key 8, v2-9): store a group's consumed positions.
//!
//! Offsets are validated (the group's generation and member, the partition exists, metadata
//! at most 4096 bytes), applied in request order and appended to the offsets log; the
//! response waits until that append is durable under the fsync policy. `retention_time_ms`
//! (v2-4) is accepted and ignored, as Kafka 2.1+ does; offsets expire with their group.

use ferrymq_auth::acl::AclOperation;
use std::sync::Arc;

use ferrymq_core::group::CommittedOffset;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::{later, now_ms};
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: &OffsetCommitRequest,
    _version: i16,
) -> Reply {
    let now = now_ms();
    // (topic, partition, Err(code) | Ok(value)) in request order.
    let mut plan = Vec::new();
    let mut offsets = Vec::new();
    for topic in &request.topics {
        let stream = ctx.streams.get(&topic.name);
        if !conn.may_topic(ctx, AclOperation::Read, &topic.name) {
            for p in &topic.partitions {
                plan.push((
                    topic.name.clone(),
                    p.partition_index,
                    Some(code::TOPIC_AUTHORIZATION_FAILED),
                ));
            }
            continue;
        }
        for p in &topic.partitions {
            let exists = stream.as_ref().is_some_and(|s| {
                u32::try_from(p.partition_index).is_ok_and(|i| i < s.partition_count())
            });
            if exists {
                offsets.push((
                    topic.name.to_string(),
                    p.partition_index,
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_ms: now,
                    },
                ));
                plan.push((topic.name.clone(), p.partition_index, None));
            } else {
                plan.push((
                    topic.name.clone(),
                    p.partition_index,
                    Some(code::UNKNOWN_TOPIC_OR_PARTITION),
                ));
            }
        }
    }
    let committed = ctx.groups.commit(
        &request.group_id,
        request.generation_id_or_member_epoch,
        &request.member_id,
        request.group_instance_id.as_deref(),
        offsets,
    );
    let (mut per_partition, end) = match committed {
        Ok(c) => (
            c.errors
                .into_iter()
                .map(|e| e.as_ref().map(error::from_group))
                .collect::<Vec<_>>(),
            c.end,
        ),
        Err(e) => {
            let c = error::from_group(&e);
            (
                plan.iter()
                    .filter(|p| p.2.is_none())
                    .map(|_| Some(c))
                    .collect(),
                None,
            )
        }
    };
    per_partition.reverse();
    let codes: Vec<_> = plan
        .into_iter()
        .map(|(topic, partition, fixed)| {
            (
                topic,
                partition,
                fixed.or_else(|| per_partition.pop().flatten()),
            )
        })
        .collect();
    let ctx = Arc::clone(ctx);
    later(async move {
        let durable = match end {
            Some(end) => ctx
                .groups
                .wait_durable(end)
                .await
                .err()
                .map(|e| error::from_core(&e).0),
            None => None,
        };
        let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
        for (topic, partition, c) in codes {
            let c = c.or(durable).unwrap_or(code::NONE);
            let entry = OffsetCommitResponsePartition::default()
                .with_partition_index(partition)
                .with_error_code(c);
            match topics.last_mut() {
                Some(t) if t.name == topic => t.partitions.push(entry),
                _ => topics.push(
                    OffsetCommitResponseTopic::default()
                        .with_name(topic)
                        .with_partitions(vec![entry]),
                ),
            }
        }
        ResponseBody::OffsetCommit(OffsetCommitResponse::default().with_topics(topics))
    })
}
