//! Crash tests: cut or damage the last segment at every byte of its last entries, reopen, and
//! check exactly the whole entries before the damage remain and appends continue after them.
#![allow(
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    reason = "test helpers: data generators wrap on purpose, a failed unwrap is a failed test"
)]

use std::fs;
use std::path::{Path, PathBuf};

use ferrymq_log::{Damage, Entry, FsyncPolicy, Log, LogConfig, LogError, Recovery};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 64,
        max_entry_bytes: 500,
        fsync: FsyncPolicy::Never,
        ..LogConfig::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Written {
    offset: u64,
    span: u32,
    timestamp: i64,
    payload: Vec<u8>,
}

/// A closed log of several segments; returns what was written and the last segment's base.
fn build(dir: &Path) -> (Vec<Written>, u64) {
    let (log, _) = Log::open(dir, config()).unwrap();
    let mut written = Vec::new();
    for i in 0..26u64 {
        if i == 22 {
            log.roll().unwrap(); // the last segment holds the last four entries
        }
        let payload: Vec<u8> = (0..10 + (i * 37) % 60).map(|b| (b * 7 + i) as u8).collect();
        let span = 1 + (i % 3) as u32;
        let timestamp = 1000 + i as i64;
        let appended = log
            .append(&[Entry {
                timestamp,
                span,
                parts: &[&payload[..3], &payload[3..]],
            }])
            .unwrap();
        written.push(Written {
            offset: appended.base_offset,
            span,
            timestamp,
            payload,
        });
    }
    let last = log.segments().last().unwrap().base_offset;
    log.close().unwrap();
    (written, last)
}

fn copy_dir(from: &Path, to: &Path) {
    for item in fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        fs::copy(item.path(), to.join(item.file_name())).unwrap();
    }
}

fn read_all(log: &Log) -> Vec<Written> {
    let entries = log.read(log.start_offset(), usize::MAX).unwrap();
    entries
        .into_iter()
        .map(|e| Written {
            offset: e.offset,
            span: e.span,
            timestamp: e.timestamp,
            payload: e.payload.to_vec(),
        })
        .collect()
}

/// Opens the damaged copy, checks its contents are `kept`, appends, reopens and checks again.
fn reopen_and_continue(dir: &Path, kept: &[Written]) -> Recovery {
    let (log, recovery) = Log::open(dir, config()).unwrap();
    assert_eq!(read_all(&log), kept);
    let next = kept.last().map_or(0, |w| w.offset + u64::from(w.span));
    assert_eq!(log.next_offset(), next);
    let appended = log.append(&[Entry {
        timestamp: 7,
        span: 2,
        parts: &[b"after the crash"],
    }]);
    assert_eq!(appended.unwrap().base_offset, next);
    log.close().unwrap();
    let (log, again) = Log::open(dir, config()).unwrap();
    assert_eq!(again.truncated, None, "second open finds a clean log");
    let all = read_all(&log);
    assert_eq!(all.len(), kept.len() + 1);
    assert_eq!(all.last().unwrap().payload, b"after the crash");
    recovery
}

struct Fixture {
    _root: tempfile::TempDir,
    pristine: PathBuf,
    written: Vec<Written>,
    last_path: PathBuf,
    /// Start positions of the last segment's entries, and its length.
    starts: Vec<u64>,
    len: u64,
    /// Index in `written` of the last segment's first entry.
    first_in_last: usize,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let pristine = root.path().join("pristine");
    let (written, last) = build(&pristine);
    let first_in_last = written.iter().position(|w| w.offset >= last).unwrap();
    let mut starts = Vec::new();
    let mut pos = 16u64;
    for w in &written[first_in_last..] {
        starts.push(pos);
        pos += 28 + w.payload.len() as u64;
    }
    assert!(
        starts.len() >= 3,
        "the last segment must hold a few entries"
    );
    let last_path = pristine.join(format!("{last:020}.log"));
    assert_eq!(fs::metadata(&last_path).unwrap().len(), pos);
    Fixture {
        _root: root,
        pristine,
        written,
        last_path,
        starts,
        len: pos,
        first_in_last,
    }
}

impl Fixture {
    /// A fresh copy of the log whose last segment is replaced by `bytes`.
    fn damaged_copy(&self, bytes: &[u8]) -> tempfile::TempDir {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&self.pristine, copy.path());
        fs::write(copy.path().join(self.last_path.file_name().unwrap()), bytes).unwrap();
        copy
    }

    /// Entries that end at or before `cut` in the last segment, plus all earlier ones.
    fn whole_before(&self, cut: u64) -> (usize, u64) {
        let ends = self.starts.iter().skip(1).copied().chain([self.len]);
        let whole = ends.take_while(|&end| end <= cut).count();
        let boundary = if whole == 0 {
            16
        } else {
            self.starts.get(whole).copied().unwrap_or(self.len)
        };
        (self.first_in_last + whole, boundary)
    }
}

#[test]
fn truncating_at_every_byte_keeps_exactly_the_whole_entries() {
    let f = fixture();
    let bytes = fs::read(&f.last_path).unwrap();
    let damage_from = f.starts[f.starts.len() - 3];
    for cut in (0..16).chain(damage_from..=f.len) {
        let copy = f.damaged_copy(&bytes[..cut as usize]);
        let (kept, boundary) = if cut < 16 {
            (f.first_in_last, 0)
        } else {
            f.whole_before(cut)
        };
        let recovery = reopen_and_continue(copy.path(), &f.written[..kept]);
        let truncated = recovery.truncated.map(|t| (t.position, t.bytes_dropped));
        let expected = (cut != boundary || cut < 16).then_some((boundary, cut - boundary));
        assert_eq!(truncated, expected, "cut at {cut}");
    }
}

#[test]
fn a_write_torn_over_the_zeros_written_ahead_keeps_exactly_the_whole_entries() {
    // The writer extends the file with zeros up to a 64 KiB boundary before writing entries
    // into it, so a crash mid-write leaves the entry's first bytes followed by zeros.
    const PADDED: usize = 64 * 1024;
    let f = fixture();
    let bytes = fs::read(&f.last_path).unwrap();
    let damage_from = f.starts[f.starts.len() - 3];
    for cut in damage_from..=f.len {
        let mut torn = bytes[..cut as usize].to_vec();
        torn.resize(PADDED, 0);
        let copy = f.damaged_copy(&torn);
        let (kept, boundary) = f.whole_before(cut);
        let recovery = reopen_and_continue(copy.path(), &f.written[..kept]);
        let truncated = recovery.truncated.map(|t| (t.position, t.bytes_dropped));
        // Nothing to report when what landed of the torn entry is zeros, like the zeros
        // after it: recovery cannot tell it from an entry never written.
        let landed = &bytes[boundary as usize..cut as usize];
        let expected = landed
            .iter()
            .any(|&b| b != 0)
            .then_some((boundary, PADDED as u64 - boundary));
        assert_eq!(truncated, expected, "cut at {cut}");
    }
}

#[test]
fn corrupting_any_byte_of_the_last_entries_drops_from_that_entry_on() {
    let f = fixture();
    let bytes = fs::read(&f.last_path).unwrap();
    let tail = f.starts.len() - 3;
    for at in f.starts[tail]..f.len {
        let mut damaged = bytes.clone();
        damaged[at as usize] ^= 0x5a;
        let copy = f.damaged_copy(&damaged);
        let hit = f.starts.iter().rposition(|&s| s <= at).unwrap();
        let recovery = reopen_and_continue(copy.path(), &f.written[..f.first_in_last + hit]);
        let t = recovery.truncated.expect("damage is reported");
        assert_eq!(
            (t.position, t.bytes_dropped),
            (f.starts[hit], f.len - f.starts[hit]),
            "byte {at}"
        );
        assert!(matches!(
            t.damage,
            Damage::ChecksumMismatch { .. } | Damage::TornEntry { .. } | Damage::TornHeader { .. }
        ));
    }
}

#[test]
fn a_zero_filled_last_segment_is_a_torn_creation_but_a_garbled_header_is_an_error() {
    let f = fixture();
    let copy = f.damaged_copy(&[0u8; 200]);
    let recovery = reopen_and_continue(copy.path(), &f.written[..f.first_in_last]);
    assert_eq!(recovery.truncated.map(|t| t.bytes_dropped), Some(200));

    let mut garbled = fs::read(&f.last_path).unwrap();
    garbled[2] ^= 1;
    let copy = f.damaged_copy(&garbled);
    let err = Log::open(copy.path(), config()).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::Corrupt {
                position: 0,
                damage: Damage::BadMagic,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_torn_sealed_segment_without_index_is_an_error_naming_file_and_position() {
    let f = fixture();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&f.pristine, copy.path());
    let first = copy.path().join(format!("{:020}.log", 0));
    let len = fs::metadata(&first).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    fs::remove_file(copy.path().join(format!("{:020}.timeindex", 0))).unwrap();
    let err = Log::open(copy.path(), config()).unwrap_err();
    let LogError::Corrupt {
        path,
        position,
        damage,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(path, &first);
    assert!(*position < len - 5 && *position > 16);
    assert!(matches!(damage, Damage::TornEntry { .. }), "{damage}");
}
