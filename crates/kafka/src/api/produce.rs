//! Produce (key 0): validate each partition's record batch and append it as received.
//!
//! Each partition must carry exactly one v2 batch (Kafka's rule since Produce v3); its CRC
//! is verified, uncompressed records are walked, the size is checked against
//! `max.message.bytes`, idempotent sequences are checked, and the batch is stored with only
//! its base offset (and, for `LogAppendTime` topics, its timestamp) rewritten. Appends happen
//! in request order; with acks 1 or -1 the response waits until every appended partition's
//! high watermark covers the batch (under fsync policy Always: until it is on disk), bounded
//! by the request's `timeout_ms`. acks=0 gets no response at all.
//!
//! A transactional batch (with the request's transactional id) is appended only inside its
//! producer's Ongoing transaction, to a partition the transaction added; control batches come
//! from the coordinator only.
//!
//! Resource alarms push back before anything is appended: the memory alarm delays the
//! request (reported as `throttle_time_ms`), the disk alarm refuses it with a retriable error.

use ferrymq_auth::acl::{AclOperation, AclResource};
use ferrymq_core::alarms::Resource;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ferrymq_core::stream::batch::{Compression, RecordBatch};
use ferrymq_core::stream::{Partition, Stream, TimestampType, records, txn};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::{later, now_ms, s, topics};
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};
use crate::{Ctx, topic_config};

fn failed(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(s))
}

/// A partition whose response waits for its append to become visible.
struct Waiting {
    topic: usize,
    slot: usize,
    partition: Arc<Partition>,
    end: u64,
}

/// Checks what the topic's settings demand of a batch that is otherwise valid.
fn check_topic_rules(
    stream: &Stream,
    batch: &RecordBatch,
    acks: i16,
    version: i16,
    now: i64,
) -> Result<(), (i16, String)> {
    if batch.compression() == Compression::Zstd && version < 7 {
        return Err((
            code::UNSUPPORTED_COMPRESSION_TYPE,
            "zstd needs Produce v7 or later".into(),
        ));
    }
    if txn::is_control(batch) {
        return Err((
            code::INVALID_RECORD,
            "control batches are written by the transaction coordinator only".into(),
        ));
    }
    let config = stream.config();
    if acks == -1 && topic_config::min_insync_replicas(&config) > 1 {
        return Err((
            code::NOT_ENOUGH_REPLICAS,
            "min.insync.replicas exceeds the single replica".into(),
        ));
    }
    let create_time = stream
        .partition(0)
        .is_none_or(|p| p.settings().timestamp_type == TimestampType::CreateTime);
    if create_time {
        let (first, last) = (batch.base_timestamp(), batch.max_timestamp());
        let limit = |name| topic_config::timestamp_limit(&config, name);
        let before = limit("message.timestamp.before.max.ms")
            .or(limit("message.timestamp.difference.max.ms"));
        let after = limit("message.timestamp.after.max.ms")
            .or(limit("message.timestamp.difference.max.ms"));
        let too_old = before.is_some_and(|max| now.saturating_sub(first.min(last)) > max);
        let too_new = after.is_some_and(|max| first.max(last).saturating_sub(now) > max);
        if too_old || too_new {
            return Err((
                code::INVALID_TIMESTAMP,
                "record timestamp outside the topic's accepted range".into(),
            ));
        }
    }
    Ok(())
}

/// A transactional batch must come from the producer that holds `transactional_id` now,
/// inside its Ongoing transaction, to a partition the transaction added (KIP-890's check).
fn check_transactional(
    ctx: &Ctx,
    transactional_id: Option<&str>,
    stream: &Stream,
    index: u32,
    batch: &RecordBatch,
) -> Result<(), (i16, String)> {
    if !txn::is_transactional_data(batch) {
        return Ok(());
    }
    let Some(id) = transactional_id else {
        return Err((
            code::INVALID_RECORD,
            "a transactional batch needs the request's transactional id".into(),
        ));
    };
    ctx.txns
        .check_produce(
            id,
            batch.producer_id(),
            batch.producer_epoch(),
            stream.name(),
            index,
        )
        // Produce has no PRODUCER_FENCED: a fenced producer gets INVALID_PRODUCER_EPOCH.
        .map_err(|e| (error::from_txn(&e, false), e.to_string()))
}

fn append_one(
    ctx: &Ctx,
    transactional_id: Option<&str>,
    stream: &Stream,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
    version: i16,
) -> Result<(Arc<Partition>, ferrymq_core::stream::Appended), Box<PartitionProduceResponse>> {
    let fail = |c: i16, m: String| Box::new(failed(index, c, Some(m)));
    let partition = u32::try_from(index)
        .ok()
        .and_then(|i| stream.partition(i))
        .ok_or_else(|| {
            fail(
                code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("no partition {index}"),
            )
        })?;
    let records = records
        .filter(|r| !r.is_empty())
        .ok_or_else(|| fail(code::INVALID_RECORD, "no record batch".into()))?;
    let batch = RecordBatch::parse_single(records).map_err(|e| {
        let c = if e.is_corrupt() {
            code::CORRUPT_MESSAGE
        } else {
            code::INVALID_RECORD
        };
        let c = if matches!(e, ferrymq_core::stream::batch::BatchError::Codec { .. }) {
            code::UNSUPPORTED_COMPRESSION_TYPE
        } else {
            c
        };
        fail(c, e.to_string())
    })?;
    let now = now_ms();
    check_topic_rules(stream, &batch, acks, version, now).map_err(|(c, m)| fail(c, m))?;
    check_transactional(ctx, transactional_id, stream, partition.index(), &batch)
        .map_err(|(c, m)| fail(c, m))?;
    records::validate_uncompressed(&batch)
        .map_err(|e| fail(code::CORRUPT_MESSAGE, e.to_string()))?;
    let appended = partition.append(&batch, now).map_err(|e| {
        let (c, m) = error::from_core(&e);
        fail(c, m)
    })?;
    Ok((partition, appended))
}

/// What the broker's resource alarms did to a produce request.
#[derive(Debug, Default)]
struct Throttled {
    /// How long the request waited for the memory alarm to clear (`throttle_time_ms`).
    waited_ms: i32,
    /// Why the request appends nothing: the disk alarm, or a memory alarm that outlasted the
    /// request's timeout. Both are retriable, so the client sends the records again.
    refusal: Option<(i16, &'static str)>,
}

/// Under the memory alarm a produce waits (the connection reads nothing else meanwhile, as
/// Kafka mutes a throttled channel, KIP-219) until the alarm clears or the request's timeout
/// passes (`deadline`); under the disk alarm it is refused with the retriable
/// `KAFKA_STORAGE_ERROR`.
async fn throttle(ctx: &Ctx, conn: &ConnState, deadline: tokio::time::Instant) -> Throttled {
    let alarms = ctx.broker.alarms();
    if !alarms.any() {
        return Throttled::default();
    }
    let disk = || {
        alarms
            .is_set(Resource::Disk)
            .then_some((code::KAFKA_STORAGE_ERROR, DISK_ALARM))
    };
    if let Some(refusal) = disk() {
        return Throttled {
            waited_ms: 0,
            refusal: Some(refusal),
        };
    }
    let started = tokio::time::Instant::now();
    let cleared = tokio::select! {
        cleared = tokio::time::timeout_at(deadline, alarms.cleared()) => cleared.is_ok(),
        () = conn.shutdown.cancelled() => false,
    };
    let waited_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let refusal = if cleared {
        disk()
    } else {
        Some((code::REQUEST_TIMED_OUT, MEMORY_ALARM))
    };
    Throttled { waited_ms, refusal }
}

const DISK_ALARM: &str =
    "the broker's disk alarm is in effect (free space below disk_free_limit); retry later";
const MEMORY_ALARM: &str =
    "the broker's memory alarm outlasted the request's timeout; nothing was appended";

pub(super) async fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: ProduceRequest,
    version: i16,
) -> Reply {
    let acks = request.acks;
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|id| id.0.to_string())
        .filter(|id| !id.is_empty());
    let refuse_all = if !matches!(acks, -1..=1) {
        Some((code::INVALID_REQUIRED_ACKS, "acks must be -1, 0 or 1"))
    } else if transactional_id
        .as_deref()
        .is_some_and(|id| !conn.may(ctx, AclOperation::Write, AclResource::TransactionalId, id))
    {
        Some((
            code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "Transactional Id authorization failed.",
        ))
    } else {
        None
    };
    // One budget for the whole request: time spent throttled counts against it.
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0).max(1));
    let deadline = tokio::time::Instant::now() + timeout;
    let throttled = match refuse_all {
        Some(_) => Throttled::default(),
        None => throttle(ctx, conn, deadline).await,
    };
    let refuse_all = refuse_all.or(throttled.refusal);
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut waiting = Vec::new();
    for (t, topic) in request.topic_data.into_iter().enumerate() {
        let stream = match refuse_all {
            Some(_) => Ok(None),
            None if !conn.may_topic(ctx, AclOperation::Write, &topic.name) => Err((
                code::TOPIC_AUTHORIZATION_FAILED,
                "Topic authorization failed.".to_owned(),
            )),
            None => {
                let create = conn.may_create_topic(ctx, &topic.name);
                topics::get_or_create(ctx, &topic.name, create).await
            }
        };
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            let response = match (&stream, refuse_all) {
                (_, Some((c, m))) => failed(index, c, Some(m.to_owned())),
                (Err((c, m)), None) => failed(index, *c, Some(m.clone())),
                (Ok(None), None) => failed(index, code::UNKNOWN_TOPIC_OR_PARTITION, None),
                (Ok(Some(stream)), None) => {
                    let id = transactional_id.as_deref();
                    match append_one(ctx, id, stream, index, data.records, acks, version) {
                        Ok((partition, appended)) => {
                            waiting.push(Waiting {
                                topic: t,
                                slot: partitions.len(),
                                partition,
                                end: appended.end_offset,
                            });
                            PartitionProduceResponse::default()
                                .with_index(index)
                                .with_base_offset(
                                    i64::try_from(appended.base_offset).unwrap_or(i64::MAX),
                                )
                                .with_log_append_time_ms(appended.log_append_time)
                                .with_log_start_offset(
                                    i64::try_from(appended.log_start_offset).unwrap_or(0),
                                )
                        }
                        Err(response) => *response,
                    }
                }
            };
            partitions.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    if acks == 0 {
        return Reply::Nothing;
    }
    let throttle_time_ms = throttled.waited_ms;
    let finish = move |responses| {
        ResponseBody::Produce(
            ProduceResponse::default()
                .with_responses(responses)
                .with_throttle_time_ms(throttle_time_ms),
        )
    };
    if waiting.is_empty() {
        return Reply::Now(finish(responses));
    }
    later(async move {
        let mut responses = responses;
        for w in waiting {
            let outcome = tokio::time::timeout_at(deadline, w.partition.wait_visible(w.end)).await;
            let err = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(error::from_core(&e)),
                Err(_) => Some((
                    code::REQUEST_TIMED_OUT,
                    "not durable within timeout_ms".to_owned(),
                )),
            };
            if let Some((c, m)) = err
                && let Some(p) = responses
                    .get_mut(w.topic)
                    .and_then(|t| t.partition_responses.get_mut(w.slot))
            {
                *p = failed(p.index, c, Some(m));
            }
        }
        finish(responses)
    })
}
