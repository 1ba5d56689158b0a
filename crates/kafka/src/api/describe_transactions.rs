//! DescribeTransactions (key 65, v0) and ListTransactions (key 66, v0-1): the coordinator's
//! view of transactional ids, for operators (`kafka-transactions.sh describe|list`). Each
//! answers only the ids the client may DESCRIBE.

use std::sync::Arc;

use ferrymq_auth::acl::{AclOperation, AclResource};
use ferrymq_core::transactions::{TxnMeta, TxnState};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
};

use super::{now_ms, s};
use crate::Ctx;
use crate::error::code;
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

const STATES: [TxnState; 7] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
];

fn described(meta: &TxnMeta) -> TransactionState {
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, partition) in &meta.partitions {
        let index = i32::try_from(*partition).unwrap_or(i32::MAX);
        match topics.last_mut() {
            Some(last) if last.topic.0.as_str() == topic => last.partitions.push(index),
            _ => topics.push(
                TopicData::default()
                    .with_topic(TopicName(s(topic.clone())))
                    .with_partitions(vec![index]),
            ),
        }
    }
    let ongoing = meta.state == TxnState::Ongoing;
    TransactionState::default()
        .with_transactional_id(TransactionalId(s(meta.transactional_id.clone())))
        .with_transaction_state(s(meta.state.as_str()))
        .with_transaction_timeout_ms(meta.timeout_ms)
        .with_transaction_start_time_ms(if ongoing { meta.started_ms } else { -1 })
        .with_producer_id(ProducerId(meta.producer_id))
        .with_producer_epoch(meta.producer_epoch)
        .with_topics(if ongoing { topics } else { Vec::new() })
}

pub(super) fn describe(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: &DescribeTransactionsRequest,
) -> Reply {
    let known = ctx.txns.snapshot();
    let states = request
        .transactional_ids
        .iter()
        .map(|id| {
            let name = id.0.to_string();
            let blank = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            if !conn.may(
                ctx,
                AclOperation::Describe,
                AclResource::TransactionalId,
                &name,
            ) {
                return blank.with_error_code(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
            }
            match known.iter().find(|m| m.transactional_id == name) {
                Some(meta) => described(meta),
                None => blank.with_error_code(code::TRANSACTIONAL_ID_NOT_FOUND),
            }
        })
        .collect();
    Reply::Now(ResponseBody::DescribeTransactions(
        DescribeTransactionsResponse::default().with_transaction_states(states),
    ))
}

pub(super) fn list(ctx: &Arc<Ctx>, conn: &ConnState, request: &ListTransactionsRequest) -> Reply {
    let known = |name: &str| STATES.iter().any(|st| st.as_str() == name);
    let unknown: Vec<_> = request
        .state_filters
        .iter()
        .filter(|f| !known(f))
        .cloned()
        .collect();
    let pids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let now = now_ms();
    let listed = ctx
        .txns
        .snapshot()
        .into_iter()
        .filter(|m| {
            request.state_filters.is_empty()
                || request
                    .state_filters
                    .iter()
                    .any(|st| st.as_str() == m.state.as_str())
        })
        .filter(|m| pids.is_empty() || pids.contains(&m.producer_id))
        .filter(|m| {
            request.duration_filter < 0
                || (m.state == TxnState::Ongoing
                    && now.saturating_sub(m.started_ms) >= request.duration_filter)
        })
        .filter(|m| {
            conn.may(
                ctx,
                AclOperation::Describe,
                AclResource::TransactionalId,
                &m.transactional_id,
            )
        })
        .map(|m| {
            Listed::default()
                .with_transactional_id(TransactionalId(s(m.transactional_id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(s(m.state.as_str()))
        })
        .collect();
    Reply::Now(ResponseBody::ListTransactions(
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(listed),
    ))
}
