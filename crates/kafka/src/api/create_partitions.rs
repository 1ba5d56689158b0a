//! CreatePartitions (key 37, v0-3): grow a topic's partition count (never shrink).

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{blocking, later, s};
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::Reply;

pub(super) fn handle(ctx: &Arc<Ctx>, request: CreatePartitionsRequest, _version: i16) -> Reply {
    let ctx = Arc::clone(ctx);
    later(async move {
        let mut results = Vec::with_capacity(request.topics.len());
        for topic in request.topics {
            let base = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            let fail = |c, m: String| {
                base.clone()
                    .with_error_code(c)
                    .with_error_message(Some(s(m)))
            };
            let Some(stream) = ctx.streams.get(&topic.name) else {
                results.push(fail(
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("The topic '{}' does not exist.", &*topic.name),
                ));
                continue;
            };
            let current = stream.partition_count();
            let Some(total) = u32::try_from(topic.count).ok().filter(|t| *t > current) else {
                results.push(fail(
                    code::INVALID_PARTITIONS,
                    format!("Topic currently has {current} partitions, which is higher than the requested {}.", topic.count),
                ));
                continue;
            };
            let node = ctx.config.node_id;
            let assignments_ok = topic.assignments.as_ref().is_none_or(|a| {
                a.is_empty()
                    || u32::try_from(a.len()).ok() == Some(total - current)
                        && a.iter()
                            .all(|x| matches!(x.broker_ids.as_slice(), [only] if only.0 == node))
            });
            if !assignments_ok {
                results.push(fail(
                    code::INVALID_REPLICA_ASSIGNMENT,
                    format!("new partitions can only be assigned to broker {node}"),
                ));
                continue;
            }
            if total > ferrymq_core::stream::MAX_PARTITIONS {
                results.push(fail(
                    code::INVALID_PARTITIONS,
                    format!(
                        "at most {} partitions",
                        ferrymq_core::stream::MAX_PARTITIONS
                    ),
                ));
                continue;
            }
            if request.validate_only {
                results.push(base);
                continue;
            }
            let streams = Arc::clone(&ctx.streams);
            match blocking(move || streams.add_partitions(&stream, total)).await {
                Ok(()) => results.push(base),
                Err(e) => {
                    let (c, m) = error::from_core(&e);
                    results.push(fail(c, m));
                }
            }
        }
        ResponseBody::CreatePartitions(CreatePartitionsResponse::default().with_results(results))
    })
}
