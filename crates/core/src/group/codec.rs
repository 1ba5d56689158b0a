//! Records of the `meta/offsets` log: committed offsets and group metadata, one per entry.
//!
//! ```text
//! record       := kind u8 | body
//! kind 1 commit:  group str | topic str | partition i32 | offset i64 | leader_epoch i32
//!                 | commit_ms i64 | metadata nstr
//! kind 2 delete offset: group str | topic str | partition i32
//! kind 3 group:   group str | protocol_type nstr | generation i32 | protocol nstr | leader nstr
//!                 | state_ms i64 | count u32 | member*
//!        member:  member_id str | instance_id nstr | client_id str | client_host str
//!                 | rebalance_timeout i32 | session_timeout i32 | metadata bytes | assignment bytes
//! kind 4 delete group: group str
//! str  := len u16 | utf-8        nstr := len u16 (0xFFFF = null) | utf-8
//! bytes := len u32 | bytes
//! ```
//! A later record for the same key supersedes an earlier one; deletions are tombstones.
//!
//! # Invariants
//! - [`decode`] checks every length against the remaining bytes; a damaged record is an error,
//!   never a panic. (The log checksums entries; this guards against format bugs too.)

use bytes::Bytes;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_ms: i64,
}

/// A member as persisted with its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata as persisted after each completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub protocol_type: Option<String>,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_ms: i64,
    pub members: Vec<StoredMember>,
}

/// One record of the offsets log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaRecord {
    Commit {
        group: String,
        topic: String,
        partition: i32,
        value: CommittedOffset,
    },
    DeleteOffset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
        value: StoredGroup,
    },
    DeleteGroup {
        group: String,
    },
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("string of {len} bytes is longer than 65534")]
    TooLong { len: usize },
    #[error("record truncated at byte {at}")]
    Truncated { at: usize },
    #[error("unknown record kind {kind}")]
    Kind { kind: u8 },
    #[error("invalid UTF-8 at byte {at}")]
    Utf8 { at: usize },
    #[error("{extra} bytes after the record")]
    Trailing { extra: usize },
}

struct Writer(Vec<u8>);

impl Writer {
    fn str(&mut self, s: &str) -> Result<(), CodecError> {
        let len = u16::try_from(s.len())
            .ok()
            .filter(|l| *l != u16::MAX)
            .ok_or(CodecError::TooLong { len: s.len() })?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn nstr(&mut self, s: Option<&str>) -> Result<(), CodecError> {
        match s {
            Some(s) => self.str(s),
            None => {
                self.0.extend_from_slice(&u16::MAX.to_be_bytes());
                Ok(())
            }
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0
            .extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.0.extend_from_slice(b);
    }

    fn put(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
}

/// Encodes a record.
pub fn encode(record: &MetaRecord) -> Result<Vec<u8>, CodecError> {
    let mut w = Writer(Vec::with_capacity(64));
    match record {
        MetaRecord::Commit {
            group,
            topic,
            partition,
            value,
        } => {
            w.put(&[1]);
            w.str(group)?;
            w.str(topic)?;
            w.put(&partition.to_be_bytes());
            w.put(&value.offset.to_be_bytes());
            w.put(&value.leader_epoch.to_be_bytes());
            w.put(&value.commit_ms.to_be_bytes());
            w.nstr(value.metadata.as_deref())?;
        }
        MetaRecord::DeleteOffset {
            group,
            topic,
            partition,
        } => {
            w.put(&[2]);
            w.str(group)?;
            w.str(topic)?;
            w.put(&partition.to_be_bytes());
        }
        MetaRecord::Group { group, value } => {
            w.put(&[3]);
            w.str(group)?;
            w.nstr(value.protocol_type.as_deref())?;
            w.put(&value.generation.to_be_bytes());
            w.nstr(value.protocol.as_deref())?;
            w.nstr(value.leader.as_deref())?;
            w.put(&value.state_ms.to_be_bytes());
            w.put(
                &u32::try_from(value.members.len())
                    .unwrap_or(u32::MAX)
                    .to_be_bytes(),
            );
            for m in &value.members {
                w.str(&m.member_id)?;
                w.nstr(m.instance_id.as_deref())?;
                w.str(&m.client_id)?;
                w.str(&m.client_host)?;
                w.put(&m.rebalance_timeout_ms.to_be_bytes());
                w.put(&m.session_timeout_ms.to_be_bytes());
                w.bytes(&m.metadata);
                w.bytes(&m.assignment);
            }
        }
        MetaRecord::DeleteGroup { group } => {
            w.put(&[4]);
            w.str(group)?;
        }
    }
    Ok(w.0)
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.buf.len());
        let out = end
            .and_then(|end| self.buf.get(self.at..end))
            .ok_or(CodecError::Truncated { at: self.at })?;
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn i32(&mut self) -> Result<i32, CodecError> {
        self.array().map(i32::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, CodecError> {
        self.array().map(i64::from_be_bytes)
    }

    fn nstr(&mut self) -> Result<Option<String>, CodecError> {
        let len = u16::from_be_bytes(self.array()?);
        if len == u16::MAX {
            return Ok(None);
        }
        let at = self.at;
        let raw = self.take(usize::from(len))?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| CodecError::Utf8 { at })
    }

    fn str(&mut self) -> Result<String, CodecError> {
        let at = self.at;
        self.nstr()?.ok_or(CodecError::Utf8 { at })
    }

    fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let len = u32::from_be_bytes(self.array()?);
        self.take(usize::try_from(len).unwrap_or(usize::MAX))
            .map(Bytes::copy_from_slice)
    }
}

/// Decodes a record.
pub fn decode(buf: &[u8]) -> Result<MetaRecord, CodecError> {
    let mut r = Reader { buf, at: 0 };
    let [kind] = r.array::<1>()?;
    let record = match kind {
        1 => MetaRecord::Commit {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
            value: CommittedOffset {
                offset: r.i64()?,
                leader_epoch: r.i32()?,
                commit_ms: r.i64()?,
                metadata: r.nstr()?,
            },
        },
        2 => MetaRecord::DeleteOffset {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        },
        3 => {
            let group = r.str()?;
            let protocol_type = r.nstr()?;
            let generation = r.i32()?;
            let protocol = r.nstr()?;
            let leader = r.nstr()?;
            let state_ms = r.i64()?;
            let count = u32::from_be_bytes(r.array()?);
            // Each member takes at least 24 bytes: bound the reservation by what is there.
            let room = (buf.len() - r.at) / 24;
            let mut members = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(room));
            for _ in 0..count {
                members.push(StoredMember {
                    member_id: r.str()?,
                    instance_id: r.nstr()?,
                    client_id: r.str()?,
                    client_host: r.str()?,
                    rebalance_timeout_ms: r.i32()?,
                    session_timeout_ms: r.i32()?,
                    metadata: r.bytes()?,
                    assignment: r.bytes()?,
                });
            }
            let value = StoredGroup {
                protocol_type,
                generation,
                protocol,
                leader,
                state_ms,
                members,
            };
            MetaRecord::Group { group, value }
        }
        4 => MetaRecord::DeleteGroup { group: r.str()? },
        kind => return Err(CodecError::Kind { kind }),
    };
    if r.at != buf.len() {
        return Err(CodecError::Trailing {
            extra: buf.len() - r.at,
        });
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<MetaRecord> {
        vec![
            MetaRecord::Commit {
                group: "g".into(),
                topic: "orders".into(),
                partition: 3,
                value: CommittedOffset {
                    offset: 42,
                    leader_epoch: -1,
                    metadata: None,
                    commit_ms: 7,
                },
            },
            MetaRecord::DeleteOffset {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
            },
            MetaRecord::Group {
                group: "g".into(),
                value: StoredGroup {
                    protocol_type: Some("consumer".into()),
                    generation: 5,
                    protocol: Some("range".into()),
                    leader: Some("m-1".into()),
                    state_ms: 99,
                    members: vec![StoredMember {
                        member_id: "m-1".into(),
                        instance_id: Some("i-1".into()),
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        rebalance_timeout_ms: 300_000,
                        session_timeout_ms: 45_000,
                        metadata: Bytes::from_static(b"meta"),
                        assignment: Bytes::from_static(b"assign"),
                    }],
                },
            },
            MetaRecord::DeleteGroup {
                group: "日本".into(),
            },
        ]
    }

    #[test]
    fn records_round_trip() {
        for record in samples() {
            assert_eq!(decode(&encode(&record).unwrap()).unwrap(), record);
        }
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_an_error() {
        for record in samples() {
            let bytes = encode(&record).unwrap();
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "{record:?} cut at {cut}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert_eq!(decode(&long), Err(CodecError::Trailing { extra: 1 }));
        }
        assert_eq!(decode(&[9]), Err(CodecError::Kind { kind: 9 }));
    }

    #[test]
    fn overlong_strings_are_refused() {
        let record = MetaRecord::DeleteGroup {
            group: "x".repeat(70_000),
        };
        assert_eq!(encode(&record), Err(CodecError::TooLong { len: 70_000 }));
    }
}
