//! Appending an AMQP message to a stream: partition choice, encoding, durability wait.
//!
//! ```text
//! routing key ""  -> round-robin over the partitions
//! routing key k   -> murmur2(k) mod partitions (where a Kafka producer puts key k)
//! message -> mapping::message_to_batch -> Partition::append_encoded (body not copied)
//! confirm once the record is visible: durable under fsync Always, at once otherwise
//! ```

use std::sync::Arc;

use super::mapping::message_to_batch;
use crate::Error;
use crate::message::Message;
use crate::queue::DurabilityWait;
use crate::stream::partitioner::partition_for_key;
use crate::stream::{Appended, Partition, Stream, TimestampType};

/// Milliseconds since the epoch by the broker's clock.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Where a message was appended.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub partition: Arc<Partition>,
    pub appended: Appended,
}

impl StreamAppend {
    /// Resolves to `true` once the record is visible to readers (on disk under fsync
    /// `Always`); `None` if it is already.
    pub fn durability(&self) -> Option<DurabilityWait> {
        if self.partition.high_watermark() >= self.appended.end_offset {
            return None;
        }
        let partition = Arc::clone(&self.partition);
        let end = self.appended.end_offset;
        Some(Box::pin(async move {
            partition.wait_visible(end).await.is_ok()
        }))
    }
}

impl Stream {
    /// The partition an AMQP publish with `routing_key` goes to.
    pub fn partition_for_routing_key(&self, routing_key: &str) -> u32 {
        let partitions = self.partition_count();
        if partitions <= 1 {
            0
        } else if routing_key.is_empty() {
            self.next_unkeyed_partition()
        } else {
            partition_for_key(routing_key.as_bytes(), partitions)
        }
    }

    /// Appends `message` as one record (see the module docs).
    pub fn append_message(&self, message: &Message) -> Result<StreamAppend, Error> {
        let index = self.partition_for_routing_key(&message.routing_key);
        let partition = self
            .partition(index)
            .filter(|_| !self.is_deleted())
            .ok_or_else(|| Error::StreamNotFound {
                stream: self.name().to_owned(),
            })?;
        let log_append_time = partition.settings().timestamp_type == TimestampType::LogAppendTime;
        let batch = message_to_batch(message, now_ms(), log_append_time);
        let appended = partition.append_encoded(&batch)?;
        Ok(StreamAppend {
            partition,
            appended,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::message::Properties;
    use crate::stream::batch::RecordBatch;
    use crate::stream::records;
    use crate::stream::{StreamConfig, Streams};
    use crate::{Broker, BrokerConfig};

    fn streams() -> (tempfile::TempDir, Arc<Streams>) {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
        let streams = Arc::clone(broker.vhost("/").unwrap().streams());
        (dir, streams)
    }

    fn message(key: &str, body: &'static str) -> Message {
        Message::new(
            "x",
            key,
            Properties::default(),
            Bytes::from_static(body.as_bytes()),
        )
    }

    fn read_all(partition: &Partition) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        for stored in partition.read(0, 1 << 20).unwrap() {
            let batch = RecordBatch::from_stored(stored).unwrap();
            records::for_each(&batch, 1 << 20, |r| {
                out.push((
                    r.offset,
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
                ));
                true
            })
            .unwrap();
        }
        out
    }

    #[tokio::test]
    async fn keyed_messages_land_where_kafka_would_put_them() {
        let (_dir, streams) = streams();
        let stream = streams.create("t", 3, StreamConfig::default()).unwrap();
        let mut waits = Vec::new();
        for (key, body) in [("foobar", "a"), ("foobar", "b"), ("21", "c")] {
            let appended = stream.append_message(&message(key, body)).unwrap();
            assert_eq!(
                appended.partition.index(),
                partition_for_key(key.as_bytes(), 3),
                "{key}"
            );
            waits.extend(appended.durability());
        }
        for wait in waits {
            assert!(wait.await);
        }
        let p = stream.partition(partition_for_key(b"foobar", 3)).unwrap();
        assert_eq!(read_all(&p)[..2], [(0, "a".into()), (1, "b".into())]);
    }

    #[tokio::test]
    async fn unkeyed_messages_go_round_robin() {
        let (_dir, streams) = streams();
        let stream = streams.create("t", 2, StreamConfig::default()).unwrap();
        let seen: Vec<u32> = (0..4)
            .map(|_| {
                stream
                    .append_message(&message("", "x"))
                    .unwrap()
                    .partition
                    .index()
            })
            .collect();
        assert_eq!(seen, [0, 1, 0, 1]);
    }

    #[test]
    fn a_deleted_stream_refuses_appends() {
        let (_dir, streams) = streams();
        let stream = streams.create("t", 1, StreamConfig::default()).unwrap();
        streams.delete("t").unwrap();
        assert!(matches!(
            stream.append_message(&message("k", "x")),
            Err(Error::StreamNotFound { .. })
        ));
    }
}
