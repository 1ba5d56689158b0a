//! Metadata (key 3): the one broker, and each topic's partitions, all led by it.
//!
//! A null topic list (v1+) or an empty one (v0) asks for every topic. Unknown topics are
//! created when the client allows it (v4+ `allow_auto_topic_creation`, always before v4) and
//! `auto.create.topics.enable` is on; a topic created that way is returned at once with its
//! partitions (Kafka answers LEADER_NOT_AVAILABLE first; clients accept either). Topic ids
//! appear from v10. The leader epoch is always 0.

use ferrymq_auth::acl::AclOperation;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{s, topics};
use crate::Ctx;
use crate::error::code;
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

/// Kafka `AclOperation` codes, as bits of the authorized-operations fields (v8+). ferrymq
/// has no ACLs, so a client that asks is told every operation is allowed.
const fn ops(codes: &[u32]) -> i32 {
    let mut bits = 0;
    let mut i = 0;
    while i < codes.len() {
        bits |= 1 << codes[i];
        i += 1;
    }
    bits
}
/// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
const ALL_TOPIC_OPERATIONS: i32 = ops(&[3, 4, 5, 6, 7, 8, 10, 11]);
/// CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
pub(crate) const ALL_CLUSTER_OPERATIONS: i32 = ops(&[5, 7, 8, 9, 10, 11, 12]);

/// The broker list every Metadata-like response carries: just this node, at the address
/// the client's listener advertises.
pub(crate) fn broker(ctx: &Ctx, conn: &ConnState) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(ctx.config.node_id))
        .with_host(s(conn.listener.advertised_host.clone()))
        .with_port(conn.listener.advertised_port)
}

fn topic_entry(
    ctx: &Ctx,
    stream: &ferrymq_core::stream::Stream,
    ops: bool,
) -> MetadataResponseTopic {
    let node = BrokerId(ctx.config.node_id);
    let partitions = (0..stream.partition_count())
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(i32::try_from(p).unwrap_or(i32::MAX))
                .with_leader_id(node)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    let mut topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(s(stream.name()))))
        .with_topic_id(uuid::Uuid::from_bytes(stream.id().0))
        .with_partitions(partitions);
    if ops {
        topic.topic_authorized_operations = ALL_TOPIC_OPERATIONS;
    }
    topic
}

pub(super) async fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: MetadataRequest,
    version: i16,
) -> Reply {
    let ops = request.include_topic_authorized_operations;
    let allow_create = version < 4 || request.allow_auto_topic_creation;
    let mut topics_out = Vec::new();
    let wanted = request.topics.filter(|t| !(version == 0 && t.is_empty()));
    match wanted {
        None => {
            // All topics: those the client may describe (Kafka leaves the rest out).
            for stream in ctx.streams.list() {
                if conn.may_topic(ctx, AclOperation::Describe, stream.name()) {
                    topics_out.push(topic_entry(ctx, &stream, ops));
                }
            }
        }
        Some(wanted) => {
            for topic in wanted {
                let by_id = (!topic.topic_id.is_nil()).then_some(topic.topic_id);
                let stream = match (&topic.name, by_id) {
                    (_, Some(id)) => {
                        let found = ctx
                            .streams
                            .get_by_id(ferrymq_core::stream::StreamId(*id.as_bytes()));
                        if found.is_none() {
                            // The name is nullable only from v12.
                            let name = (version < 12).then(|| TopicName(s(String::new())));
                            topics_out.push(
                                MetadataResponseTopic::default()
                                    .with_error_code(code::UNKNOWN_TOPIC_ID)
                                    .with_name(name)
                                    .with_topic_id(id),
                            );
                        }
                        found
                    }
                    (Some(name), None) if !conn.may_topic(ctx, AclOperation::Describe, name) => {
                        topics_out.push(
                            MetadataResponseTopic::default()
                                .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                                .with_name(Some(name.clone())),
                        );
                        None
                    }
                    (Some(name), None) => {
                        let create = allow_create && conn.may_create_topic(ctx, name);
                        match topics::get_or_create(ctx, name, create).await {
                            Ok(Some(stream)) => Some(stream),
                            Ok(None) => {
                                topics_out.push(
                                    MetadataResponseTopic::default()
                                        .with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION)
                                        .with_name(Some(name.clone())),
                                );
                                None
                            }
                            Err((err, _)) => {
                                topics_out.push(
                                    MetadataResponseTopic::default()
                                        .with_error_code(err)
                                        .with_name(Some(name.clone())),
                                );
                                None
                            }
                        }
                    }
                    (None, None) => {
                        let name = (version < 12).then(|| TopicName(s(String::new())));
                        topics_out.push(
                            MetadataResponseTopic::default()
                                .with_error_code(code::INVALID_REQUEST)
                                .with_name(name),
                        );
                        None
                    }
                };
                match stream {
                    Some(stream) if conn.may_topic(ctx, AclOperation::Describe, stream.name()) => {
                        topics_out.push(topic_entry(ctx, &stream, ops));
                    }
                    Some(stream) => topics_out.push(
                        MetadataResponseTopic::default()
                            .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                            .with_topic_id(uuid::Uuid::from_bytes(stream.id().0)),
                    ),
                    None => {}
                }
            }
        }
    }
    let mut response = MetadataResponse::default()
        .with_brokers(vec![broker(ctx, conn)])
        .with_cluster_id(Some(s(ctx.cluster_id.clone())))
        .with_controller_id(BrokerId(ctx.config.node_id))
        .with_topics(topics_out);
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = ALL_CLUSTER_OPERATIONS;
    }
    Reply::Now(ResponseBody::Metadata(response))
}
