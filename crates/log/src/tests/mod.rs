//! Unit tests of the `Log` handle, including failure injection (test-only hooks).

use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::index::IndexKind;
use crate::{Entry, FsyncPolicy, IndexProblem, Log, LogConfig, LogError};

mod faults;
mod retention;

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 64,
        max_entry_bytes: 1000,
        retention_age: None,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config).unwrap().0
}

/// Appends entries with payload `"entry-{i}"`, timestamp `i * 10`, span 1.
fn fill(log: &Log, count: u64) {
    for _ in 0..count {
        let i = log.next_offset();
        let payload = format!("entry-{i}");
        log.append(&[Entry {
            timestamp: i as i64 * 10,
            span: 1,
            parts: &[payload.as_bytes()],
        }])
        .unwrap();
    }
}

fn payloads(log: &Log, from: u64) -> Vec<String> {
    let entries = log.read(from, usize::MAX).unwrap();
    entries
        .iter()
        .map(|e| String::from_utf8(e.payload.to_vec()).unwrap())
        .collect()
}

#[test]
fn spans_parts_and_byte_limits() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    let a = log
        .append(&[
            Entry {
                timestamp: 5,
                span: 1,
                parts: &[b"one"],
            },
            Entry {
                timestamp: 6,
                span: 10,
                parts: &[b"ten ", b"", b"records"],
            },
            Entry {
                timestamp: 7,
                span: 1,
                parts: &[],
            },
        ])
        .unwrap();
    assert_eq!((a.base_offset, a.next_offset), (0, 12));
    let got = log.read(5, usize::MAX).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].offset, got[0].span, got[0].timestamp), (1, 10, 6));
    assert_eq!(&got[0].payload[..], b"ten records");
    assert_eq!(got[1].payload.len(), 0);
    // At least one entry even over budget; then only what fits.
    assert_eq!(log.read(0, 1).unwrap().len(), 1);
    assert_eq!(
        log.read(0, 3 + 11).unwrap().len(),
        3,
        "empty payload fits a spent budget"
    );
    assert_eq!(log.read(0, 3 + 10).unwrap().len(), 1);
    assert!(log.read(12, 100).unwrap().is_empty());
    let err = log.read(13, 100).unwrap_err();
    assert!(matches!(
        err,
        LogError::OffsetOutOfRange {
            offset: 13,
            start: 0,
            next: 12
        }
    ));
}

#[test]
fn invalid_batches_append_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    let big = vec![0u8; 1001];
    let err = log
        .append(&[
            Entry {
                timestamp: 0,
                span: 1,
                parts: &[b"fine"],
            },
            Entry {
                timestamp: 0,
                span: 1,
                parts: &[&big],
            },
        ])
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::EntryTooLarge {
                size: 1001,
                max: 1000
            }
        ),
        "{err}"
    );
    let err = log
        .append(&[Entry {
            timestamp: 0,
            span: 0,
            parts: &[],
        }])
        .unwrap_err();
    assert!(matches!(err, LogError::InvalidSpan { span: 0 }));
    assert_eq!(log.next_offset(), 0);
    assert_eq!(log.size_bytes(), 16);
}

#[test]
fn rolls_by_size_and_reads_across_segments_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 40);
    let segments = log.segments();
    assert!(segments.len() >= 4, "{segments:?}");
    assert!(segments.iter().all(|s| s.size_bytes <= 400));
    assert!(
        segments
            .windows(2)
            .all(|w| w[0].next_offset == w[1].base_offset)
    );
    assert!(segments[..segments.len() - 1].iter().all(|s| !s.active));
    assert!(
        dir.path()
            .join(format!("{:020}.index", segments[1].base_offset))
            .exists()
    );
    let expected: Vec<String> = (3..40).map(|i| format!("entry-{i}")).collect();
    assert_eq!(payloads(&log, 3), expected);
    log.close().unwrap();

    let (log, recovery) = Log::open(dir.path(), small()).unwrap();
    assert_eq!(recovery.segments, segments.len());
    assert_eq!(recovery.truncated, None);
    assert!(recovery.indexes_rebuilt.is_empty());
    assert_eq!(log.segments(), segments);
    assert_eq!(payloads(&log, 3), expected);
    fill(&log, 1);
    assert_eq!(payloads(&log, 40), ["entry-40"]);
}

#[test]
fn oversized_entry_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 2);
    let big = vec![7u8; 900];
    log.append(&[Entry {
        timestamp: 0,
        span: 1,
        parts: &[&big],
    }])
    .unwrap();
    fill(&log, 1);
    let sizes: Vec<u64> = log.segments().iter().map(|s| s.size_bytes).collect();
    assert_eq!(sizes[1], 16 + 28 + 900, "{sizes:?}");
    assert_eq!(log.read(2, 1).unwrap()[0].payload.len(), 900);
}

#[test]
fn segment_age_rolls_and_set_config_applies() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..small()
        },
    );
    fill(&log, 3);
    assert_eq!(log.segments().len(), 1);
    log.set_config(LogConfig {
        segment_age: Some(Duration::from_millis(20)),
        ..log.config()
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    fill(&log, 1);
    assert_eq!(log.segments().len(), 2);
    assert_eq!(log.segments()[1].base_offset, 3);
    let bad = LogConfig {
        index_interval_bytes: 0,
        ..small()
    };
    assert!(log.set_config(bad).is_err());
}

#[test]
fn finds_first_entry_at_or_after_a_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    let stamps = [50i64, 10, 70, 20, 70, 90, 30, 100, 5, 110];
    for (round, _) in (0..4).enumerate() {
        for &ts in &stamps {
            let ts = ts + round as i64 * 1000;
            log.append(&[Entry {
                timestamp: ts,
                span: 2,
                parts: &[b"0123456789"],
            }])
            .unwrap();
        }
    }
    assert!(log.segments().len() > 2);
    for probe in [
        -1, 5, 6, 50, 51, 70, 71, 95, 110, 111, 1010, 2075, 3110, 3111,
    ] {
        let expected =
            (0..40u64).find(|&i| stamps[(i % 10) as usize] + (i / 10) as i64 * 1000 >= probe);
        let found = log.find_by_timestamp(probe).unwrap().map(|e| e.offset);
        assert_eq!(found, expected.map(|i| i * 2), "probe {probe}");
    }
    log.advance_start(21).unwrap();
    // Entry 10 (offsets 20..22) contains the start, so it still counts.
    assert_eq!(log.find_by_timestamp(0).unwrap().unwrap().offset, 20);
}

#[test]
fn missing_stale_and_corrupt_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 40);
    let segments = log.segments();
    let bases: Vec<u64> = segments.iter().map(|s| s.base_offset).collect();
    log.close().unwrap();
    fs::remove_file(IndexKind::Offset.path(dir.path(), bases[0])).unwrap();
    let stale = IndexKind::Time.path(dir.path(), bases[1]);
    let other = fs::read(IndexKind::Time.path(dir.path(), bases[2])).unwrap();
    fs::write(&stale, other).unwrap();
    let corrupt = IndexKind::Offset.path(dir.path(), bases[2]);
    let mut bytes = fs::read(&corrupt).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    fs::write(&corrupt, bytes).unwrap();
    fs::write(dir.path().join("00000000000000099999.index"), b"orphan").unwrap();

    let (log, recovery) = Log::open(dir.path(), small()).unwrap();
    let rebuilt: Vec<_> = recovery
        .indexes_rebuilt
        .iter()
        .map(|r| (r.base_offset, r.problem))
        .collect();
    assert_eq!(
        rebuilt,
        [
            (bases[0], IndexProblem::Missing),
            (bases[1], IndexProblem::Stale),
            (bases[2], IndexProblem::Corrupt)
        ]
    );
    assert!(!dir.path().join("00000000000000099999.index").exists());
    assert_eq!(log.segments(), segments);
    let expected: Vec<String> = (0..40).map(|i| format!("entry-{i}")).collect();
    assert_eq!(payloads(&log, 0), expected);
    assert!(
        recovery
            .to_string()
            .contains("rebuilt missing index of segment 0"),
        "{recovery}"
    );
    drop(log);
    let (_, again) = Log::open(dir.path(), small()).unwrap();
    assert!(again.indexes_rebuilt.is_empty());
}

#[test]
fn zeros_written_ahead_are_cut_at_roll_close_and_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = |base: u64| dir.path().join(format!("{base:020}.log"));
    let len = |base: u64| fs::metadata(path(base)).unwrap().len();
    let log = open(dir.path(), small());
    fill(&log, 3);
    let used = log.segments()[0].size_bytes;
    assert_eq!(len(0), 64 * 1024, "zeros up to the next 64 KiB boundary");
    assert_eq!(
        log.read(0, usize::MAX).unwrap().len(),
        3,
        "readers see entries only"
    );
    log.roll().unwrap();
    assert_eq!(len(0), used, "sealed: cut back to its entries");
    fill(&log, 2);
    let used = log.segments().last().unwrap().size_bytes;
    log.close().unwrap();
    assert_eq!(len(3), used, "closed: cut back to its entries");
    // A crash leaves the zeros; the next open cuts them without reporting damage.
    let log = open(dir.path(), small());
    fill(&log, 1);
    let used = log.segments().last().unwrap().size_bytes;
    std::mem::forget(log);
    assert!(len(3) > used);
    let (log, recovery) = Log::open(dir.path(), small()).unwrap();
    assert_eq!(recovery.truncated, None, "{recovery}");
    assert_eq!(len(3), used);
    assert_eq!(payloads(&log, 0).len(), 6);
}

#[test]
fn interval_policy_flushes_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let every = Duration::from_secs(60);
    let log = open(
        dir.path(),
        LogConfig {
            fsync: FsyncPolicy::Interval(every),
            ..small()
        },
    );
    fill(&log, 2);
    let now = Instant::now();
    log.flush_if_due(now).unwrap();
    assert_eq!(
        (log.durable_offset(), log.fsync_count()),
        (0, 0),
        "not due yet"
    );
    log.flush_if_due(now + every).unwrap();
    assert_eq!((log.durable_offset(), log.fsync_count()), (2, 1));
    log.flush_if_due(now + 3 * every).unwrap();
    assert_eq!(log.fsync_count(), 1, "nothing new to sync");
    fill(&log, 1);
    log.flush_if_due(now + 3 * every + Duration::from_secs(1))
        .unwrap();
    assert_eq!(
        log.durable_offset(),
        2,
        "interval restarted when found clean"
    );
    log.flush_if_due(now + 5 * every).unwrap();
    assert_eq!(log.durable_offset(), 3);
}

#[test]
fn appender_reports_the_next_offset_and_excludes_others() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 2);
    let mut appender = log.appender().unwrap();
    let offset = appender.next_offset();
    let header = offset.to_le_bytes();
    let got = appender.append(&[Entry {
        timestamp: 0,
        span: 4,
        parts: &[&header, b"body"],
    }]);
    assert_eq!(got.unwrap().base_offset, offset);
    assert_eq!(appender.next_offset(), 6);
    drop(appender);
    let entry = &log.read(2, 100).unwrap()[0];
    assert_eq!(&entry.payload[..8], &2u64.to_le_bytes());
}

#[test]
fn payloads_outlive_deletion_of_their_segment_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("partition-0");
    let log = open(&sub, small());
    fill(&log, 40);
    let held = log.read(0, usize::MAX).unwrap();
    log.apply_retention(i64::MAX)
        .unwrap_or_else(|e| panic!("{e}"));
    log.set_config(LogConfig {
        retention_bytes: Some(0),
        ..small()
    })
    .unwrap();
    log.apply_retention(0).unwrap();
    log.delete().unwrap();
    assert!(!sub.exists());
    assert_eq!(&held[39].payload[..], b"entry-39");
    assert_eq!(&held[0].payload[..], b"entry-0");
}

#[test]
fn concurrent_syncs_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..small()
        },
    );
    log.sync.slow_syncs_ms.store(5, Ordering::Relaxed);
    let (threads, rounds) = (8u64, 15u64);
    std::thread::scope(|s| {
        for t in 0..threads {
            let log = &log;
            s.spawn(move || {
                for r in 0..rounds {
                    let payload = format!("t{t}r{r}");
                    let parts: &[&[u8]] = &[payload.as_bytes()];
                    let appended = log
                        .append(&[Entry {
                            timestamp: 0,
                            span: 1,
                            parts,
                        }])
                        .unwrap();
                    log.sync_to(appended.next_offset).unwrap();
                    assert!(log.durable_offset() >= appended.next_offset);
                }
            });
        }
    });
    let syncs = threads * rounds;
    let fsyncs = log.fsync_count();
    assert!(
        fsyncs * 2 <= syncs,
        "{fsyncs} fsyncs for {syncs} sync_to calls"
    );
    assert_eq!(log.read(0, usize::MAX).unwrap().len() as u64, syncs);
}

#[test]
fn appends_and_reads_continue_while_a_sync_is_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..small()
        },
    );
    fill(&log, 1);
    log.sync.slow_syncs_ms.store(400, Ordering::Relaxed);
    let syncing = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|s| {
        s.spawn(|| {
            log.sync_to(1).unwrap();
            syncing.store(false, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(50));
        fill(&log, 20);
        assert_eq!(payloads(&log, 20), ["entry-20"]);
        assert!(
            syncing.load(Ordering::SeqCst),
            "appends waited for the sync"
        );
    });
    assert!(log.durable_offset() >= 1);
}

#[test]
fn group_commit_never_stalls_when_rolls_make_waiters_durable() {
    // Rolls sync sealed segments outside the sync rounds, so a waiter woken to lead the next
    // round may find nothing left to sync; the turn must pass on or the others sleep forever.
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(open(dir.path(), small()));
    let (done, finished) = std::sync::mpsc::channel();
    for t in 0..8u8 {
        let (log, done) = (std::sync::Arc::clone(&log), done.clone());
        std::thread::spawn(move || {
            for _ in 0..150 {
                let parts: &[&[u8]] = &[&[t; 40]];
                let appended = log
                    .append(&[Entry {
                        timestamp: 0,
                        span: 1,
                        parts,
                    }])
                    .unwrap();
                log.sync_to(appended.next_offset).unwrap();
            }
            done.send(()).unwrap();
        });
    }
    for _ in 0..8 {
        finished
            .recv_timeout(Duration::from_secs(60))
            .expect("a sync_to caller stalled");
    }
    assert_eq!(log.durable_offset(), 8 * 150);
    assert!(log.segments().len() > 20, "rolls happened");
}

#[test]
fn log_is_shareable_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Log>();
    shareable::<crate::StoredEntry>();
    shareable::<LogError>();
}
