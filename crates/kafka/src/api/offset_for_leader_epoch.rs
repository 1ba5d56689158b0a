//! OffsetForLeaderEpoch (key 23, v2-4): consumers validate their position after a leader
//! change (KIP-320). ferrymq's leader epoch is always 0, so epoch 0 ends at the log end
//! offset and later epochs are unknown.

use std::sync::Arc;

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::leader_epoch_error;
use crate::Ctx;
use crate::error::code;
use crate::message::ResponseBody;
use crate::session::Reply;

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    request: &OffsetForLeaderEpochRequest,
    _version: i16,
) -> Reply {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let stream = ctx.streams.get(&topic.topic);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let base = EpochEndOffset::default().with_partition(p.partition);
                    let partition = stream
                        .as_ref()
                        .and_then(|s| u32::try_from(p.partition).ok().and_then(|i| s.partition(i)));
                    let Some(partition) = partition else {
                        return base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION);
                    };
                    if let Some(e) = leader_epoch_error(p.current_leader_epoch) {
                        return base.with_error_code(e);
                    }
                    if p.leader_epoch == 0 {
                        let end = i64::try_from(partition.log_end_offset()).unwrap_or(i64::MAX);
                        base.with_leader_epoch(0).with_end_offset(end)
                    } else {
                        base.with_leader_epoch(-1).with_end_offset(-1)
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    Reply::Now(ResponseBody::OffsetForLeaderEpoch(
        OffsetForLeaderEpochResponse::default().with_topics(topics),
    ))
}
