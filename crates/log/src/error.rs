//! The crate's error type and the description of on-disk damage.

use std::io;
use std::path::PathBuf;

/// Everything a log operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An operating-system call on one of the log's files failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Bytes on disk that cannot be a valid log: not a torn tail of the last segment, which
    /// recovery truncates, but damage the log refuses to guess about.
    #[error("corrupt log data in {path} at byte {position}: {damage}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the first damaged header or entry.
        position: u64,
        /// What is wrong there.
        damage: Damage,
    },
    /// A failed write or fsync earlier made the log refuse further appends and syncs: after a
    /// failed fsync the kernel may have dropped dirty pages, so nothing written since the last
    /// good sync can be promised durable. Reopening the log recovers what is on disk.
    #[error("log {dir} is poisoned: {during} failed earlier ({cause}); reopen it to recover")]
    Poisoned {
        /// The log directory.
        dir: PathBuf,
        /// The operation that failed first (`"write"`, `"fsync"`, ...).
        during: &'static str,
        /// The error it failed with.
        cause: String,
    },
    /// The file system is full: the append was undone (nothing of it is kept or visible)
    /// and the log stays usable, so appends succeed again once space is freed.
    #[error("no space left for {path}: the append was not stored")]
    StorageFull {
        /// The segment file that could not grow.
        path: PathBuf,
    },
    /// An entry's payload is larger than `LogConfig::max_entry_bytes`.
    #[error("entry payload of {size} bytes exceeds the limit of {max} bytes")]
    EntryTooLarge {
        /// The payload size (sum of its parts).
        size: u64,
        /// The configured limit.
        max: u32,
    },
    /// An entry claims to occupy no offsets; every entry spans at least one.
    #[error("entry span must be at least 1, got {span}")]
    InvalidSpan {
        /// The span given.
        span: u32,
    },
    /// Appending would run the offset counter past `u64::MAX`.
    #[error("offset space exhausted: next offset {next} cannot advance by {span}")]
    OffsetOverflow {
        /// The next offset before the entry.
        next: u64,
        /// The entry's span.
        span: u32,
    },
    /// An offset below the log's start or past its end.
    #[error("offset {offset} is out of range: the log holds [{start}, {next})")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The log start offset.
        start: u64,
        /// The next offset to be assigned.
        next: u64,
    },
    /// `delete_segment` named a base offset that no segment has.
    #[error("no segment has base offset {base}")]
    NoSuchSegment {
        /// The base offset given.
        base: u64,
    },
    /// `delete_segment` named the active segment, which is never deleted.
    #[error("segment {base} is the active segment and cannot be deleted")]
    ActiveSegment {
        /// Its base offset.
        base: u64,
    },
    /// A configuration value the log cannot work with.
    #[error("invalid log config: {reason}")]
    InvalidConfig {
        /// Which rule it breaks.
        reason: &'static str,
    },
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, position: u64, damage: Damage) -> Self {
        LogError::Corrupt {
            path: path.into(),
            position,
            damage,
        }
    }
}

/// What is wrong with a header or entry on disk. Carried by [`LogError::Corrupt`] and by a
/// recovery's [`Truncation`](crate::Truncation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// The file ends inside its header.
    #[error("file is {len} bytes, shorter than its {need}-byte header")]
    ShortHeader {
        /// Header length.
        need: u64,
        /// File length.
        len: u64,
    },
    /// The header does not start with the expected magic bytes.
    #[error("bad magic number: not a ferrymq log file")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported format version {found}")]
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// The header's base offset disagrees with the file name.
    #[error("header says base offset {found}, the file name says {expected}")]
    BaseMismatch {
        /// From the file name.
        expected: u64,
        /// From the header.
        found: u64,
    },
    /// The file ends inside an entry header.
    #[error("torn entry header: {need} bytes needed, {have} remain")]
    TornHeader {
        /// Entry header length.
        need: u64,
        /// Bytes left in the file.
        have: u64,
    },
    /// The file ends inside an entry's payload.
    #[error("torn entry: {need} bytes needed, {have} remain")]
    TornEntry {
        /// Entry length (header and payload).
        need: u64,
        /// Bytes left in the file.
        have: u64,
    },
    /// The stored checksum does not match the header fields and payload.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// From the entry header.
        stored: u32,
        /// Over the bytes as read.
        computed: u32,
    },
    /// An entry's offset does not follow the previous entry's.
    #[error("entry has offset {found}, expected {expected}")]
    OffsetMismatch {
        /// The previous entry's next offset.
        expected: u64,
        /// The offset in the header.
        found: u64,
    },
    /// An entry with span 0.
    #[error("entry has span 0")]
    ZeroSpan,
    /// A segment's entries run past the next segment's base offset.
    #[error("entries run to offset {end}, past the next segment's base {next_base}")]
    Overlap {
        /// One past this segment's last offset.
        end: u64,
        /// The next segment's base offset.
        next_base: u64,
    },
}
