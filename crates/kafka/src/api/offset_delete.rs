//! OffsetDelete (key 47, v0): remove committed offsets of a group for some partitions,
//! refused (GROUP_SUBSCRIBED_TO_TOPIC) for topics the group's consumers subscribe to.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetDeleteRequest, OffsetDeleteResponse,
};
use kafka_protocol::protocol::Decodable;

use super::later;
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::Reply;

/// The topics of a `consumer` protocol subscription (a member's JoinGroup metadata:
/// `version i16 | ConsumerProtocolSubscription`); `None` if malformed. Newer versions are read
/// as the newest known, as Kafka's consumer protocol does.
pub(crate) fn subscribed_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let (version, _) = metadata.split_first_chunk::<2>()?;
    let version = i16::from_be_bytes(*version).clamp(0, 3);
    let mut body = metadata.slice(2..);
    crate::bounds::walk_subscription(version, &body).ok()?;
    let subscription = ConsumerProtocolSubscription::decode(&mut body, version).ok()?;
    Some(
        subscription
            .topics
            .into_iter()
            .map(|t| t.to_string())
            .collect(),
    )
}

pub(super) fn handle(ctx: &Arc<Ctx>, request: OffsetDeleteRequest, _version: i16) -> Reply {
    let group = request.group_id.to_string();
    let subscribed: Vec<String> = match ctx.groups.member_metadata(&group) {
        Some((protocol_type, metadata)) if protocol_type == "consumer" => metadata
            .iter()
            .filter_map(subscribed_topics)
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

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;

    #[test]
    fn subscriptions_of_every_version_are_read_and_hostile_ones_refused() {
        let topics = vec![
            StrBytes::from_static_str("a"),
            StrBytes::from_static_str("b"),
        ];
        for version in 0..=3i16 {
            let mut buf = BytesMut::new();
            buf.put_i16(version);
            ConsumerProtocolSubscription::default()
                .with_topics(topics.clone())
                .encode(&mut buf, version)
                .unwrap();
            assert_eq!(
                subscribed_topics(&buf.freeze()),
                Some(vec!["a".into(), "b".into()]),
                "v{version}"
            );
        }
        // Version 0, a topic count of two billion and nothing else.
        let hostile = Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(subscribed_topics(&hostile), None);
        assert_eq!(subscribed_topics(&Bytes::from_static(&[0])), None);
    }
}
