//! One module per API key; [`dispatch`] routes a decoded request to its handler.
//!
//! A handler gets the shared [`Ctx`], the connection state and its request, and returns a
//! [`Reply`]. Its synchronous part runs in request order (that is where produce appends and
//! offset commits are applied); anything that waits (fsync, long poll, rebalance, blocking
//! file I/O) goes into a `Reply::Later` future.

mod acls;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
pub mod api_versions;
mod authz;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_transactions;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod scram_credentials;
mod sync_group;
mod topics;
mod txn_offset_commit;

use std::sync::Arc;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::Ctx;
use crate::error::code;
use crate::message::{KafkaRequest, RequestBody, ResponseBody};
use crate::session::{ConnState, Reply};

pub(crate) use topics::{leader_epoch_error, validate_topic_name};

/// Routes one request to its handler.
pub async fn dispatch(ctx: &Arc<Ctx>, conn: &ConnState, request: KafkaRequest) -> Reply {
    let v = request.header.api_version;
    let (body, append) = match authz::check(ctx, conn, request.body, v) {
        Ok(checked) => checked,
        Err(refused) => return Reply::Now(refused),
    };
    let reply = route(ctx, conn, body, v).await;
    match append {
        Some(append) => authz::appended(reply, append),
        None => reply,
    }
}

async fn route(ctx: &Arc<Ctx>, conn: &ConnState, body: RequestBody, v: i16) -> Reply {
    match body {
        RequestBody::ApiVersions(r) => {
            Reply::Now(ResponseBody::ApiVersions(api_versions::handle(&r, v)))
        }
        RequestBody::Metadata(r) => metadata::handle(ctx, conn, r, v).await,
        RequestBody::Produce(r) => produce::handle(ctx, conn, r, v).await,
        RequestBody::Fetch(r) => fetch::handle(ctx, conn, r, v),
        RequestBody::ListOffsets(r) => list_offsets::handle(ctx, conn, r, v),
        RequestBody::CreateTopics(r) => create_topics::handle(ctx, conn, r, v),
        RequestBody::DeleteTopics(r) => delete_topics::handle(ctx, conn, r, v),
        RequestBody::CreatePartitions(r) => create_partitions::handle(ctx, r, v),
        RequestBody::DescribeConfigs(r) => describe_configs::handle(ctx, &r, v),
        RequestBody::AlterConfigs(r) => alter_configs::handle_legacy(ctx, r, v),
        RequestBody::IncrementalAlterConfigs(r) => alter_configs::handle_incremental(ctx, r, v),
        RequestBody::DeleteRecords(r) => delete_records::handle(ctx, r, v),
        RequestBody::DescribeCluster(r) => describe_cluster::handle(ctx, conn, &r, v),
        RequestBody::OffsetForLeaderEpoch(r) => offset_for_leader_epoch::handle(ctx, &r, v),
        RequestBody::FindCoordinator(r) => find_coordinator::handle(ctx, conn, &r, v),
        RequestBody::JoinGroup(r) => join_group::handle(ctx, conn, r, v),
        RequestBody::SyncGroup(r) => sync_group::handle(ctx, conn, r, v),
        RequestBody::Heartbeat(r) => heartbeat::handle(ctx, &r, v),
        RequestBody::LeaveGroup(r) => leave_group::handle(ctx, &r, v),
        RequestBody::OffsetCommit(r) => offset_commit::handle(ctx, conn, &r, v),
        RequestBody::OffsetFetch(r) => offset_fetch::handle(ctx, &r, v),
        RequestBody::DescribeGroups(r) => describe_groups::handle(ctx, &r, v),
        RequestBody::ListGroups(r) => list_groups::handle(ctx, conn, &r, v),
        RequestBody::DeleteGroups(r) => delete_groups::handle(ctx, r, v),
        RequestBody::OffsetDelete(r) => offset_delete::handle(ctx, r, v),
        RequestBody::InitProducerId(r) => init_producer_id::handle(ctx, &r, v),
        RequestBody::AddPartitionsToTxn(r) => add_partitions_to_txn::handle(ctx, conn, r, v),
        RequestBody::AddOffsetsToTxn(r) => add_offsets_to_txn::handle(ctx, conn, &r, v),
        RequestBody::EndTxn(r) => end_txn::handle(ctx, conn, &r, v),
        RequestBody::TxnOffsetCommit(r) => txn_offset_commit::handle(ctx, conn, r, v),
        RequestBody::DescribeTransactions(r) => describe_transactions::describe(ctx, conn, &r),
        RequestBody::ListTransactions(r) => describe_transactions::list(ctx, conn, &r),
        RequestBody::CreateAcls(r) => acls::create(ctx, conn, r),
        RequestBody::DescribeAcls(r) => acls::describe(ctx, conn, &r),
        RequestBody::DeleteAcls(r) => acls::delete(ctx, conn, &r),
        RequestBody::DescribeUserScramCredentials(r) => scram_credentials::describe(ctx, conn, &r),
        RequestBody::AlterUserScramCredentials(r) => scram_credentials::alter(ctx, conn, &r),
        // The connection answers these itself (they change its SASL state).
        RequestBody::SaslHandshake(_) => Reply::Now(ResponseBody::SaslHandshake(
            SaslHandshakeResponse::default().with_error_code(code::ILLEGAL_SASL_STATE),
        )),
        RequestBody::SaslAuthenticate(_) => Reply::Now(ResponseBody::SaslAuthenticate(
            SaslAuthenticateResponse::default().with_error_code(code::ILLEGAL_SASL_STATE),
        )),
    }
}

/// An INVALID_REQUEST response for an undecodable request, where the API's response has a
/// top-level error code at this version; `None` where it has none (the connection closes).
pub fn invalid_request(api: ApiKey, version: i16) -> Option<ResponseBody> {
    let e = code::INVALID_REQUEST;
    Some(match api {
        ApiKey::ApiVersions => ResponseBody::ApiVersions(
            ApiVersionsResponse::default()
                .with_error_code(e)
                .with_api_keys(Vec::new()),
        ),
        ApiKey::FindCoordinator if version < 4 => {
            ResponseBody::FindCoordinator(FindCoordinatorResponse::default().with_error_code(e))
        }
        ApiKey::JoinGroup => {
            ResponseBody::JoinGroup(JoinGroupResponse::default().with_error_code(e))
        }
        ApiKey::SyncGroup => {
            ResponseBody::SyncGroup(SyncGroupResponse::default().with_error_code(e))
        }
        ApiKey::Heartbeat => {
            ResponseBody::Heartbeat(HeartbeatResponse::default().with_error_code(e))
        }
        ApiKey::LeaveGroup => {
            ResponseBody::LeaveGroup(LeaveGroupResponse::default().with_error_code(e))
        }
        ApiKey::ListGroups => {
            ResponseBody::ListGroups(ListGroupsResponse::default().with_error_code(e))
        }
        ApiKey::InitProducerId => {
            ResponseBody::InitProducerId(InitProducerIdResponse::default().with_error_code(e))
        }
        ApiKey::DescribeCluster => {
            ResponseBody::DescribeCluster(DescribeClusterResponse::default().with_error_code(e))
        }
        ApiKey::Fetch if version >= 7 => {
            ResponseBody::Fetch(FetchResponse::default().with_error_code(e))
        }
        ApiKey::OffsetFetch if (2..=7).contains(&version) => {
            ResponseBody::OffsetFetch(OffsetFetchResponse::default().with_error_code(e))
        }
        ApiKey::OffsetDelete => {
            ResponseBody::OffsetDelete(OffsetDeleteResponse::default().with_error_code(e))
        }
        ApiKey::AddOffsetsToTxn => {
            ResponseBody::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(e))
        }
        ApiKey::EndTxn => ResponseBody::EndTxn(EndTxnResponse::default().with_error_code(e)),
        _ => return None,
    })
}

/// A Kafka string from a Rust one.
pub(crate) fn s(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs blocking work (file creation, fsync) on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ferrymq_core::Error> + Send + 'static,
) -> Result<T, ferrymq_core::Error> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ferrymq_core::Error::Internal {
            reason: e.to_string(),
        })
    })
}

/// `Reply::Later` from an async block.
pub(crate) fn later(f: impl Future<Output = ResponseBody> + Send + 'static) -> Reply {
    Reply::Later(Box::pin(f))
}
