//! Entries: what callers append and read back, and how they sit in a segment file.
//!
//! A segment file is a header followed by entries, back to back:
//!
//! ```text
//! segment header (16 bytes)
//!   0   6  magic "FMQLOG"
//!   6   2  format version, u16 LE (1)
//!   8   8  base offset, u64 LE (also the file name: {base:020}.log)
//!
//! entry (28-byte header, then the payload)
//!   0   4  crc32 (IEEE), u32 LE, over bytes 4..28 and the payload
//!   4   4  payload length, u32 LE
//!   8   8  offset of the entry's first record, u64 LE
//!  16   4  span: offsets the entry occupies (>= 1), u32 LE
//!  20   8  timestamp, ms since the Unix epoch, i64 LE
//!  28   n  payload (opaque bytes)
//! ```
//!
//! The checksum covers the offset, so an entry found at the wrong place is caught as well as a
//! flipped bit; a torn write fails either the length or the checksum test.

use std::ops::Range;

use bytes::Bytes;

use crate::Damage;

/// Magic bytes opening every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 6] = *b"FMQLOG";
/// On-disk format version written and read by this build.
pub(crate) const FORMAT_VERSION: u16 = 1;
pub(crate) const SEGMENT_HEADER_LEN: usize = 16;
pub(crate) const ENTRY_HEADER_LEN: usize = 28;

/// One entry to append.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Milliseconds since the Unix epoch (for a Kafka batch: its max timestamp).
    pub timestamp: i64,
    /// How many offsets the entry occupies: a Kafka record batch of N records spans N, an AMQP
    /// message spans 1. Must be at least 1.
    pub span: u32,
    /// Concatenated to form the payload, so a caller can patch a header without copying the
    /// body.
    pub parts: &'a [&'a [u8]],
}

impl Entry<'_> {
    /// Payload length: the sum of the parts.
    pub fn payload_len(&self) -> u64 {
        self.parts.iter().map(|part| part.len() as u64).sum()
    }
}

/// Offsets assigned by an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first appended entry.
    pub base_offset: u64,
    /// One past the last offset of the last appended entry: the log's new next offset.
    pub next_offset: u64,
}

/// An entry read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Offset of the entry's first record.
    pub offset: u64,
    /// Offsets the entry occupies.
    pub span: u32,
    /// Milliseconds since the Unix epoch, as appended.
    pub timestamp: i64,
    /// A zero-copy view of the memory-mapped segment; stays valid after the segment is deleted.
    pub payload: Bytes,
}

impl StoredEntry {
    /// One past the entry's last offset.
    pub fn next_offset(&self) -> u64 {
        self.offset + u64::from(self.span)
    }
}

pub(crate) fn encode_segment_header(base: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut header = [0u8; SEGMENT_HEADER_LEN];
    header[..6].copy_from_slice(&SEGMENT_MAGIC);
    header[6..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[8..].copy_from_slice(&base.to_le_bytes());
    header
}

/// Checks a segment header against the base offset its file name gives.
pub(crate) fn check_segment_header(file: &[u8], base: u64) -> Result<(), Damage> {
    let short = || Damage::ShortHeader {
        need: SEGMENT_HEADER_LEN as u64,
        len: file.len() as u64,
    };
    let header = file.get(..SEGMENT_HEADER_LEN).ok_or_else(short)?;
    if header.get(..6) != Some(&SEGMENT_MAGIC[..]) {
        return Err(Damage::BadMagic);
    }
    let version = u16_at(header, 6).ok_or_else(short)?;
    if version != FORMAT_VERSION {
        return Err(Damage::UnsupportedVersion { found: version });
    }
    let found = u64_at(header, 8).ok_or_else(short)?;
    if found != base {
        return Err(Damage::BaseMismatch {
            expected: base,
            found,
        });
    }
    Ok(())
}

/// Encodes an entry header, computing the checksum over it and the payload parts.
pub(crate) fn encode_entry_header(
    offset: u64,
    span: u32,
    timestamp: i64,
    payload_len: u32,
    parts: &[&[u8]],
) -> [u8; ENTRY_HEADER_LEN] {
    let mut header = [0u8; ENTRY_HEADER_LEN];
    header[4..8].copy_from_slice(&payload_len.to_le_bytes());
    header[8..16].copy_from_slice(&offset.to_le_bytes());
    header[16..20].copy_from_slice(&span.to_le_bytes());
    header[20..28].copy_from_slice(&timestamp.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[4..]);
    for part in parts {
        crc.update(part);
    }
    header[..4].copy_from_slice(&crc.finalize().to_le_bytes());
    header
}

/// An entry found in a segment's bytes; positions are relative to the start of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) offset: u64,
    pub(crate) span: u32,
    pub(crate) timestamp: i64,
    pub(crate) payload: Range<usize>,
}

impl Decoded {
    pub(crate) fn next_offset(&self) -> u64 {
        self.offset + u64::from(self.span)
    }

    /// Position one past the entry.
    pub(crate) fn end(&self) -> usize {
        self.payload.end
    }
}

/// Decodes and verifies the entry at `pos`. `data` ends at the last byte that may be read.
pub(crate) fn decode_entry(data: &[u8], pos: usize) -> Result<Decoded, Damage> {
    let have = data.len().saturating_sub(pos) as u64;
    let torn_header = Damage::TornHeader {
        need: ENTRY_HEADER_LEN as u64,
        have,
    };
    let header = pos
        .checked_add(ENTRY_HEADER_LEN)
        .and_then(|end| data.get(pos..end))
        .ok_or(torn_header.clone())?;
    let (Some(stored), Some(len), Some(offset), Some(span), Some(timestamp)) = (
        u32_at(header, 0),
        u32_at(header, 4),
        u64_at(header, 8),
        u32_at(header, 16),
        u64_at(header, 20),
    ) else {
        return Err(torn_header);
    };
    let need = ENTRY_HEADER_LEN as u64 + u64::from(len);
    let start = pos + ENTRY_HEADER_LEN;
    let payload = usize::try_from(u64::from(len))
        .ok()
        .and_then(|len| start.checked_add(len))
        .and_then(|end| data.get(start..end))
        .ok_or(Damage::TornEntry { need, have })?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(header.get(4..).unwrap_or_default());
    crc.update(payload);
    let computed = crc.finalize();
    if computed != stored {
        return Err(Damage::ChecksumMismatch { stored, computed });
    }
    if span == 0 {
        return Err(Damage::ZeroSpan);
    }
    Ok(Decoded {
        offset,
        span,
        timestamp: i64::from_le_bytes(timestamp.to_le_bytes()),
        payload: start..start + payload.len(),
    })
}

/// Walks whole entries from `pos`, checking each follows the previous. Stops at the end of
/// `data`; yields the position and damage of the first bad entry, then stops.
pub(crate) struct Scan<'a> {
    data: &'a [u8],
    pos: usize,
    expected: u64,
    done: bool,
}

impl<'a> Scan<'a> {
    /// `expected` is the offset the entry at `pos` must carry.
    pub(crate) fn new(data: &'a [u8], pos: usize, expected: u64) -> Self {
        Scan {
            data,
            pos,
            expected,
            done: false,
        }
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<(usize, Decoded), (usize, Damage)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.data.len() {
            return None;
        }
        let pos = self.pos;
        let decoded = decode_entry(self.data, pos).and_then(|entry| {
            if entry.offset == self.expected {
                Ok(entry)
            } else {
                Err(Damage::OffsetMismatch {
                    expected: self.expected,
                    found: entry.offset,
                })
            }
        });
        match decoded {
            Ok(entry) => {
                self.pos = entry.end();
                // A span that wraps the offset space can only come from damage the checksum
                // missed; ending the scan keeps the arithmetic honest.
                match entry.offset.checked_add(u64::from(entry.span)) {
                    Some(next) => self.expected = next,
                    None => self.done = true,
                }
                Some(Ok((pos, entry)))
            }
            Err(damage) => {
                self.done = true;
                Some(Err((pos, damage)))
            }
        }
    }
}

pub(crate) fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

pub(crate) fn i64_at(bytes: &[u8], at: usize) -> Option<i64> {
    u64_at(bytes, at).map(|v| i64::from_le_bytes(v.to_le_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(offset: u64, span: u32, timestamp: i64, parts: &[&[u8]]) -> Vec<u8> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let header =
            encode_entry_header(offset, span, timestamp, u32::try_from(len).unwrap(), parts);
        let mut out = header.to_vec();
        for part in parts {
            out.extend_from_slice(part);
        }
        out
    }

    #[test]
    fn entry_round_trips_with_golden_header() {
        let bytes = encode(7, 3, -5, &[b"ab", b"c"]);
        // Golden layout: everything after the crc, little-endian.
        assert_eq!(&bytes[4..8], &3u32.to_le_bytes());
        assert_eq!(&bytes[8..16], &7u64.to_le_bytes());
        assert_eq!(&bytes[16..20], &3u32.to_le_bytes());
        assert_eq!(&bytes[20..28], &(-5i64).to_le_bytes());
        assert_eq!(&bytes[28..], b"abc");
        let decoded = decode_entry(&bytes, 0).unwrap();
        assert_eq!(
            decoded,
            Decoded {
                offset: 7,
                span: 3,
                timestamp: -5,
                payload: 28..31
            }
        );
    }

    #[test]
    fn every_prefix_is_torn_and_every_flip_is_caught() {
        let bytes = encode(1, 1, 42, &[b"hello world"]);
        for cut in 0..bytes.len() {
            let err = decode_entry(&bytes[..cut], 0).unwrap_err();
            assert!(
                matches!(err, Damage::TornHeader { .. } | Damage::TornEntry { .. }),
                "cut {cut}: {err}"
            );
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(
                decode_entry(&damaged, 0).is_err(),
                "flip at {at} not caught"
            );
        }
    }

    #[test]
    fn zero_span_is_refused_even_with_a_good_checksum() {
        let bytes = encode(1, 0, 0, &[b"x"]);
        assert_eq!(decode_entry(&bytes, 0), Err(Damage::ZeroSpan));
    }

    #[test]
    fn scan_checks_offset_continuity() {
        let mut bytes = encode(10, 2, 0, &[b"a"]);
        bytes.extend(encode(12, 1, 0, &[b"b"]));
        bytes.extend(encode(20, 1, 0, &[b"c"]));
        let found: Vec<_> = Scan::new(&bytes, 0, 10).collect();
        assert_eq!(found.len(), 3);
        assert_eq!(found[1].as_ref().unwrap().1.offset, 12);
        assert_eq!(
            found[2].as_ref().unwrap_err(),
            &(
                58,
                Damage::OffsetMismatch {
                    expected: 13,
                    found: 20
                }
            )
        );
    }

    #[test]
    fn segment_header_checks() {
        let header = encode_segment_header(99);
        assert_eq!(check_segment_header(&header, 99), Ok(()));
        assert_eq!(
            check_segment_header(&header, 98),
            Err(Damage::BaseMismatch {
                expected: 98,
                found: 99
            })
        );
        assert_eq!(
            check_segment_header(&header[..5], 99),
            Err(Damage::ShortHeader { need: 16, len: 5 })
        );
        let mut bad = header;
        bad[0] = b'X';
        assert_eq!(check_segment_header(&bad, 99), Err(Damage::BadMagic));
        let mut future = header;
        future[6] = 9;
        assert_eq!(
            check_segment_header(&future, 99),
            Err(Damage::UnsupportedVersion { found: 9 })
        );
    }
}
