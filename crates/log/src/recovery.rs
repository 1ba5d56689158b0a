//! Opening a log directory: find the segments, trust or rebuild sealed segments' indexes, scan
//! the last segment and truncate a torn tail.
//!
//! The last segment may end in zeros: the writer extends the file with zeros ahead of its
//! entries (see `writer`), and a crash leaves them. An entry header is never all zeros, so
//! when everything from the first undecodable position on is zero, that position is the clean
//! end of the log and the zeros are cut off without a report. Anything else there is a torn
//! write, reported.
//!
//! Sealed segments were fsynced before their successor was created, so damage in one is real
//! corruption and an error. Their `.log` bytes are trusted when both index files are whole and
//! agree with the file's length (reads still verify every checksum); otherwise the segment is
//! scanned, which verifies every entry, and its indexes are rewritten. The last segment is
//! always scanned: everything from its first bad entry on is a torn write and is cut off.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::LogConfig;
use crate::entry::{SEGMENT_HEADER_LEN, Scan, check_segment_header, encode_segment_header};
use crate::index::{
    self, IndexCursor, IndexKind, IndexProblem, Points, SegmentIndex, SegmentSummary,
};
use crate::segment::{self, Segment, log_path};
use crate::{Damage, LogError, meta};

/// What `Log::open` found and did, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Segments loaded.
    pub segments: usize,
    /// Whole entries verified by scanning (the last segment and any rebuilt ones).
    pub entries_scanned: u64,
    /// The torn tail cut off the last segment, if any (zeros written ahead of the last entry
    /// are not a torn tail: they are cut off silently).
    pub truncated: Option<Truncation>,
    /// Sealed segments whose indexes were rebuilt, and why.
    pub indexes_rebuilt: Vec<RebuiltIndex>,
    /// Segments removed because they lay wholly below the persisted start offset.
    pub segments_deleted: usize,
    /// The log start offset after recovery.
    pub start_offset: u64,
    /// The next offset after recovery.
    pub next_offset: u64,
}

/// A torn or corrupt tail removed from the last segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The segment file.
    pub path: PathBuf,
    /// The length it was cut back to: the end of its last whole entry.
    pub position: u64,
    /// Bytes removed from the file (after a crash this includes the zeros that had been
    /// written ahead of the torn entry).
    pub bytes_dropped: u64,
    /// What was found at `position`.
    pub damage: Damage,
}

/// A sealed segment's index that was rebuilt from its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuiltIndex {
    /// The segment's base offset.
    pub base_offset: u64,
    /// Why the old index could not be used.
    pub problem: IndexProblem,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "recovered {} segment(s), offsets [{}, {}), {} entries scanned",
            self.segments, self.start_offset, self.next_offset, self.entries_scanned
        )?;
        if let Some(t) = &self.truncated {
            write!(
                f,
                "; truncated {} byte(s) of {} at byte {} ({})",
                t.bytes_dropped,
                t.path.display(),
                t.position,
                t.damage
            )?;
        }
        for rebuilt in &self.indexes_rebuilt {
            write!(
                f,
                "; rebuilt {} index of segment {}",
                rebuilt.problem, rebuilt.base_offset
            )?;
        }
        if self.segments_deleted > 0 {
            write!(
                f,
                "; deleted {} segment(s) below the start offset",
                self.segments_deleted
            )?;
        }
        Ok(())
    }
}

/// The writer's position in the active segment.
pub(crate) struct Active {
    pub(crate) segment: Arc<Segment>,
    pub(crate) file: File,
    pub(crate) position: u64,
    pub(crate) cursor: IndexCursor,
}

pub(crate) struct Recovered {
    /// Sealed segments, oldest first.
    pub(crate) sealed: Vec<Arc<Segment>>,
    pub(crate) active: Active,
    pub(crate) start: u64,
    pub(crate) report: Recovery,
}

/// One pass over a segment's entries.
struct Scanned {
    points: Points,
    cursor: IndexCursor,
    next: u64,
    max_timestamp: i64,
    entries: u64,
    valid_len: u64,
    damage: Option<(u64, Damage)>,
}

fn scan(data: &[u8], base: u64, interval: u32) -> Scanned {
    let mut s = Scanned {
        points: Points::default(),
        cursor: IndexCursor::new(),
        next: base,
        max_timestamp: i64::MIN,
        entries: 0,
        valid_len: SEGMENT_HEADER_LEN as u64,
        damage: None,
    };
    for found in Scan::new(data, SEGMENT_HEADER_LEN, base) {
        match found {
            Ok((pos, entry)) => {
                let at = u32::try_from(entry.offset - base)
                    .ok()
                    .zip(u32::try_from(pos).ok());
                let len = (entry.end() - pos) as u64;
                s.cursor
                    .observe(interval, at, len, entry.timestamp, &mut s.points);
                s.next = entry.next_offset();
                s.max_timestamp = s.max_timestamp.max(entry.timestamp);
                s.entries += 1;
                s.valid_len = entry.end() as u64;
            }
            Err((pos, damage)) => s.damage = Some((pos as u64, damage)),
        }
    }
    s
}

pub(crate) fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered, LogError> {
    fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
    let (bases, indexed) = list(dir)?;
    let persisted = meta::read(dir)?;
    let mut report = Recovery {
        segments: 0,
        entries_scanned: 0,
        truncated: None,
        indexes_rebuilt: Vec::new(),
        segments_deleted: 0,
        start_offset: 0,
        next_offset: 0,
    };
    // Index files without a sealed segment: orphans of a deletion, or of the last segment,
    // whose index lives in memory until it is sealed.
    let sealed_bases: BTreeSet<u64> = bases.iter().rev().skip(1).copied().collect();
    for base in indexed.difference(&sealed_bases) {
        for kind in [IndexKind::Offset, IndexKind::Time] {
            segment::remove_if_exists(&kind.path(dir, *base))?;
        }
    }
    let mut sealed = Vec::with_capacity(bases.len());
    let active = match bases.split_last() {
        None => create_first(dir, persisted.unwrap_or(0), config)?,
        Some((&last, sealed_bases)) => {
            for (i, &base) in sealed_bases.iter().enumerate() {
                let next_base = bases.get(i + 1).copied().unwrap_or(last);
                sealed.push(Arc::new(load_sealed(
                    dir,
                    base,
                    next_base,
                    config,
                    &mut report,
                )?));
            }
            load_last(dir, last, sealed.last(), config, &mut report)?
        }
    };
    let next = active.segment.next_offset();
    let first = sealed.first().unwrap_or(&active.segment).base;
    let start = persisted.unwrap_or(first).max(first);
    let (sealed, active) = if start > next {
        // Every entry lies below the start (data past it was lost before it was synced):
        // begin again at the start offset.
        for segment in sealed.iter().chain([&active.segment]) {
            segment::remove_files(dir, segment.base)?;
        }
        report.segments_deleted += sealed.len() + 1;
        (Vec::new(), create_first(dir, start, config)?)
    } else {
        let below = sealed
            .iter()
            .take_while(|s| s.next_offset() <= start)
            .count();
        for segment in sealed.iter().take(below) {
            segment::remove_files(dir, segment.base)?;
        }
        report.segments_deleted += below;
        let kept = sealed.split_off(below);
        (kept, active)
    };
    let start = start.max(sealed.first().unwrap_or(&active.segment).base);
    report.segments = sealed.len() + 1;
    report.start_offset = start;
    report.next_offset = active.segment.next_offset();
    Ok(Recovered {
        sealed,
        active,
        start,
        report,
    })
}

/// Segment bases and index bases in `dir`; removes temporary files left by a crash.
fn list(dir: &Path) -> Result<(Vec<u64>, BTreeSet<u64>), LogError> {
    let mut bases = Vec::new();
    let mut indexed = BTreeSet::new();
    for item in fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let item = item.map_err(|e| LogError::io(dir, e))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let base = |ext: &str| {
            let stem = name.strip_suffix(ext)?;
            (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
                .then(|| stem.parse::<u64>().ok())
                .flatten()
        };
        if name.ends_with(".tmp") {
            fs::remove_file(item.path()).map_err(|e| LogError::io(item.path(), e))?;
        } else if let Some(b) = base(".log") {
            bases.push(b);
        } else if let Some(b) = base(".index").or_else(|| base(".timeindex")) {
            indexed.insert(b);
        }
    }
    bases.sort_unstable();
    Ok((bases, indexed))
}

fn create_first(dir: &Path, base: u64, config: &LogConfig) -> Result<Active, LogError> {
    let (segment, file) = Segment::create(dir, base, config.segment_capacity())?;
    file.sync_all()
        .map_err(|e| LogError::io(&segment.path, e))?;
    meta::sync_dir(dir)?;
    let position = SEGMENT_HEADER_LEN as u64;
    Ok(Active {
        segment: Arc::new(segment),
        file,
        position,
        cursor: IndexCursor::new(),
    })
}

fn load_sealed(
    dir: &Path,
    base: u64,
    next_base: u64,
    config: &LogConfig,
    report: &mut Recovery,
) -> Result<Segment, LogError> {
    let path = log_path(dir, base);
    let io = |e| LogError::io(&path, e);
    let file = File::open(&path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < SEGMENT_HEADER_LEN as u64 {
        let damage = Damage::ShortHeader {
            need: SEGMENT_HEADER_LEN as u64,
            len,
        };
        return Err(LogError::corrupt(&path, 0, damage));
    }
    let map = segment::map(&file, len).map_err(io)?;
    check_segment_header(&map, base).map_err(|d| LogError::corrupt(&path, 0, d))?;
    let problem = match index::load(dir, base, len) {
        Ok((index, summary)) if summary.next <= next_base => {
            let (next, max_timestamp) = (summary.next, summary.max_timestamp);
            return Ok(Segment::new(
                base,
                path,
                map,
                len,
                next,
                max_timestamp,
                index,
            ));
        }
        Ok(_) => IndexProblem::Stale,
        Err(problem) => problem,
    };
    let scanned = scan(&map, base, config.index_interval_bytes);
    if let Some((position, damage)) = scanned.damage {
        return Err(LogError::corrupt(&path, position, damage));
    }
    if scanned.next > next_base {
        let damage = Damage::Overlap {
            end: scanned.next,
            next_base,
        };
        return Err(LogError::corrupt(&path, len, damage));
    }
    let summary = SegmentSummary {
        base,
        next: scanned.next,
        log_len: len,
        max_timestamp: scanned.max_timestamp,
    };
    let offsets = index::write_file(dir, IndexKind::Offset, summary, &scanned.points.offsets)?;
    let times = index::write_file(dir, IndexKind::Time, summary, &scanned.points.times)?;
    report.indexes_rebuilt.push(RebuiltIndex {
        base_offset: base,
        problem,
    });
    report.entries_scanned += scanned.entries;
    let index = SegmentIndex::mapped(offsets, times);
    Ok(Segment::new(
        base,
        path,
        map,
        len,
        scanned.next,
        scanned.max_timestamp,
        index,
    ))
}

fn load_last(
    dir: &Path,
    base: u64,
    prev: Option<&Arc<Segment>>,
    config: &LogConfig,
    report: &mut Recovery,
) -> Result<Active, LogError> {
    let path = log_path(dir, base);
    let io = |e| LogError::io(&path, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if let Some(prev) = prev
        && prev.next_offset() > base
    {
        let damage = Damage::Overlap {
            end: prev.next_offset(),
            next_base: base,
        };
        return Err(LogError::corrupt(&prev.path, prev.committed_len(), damage));
    }
    let scanned = if len < SEGMENT_HEADER_LEN as u64 {
        // A crash while the segment was being created: nothing was ever written to it.
        let damage = Damage::ShortHeader {
            need: SEGMENT_HEADER_LEN as u64,
            len,
        };
        report.truncated = Some(Truncation {
            path: path.clone(),
            position: 0,
            bytes_dropped: len,
            damage,
        });
        None
    } else {
        let map = segment::map(&file, len).map_err(io)?;
        match check_segment_header(&map, base) {
            Ok(()) => {
                let mut scanned = scan(&map, base, config.index_interval_bytes);
                if let Some((position, _)) = scanned.damage
                    && all_zeros(map.get(usize::try_from(position).unwrap_or(usize::MAX)..))
                {
                    // The zeros the writer wrote ahead of its entries: the clean end.
                    scanned.damage = None;
                }
                Some(scanned)
            }
            // The file's length reached the disk but its first bytes did not: still nothing
            // but a created file.
            Err(damage) if all_zeros(Some(&map[..])) => {
                let t = Truncation {
                    path: path.clone(),
                    position: 0,
                    bytes_dropped: len,
                    damage,
                };
                report.truncated = Some(t);
                None
            }
            Err(damage) => return Err(LogError::corrupt(&path, 0, damage)),
        }
    };
    let scanned = match scanned {
        Some(scanned) => scanned,
        None => {
            file.set_len(0).map_err(io)?;
            std::io::Write::write_all(&mut file, &encode_segment_header(base)).map_err(io)?;
            scan(
                &encode_segment_header(base),
                base,
                config.index_interval_bytes,
            )
        }
    };
    if let Some((position, damage)) = scanned.damage.clone() {
        let bytes_dropped = len - scanned.valid_len;
        report.truncated = Some(Truncation {
            path: path.clone(),
            position,
            bytes_dropped,
            damage,
        });
    }
    // Cut the torn tail or the zeros written ahead: entries written from here on must not be
    // followed by leftovers of writes that never became whole.
    if len > scanned.valid_len {
        file.set_len(scanned.valid_len).map_err(io)?;
    }
    // Whatever the page cache held from before a crash is made durable now, so everything
    // recovered counts as durable.
    file.sync_all().map_err(io)?;
    file.seek(SeekFrom::Start(scanned.valid_len)).map_err(io)?;
    report.entries_scanned += scanned.entries;
    let capacity = config.segment_capacity().max(scanned.valid_len);
    let map = segment::map(&file, capacity).map_err(io)?;
    let index = SegmentIndex::in_memory(scanned.points);
    let segment = Segment::new(
        base,
        path,
        map,
        scanned.valid_len,
        scanned.next,
        scanned.max_timestamp,
        index,
    );
    let segment = Arc::new(segment);
    Ok(Active {
        segment,
        file,
        position: scanned.valid_len,
        cursor: scanned.cursor,
    })
}

/// Whether `bytes` is present and all zeros.
fn all_zeros(bytes: Option<&[u8]>) -> bool {
    // OR-ing whole chunks vectorizes; `any` on bytes does not.
    bytes.is_some_and(|bytes| {
        bytes
            .chunks(4096)
            .all(|chunk| chunk.iter().fold(0u8, |acc, &b| acc | b) == 0)
    })
}
