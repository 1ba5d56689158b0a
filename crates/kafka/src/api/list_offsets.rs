//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3, v7+), earliest local
//! (-4, v8, the same as earliest here), or the first record at or after a timestamp.
//!
//! "Latest" is the high watermark, or for read_committed (`isolation_level` 1) the last
//! stable offset (nothing of an open transaction is readable yet). Lookups by timestamp read
//! one or a few batches, so the handler answers from the blocking pool.

use ferrymq_auth::acl::AclOperation;
use std::sync::Arc;

use ferrymq_core::stream::{OffsetAndTimestamp, Partition};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{blocking, later, leader_epoch_error};
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

fn lookup(
    partition: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), ferrymq_core::Error> {
    let offset = |o: u64| i64::try_from(o).unwrap_or(i64::MAX);
    let found =
        |f: Option<OffsetAndTimestamp>| f.map_or((-1, -1), |f| (f.timestamp, offset(f.offset)));
    Ok(match timestamp {
        LATEST if read_committed => (-1, offset(partition.last_stable_offset())),
        LATEST => (-1, offset(partition.high_watermark())),
        EARLIEST | EARLIEST_LOCAL => (-1, offset(partition.log_start_offset())),
        MAX_TIMESTAMP => found(partition.offset_of_max_timestamp()?),
        ts => found(partition.offset_for_timestamp(ts)?),
    })
}

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: ListOffsetsRequest,
    version: i16,
) -> Reply {
    let ctx = Arc::clone(ctx);
    let read_committed = request.isolation_level == 1;
    let authorized: Vec<bool> = request
        .topics
        .iter()
        .map(|t| conn.may_topic(&ctx, AclOperation::Describe, &t.name))
        .collect();
    later(async move {
        let mut topics = Vec::with_capacity(request.topics.len());
        for (topic, authorized) in request.topics.into_iter().zip(authorized) {
            let stream = ctx.streams.get(&topic.name);
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in topic.partitions {
                let base = ListOffsetsPartitionResponse::default()
                    .with_partition_index(p.partition_index)
                    .with_timestamp(-1)
                    .with_offset(-1)
                    .with_leader_epoch(-1);
                if !authorized {
                    partitions.push(base.with_error_code(code::TOPIC_AUTHORIZATION_FAILED));
                    continue;
                }
                let partition = stream.as_ref().and_then(|s| {
                    u32::try_from(p.partition_index)
                        .ok()
                        .and_then(|i| s.partition(i))
                });
                let Some(partition) = partition else {
                    partitions.push(base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                    continue;
                };
                if let Some(e) = leader_epoch_error(p.current_leader_epoch) {
                    partitions.push(base.with_error_code(e));
                    continue;
                }
                let unsupported = (p.timestamp == MAX_TIMESTAMP && version < 7)
                    || (p.timestamp == EARLIEST_LOCAL && version < 8)
                    || p.timestamp < EARLIEST_LOCAL;
                if unsupported {
                    partitions.push(base.with_error_code(code::UNSUPPORTED_VERSION));
                    continue;
                }
                let ts = p.timestamp;
                match blocking(move || lookup(&partition, ts, read_committed)).await {
                    Ok((timestamp, offset)) => {
                        let mut found = base.with_timestamp(timestamp).with_offset(offset);
                        if version >= 4 && offset >= 0 {
                            found.leader_epoch = 0;
                        }
                        partitions.push(found);
                    }
                    Err(e) => partitions.push(base.with_error_code(error::from_core(&e).0)),
                }
            }
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        ResponseBody::ListOffsets(ListOffsetsResponse::default().with_topics(topics))
    })
}
