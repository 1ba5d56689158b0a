//! TxnOffsetCommit (key 28, v0-3): offsets a transaction commits for a group; the group
//! sees them only once the transaction commits (OffsetFetch answers the old ones until then).

use std::sync::Arc;

use ferrymq_auth::acl::{AclOperation, AclResource};
use ferrymq_core::transactions::PendingOffset;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::later;
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

fn response(request: &TxnOffsetCommitRequest, error_for: impl Fn(&str) -> i16) -> ResponseBody {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let c = error_for(&t.name);
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(c)
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseBody::TxnOffsetCommit(TxnOffsetCommitResponse::default().with_topics(topics))
}

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: TxnOffsetCommitRequest,
    version: i16,
) -> Reply {
    let id = request.transactional_id.to_string();
    if !conn.may(ctx, AclOperation::Write, AclResource::TransactionalId, &id) {
        return Reply::Now(response(&request, |_| {
            code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        }));
    }
    let group = request.group_id.to_string();
    if !conn.may_group(ctx, AclOperation::Read, &group) {
        return Reply::Now(response(&request, |_| code::GROUP_AUTHORIZATION_FAILED));
    }
    if request
        .topics
        .iter()
        .any(|t| !conn.may_topic(ctx, AclOperation::Read, &t.name))
    {
        return Reply::Now(response(&request, |name| {
            if conn.may_topic(ctx, AclOperation::Read, name) {
                code::NONE
            } else {
                code::TOPIC_AUTHORIZATION_FAILED
            }
        }));
    }
    let offsets: Vec<PendingOffset> = request
        .topics
        .iter()
        .flat_map(|t| {
            let group = group.clone();
            t.partitions.iter().map(move |p| PendingOffset {
                group: group.clone(),
                topic: t.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let txns = Arc::clone(&ctx.txns);
    later(async move {
        let outcome = txns
            .txn_offset_commit(&id, pid, epoch, &group, offsets)
            .await;
        let c = match outcome {
            Ok(()) => code::NONE,
            Err(e) => error::from_txn(&e, version >= 3),
        };
        response(&request, |_| c)
    })
}
