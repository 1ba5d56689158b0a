//! CreateTopics (key 19, v2-7): partitions, replication factor 1, configs, validate-only.
//!
//! Each topic is checked like Kafka checks it: a legal name, no existing topic, a partition
//! count (or -1 for `num.partitions`), a replication factor of 1 or -1 (one node), replica
//! assignments naming only this node, and valid configs. Creation runs on the blocking pool.

use std::sync::Arc;

use ferrymq_core::stream::StreamConfig;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::describe_configs::topic_entries;
use super::{blocking, later, s, validate_topic_name};
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};
use crate::{Ctx, topic_config};

/// Checks one topic; the partition count and config to create it with.
fn plan(ctx: &Ctx, topic: &CreatableTopic) -> Result<(u32, StreamConfig), (i16, String)> {
    validate_topic_name(ctx, &topic.name)?;
    if ctx.streams.get(&topic.name).is_some() {
        return Err((
            code::TOPIC_ALREADY_EXISTS,
            format!("Topic '{}' already exists.", &*topic.name),
        ));
    }
    let node = ctx.config.node_id;
    let partitions = if topic.assignments.is_empty() {
        match topic.num_partitions {
            -1 => ctx.config.num_partitions,
            n => u32::try_from(n).ok().filter(|n| *n > 0).ok_or((
                code::INVALID_PARTITIONS,
                "Number of partitions must be larger than 0.".to_owned(),
            ))?,
        }
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                code::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set."
                    .to_owned(),
            ));
        }
        let mut seen: Vec<i32> = topic
            .assignments
            .iter()
            .map(|a| a.partition_index)
            .collect();
        seen.sort_unstable();
        let expected: Vec<i32> = (0..i32::try_from(seen.len()).unwrap_or(i32::MAX)).collect();
        let only_us = topic
            .assignments
            .iter()
            .all(|a| matches!(a.broker_ids.as_slice(), [only] if only.0 == node));
        if seen != expected || !only_us {
            return Err((
                code::INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "replica assignments must cover partitions 0..n, each on broker {node} only"
                ),
            ));
        }
        u32::try_from(seen.len()).unwrap_or(u32::MAX)
    };
    if !matches!(topic.replication_factor, -1 | 1) && topic.assignments.is_empty() {
        return Err((
            code::INVALID_REPLICATION_FACTOR,
            format!(
                "Replication factor: {} larger than available brokers: 1.",
                topic.replication_factor
            ),
        ));
    }
    if partitions > ferrymq_core::stream::MAX_PARTITIONS {
        return Err((
            code::INVALID_PARTITIONS,
            format!(
                "at most {} partitions",
                ferrymq_core::stream::MAX_PARTITIONS
            ),
        ));
    }
    let mut config = StreamConfig::default();
    for c in &topic.configs {
        topic_config::apply(&mut config, &c.name, c.value.as_deref())
            .map_err(|m| (code::INVALID_CONFIG, m))?;
    }
    Ok((partitions, config))
}

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: CreateTopicsRequest,
    version: i16,
) -> Reply {
    let ctx = Arc::clone(ctx);
    let authorized: Vec<bool> = request
        .topics
        .iter()
        .map(|t| conn.may_create_topic(&ctx, &t.name))
        .collect();
    later(async move {
        let mut results = Vec::with_capacity(request.topics.len());
        for (topic, authorized) in request.topics.into_iter().zip(authorized) {
            let base = CreatableTopicResult::default().with_name(topic.name.clone());
            if !authorized {
                results.push(
                    base.with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                        .with_error_message(Some(s("Authorization failed.")))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                );
                continue;
            }
            let (partitions, config) = match plan(&ctx, &topic) {
                Ok(p) => p,
                Err((c, m)) => {
                    results.push(
                        base.with_error_code(c)
                            .with_error_message(Some(s(m)))
                            .with_num_partitions(-1)
                            .with_replication_factor(-1),
                    );
                    continue;
                }
            };
            let mut result = base
                .with_num_partitions(i32::try_from(partitions).unwrap_or(i32::MAX))
                .with_replication_factor(1);
            if request.validate_only {
                results.push(result);
                continue;
            }
            let streams = Arc::clone(&ctx.streams);
            let name = topic.name.to_string();
            match blocking(move || streams.create(&name, partitions, config)).await {
                Ok(stream) => {
                    result.topic_id = uuid::Uuid::from_bytes(stream.id().0);
                    if version >= 5 {
                        let configs = topic_entries(&ctx, &stream)
                            .into_iter()
                            .map(|e| {
                                CreatableTopicConfigs::default()
                                    .with_name(s(e.name))
                                    .with_value(Some(s(e.value)))
                                    .with_config_source(e.source)
                            })
                            .collect();
                        result.configs = Some(configs);
                    }
                    results.push(result);
                }
                Err(e) => {
                    let (c, m) = match e {
                        ferrymq_core::Error::StreamExists { .. } => (
                            code::TOPIC_ALREADY_EXISTS,
                            format!("Topic '{}' already exists.", &*topic.name),
                        ),
                        other => error::from_core(&other),
                    };
                    results.push(result.with_error_code(c).with_error_message(Some(s(m))));
                }
            }
        }
        ResponseBody::CreateTopics(CreateTopicsResponse::default().with_topics(results))
    })
}
