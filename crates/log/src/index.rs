//! Sparse offset and time indexes of one segment.
//!
//! The active segment keeps its index points in memory; sealing writes them to two files and
//! maps those read-only. Both files share one layout:
//!
//! ```text
//! header (48 bytes, little-endian)
//!   0   6  magic "FMQIDX" (.index) or "FMQTIX" (.timeindex)
//!   6   2  format version, u16 (1)
//!   8   8  segment base offset
//!  16   8  segment next offset (one past its last offset)
//!  24   8  length in bytes of the .log file this index describes
//!  32   8  segment max timestamp (meaningful when next > base)
//!  40   4  number of points
//!  44   4  crc32 over bytes 0..44 and every point
//! points, ascending
//!   .index      8 bytes: offset - base (u32), byte position in the .log (u32)
//!   .timeindex 12 bytes: timestamp (i64), offset - base (u32)
//! ```
//!
//! A time point (T, r) says every entry before offset base + r has a timestamp below or equal
//! to T, and T is the largest such timestamp; so "first entry with timestamp >= t" can start
//! scanning at the last point with T < t. An index whose header disagrees with its `.log`
//! (length, base) or whose checksum fails is stale or corrupt and rebuilt from the entries.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use memmap2::Mmap;

use crate::LogError;
use crate::entry::{FORMAT_VERSION, i64_at, u16_at, u32_at, u64_at};

pub(crate) const INDEX_HEADER_LEN: usize = 48;
const OFFSET_POINT_LEN: usize = 8;
const TIME_POINT_LEN: usize = 12;

/// Which of the two index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    Offset,
    Time,
}

impl IndexKind {
    fn magic(self) -> &'static [u8; 6] {
        match self {
            IndexKind::Offset => b"FMQIDX",
            IndexKind::Time => b"FMQTIX",
        }
    }

    fn point_len(self) -> usize {
        match self {
            IndexKind::Offset => OFFSET_POINT_LEN,
            IndexKind::Time => TIME_POINT_LEN,
        }
    }

    pub(crate) fn path(self, dir: &Path, base: u64) -> PathBuf {
        match self {
            IndexKind::Offset => dir.join(format!("{base:020}.index")),
            IndexKind::Time => dir.join(format!("{base:020}.timeindex")),
        }
    }
}

/// What an index header records about its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    pub(crate) base: u64,
    pub(crate) next: u64,
    pub(crate) log_len: u64,
    pub(crate) max_timestamp: i64,
}

/// Why an index had to be rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexProblem {
    /// One of the two files is absent.
    Missing,
    /// The index describes a different length or base than the `.log` file has now.
    Stale,
    /// Wrong magic, version, size, checksum or point order.
    Corrupt,
}

impl std::fmt::Display for IndexProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IndexProblem::Missing => "missing",
            IndexProblem::Stale => "stale",
            IndexProblem::Corrupt => "corrupt",
        })
    }
}

/// Decides where index points go; shared by the writer and by recovery so both build the same
/// index from the same entries.
#[derive(Debug, Clone)]
pub(crate) struct IndexCursor {
    since_point: u64,
    prefix_max: i64,
    last_time: i64,
}

impl IndexCursor {
    pub(crate) fn new() -> Self {
        IndexCursor {
            since_point: 0,
            prefix_max: i64::MIN,
            last_time: i64::MIN,
        }
    }

    /// Observes the next entry (relative offset, position, length in bytes, timestamp) and
    /// adds the points that belong before it to `points`.
    pub(crate) fn observe(
        &mut self,
        interval: u32,
        at: Option<(u32, u32)>,
        len: u64,
        timestamp: i64,
        points: &mut Points,
    ) {
        if let Some((rel, pos)) = at
            && self.since_point >= u64::from(interval)
        {
            points.offsets.extend_from_slice(&rel.to_le_bytes());
            points.offsets.extend_from_slice(&pos.to_le_bytes());
            if self.prefix_max > self.last_time {
                points
                    .times
                    .extend_from_slice(&self.prefix_max.to_le_bytes());
                points.times.extend_from_slice(&rel.to_le_bytes());
                self.last_time = self.prefix_max;
            }
            self.since_point = 0;
        }
        self.since_point += len;
        self.prefix_max = self.prefix_max.max(timestamp);
    }
}

/// Encoded index points not yet in a segment's index.
#[derive(Debug, Default)]
pub(crate) struct Points {
    pub(crate) offsets: Vec<u8>,
    pub(crate) times: Vec<u8>,
}

impl Points {
    pub(crate) fn clear(&mut self) {
        self.offsets.clear();
        self.times.clear();
    }
}

enum Table {
    Memory(Vec<u8>),
    Mapped(Mmap),
}

impl Table {
    fn points(&self) -> &[u8] {
        match self {
            Table::Memory(points) => points,
            Table::Mapped(map) => map.get(INDEX_HEADER_LEN..).unwrap_or_default(),
        }
    }
}

struct Tables {
    offsets: Table,
    times: Table,
}

/// A segment's two indexes, readable while the writer adds points.
pub(crate) struct SegmentIndex {
    tables: RwLock<Tables>,
}

impl SegmentIndex {
    pub(crate) fn in_memory(points: Points) -> Self {
        let tables = Tables {
            offsets: Table::Memory(points.offsets),
            times: Table::Memory(points.times),
        };
        SegmentIndex {
            tables: RwLock::new(tables),
        }
    }

    pub(crate) fn mapped(offsets: Mmap, times: Mmap) -> Self {
        let tables = Tables {
            offsets: Table::Mapped(offsets),
            times: Table::Mapped(times),
        };
        SegmentIndex {
            tables: RwLock::new(tables),
        }
    }

    /// Adds points to an in-memory index (a mapped one is sealed and never grows).
    pub(crate) fn push(&self, points: &Points) {
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        if let Table::Memory(offsets) = &mut tables.offsets {
            offsets.extend_from_slice(&points.offsets);
        }
        if let Table::Memory(times) = &mut tables.times {
            times.extend_from_slice(&points.times);
        }
    }

    /// The last offset point at or below relative offset `rel` whose position is below `limit`.
    pub(crate) fn floor(&self, rel: u64, limit: u64) -> Option<(u32, u32)> {
        let tables = self.tables.read().unwrap_or_else(PoisonError::into_inner);
        let points = tables.offsets.points();
        let point = |i: usize| {
            let at = i * OFFSET_POINT_LEN;
            Some((u32_at(points, at)?, u32_at(points, at + 4)?))
        };
        let count = points.len() / OFFSET_POINT_LEN;
        let above = partition_point(count, |i| {
            point(i).is_some_and(|(r, _)| u64::from(r) <= rel)
        });
        (0..above)
            .rev()
            .filter_map(point)
            .find(|&(_, pos)| u64::from(pos) < limit)
    }

    /// The relative offset of the last time point with a timestamp below `timestamp`: no entry
    /// before it can have a timestamp at or above `timestamp`.
    pub(crate) fn time_floor(&self, timestamp: i64) -> Option<u32> {
        let tables = self.tables.read().unwrap_or_else(PoisonError::into_inner);
        let points = tables.times.points();
        let point = |i: usize| {
            let at = i * TIME_POINT_LEN;
            Some((i64_at(points, at)?, u32_at(points, at + 8)?))
        };
        let count = points.len() / TIME_POINT_LEN;
        let below = partition_point(count, |i| point(i).is_some_and(|(t, _)| t < timestamp));
        below.checked_sub(1).and_then(point).map(|(_, rel)| rel)
    }

    /// Writes both files for a sealed segment, then serves lookups from their mappings.
    pub(crate) fn seal(&self, dir: &Path, summary: SegmentSummary) -> Result<(), LogError> {
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        let offsets = write_file(dir, IndexKind::Offset, summary, tables.offsets.points())?;
        let times = write_file(dir, IndexKind::Time, summary, tables.times.points())?;
        *tables = Tables {
            offsets: Table::Mapped(offsets),
            times: Table::Mapped(times),
        };
        Ok(())
    }
}

/// Loads a sealed segment's index files, or says why they cannot be used.
pub(crate) fn load(
    dir: &Path,
    base: u64,
    log_len: u64,
) -> Result<(SegmentIndex, SegmentSummary), IndexProblem> {
    let offsets = map_file(&IndexKind::Offset.path(dir, base))?;
    let times = map_file(&IndexKind::Time.path(dir, base))?;
    let summary = check(IndexKind::Offset, &offsets, base, log_len)?;
    if check(IndexKind::Time, &times, base, log_len)? != summary {
        return Err(IndexProblem::Stale);
    }
    Ok((SegmentIndex::mapped(offsets, times), summary))
}

fn map_file(path: &Path) -> Result<Mmap, IndexProblem> {
    let file = File::open(path).map_err(|_| IndexProblem::Missing)?;
    // SAFETY: index files are written once (to a temporary name, then renamed) and never
    // modified or truncated while mapped; only this log's directory holds them.
    #[expect(unsafe_code, reason = "read-only mmap of an immutable index file")]
    let map = unsafe { Mmap::map(&file) };
    map.map_err(|_| IndexProblem::Corrupt)
}

/// Validates an index file's header, checksum and point order against its segment.
fn check(
    kind: IndexKind,
    file: &[u8],
    base: u64,
    log_len: u64,
) -> Result<SegmentSummary, IndexProblem> {
    let corrupt = IndexProblem::Corrupt;
    let header = file.get(..INDEX_HEADER_LEN).ok_or(corrupt)?;
    if header.get(..6) != Some(&kind.magic()[..]) || u16_at(header, 6) != Some(FORMAT_VERSION) {
        return Err(corrupt);
    }
    let field = |at| u64_at(header, at).ok_or(corrupt);
    let summary = SegmentSummary {
        base: field(8)?,
        next: field(16)?,
        log_len: field(24)?,
        max_timestamp: i64_at(header, 32).ok_or(corrupt)?,
    };
    let count = u32_at(header, 40).ok_or(corrupt)? as usize;
    let stored = u32_at(header, 44).ok_or(corrupt)?;
    let points = file.get(INDEX_HEADER_LEN..).ok_or(corrupt)?;
    if points.len() != count * kind.point_len() {
        return Err(corrupt);
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(header.get(..44).ok_or(corrupt)?);
    crc.update(points);
    if crc.finalize() != stored {
        return Err(corrupt);
    }
    if summary.base != base || summary.log_len != log_len || summary.next < base {
        return Err(IndexProblem::Stale);
    }
    let span = summary.next - base;
    let ordered = match kind {
        IndexKind::Offset => {
            let mut prev: (Option<u32>, u32) = (None, 0);
            points.chunks_exact(OFFSET_POINT_LEN).all(|p| {
                let (Some(rel), Some(pos)) = (u32_at(p, 0), u32_at(p, 4)) else {
                    return false;
                };
                let fits = u64::from(rel) < span && u64::from(pos) < log_len;
                let ok = fits && prev.0.is_none_or(|r| r < rel) && prev.1 < pos;
                prev = (Some(rel), pos);
                ok
            })
        }
        IndexKind::Time => {
            let mut prev: (Option<i64>, u32) = (None, 0);
            points.chunks_exact(TIME_POINT_LEN).all(|p| {
                let (Some(ts), Some(rel)) = (i64_at(p, 0), u32_at(p, 8)) else {
                    return false;
                };
                let ok = u64::from(rel) < span && prev.0.is_none_or(|t| t < ts) && prev.1 <= rel;
                prev = (Some(ts), rel);
                ok
            })
        }
    };
    if !ordered {
        return Err(corrupt);
    }
    Ok(summary)
}

fn encode(kind: IndexKind, summary: SegmentSummary, points: &[u8]) -> Vec<u8> {
    let count = u32::try_from(points.len() / kind.point_len()).unwrap_or(u32::MAX);
    let mut file = Vec::with_capacity(INDEX_HEADER_LEN + points.len());
    file.extend_from_slice(kind.magic());
    file.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    file.extend_from_slice(&summary.base.to_le_bytes());
    file.extend_from_slice(&summary.next.to_le_bytes());
    file.extend_from_slice(&summary.log_len.to_le_bytes());
    file.extend_from_slice(&summary.max_timestamp.to_le_bytes());
    file.extend_from_slice(&count.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&file);
    crc.update(points);
    file.extend_from_slice(&crc.finalize().to_le_bytes());
    file.extend_from_slice(points);
    file
}

/// Writes an index file under a temporary name and renames it into place, so a reader of the
/// directory sees either no file or a whole one. Not fsynced: a lost index is rebuilt.
pub(crate) fn write_file(
    dir: &Path,
    kind: IndexKind,
    summary: SegmentSummary,
    points: &[u8],
) -> Result<Mmap, LogError> {
    let path = kind.path(dir, summary.base);
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, encode(kind, summary, points)).map_err(|e| LogError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| LogError::io(&path, e))?;
    let file = File::open(&path).map_err(|e| LogError::io(&path, e))?;
    // SAFETY: the file was just written whole and is never modified or truncated afterwards;
    // deleting it (retention) leaves the mapping valid.
    #[expect(unsafe_code, reason = "read-only mmap of an immutable index file")]
    let map = unsafe { Mmap::map(&file) };
    map.map_err(|e| LogError::io(&path, e))
}

/// First index in `0..count` for which `pred` is false (`pred` true then false).
fn partition_point(count: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(interval: u32, entries: &[(u32, u32, u64, i64)]) -> Points {
        let mut cursor = IndexCursor::new();
        let mut points = Points::default();
        for &(rel, pos, len, ts) in entries {
            cursor.observe(interval, Some((rel, pos)), len, ts, &mut points);
        }
        points
    }

    // Entries of 100 bytes at positions 16, 116, ...; offsets 0, 1, ...
    fn sample() -> Vec<(u32, u32, u64, i64)> {
        let ts = [5, 3, 9, 9, 2, 20, 1, 30];
        (0..8u32)
            .map(|i| (i, 16 + i * 100, 100, ts[i as usize]))
            .collect()
    }

    #[test]
    fn points_every_interval_and_time_points_only_when_max_grows() {
        let index = SegmentIndex::in_memory(points(250, &sample()));
        // Points before entries 3 and 6 (250 bytes seen at each).
        assert_eq!(index.floor(0, u64::MAX), None);
        assert_eq!(index.floor(4, u64::MAX), Some((3, 316)));
        assert_eq!(index.floor(7, u64::MAX), Some((6, 616)));
        assert_eq!(
            index.floor(7, 616),
            Some((3, 316)),
            "points at or past limit are skipped"
        );
        // Before entry 3 the max was 9; before entry 6 it was 20.
        assert_eq!(index.time_floor(9), None);
        assert_eq!(index.time_floor(10), Some(3));
        assert_eq!(index.time_floor(21), Some(6));
    }

    #[test]
    fn sealed_files_round_trip_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let index = SegmentIndex::in_memory(points(250, &sample()));
        let summary = SegmentSummary {
            base: 40,
            next: 48,
            log_len: 816,
            max_timestamp: 30,
        };
        index.seal(dir.path(), summary).unwrap();
        assert_eq!(index.floor(4, u64::MAX), Some((3, 316)));
        assert_eq!(index.time_floor(21), Some(6));

        let (loaded, got) = load(dir.path(), 40, 816).unwrap();
        assert_eq!(got, summary);
        assert_eq!(loaded.floor(7, u64::MAX), Some((6, 616)));
        assert_eq!(load(dir.path(), 40, 900).err(), Some(IndexProblem::Stale));

        let path = IndexKind::Time.path(dir.path(), 40);
        let mut bytes = fs::read(&path).unwrap();
        bytes[INDEX_HEADER_LEN + 3] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(load(dir.path(), 40, 816).err(), Some(IndexProblem::Corrupt));
        fs::remove_file(&path).unwrap();
        assert_eq!(load(dir.path(), 40, 816).err(), Some(IndexProblem::Missing));
    }

    #[test]
    fn out_of_order_points_are_corrupt_even_with_a_good_checksum() {
        let summary = SegmentSummary {
            base: 0,
            next: 10,
            log_len: 1000,
            max_timestamp: 0,
        };
        let mut pts = Vec::new();
        for (rel, pos) in [(5u32, 500u32), (4, 600)] {
            pts.extend_from_slice(&rel.to_le_bytes());
            pts.extend_from_slice(&pos.to_le_bytes());
        }
        let file = encode(IndexKind::Offset, summary, &pts);
        assert_eq!(
            check(IndexKind::Offset, &file, 0, 1000),
            Err(IndexProblem::Corrupt)
        );
        let fine = encode(IndexKind::Offset, summary, &pts[..8]);
        assert_eq!(check(IndexKind::Offset, &fine, 0, 1000), Ok(summary));
    }
}
