use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::records::Compression;

use super::batch::RecordBatch;
use super::batch::tests::{encoded, encoded_as};
use super::*;
use crate::{Error, FsyncMode, StorageConfig};

fn defaults(fsync: FsyncMode) -> StreamDefaults {
    StreamDefaults::from_storage(&StorageConfig {
        stream_fsync: fsync,
        ..StorageConfig::default()
    })
}

/// The streams of `vhost` in `dir`, with their own definitions journal.
fn open(dir: &std::path::Path, vhost: &str, defaults: StreamDefaults) -> Streams {
    let (store, recovered) = crate::store::DefinitionStore::open(
        &dir.join("meta/definitions"),
        &ferrymq_log::LogConfig::default(),
    )
    .unwrap();
    Streams::open(dir, vhost, defaults, Arc::new(store), &recovered).unwrap()
}

fn batch(n: i64) -> RecordBatch {
    RecordBatch::parse(encoded(n, Compression::None, -1, -1)).unwrap()
}

fn idempotent(pid: i64, first: i32, n: i64) -> RecordBatch {
    RecordBatch::parse(encoded(n, Compression::Lz4, pid, first)).unwrap()
}

fn transactional(pid: i64, first: i32, n: i64) -> RecordBatch {
    RecordBatch::parse(encoded_as(n, Compression::None, pid, first, true)).unwrap()
}

fn base_offsets(batches: &[Bytes]) -> Vec<i64> {
    batches
        .iter()
        .map(|b| RecordBatch::from_stored(b.clone()).unwrap().base_offset())
        .collect()
}

#[tokio::test]
async fn appends_are_visible_after_fsync_and_read_back_with_assigned_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path(), "/", defaults(FsyncMode::Always));
    let stream = streams.create("t", 2, StreamConfig::default()).unwrap();
    let p = stream.partition(1).unwrap();
    let first = p.append(&batch(3), 5).unwrap();
    let second = p.append(&batch(2), 5).unwrap();
    assert_eq!((first.base_offset, first.end_offset), (0, 3));
    assert_eq!((second.base_offset, second.end_offset), (3, 5));
    p.wait_visible(second.end_offset).await.unwrap();
    assert_eq!(p.high_watermark(), 5);
    assert!(
        p.log().durable_offset() >= 5,
        "visible implies durable under Always"
    );
    assert_eq!(base_offsets(&p.read(0, 1 << 20).unwrap()), vec![0, 3]);
    // An offset inside a batch returns the whole batch.
    assert_eq!(base_offsets(&p.read(4, 1 << 20).unwrap()), vec![3]);
    assert!(p.read(5, 1 << 20).unwrap().is_empty());
    assert!(matches!(
        p.read(6, 1),
        Err(Error::OffsetOutOfRange {
            start: 0,
            end: 5,
            ..
        })
    ));
    assert!(stream.partition(2).is_none());
}

#[tokio::test]
async fn a_long_poll_wakes_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path(), "/", defaults(FsyncMode::Always));
    let p = streams
        .create("t", 1, StreamConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    let waiter = {
        let p = Arc::clone(&p);
        tokio::spawn(async move {
            let changed = p.changed();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if p.read(0, 1024).unwrap().is_empty() {
                changed.await;
            }
            p.read(0, 1024).unwrap().len()
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    p.append(&batch(1), 1).unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, 1);
}

#[tokio::test]
async fn idempotent_retries_are_not_appended_twice() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path(), "/", defaults(FsyncMode::Never));
    let p = streams
        .create("t", 1, StreamConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    let a = p.append(&idempotent(7, 0, 3), 1).unwrap();
    let b = p.append(&idempotent(7, 3, 2), 1).unwrap();
    let retry = p.append(&idempotent(7, 0, 3), 1).unwrap();
    assert!(retry.duplicate && retry.base_offset == a.base_offset);
    assert_eq!(p.log_end_offset(), 5);
    let gap = p.append(&idempotent(7, 9, 1), 1).unwrap_err();
    assert!(matches!(
        gap,
        Error::Sequence(producer::SequenceError::OutOfOrder {
            last: 4,
            got: 9,
            ..
        })
    ));
    assert_eq!(b.base_offset, 3);
}

#[tokio::test]
async fn streams_and_producer_state_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let streams = open(dir.path(), "v", defaults(FsyncMode::Always));
        let config = StreamConfig {
            retention_ms: Some(1234),
            ..StreamConfig::default()
        };
        let stream = streams.create("orders/eu", 3, config).unwrap();
        let p = stream.partition(2).unwrap();
        let a = p.append(&idempotent(1, 0, 2), 1).unwrap();
        p.wait_visible(a.end_offset).await.unwrap();
        streams.close().unwrap();
        stream.id()
    };
    let streams = open(dir.path(), "v", defaults(FsyncMode::Always));
    let stream = streams.get("orders/eu").unwrap();
    assert_eq!((stream.id(), stream.partition_count()), (id, 3));
    assert_eq!(stream.config().retention_ms, Some(1234));
    let p = stream.partition(2).unwrap();
    assert_eq!(p.high_watermark(), 2);
    assert!(p.append(&idempotent(1, 0, 2), 1).unwrap().duplicate);
    assert!(streams.get_by_id(id).is_some());
}

#[tokio::test]
async fn producer_state_is_rebuilt_from_the_log_without_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let streams = open(dir.path(), "/", defaults(FsyncMode::Never));
        let p = streams
            .create("t", 1, StreamConfig::default())
            .unwrap()
            .partition(0)
            .unwrap();
        p.append(&idempotent(3, 0, 4), 1).unwrap();
        p.flush().unwrap();
        // No close: as after a crash, there is no snapshot.
    }
    let streams = open(dir.path(), "/", defaults(FsyncMode::Never));
    let p = streams.get("t").unwrap().partition(0).unwrap();
    assert!(p.append(&idempotent(3, 0, 4), 1).unwrap().duplicate);
    assert!(p.append(&idempotent(3, 5, 1), 1).is_err());
}

#[tokio::test]
async fn delete_hides_the_stream_and_removes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path(), "/", defaults(FsyncMode::Never));
    let p = streams
        .create("gone", 1, StreamConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    assert!(matches!(
        streams.create("gone", 1, StreamConfig::default()),
        Err(Error::StreamExists { .. })
    ));
    streams.delete("gone").unwrap();
    assert!(streams.get("gone").is_none());
    assert!(matches!(
        p.append(&batch(1), 1),
        Err(Error::StreamNotFound { .. })
    ));
    assert!(!dir.path().join("streams/%2F/gone").exists());
    let again = streams.create("gone", 1, StreamConfig::default()).unwrap();
    assert_eq!(again.partition(0).unwrap().log_end_offset(), 0);
}

#[tokio::test]
async fn partitions_grow_and_configs_apply() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path(), "/", defaults(FsyncMode::Never));
    let stream = streams.create("t", 2, StreamConfig::default()).unwrap();
    streams.add_partitions(&stream, 5).unwrap();
    assert_eq!(stream.partition_count(), 5);
    assert!(streams.add_partitions(&stream, 3).is_err());
    let small = StreamConfig {
        max_message_bytes: Some(100),
        ..StreamConfig::default()
    };
    streams.set_config(&stream, small).unwrap();
    let err = stream
        .partition(4)
        .unwrap()
        .append(&batch(5), 1)
        .unwrap_err();
    assert!(matches!(err, Error::BatchTooLarge { max: 100, .. }));
}

#[tokio::test]
async fn log_append_time_and_timestamp_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path(), "/", defaults(FsyncMode::Never));
    let stream = streams.create("t", 1, StreamConfig::default()).unwrap();
    let p = stream.partition(0).unwrap();
    // Records 0..5 at 1_700_000_000_000 + i (create time), zstd-compressed.
    p.append(
        &RecordBatch::parse(encoded(5, Compression::Zstd, -1, -1)).unwrap(),
        9,
    )
    .unwrap();
    let at = |ts| {
        p.offset_for_timestamp(ts)
            .unwrap()
            .map(|o| (o.offset, o.timestamp))
    };
    assert_eq!(at(0), Some((0, 1_700_000_000_000)));
    assert_eq!(at(1_700_000_000_003), Some((3, 1_700_000_000_003)));
    assert_eq!(at(1_700_000_000_005), None);
    let max = p.offset_of_max_timestamp().unwrap().unwrap();
    assert_eq!((max.offset, max.timestamp), (4, 1_700_000_000_004));

    let lat = StreamConfig {
        timestamp_type: Some(TimestampType::LogAppendTime),
        ..StreamConfig::default()
    };
    streams.set_config(&stream, lat).unwrap();
    let appended = p.append(&batch(2), 1_900_000_000_000).unwrap();
    assert_eq!(appended.log_append_time, 1_900_000_000_000);
    let stored = p.read(appended.base_offset, 1 << 20).unwrap();
    let stored = RecordBatch::parse(stored[0].clone()).unwrap();
    assert!(stored.is_log_append_time());
    assert_eq!(at(1_800_000_000_000), Some((5, 1_900_000_000_000)));
}

#[tokio::test]
async fn delete_records_moves_the_start_but_not_past_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let streams = open(dir.path(), "/", defaults(FsyncMode::Never));
    let p = streams
        .create("t", 1, StreamConfig::default())
        .unwrap()
        .partition(0)
        .unwrap();
    p.append(&batch(3), 1).unwrap();
    p.append(&batch(3), 1).unwrap();
    assert_eq!(p.delete_records_before(4).unwrap(), 4);
    assert!(matches!(
        p.read(2, 1),
        Err(Error::OffsetOutOfRange { start: 4, .. })
    ));
    // The batch holding offset 4 is still served whole.
    assert_eq!(base_offsets(&p.read(4, 1 << 20).unwrap()), vec![3]);
    assert!(p.delete_records_before(7).is_err());
}

#[test]
fn stream_ids_are_random_and_hex_round_trips() {
    let (a, b) = (StreamId::random(), StreamId::random());
    assert_ne!(a, b);
    assert_eq!(StreamId::from_hex(&a.to_hex()), Some(a));
    assert_eq!(StreamId::from_hex("xyz"), None);
}

#[tokio::test]
async fn transactions_hold_the_last_stable_offset_until_their_markers_and_survive_a_crash() {
    use super::txn::Outcome;
    let dir = tempfile::tempdir().unwrap();
    {
        let streams = open(dir.path(), "/", defaults(FsyncMode::Never));
        let p = streams
            .create("t", 1, StreamConfig::default())
            .unwrap()
            .partition(0)
            .unwrap();
        p.append(&transactional(5, 0, 3), 1).unwrap(); // 0..3
        p.append(&batch(2), 1).unwrap(); // 3..5
        p.append(&transactional(6, 0, 2), 1).unwrap(); // 5..7
        assert_eq!(p.last_stable_offset(), 0);
        assert!(p.has_open_transaction(5) && p.has_open_transaction(6));
        let commit = p.write_marker(5, 0, Outcome::Commit, 0, 2).unwrap();
        assert_eq!(commit.base_offset, 7);
        assert_eq!(p.last_stable_offset(), 5);
        p.write_marker(6, 0, Outcome::Abort, 0, 2).unwrap(); // 8
        assert_eq!(p.last_stable_offset(), 9);
        let aborted = p.aborted_between(0, 9);
        assert_eq!(
            aborted
                .iter()
                .map(|t| (t.producer_id, t.first_offset, t.last_offset))
                .collect::<Vec<_>>(),
            [(6, 5, 8)]
        );
        // Markers take no sequence numbers: the producer's next batch follows its last one.
        p.append(&transactional(5, 3, 1), 1).unwrap(); // 9, opens a new transaction
        assert_eq!(p.last_stable_offset(), 9);
        // A marker of an older epoch than the producer's is fenced.
        p.write_marker(6, 1, Outcome::Abort, 0, 2).unwrap(); // 10: epoch 1 now
        assert!(matches!(
            p.write_marker(6, 0, Outcome::Abort, 0, 2),
            Err(Error::Sequence(_))
        ));
        p.flush().unwrap();
        // No close: as after kill -9.
    }
    let streams = open(dir.path(), "/", defaults(FsyncMode::Never));
    let p = streams.get("t").unwrap().partition(0).unwrap();
    assert_eq!(p.high_watermark(), 11);
    assert_eq!(
        p.last_stable_offset(),
        9,
        "the open transaction is open again"
    );
    assert_eq!(p.aborted_between(0, 11).len(), 1);
    assert!(p.append(&transactional(5, 3, 1), 1).unwrap().duplicate);
    p.write_marker(5, 0, Outcome::Abort, 0, 3).unwrap();
    assert_eq!(p.last_stable_offset(), 12);
    assert_eq!(p.aborted_between(9, 12).len(), 1);
}
