//! OffsetFetch (key 9, v1-9): committed offsets of one group (v1-7) or several (v8+); all of
//! a group's offsets when the topic list is null (v2+). Partitions without a committed
//! offset get -1, as Kafka answers.

use std::sync::Arc;

use ferrymq_core::group::CommittedOffset;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::s;
use crate::Ctx;
use crate::message::ResponseBody;
use crate::session::Reply;

type Fetched = Vec<(String, i32, Option<CommittedOffset>)>;

fn fetch(ctx: &Ctx, group: &str, topics: Option<&[(String, Vec<i32>)]>) -> Fetched {
    ctx.groups.fetch_offsets(group, topics)
}

/// One topic's partitions and their committed offsets.
type TopicRows = (String, Vec<(i32, Option<CommittedOffset>)>);

/// Groups consecutive rows by topic.
fn by_topic(rows: Fetched) -> Vec<TopicRows> {
    let mut out: Vec<TopicRows> = Vec::new();
    for (topic, partition, offset) in rows {
        match out.last_mut() {
            Some((t, parts)) if *t == topic => parts.push((partition, offset)),
            _ => out.push((topic, vec![(partition, offset)])),
        }
    }
    out
}

fn fields(o: Option<CommittedOffset>) -> (i64, i32, Option<String>) {
    match o {
        Some(o) => (o.offset, o.leader_epoch, o.metadata),
        None => (-1, -1, Some(String::new())),
    }
}

pub(super) fn handle(ctx: &Arc<Ctx>, request: &OffsetFetchRequest, version: i16) -> Reply {
    let response = if version >= 8 {
        let groups = request
            .groups
            .iter()
            .map(|g| {
                let topics: Option<Vec<(String, Vec<i32>)>> = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let rows = by_topic(fetch(ctx, &g.group_id, topics.as_deref()));
                let topics = rows
                    .into_iter()
                    .map(|(topic, parts)| {
                        let partitions = parts
                            .into_iter()
                            .map(|(p, o)| {
                                let (offset, epoch, metadata) = fields(o);
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch)
                                    .with_metadata(metadata.map(s))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(s(topic)))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(topics)
            })
            .collect();
        OffsetFetchResponse::default().with_groups(groups)
    } else {
        let topics: Option<Vec<(String, Vec<i32>)>> = request.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let rows = by_topic(fetch(ctx, &request.group_id, topics.as_deref()));
        let topics = rows
            .into_iter()
            .map(|(topic, parts)| {
                let partitions = parts
                    .into_iter()
                    .map(|(p, o)| {
                        let (offset, epoch, metadata) = fields(o);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(metadata.map(s))
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(partitions)
            })
            .collect();
        OffsetFetchResponse::default().with_topics(topics)
    };
    Reply::Now(ResponseBody::OffsetFetch(response))
}
