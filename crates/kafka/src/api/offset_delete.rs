//! OffsetDelete (key 47, v0): remove committed offsets of a group for some partitions,
//! refused (GROUP_SUBSCRIBED_TO_TOPIC) for topics the group's consumers subscribe to.

use std::sync::Arc;

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::later;
use crate::Ctx;
use crate::connection::Reply;
use crate::error::{self, code};
use crate::message::ResponseBody;

/// The topics of a `consumer` protocol subscription (ConsumerProtocolSubscription, any
/// version): `version i16 | topics [string]`, the rest ignored. `None` if malformed.
pub(crate) fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let (_, rest) = metadata.split_first_chunk::<2>()?;
    let (count, mut rest) = rest.split_first_chunk::<4>()?;
    let count = usize::try_from(i32::from_be_bytes(*count)).ok()?;
    let mut topics = Vec::with_capacity(count.min(rest.len() / 2));
    for _ in 0..count {
        let (len, tail) = rest.split_first_chunk::<2>()?;
        let len = usize::try_from(i16::from_be_bytes(*len)).ok()?;
        let name = tail.get(..len)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
        rest = tail.get(len..)?;
    }
    Some(topics)
}

pub(super) fn handle(ctx: &Arc<Ctx>, request: OffsetDeleteRequest, _version: i16) -> Reply {
    let group = request.group_id.to_string();
    let subscribed: Vec<String> = match ctx.groups.member_metadata(&group) {
        Some((protocol_type, metadata)) if protocol_type == "consumer" => metadata
            .iter()
            .filter_map(|m| subscribed_topics(m))
            .flatten()
            .collect(),
        _ => Vec::new(),
    };
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut deletable = Vec::new();
    for topic in request.topics {
        let busy = subscribed.iter().any(|t| t.as_str() == topic.name.as_str());
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                if !busy {
                    deletable.push((topic.name.to_string(), p.partition_index));
                }
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(if busy {
                        code::GROUP_SUBSCRIBED_TO_TOPIC
                    } else {
                        code::NONE
                    })
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    let outcome = ctx.groups.delete_offsets(&group, &deletable);
    let ctx = Arc::clone(ctx);
    later(async move {
        let response = match outcome {
            Err(e) => OffsetDeleteResponse::default().with_error_code(error::from_group(&e)),
            Ok(end) => {
                if let Some(end) = end
                    && let Err(e) = ctx.groups.wait_durable(end).await
                {
                    return ResponseBody::OffsetDelete(
                        OffsetDeleteResponse::default().with_error_code(error::from_core(&e).0),
                    );
                }
                OffsetDeleteResponse::default().with_topics(topics)
            }
        };
        ResponseBody::OffsetDelete(response)
    })
}
