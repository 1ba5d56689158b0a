//! DeleteRecords (key 21, v0-2): move a partition's log start offset forward. Offset -1
//! means the high watermark. Whole segments below the new start are deleted.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{blocking, later};
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::Reply;

pub(super) fn handle(ctx: &Arc<Ctx>, request: DeleteRecordsRequest, _version: i16) -> Reply {
    let ctx = Arc::clone(ctx);
    later(async move {
        let mut topics = Vec::with_capacity(request.topics.len());
        for topic in request.topics {
            let stream = ctx.streams.get(&topic.name);
            let mut partitions = Vec::with_capacity(topic.partitions.len());
            for p in topic.partitions {
                let base = DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_low_watermark(-1);
                let partition = stream.as_ref().and_then(|s| {
                    u32::try_from(p.partition_index)
                        .ok()
                        .and_then(|i| s.partition(i))
                });
                let Some(partition) = partition else {
                    partitions.push(base.with_error_code(code::UNKNOWN_TOPIC_OR_PARTITION));
                    continue;
                };
                let target = match p.offset {
                    -1 => partition.high_watermark(),
                    o => match u64::try_from(o) {
                        Ok(o) => o,
                        Err(_) => {
                            partitions.push(base.with_error_code(code::OFFSET_OUT_OF_RANGE));
                            continue;
                        }
                    },
                };
                match blocking(move || partition.delete_records_before(target)).await {
                    Ok(low) => partitions
                        .push(base.with_low_watermark(i64::try_from(low).unwrap_or(i64::MAX))),
                    Err(ferrymq_core::Error::OffsetOutOfRange { .. }) => {
                        partitions.push(base.with_error_code(code::OFFSET_OUT_OF_RANGE));
                    }
                    Err(e) => partitions.push(base.with_error_code(error::from_core(&e).0)),
                }
            }
            topics.push(
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        ResponseBody::DeleteRecords(DeleteRecordsResponse::default().with_topics(topics))
    })
}
