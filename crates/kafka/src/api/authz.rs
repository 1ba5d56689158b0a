//! Authorisation of whole requests before their handler runs (ACLs, then permissions; see
//! `ferrymq_auth::UserStore::authorize_kafka`), as Kafka's request handlers check it:
//!
//! ```text
//! JoinGroup SyncGroup Heartbeat LeaveGroup OffsetCommit   READ group
//! OffsetFetch DescribeGroups                              DESCRIBE group
//! DeleteGroups OffsetDelete                               DELETE group
//! DescribeConfigs / AlterConfigs (topic, broker)          DESCRIBE_CONFIGS / ALTER_CONFIGS
//! CreatePartitions                                        ALTER topic
//! DeleteRecords                                           DELETE topic
//! InitProducerId                                          WRITE transactional id, or
//!                                                         IDEMPOTENT_WRITE cluster
//! ```
//! A request naming one group is refused whole; one naming several resources is served for
//! those allowed, and the others are answered with the authorisation error (appended to the
//! handler's response). Topic checks inside data requests (Produce, Fetch, Metadata,
//! ListOffsets, Create/DeleteTopics, OffsetCommit) are in their handlers.

use std::sync::Arc;

use ferrymq_auth::acl::AclOperation;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    HeartbeatResponse, InitProducerIdResponse, JoinGroupResponse, LeaveGroupResponse,
    OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchResponse, SyncGroupResponse,
    alter_configs_response, incremental_alter_configs_response,
};

use crate::Ctx;
use crate::error::code;
use crate::message::{RequestBody, ResponseBody};
use crate::session::{ConnState, Reply};

/// Entries for refused resources, added to the handler's response.
pub(super) type Append = Box<dyn FnOnce(&mut ResponseBody) + Send>;

/// Config resource types (DescribeConfigs, AlterConfigs).
const TOPIC_RESOURCE: i8 = 2;

/// The request to serve (without refused resources) and what to append to its response, or
/// the whole response when the request is refused.
// The error is the response itself, answered at once: as large as the Ok side's request.
#[allow(clippy::result_large_err)]
pub(super) fn check(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    body: RequestBody,
    version: i16,
) -> Result<(RequestBody, Option<Append>), ResponseBody> {
    use AclOperation::*;
    let group = |op, name: &str| conn.may_group(ctx, op, name);
    let gaf = code::GROUP_AUTHORIZATION_FAILED;
    Ok(match body {
        RequestBody::JoinGroup(r) if !group(Read, &r.group_id) => {
            return Err(ResponseBody::JoinGroup(
                JoinGroupResponse::default().with_error_code(gaf),
            ));
        }
        RequestBody::SyncGroup(r) if !group(Read, &r.group_id) => {
            return Err(ResponseBody::SyncGroup(
                SyncGroupResponse::default().with_error_code(gaf),
            ));
        }
        RequestBody::Heartbeat(r) if !group(Read, &r.group_id) => {
            return Err(ResponseBody::Heartbeat(
                HeartbeatResponse::default().with_error_code(gaf),
            ));
        }
        RequestBody::LeaveGroup(r) if !group(Read, &r.group_id) => {
            return Err(ResponseBody::LeaveGroup(
                LeaveGroupResponse::default().with_error_code(gaf),
            ));
        }
        RequestBody::OffsetDelete(r) if !group(Delete, &r.group_id) => {
            return Err(ResponseBody::OffsetDelete(
                OffsetDeleteResponse::default().with_error_code(gaf),
            ));
        }
        RequestBody::OffsetCommit(r) if !group(Read, &r.group_id) => {
            let topics = r
                .topics
                .iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(gaf)
                                })
                                .collect(),
                        )
                })
                .collect();
            return Err(ResponseBody::OffsetCommit(
                OffsetCommitResponse::default().with_topics(topics),
            ));
        }
        RequestBody::OffsetFetch(r) if version < 8 && !group(Describe, &r.group_id) => {
            return Err(ResponseBody::OffsetFetch(
                OffsetFetchResponse::default().with_error_code(gaf),
            ));
        }
        RequestBody::OffsetFetch(mut r) if version >= 8 => {
            let (allowed, refused): (Vec<_>, Vec<_>) = r
                .groups
                .drain(..)
                .partition(|g| group(Describe, &g.group_id));
            r.groups = allowed;
            let append = (!refused.is_empty()).then(|| -> Append {
                Box::new(move |body| {
                    if let ResponseBody::OffsetFetch(resp) = body {
                        resp.groups.extend(refused.into_iter().map(|g| {
                            OffsetFetchResponseGroup::default()
                                .with_group_id(g.group_id)
                                .with_error_code(gaf)
                        }));
                    }
                })
            });
            (RequestBody::OffsetFetch(r), append)
        }
        RequestBody::DescribeGroups(mut r) => {
            let (allowed, refused): (Vec<_>, Vec<_>) =
                r.groups.drain(..).partition(|g| group(Describe, g));
            r.groups = allowed;
            let append = (!refused.is_empty()).then(|| -> Append {
                Box::new(move |body| {
                    if let ResponseBody::DescribeGroups(resp) = body {
                        resp.groups.extend(refused.into_iter().map(|g| {
                            DescribedGroup::default()
                                .with_group_id(g)
                                .with_error_code(gaf)
                        }));
                    }
                })
            });
            (RequestBody::DescribeGroups(r), append)
        }
        RequestBody::DeleteGroups(mut r) => {
            let (allowed, refused): (Vec<_>, Vec<_>) =
                r.groups_names.drain(..).partition(|g| group(Delete, g));
            r.groups_names = allowed;
            let append = (!refused.is_empty()).then(|| -> Append {
                Box::new(move |body| {
                    if let ResponseBody::DeleteGroups(resp) = body {
                        resp.results.extend(refused.into_iter().map(|g| {
                            DeletableGroupResult::default()
                                .with_group_id(g)
                                .with_error_code(gaf)
                        }));
                    }
                })
            });
            (RequestBody::DeleteGroups(r), append)
        }
        RequestBody::DescribeConfigs(mut r) => {
            let (allowed, refused): (Vec<_>, Vec<_>) = r.resources.drain(..).partition(|c| {
                config_allowed(
                    ctx,
                    conn,
                    DescribeConfigs,
                    c.resource_type,
                    &c.resource_name,
                )
            });
            r.resources = allowed;
            let append = (!refused.is_empty()).then(|| -> Append {
                Box::new(move |body| {
                    if let ResponseBody::DescribeConfigs(resp) = body {
                        resp.results.extend(refused.into_iter().map(|c| {
                            DescribeConfigsResult::default()
                                .with_error_code(config_error(c.resource_type))
                                .with_resource_type(c.resource_type)
                                .with_resource_name(c.resource_name)
                        }));
                    }
                })
            });
            (RequestBody::DescribeConfigs(r), append)
        }
        RequestBody::AlterConfigs(mut r) => {
            let (allowed, refused): (Vec<_>, Vec<_>) = r.resources.drain(..).partition(|c| {
                config_allowed(ctx, conn, AlterConfigs, c.resource_type, &c.resource_name)
            });
            r.resources = allowed;
            let append = (!refused.is_empty()).then(|| -> Append {
                Box::new(move |body| {
                    if let ResponseBody::AlterConfigs(resp) = body {
                        resp.responses.extend(refused.into_iter().map(|c| {
                            alter_configs_response::AlterConfigsResourceResponse::default()
                                .with_error_code(config_error(c.resource_type))
                                .with_resource_type(c.resource_type)
                                .with_resource_name(c.resource_name)
                        }));
                    }
                })
            });
            (RequestBody::AlterConfigs(r), append)
        }
        RequestBody::IncrementalAlterConfigs(mut r) => {
            let (allowed, refused): (Vec<_>, Vec<_>) = r.resources.drain(..).partition(|c| {
                config_allowed(ctx, conn, AlterConfigs, c.resource_type, &c.resource_name)
            });
            r.resources = allowed;
            let append = (!refused.is_empty()).then(|| -> Append {
                Box::new(move |body| {
                    if let ResponseBody::IncrementalAlterConfigs(resp) = body {
                        resp.responses.extend(refused.into_iter().map(|c| {
                            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                                .with_error_code(config_error(c.resource_type))
                                .with_resource_type(c.resource_type)
                                .with_resource_name(c.resource_name)
                        }));
                    }
                })
            });
            (RequestBody::IncrementalAlterConfigs(r), append)
        }
        RequestBody::CreatePartitions(mut r) => {
            let (allowed, refused): (Vec<_>, Vec<_>) = r
                .topics
                .drain(..)
                .partition(|t| conn.may_topic(ctx, Alter, &t.name));
            r.topics = allowed;
            let append = (!refused.is_empty()).then(|| -> Append {
                Box::new(move |body| {
                    if let ResponseBody::CreatePartitions(resp) = body {
                        resp.results.extend(refused.into_iter().map(|t| {
                            CreatePartitionsTopicResult::default()
                                .with_name(t.name)
                                .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                        }));
                    }
                })
            });
            (RequestBody::CreatePartitions(r), append)
        }
        RequestBody::DeleteRecords(mut r) => {
            let (allowed, refused): (Vec<_>, Vec<_>) = r
                .topics
                .drain(..)
                .partition(|t| conn.may_topic(ctx, Delete, &t.name));
            r.topics = allowed;
            let append = (!refused.is_empty()).then(|| -> Append {
                Box::new(move |body| {
                    if let ResponseBody::DeleteRecords(resp) = body {
                        resp.topics.extend(refused.into_iter().map(|t| {
                            let partitions = t
                                .partitions
                                .iter()
                                .map(|p| {
                                    DeleteRecordsPartitionResult::default()
                                        .with_partition_index(p.partition_index)
                                        .with_low_watermark(-1)
                                        .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                                })
                                .collect();
                            DeleteRecordsTopicResult::default()
                                .with_name(t.name)
                                .with_partitions(partitions)
                        }));
                    }
                })
            });
            (RequestBody::DeleteRecords(r), append)
        }
        RequestBody::InitProducerId(r) => {
            let refused = match &r.transactional_id {
                Some(id) => (!conn.may(
                    ctx,
                    Write,
                    ferrymq_auth::acl::AclResource::TransactionalId,
                    id,
                ))
                .then_some(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
                None => (!conn.may_cluster(ctx, IdempotentWrite))
                    .then_some(code::CLUSTER_AUTHORIZATION_FAILED),
            };
            if let Some(error) = refused {
                return Err(ResponseBody::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_error_code(error)
                        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                        .with_producer_epoch(-1),
                ));
            }
            (RequestBody::InitProducerId(r), None)
        }
        other => (other, None),
    })
}

fn config_allowed(
    ctx: &Ctx,
    conn: &ConnState,
    op: AclOperation,
    resource_type: i8,
    name: &str,
) -> bool {
    if resource_type == TOPIC_RESOURCE {
        conn.may_topic(ctx, op, name)
    } else {
        conn.may_cluster(ctx, op)
    }
}

fn config_error(resource_type: i8) -> i16 {
    if resource_type == TOPIC_RESOURCE {
        code::TOPIC_AUTHORIZATION_FAILED
    } else {
        code::CLUSTER_AUTHORIZATION_FAILED
    }
}

/// `reply` with `append` applied to its response.
pub(super) fn appended(reply: Reply, append: Append) -> Reply {
    match reply {
        Reply::Now(mut body) => {
            append(&mut body);
            Reply::Now(body)
        }
        Reply::Later(future) => super::later(async move {
            let mut body = future.await;
            append(&mut body);
            body
        }),
        Reply::Nothing => Reply::Nothing,
    }
}
