//! One writer, several readers and a retention thread at once; and group commit.
#![allow(
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    reason = "test helpers: data generators wrap on purpose, a failed unwrap is a failed test"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ferrymq_log::{Entry, FsyncPolicy, Log, LogConfig, LogError};

/// The payload stored at `offset`: its length and bytes are a function of the offset, so a
/// reader can check every entry it sees.
fn payload(offset: u64) -> Vec<u8> {
    let len = (offset * 13 % 300) as usize;
    (0..len).map(|i| (offset as usize + i * 31) as u8).collect()
}

fn span(offset: u64) -> u32 {
    1 + (offset % 4) as u32
}

#[test]
fn readers_only_ever_see_whole_in_order_entries() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 512,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(dir.path(), config).unwrap();
    let target = 30_000u64;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut next = 0u64;
            while next < target {
                let offsets: Vec<u64> = (0..1 + next % 5)
                    .scan(next, |o, _| {
                        let here = *o;
                        *o += u64::from(span(here));
                        Some(here)
                    })
                    .collect();
                let payloads: Vec<Vec<u8>> = offsets.iter().map(|&o| payload(o)).collect();
                let parts: Vec<[&[u8]; 1]> = payloads.iter().map(|p| [&p[..]]).collect();
                let entries: Vec<Entry<'_>> = offsets
                    .iter()
                    .zip(&parts)
                    .map(|(&o, parts)| Entry {
                        timestamp: o as i64,
                        span: span(o),
                        parts,
                    })
                    .collect();
                next = log.append(&entries).unwrap().next_offset;
            }
            done.store(true, Ordering::Release);
        });
        // Retention chases the readers from behind, deleting whole segments.
        s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                let segments = log.segments();
                if segments.len() > 6 {
                    log.advance_start(segments[2].base_offset + 1).unwrap();
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        for reader in 0..4usize {
            let (log, done) = (&log, &done);
            s.spawn(move || {
                let mut expected = 0u64;
                let mut seen = 0u64;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let entries = match log.read(expected, 700 + reader * 1500) {
                        Ok(entries) => entries,
                        Err(LogError::OffsetOutOfRange { start, .. }) if start > expected => {
                            // Retention overtook this reader: resume at the start, which may
                            // fall inside an entry.
                            expected = start;
                            continue;
                        }
                        Err(e) => panic!("reader {reader}: {e}"),
                    };
                    if entries.is_empty() {
                        std::thread::yield_now();
                    }
                    let visible = log.next_offset();
                    for (i, e) in entries.iter().enumerate() {
                        if i == 0 {
                            assert!(e.offset <= expected && expected < e.next_offset());
                        } else {
                            assert_eq!(e.offset, expected, "reader {reader}: gap or reorder");
                        }
                        assert_eq!(e.span, span(e.offset));
                        assert_eq!(e.timestamp, e.offset as i64);
                        assert_eq!(
                            e.payload,
                            payload(e.offset),
                            "reader {reader} at {}",
                            e.offset
                        );
                        assert!(e.next_offset() <= visible, "read past the committed end");
                        expected = e.next_offset();
                        seen += 1;
                    }
                    if finished && expected >= log.next_offset() {
                        break;
                    }
                }
                assert!(seen > 0);
                assert_eq!(expected, log.next_offset());
            });
        }
    });
    assert!(log.next_offset() >= target);
    assert!(log.start_offset() > 0, "retention ran");
}

#[test]
fn group_commit_needs_fewer_fsyncs_than_appends() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        fsync: FsyncPolicy::Always,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(dir.path(), config).unwrap();
    let (threads, rounds) = (16u64, 25u64);
    std::thread::scope(|s| {
        for t in 0..threads {
            let log = &log;
            s.spawn(move || {
                let body = vec![t as u8; 1024];
                for _ in 0..rounds {
                    let parts: &[&[u8]] = &[&body];
                    let batch = [Entry {
                        timestamp: 0,
                        span: 1,
                        parts,
                    }; 4];
                    let appended = log.append(&batch).unwrap();
                    log.sync_to(appended.next_offset).unwrap();
                    assert!(log.durable_offset() >= appended.next_offset);
                }
            });
        }
    });
    let appends = threads * rounds;
    assert_eq!(log.durable_offset(), appends * 4);
    assert!(
        log.fsync_count() < appends,
        "{} fsyncs for {appends} appends",
        log.fsync_count()
    );
}
