//! Retention, the start offset and segment deletion.

use std::fs;
use std::time::Duration;

use super::{fill, open, payloads, small};
use crate::{Log, LogConfig, LogError};

#[test]
fn retention_by_bytes_keeps_at_least_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 60);
    let before = log.segments();
    let total = log.size_bytes();
    let limit = total / 2;
    log.set_config(LogConfig {
        retention_bytes: Some(limit),
        ..small()
    })
    .unwrap();
    let retained = log.apply_retention(0).unwrap();
    let after = log.segments();
    assert!(retained.segments_deleted > 0);
    assert_eq!(after.len(), before.len() - retained.segments_deleted);
    assert_eq!(retained.bytes_deleted + log.size_bytes(), total);
    assert!(log.size_bytes() >= limit);
    assert!(
        log.size_bytes() - after[0].size_bytes < limit,
        "one more could have gone"
    );
    assert_eq!(log.start_offset(), after[0].base_offset);
    assert_eq!(retained.start_offset, after[0].base_offset);
    assert!(matches!(
        log.read(0, 10),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(!dir.path().join(format!("{:020}.log", 0)).exists());
    log.close().unwrap();
    let (log, _) = Log::open(dir.path(), small()).unwrap();
    assert_eq!(log.start_offset(), after[0].base_offset);
}

#[test]
fn retention_by_age_never_takes_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_age: Some(Duration::from_millis(100)),
        ..small()
    };
    let log = open(dir.path(), config);
    fill(&log, 30); // timestamps 0..290
    let segments = log.segments();
    // At now=250 segments whose newest entry is older than 150 go.
    let retained = log.apply_retention(250).unwrap();
    let expected = segments
        .iter()
        .take_while(|s| s.max_timestamp.unwrap() < 150)
        .count();
    assert_eq!(retained.segments_deleted, expected);
    let retained = log.apply_retention(i64::MAX).unwrap();
    assert_eq!(log.segments().len(), 1, "{retained:?}");
    assert!(log.segments()[0].active);
    assert_eq!(log.start_offset(), log.segments()[0].base_offset);
}

#[test]
fn advance_start_is_persisted_and_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 30);
    let second = log.segments()[1];
    let mid = second.base_offset + 1;
    log.advance_start(mid).unwrap();
    assert_eq!(log.start_offset(), mid);
    assert_eq!(log.segments()[0].base_offset, second.base_offset);
    assert_eq!(log.read(mid, usize::MAX).unwrap()[0].offset, mid);
    assert!(matches!(
        log.read(mid - 1, 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    log.advance_start(2).unwrap(); // backwards: nothing happens
    assert_eq!(log.start_offset(), mid);
    let err = log.advance_start(31).unwrap_err();
    assert!(matches!(err, LogError::OffsetOutOfRange { offset: 31, .. }));
    drop(log);
    let (log, recovery) = Log::open(dir.path(), small()).unwrap();
    assert_eq!((recovery.start_offset, log.start_offset()), (mid, mid));
    // Up to the end: everything sealed goes, the active segment stays, reads are empty.
    log.advance_start(30).unwrap();
    assert_eq!(log.segments().len(), 1);
    assert!(log.read(30, 10).unwrap().is_empty());
}

#[test]
fn delete_segment_leaves_a_gap_reads_skip() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 40);
    let segments = log.segments();
    let (gap, after) = (segments[2], segments[3]);
    log.delete_segment(gap.base_offset).unwrap();
    let got = log.read(gap.base_offset, usize::MAX).unwrap();
    assert_eq!(got[0].offset, after.base_offset);
    let before_gap = log.read(gap.base_offset - 1, usize::MAX).unwrap();
    assert_eq!(before_gap[1].offset, after.base_offset);
    let active = segments.last().unwrap().base_offset;
    assert!(matches!(
        log.delete_segment(active),
        Err(LogError::ActiveSegment { .. })
    ));
    assert!(matches!(
        log.delete_segment(12345),
        Err(LogError::NoSuchSegment { base: 12345 })
    ));
    log.delete_segment(segments[0].base_offset).unwrap();
    assert_eq!(log.start_offset(), segments[1].base_offset);
    drop(log);
    let (log, recovery) = Log::open(dir.path(), small()).unwrap();
    assert_eq!(recovery.segments, segments.len() - 2);
    assert_eq!(
        log.read(gap.base_offset, 1).unwrap()[0].offset,
        after.base_offset
    );
}

#[test]
fn lost_tail_below_the_persisted_start_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 5);
    log.advance_start(5).unwrap();
    log.close().unwrap();
    // As if the entries never reached the disk but the start offset did.
    let path = dir.path().join(format!("{:020}.log", 0));
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(16)
        .unwrap();
    let (log, recovery) = Log::open(dir.path(), small()).unwrap();
    assert_eq!((recovery.start_offset, recovery.next_offset), (5, 5));
    assert_eq!(recovery.segments_deleted, 1);
    fill(&log, 1);
    assert_eq!(payloads(&log, 5), ["entry-5"]);
}
