//! Damage, failed writes and syncs, a full file system.

use std::fs;
use std::sync::atomic::Ordering;

use super::{fill, open, payloads, small};
use crate::index::IndexKind;
use crate::{Damage, Entry, Log, LogError};

#[test]
fn corruption_in_a_sealed_segment_is_an_error_naming_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 40);
    let second = log.segments()[1].base_offset;
    log.close().unwrap();
    let path = dir.path().join(format!("{second:020}.log"));
    let mut bytes = fs::read(&path).unwrap();
    // Second entry's payload: header 16, first entry 28 + len, then 28 more.
    let first_len = 28 + format!("entry-{second}").len();
    bytes[16 + first_len + 30] ^= 1;
    fs::write(&path, &bytes).unwrap();

    // With a valid index the segment is trusted at open; the read verifies it.
    let (log, _) = Log::open(dir.path(), small()).unwrap();
    let err = log.read(second, usize::MAX).unwrap_err();
    let LogError::Corrupt {
        path: at,
        position,
        damage,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((at, *position), (&path, (16 + first_len) as u64));
    assert!(matches!(damage, Damage::ChecksumMismatch { .. }));
    assert!(
        err.to_string()
            .contains(&format!("{second:020}.log at byte {position}")),
        "{err}"
    );
    drop(log);
    // Without its index, open scans it and refuses.
    fs::remove_file(IndexKind::Offset.path(dir.path(), second)).unwrap();
    let err = Log::open(dir.path(), small()).unwrap_err();
    assert!(matches!(err, LogError::Corrupt { position: p, .. } if p == *position));
}

#[test]
fn failed_fsync_poisons_appends_and_syncs_but_not_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 3);
    log.flush().unwrap();
    fill(&log, 1);
    log.sync.fail_syncs.store(true, Ordering::Relaxed);
    let err = log.sync_to(4).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::Poisoned {
                during: "fsync",
                ..
            }
        ),
        "{err}"
    );
    log.sync.fail_syncs.store(false, Ordering::Relaxed);
    assert_eq!(log.durable_offset(), 3);
    for err in [
        log.append(&[Entry {
            timestamp: 0,
            span: 1,
            parts: &[],
        }])
        .unwrap_err(),
        log.sync_to(4).unwrap_err(),
        log.flush().unwrap_err(),
        log.roll().unwrap_err(),
        log.appender().err().unwrap(),
    ] {
        assert!(
            err.to_string().contains("poisoned: fsync failed earlier"),
            "{err}"
        );
    }
    assert_eq!(payloads(&log, 3), ["entry-3"]);
    let listed = || {
        crate::failed_logs()
            .into_iter()
            .filter(|failed| failed.dir == dir.path())
            .collect::<Vec<_>>()
    };
    let failed = listed();
    assert_eq!(failed.len(), 1, "the poisoned log is listed once");
    assert_eq!(failed[0].during, "fsync");
    assert!(failed[0].cause.contains("injected"), "{}", failed[0].cause);
    assert!(log.close().is_err());
    assert!(listed().is_empty(), "a closed log is no longer listed");
}

#[test]
fn failed_write_poisons_and_reopen_drops_the_partial_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 3);
    let end = log.segments().last().unwrap().size_bytes;
    *log.fail_writes.lock().unwrap() = Some(std::io::ErrorKind::Other);
    let err = log
        .append(&[Entry {
            timestamp: 0,
            span: 1,
            parts: &[b"lost entry"],
        }])
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::Poisoned {
                during: "write",
                ..
            }
        ),
        "{err}"
    );
    *log.fail_writes.lock().unwrap() = None;
    assert!(matches!(log.append(&[]), Err(LogError::Poisoned { .. })));
    assert_eq!(log.next_offset(), 3);
    assert_eq!(log.read(0, usize::MAX).unwrap().len(), 3);
    drop(log);
    let (log, recovery) = Log::open(dir.path(), small()).unwrap();
    let truncated = recovery.truncated.unwrap();
    // Half the entry landed, followed by the zeros written ahead of it: all of it goes.
    assert_eq!(truncated.position, end);
    assert!(truncated.bytes_dropped >= (28 + 10) / 2, "{truncated:?}");
    let path = dir.path().join(format!("{:020}.log", 0));
    assert_eq!(fs::metadata(path).unwrap().len(), end);
    assert_eq!(log.next_offset(), 3);
    fill(&log, 1);
    assert_eq!(payloads(&log, 2), ["entry-2", "entry-3"]);
}

#[test]
fn a_full_file_system_undoes_the_append_and_leaves_the_log_usable() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), small());
    fill(&log, 3);
    let end = log.segments().last().unwrap().size_bytes;
    *log.fail_writes.lock().unwrap() = Some(std::io::ErrorKind::StorageFull);
    for _ in 0..3 {
        let err = log
            .append(&[Entry {
                timestamp: 0,
                span: 1,
                parts: &[b"refused entry"],
            }])
            .unwrap_err();
        assert!(matches!(err, LogError::StorageFull { .. }), "{err}");
    }
    assert_eq!(log.next_offset(), 3);
    assert_eq!(payloads(&log, 0), ["entry-0", "entry-1", "entry-2"]);
    let path = dir.path().join(format!("{:020}.log", 0));
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        end,
        "the half write is cut"
    );
    // Space is back: the next append lands where the refused one would have.
    *log.fail_writes.lock().unwrap() = None;
    fill(&log, 8);
    log.flush().unwrap();
    assert_eq!(log.next_offset(), 11);
    let expected: Vec<String> = (0..11).map(|i| format!("entry-{i}")).collect();
    assert_eq!(payloads(&log, 0), expected);
    drop(log);
    let (log, recovery) = Log::open(dir.path(), small()).unwrap();
    assert!(recovery.truncated.is_none(), "{recovery:?}");
    assert_eq!(payloads(&log, 0), expected);
    // The index built around the refused writes finds every entry.
    for (offset, entry) in (0..).zip(&expected) {
        assert_eq!(payloads(&log, offset).first(), Some(entry));
    }
}
