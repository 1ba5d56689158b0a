//! AddPartitionsToTxn (key 24, v0-3): the partitions a transaction will write to; the
//! transaction becomes Ongoing. Needs WRITE on the transactional id and on each topic.

use std::sync::Arc;

use ferrymq_auth::acl::{AclOperation, AclResource};
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};

use super::later;
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

fn response(topics: &[(kafka_protocol::messages::TopicName, Vec<(i32, i16)>)]) -> ResponseBody {
    let results = topics
        .iter()
        .map(|(name, partitions)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(name.clone())
                .with_results_by_partition(
                    partitions
                        .iter()
                        .map(|&(index, c)| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(index)
                                .with_partition_error_code(c)
                        })
                        .collect(),
                )
        })
        .collect();
    ResponseBody::AddPartitionsToTxn(
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
    )
}

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> Reply {
    let id = request.v3_and_below_transactional_id.to_string();
    let (pid, epoch) = (
        request.v3_and_below_producer_id.0,
        request.v3_and_below_producer_epoch,
    );
    let topics: Vec<_> = request
        .v3_and_below_topics
        .into_iter()
        .map(|t| (t.name, t.partitions))
        .collect();
    // One code per topic, for every partition of it.
    let by_topic = |code_for: &dyn Fn(&str) -> i16| {
        let answer: Vec<_> = topics
            .iter()
            .map(|(name, ps)| {
                let c = code_for(name);
                (name.clone(), ps.iter().map(|&p| (p, c)).collect())
            })
            .collect();
        Reply::Now(response(&answer))
    };
    if !conn.may(ctx, AclOperation::Write, AclResource::TransactionalId, &id) {
        return by_topic(&|_| code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    let may_write = |name: &str| conn.may_topic(ctx, AclOperation::Write, name);
    if !topics.iter().all(|(name, _)| may_write(name)) {
        return by_topic(&|name| {
            if may_write(name) {
                code::OPERATION_NOT_ATTEMPTED
            } else {
                code::TOPIC_AUTHORIZATION_FAILED
            }
        });
    }
    let txns = Arc::clone(&ctx.txns);
    later(async move {
        // A negative partition is no partition: refused as unknown, the rest not attempted.
        let wanted: Vec<(String, u32)> = topics
            .iter()
            .flat_map(|(name, ps)| {
                ps.iter()
                    .map(move |&p| (name.to_string(), u32::try_from(p).unwrap_or(u32::MAX)))
            })
            .collect();
        let outcome = txns.add_partitions(&id, pid, epoch, &wanted).await;
        let fenced_code = version >= 2;
        let mut results = match outcome {
            Ok(results) => results
                .into_iter()
                .map(|r| r.map_or_else(|e| error::from_txn(&e, fenced_code), |()| code::NONE))
                .collect::<Vec<_>>(),
            Err(e) => vec![error::from_txn(&e, fenced_code); wanted.len()],
        }
        .into_iter();
        let answer: Vec<_> = topics
            .iter()
            .map(|(name, ps)| {
                let partitions = ps
                    .iter()
                    .map(|&p| (p, results.next().unwrap_or(code::UNKNOWN_SERVER_ERROR)))
                    .collect();
                (name.clone(), partitions)
            })
            .collect();
        response(&answer)
    })
}
