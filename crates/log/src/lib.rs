//! ferrymq-log: the segmented commit log under every ferrymq stream, partition and journal.
//!
//! A [`Log`] owns one directory. It assigns contiguous offsets to appended entries, stores
//! them in segment files, reads them back as zero-copy [`bytes::Bytes`] views of the
//! memory-mapped files, finds entries by timestamp, syncs them to disk under a
//! [`FsyncPolicy`], and deletes whole segments from the head for retention. Entry payloads are
//! opaque: a Kafka record batch is stored exactly as it arrived (spanning as many offsets as it
//! has records), an AMQP message as its encoded bytes (spanning one).
//!
//! # Layout
//!
//! ```text
//! <dir>/
//!   00000000000000000000.log         segment: header + entries (see `entry`), base offset 0
//!   00000000000000000000.index       sparse offset index (sealed segments only)
//!   00000000000000000000.timeindex   sparse time index (sealed segments only)
//!   00000000000000004096.log         the active (last) segment; its index is in memory
//!   log-start-offset                 persisted start offset (written by advance_start)
//! ```
//!
//! Files are named by their segment's base offset, zero-padded to 20 digits, so a directory
//! listing sorts them. The formats are documented on the modules `entry`, `index` and `meta`.
//!
//! # Example
//!
//! ```
//! use ferrymq_log::{Entry, Log, LogConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let (log, recovery) = Log::open(dir.path(), LogConfig::default())?;
//! assert_eq!(recovery.next_offset, 0);
//! let appended = log.append(&[
//!     Entry { timestamp: 1_700_000_000_000, span: 1, parts: &[b"hello"] },
//!     Entry { timestamp: 1_700_000_000_001, span: 3, parts: &[b"batch ", b"of three"] },
//! ])?;
//! assert_eq!((appended.base_offset, appended.next_offset), (0, 4));
//! log.sync_to(appended.next_offset)?; // durable under any policy once this returns
//!
//! let entries = log.read(2, 1 << 20)?; // the entry containing offset 2, and on
//! assert_eq!(entries[0].offset, 1);
//! assert_eq!(&entries[0].payload[..], b"batch of three");
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! - Appends are vectored file writes (`writev`) at the end of the active segment: a full disk
//!   or an I/O error comes back as an error and poisons the log, where a store through a
//!   writable mapping would kill the process with SIGBUS. Ahead of the entries the file is
//!   extended with zeros in aligned 64 KiB blocks, so the entries' writes, which end
//!   mid-page, land in pages already in the page cache as large folios: 1.5-1.9x faster
//!   appends and fsyncs (see `writer`). The active file is thus up to 64 KiB longer than
//!   its entries; sealing and closing cut the zeros, recovery cuts them silently.
//! - Reads go through a read-only mapping of each segment; payloads are `Bytes` slices of it
//!   (`Bytes::from_owner`), so a fetch hands the stored bytes to the socket without copying.
//!   The active segment is mapped with room to grow; readers never look past its committed
//!   length.
//! - The active segment's sparse indexes live in memory and are written and mapped when it is
//!   sealed; recovery scans the last segment anyway, so nothing is lost by not persisting them
//!   earlier.
//! - Group commit runs the fsync outside the writer lock (see `FsyncPolicy::Always`).
//!
//! # Invariants
//!
//! Concurrency:
//! - One appender at a time: [`Log::append`] and [`Log::appender`] take a short writer lock
//!   held for the write syscalls only (and for a roll). Any number of readers run alongside.
//! - Readers take no lock across I/O: they clone a snapshot of the segment list (a momentary
//!   read lock), then read the mapped files. Each segment's committed length is published
//!   with release ordering after its bytes are written, and readers never look past it, so
//!   they only ever see whole entries; every entry read is checksum-verified.
//! - Committed bytes are never modified. Deleting a segment unlinks its files; mappings, and
//!   payloads read from them, stay valid until dropped.
//! - Syncs run without the writer lock (group commit, see [`FsyncPolicy::Always`]), so
//!   appends continue while a sync is in flight.
//!
//! Durability:
//! - Everything below [`Log::durable_offset`] is on disk. [`Log::sync_to`] waits for that
//!   under every policy; the policy says who calls it (see [`FsyncPolicy`]).
//! - Rolling a segment cuts it to its entries and fsyncs it and the directory before the next
//!   segment takes writes, so only the last segment can have a torn tail or zeros after its
//!   entries. Recovery reads an all-zero remainder after the last whole entry as the end (an
//!   entry header is never all zeros) and cuts it silently; anything else there is a torn
//!   tail, cut back to the last whole entry and reported; damage in any other segment is an
//!   error naming the file and byte position.
//! - A failed write or fsync poisons the log: every later append and sync fails with
//!   [`LogError::Poisoned`] (after a failed fsync the kernel may have dropped the dirty
//!   pages, so retrying could report data durable that is not). Reads keep working. Reopen
//!   to recover. Poisoned logs are listed by [`failed_logs`] until dropped.
//! - Index files are derived data, written without fsync: a missing, stale or corrupt index
//!   of a sealed segment is rebuilt on open.

mod config;
mod entry;
mod error;
mod failed;
pub mod histogram;
mod index;
mod log;
mod meta;
mod recovery;
mod retention;
mod segment;
mod sync;
#[cfg(test)]
mod tests;
mod writer;

pub use crate::config::{FsyncPolicy, LogConfig};
pub use crate::entry::{Appended, Entry, StoredEntry};
pub use crate::error::{Damage, LogError};
pub use crate::failed::{FailedLog, failed_logs};
pub use crate::index::IndexProblem;
pub use crate::log::Log;
pub use crate::recovery::{RebuiltIndex, Recovery, Truncation};
pub use crate::retention::Retained;
pub use crate::segment::SegmentInfo;
pub use crate::writer::Appender;
