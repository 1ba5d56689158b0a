//! Fetch (key 1): stored batches straight from the logs, with long polling.
//!
//! Batches are returned exactly as stored (no re-encoding); a fetch offset inside a batch
//! returns that whole batch, and clients skip the records before their offset, as with
//! Kafka. `partition_max_bytes` and `max_bytes` bound the response, except that the first
//! batch of the first non-empty partition is returned even if larger (KIP-74), so a consumer
//! always progresses. If fewer than `min_bytes` are available the response waits, up to
//! `max_wait_ms`, on the partitions' wake-ups (no polling) and reads again when any moves.
//! Errors (unknown partition, out of range) end the wait at once, as in Kafka.
//!
//! Incremental fetch sessions (KIP-227) are not kept: every response carries session id 0,
//! which tells clients to send full requests; a request naming a session gets
//! FETCH_SESSION_ID_NOT_FOUND.

use ferrymq_auth::acl::AclOperation;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ferrymq_core::Error;
use ferrymq_core::stream::batch::RecordBatch;
use ferrymq_core::stream::{Partition, StreamId};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use tokio_util::sync::CancellationToken;

use super::{later, leader_epoch_error};
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

/// Longest long poll honoured, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

struct Target {
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    source: Result<Arc<Partition>, i16>,
}

struct TopicTarget {
    name: TopicName,
    id: uuid::Uuid,
    partitions: Vec<Target>,
}

fn resolve(ctx: &Ctx, conn: &ConnState, request: FetchRequest, version: i16) -> Vec<TopicTarget> {
    request
        .topics
        .into_iter()
        .map(|topic| {
            let stream = if version >= 13 {
                ctx.streams
                    .get_by_id(StreamId(*topic.topic_id.as_bytes()))
                    .ok_or(code::UNKNOWN_TOPIC_ID)
            } else {
                ctx.streams
                    .get(&topic.topic)
                    .ok_or(code::UNKNOWN_TOPIC_OR_PARTITION)
            };
            let stream = stream.and_then(|s| {
                if conn.may_topic(ctx, AclOperation::Read, s.name()) {
                    Ok(s)
                } else {
                    Err(code::TOPIC_AUTHORIZATION_FAILED)
                }
            });
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let source = stream.as_ref().map_err(|e| *e).and_then(|s| {
                        if let Some(e) = leader_epoch_error(p.current_leader_epoch) {
                            return Err(e);
                        }
                        u32::try_from(p.partition)
                            .ok()
                            .and_then(|i| s.partition(i))
                            .ok_or(code::UNKNOWN_TOPIC_OR_PARTITION)
                    });
                    Target {
                        partition: p.partition,
                        fetch_offset: p.fetch_offset,
                        max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
                        source,
                    }
                })
                .collect();
            TopicTarget {
                name: topic.topic,
                id: topic.topic_id,
                partitions,
            }
        })
        .collect()
}

struct Pass {
    response: Vec<FetchableTopicResponse>,
    bytes: usize,
    errors: bool,
}

fn concat(batches: Vec<Bytes>) -> Bytes {
    if batches.len() == 1 {
        return batches.into_iter().next().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(batches.iter().map(Bytes::len).sum());
    for b in batches {
        out.extend_from_slice(&b);
    }
    out.freeze()
}

/// The batches of a read below `lso`, and the aborted transactions that overlap them.
fn committed_view(
    partition: &Partition,
    fetch_offset: i64,
    lso: u64,
    batches: Vec<Bytes>,
) -> (Vec<Bytes>, Vec<AbortedTransaction>) {
    let mut end = u64::try_from(fetch_offset).unwrap_or(0);
    let kept: Vec<Bytes> = batches
        .into_iter()
        .take_while(|bytes| {
            let Ok(batch) = RecordBatch::from_stored(bytes.clone()) else {
                return false;
            };
            let base = u64::try_from(batch.base_offset()).unwrap_or(u64::MAX);
            let next = base.saturating_add(u64::from(batch.span()));
            if next > lso {
                return false;
            }
            end = next;
            true
        })
        .collect();
    let from = u64::try_from(fetch_offset).unwrap_or(0);
    let aborted = partition
        .aborted_between(from, end)
        .into_iter()
        .map(|t| {
            AbortedTransaction::default()
                .with_producer_id(ProducerId(t.producer_id))
                .with_first_offset(i64::try_from(t.first_offset).unwrap_or(i64::MAX))
        })
        .collect();
    (kept, aborted)
}

/// One read over every requested partition.
fn read_pass(targets: &[TopicTarget], max_bytes: usize, read_committed: bool) -> Pass {
    let mut budget = max_bytes;
    let mut nonempty = false;
    let mut total = 0;
    let mut errors = false;
    let mut response = Vec::with_capacity(targets.len());
    for topic in targets {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for target in &topic.partitions {
            let mut data = PartitionData::default()
                .with_partition_index(target.partition)
                .with_aborted_transactions(read_committed.then(Vec::new))
                .with_records(Some(Bytes::new()));
            let partition = match &target.source {
                Ok(p) => p,
                Err(c) => {
                    errors = true;
                    partitions.push(data.with_error_code(*c).with_high_watermark(-1));
                    continue;
                }
            };
            let limit = target.max_bytes.min(budget);
            let read = match u64::try_from(target.fetch_offset) {
                Ok(_) if limit == 0 && nonempty => Ok(Vec::new()),
                Ok(offset) => partition.read(offset, limit.max(1)),
                Err(_) => Err(Error::OffsetOutOfRange {
                    stream: String::new(),
                    partition: 0,
                    offset: 0,
                    start: partition.log_start_offset(),
                    end: partition.log_end_offset(),
                }),
            };
            let hw = i64::try_from(partition.high_watermark()).unwrap_or(i64::MAX);
            let lso = partition.last_stable_offset();
            data = data
                .with_high_watermark(hw)
                .with_last_stable_offset(i64::try_from(lso).unwrap_or(i64::MAX))
                .with_log_start_offset(i64::try_from(partition.log_start_offset()).unwrap_or(0));
            // read_committed: nothing at or past the last stable offset, and the aborted
            // transactions among what is returned, for the client to skip.
            let read = match read {
                Ok(batches) if read_committed => {
                    let (kept, aborted) =
                        committed_view(partition, target.fetch_offset, lso, batches);
                    data = data.with_aborted_transactions(Some(aborted));
                    Ok(kept)
                }
                other => other,
            };
            match read {
                Ok(batches) => {
                    let size: usize = batches.iter().map(Bytes::len).sum();
                    if size > 0 && !(nonempty && size > limit) {
                        nonempty = true;
                        budget = budget.saturating_sub(size);
                        total += size;
                        data = data.with_records(Some(concat(batches)));
                    }
                }
                Err(e) => {
                    errors = true;
                    let c = match e {
                        Error::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
                        other => error::from_core(&other).0,
                    };
                    data = data.with_error_code(c);
                }
            }
            partitions.push(data);
        }
        response.push(
            FetchableTopicResponse::default()
                .with_topic(topic.name.clone())
                .with_topic_id(topic.id)
                .with_partitions(partitions),
        );
    }
    Pass {
        response,
        bytes: total,
        errors,
    }
}

/// Resolves when any partition's high watermark moves (or it is deleted).
async fn any_changed(
    partitions: &[Arc<Partition>],
    mut waits: Vec<Pin<Box<tokio::sync::futures::Notified<'_>>>>,
) {
    if partitions.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for w in &mut waits {
            if w.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await;
}

async fn long_poll(
    targets: Vec<TopicTarget>,
    min_bytes: usize,
    max_bytes: usize,
    max_wait: Duration,
    read_committed: bool,
    shutdown: CancellationToken,
) -> Vec<FetchableTopicResponse> {
    let deadline = tokio::time::Instant::now() + max_wait;
    let partitions: Vec<Arc<Partition>> = targets
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter_map(|p| p.source.as_ref().ok().cloned())
        })
        .collect();
    loop {
        let mut waits: Vec<_> = partitions.iter().map(|p| Box::pin(p.changed())).collect();
        for w in &mut waits {
            w.as_mut().enable();
        }
        let pass = read_pass(&targets, max_bytes, read_committed);
        let done = pass.errors
            || pass.bytes >= min_bytes
            || tokio::time::Instant::now() >= deadline
            || shutdown.is_cancelled();
        if done {
            return pass.response;
        }
        tokio::select! {
            () = any_changed(&partitions, waits) => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = shutdown.cancelled() => {}
        }
    }
}

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: FetchRequest,
    version: i16,
) -> Reply {
    if version >= 7 && (request.session_id != 0 || request.session_epoch > 0) {
        let response = FetchResponse::default().with_error_code(code::FETCH_SESSION_ID_NOT_FOUND);
        return Reply::Now(ResponseBody::Fetch(response));
    }
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0).max(1);
    let max_wait =
        Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_WAIT_CAP);
    let read_committed = request.isolation_level == 1;
    let targets = resolve(ctx, conn, request, version);
    let shutdown = conn.shutdown.clone();
    later(async move {
        let responses = long_poll(
            targets,
            min_bytes,
            max_bytes,
            max_wait,
            read_committed,
            shutdown,
        )
        .await;
        ResponseBody::Fetch(FetchResponse::default().with_responses(responses))
    })
}
