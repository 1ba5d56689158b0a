//! How one definition change is laid out in a journal entry.
//!
//! ```text
//! 0    1  op: 1 = put, 2 = remove
//! 1    1  kind (see `Kind`)
//! 2    2  key length k, u16 LE
//! 4    k  key, UTF-8
//! 4+k  .. value (put only): opaque bytes owned by the subsystem of that kind
//! ```

use bytes::Bytes;

/// What a definition describes. The numbers are on disk: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Kind {
    Vhost = 1,
    User = 2,
    Exchange = 3,
    Queue = 4,
    Binding = 5,
    Stream = 6,
    /// Broker-wide settings and counters (e.g. the next producer id block).
    Setting = 7,
    /// A user's configure/write/read patterns on one vhost (key `vhost \0 user`).
    Permission = 8,
    /// A user's write/read patterns for routing keys of one topic exchange
    /// (key `vhost \0 user \0 exchange`).
    TopicPermission = 9,
    /// A Kafka ACL (key: its fields, `\0`-separated; value: the binding as JSON).
    Acl = 10,
    /// A transactional id's state (in the transaction coordinator's own journal).
    Transaction = 11,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Vhost,
        Kind::User,
        Kind::Exchange,
        Kind::Queue,
        Kind::Binding,
        Kind::Stream,
        Kind::Setting,
        Kind::Permission,
        Kind::TopicPermission,
        Kind::Acl,
        Kind::Transaction,
    ];

    fn from_byte(byte: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| *kind as u8 == byte)
    }
}

const OP_PUT: u8 = 1;
const OP_REMOVE: u8 = 2;
pub(super) const HEADER_LEN: usize = 4;

/// A decoded journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    Put {
        kind: Kind,
        key: String,
        value: Bytes,
    },
    Remove {
        kind: Kind,
        key: String,
    },
}

/// The fixed header of a record; the key and value follow it as separate parts.
pub(super) fn header(put: bool, kind: Kind, key: &str) -> Option<[u8; HEADER_LEN]> {
    let len = u16::try_from(key.len()).ok()?;
    let [lo, hi] = len.to_le_bytes();
    let op = if put { OP_PUT } else { OP_REMOVE };
    Some([op, kind as u8, lo, hi])
}

/// Decodes one record; `None` if it is not one this build wrote.
pub(super) fn decode(payload: &Bytes) -> Option<Record> {
    let (&[op, kind, lo, hi], rest) = payload.split_first_chunk::<HEADER_LEN>()?;
    let kind = Kind::from_byte(kind)?;
    let key_len = usize::from(u16::from_le_bytes([lo, hi]));
    let key = rest.get(..key_len)?;
    let key = std::str::from_utf8(key).ok()?.to_owned();
    match op {
        OP_PUT => Some(Record::Put {
            kind,
            key,
            value: payload.slice(HEADER_LEN + key_len..),
        }),
        OP_REMOVE if rest.len() == key_len => Some(Record::Remove { kind, key }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(put: bool, kind: Kind, key: &str, value: &[u8]) -> Bytes {
        let mut out = header(put, kind, key).unwrap().to_vec();
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(value);
        Bytes::from(out)
    }

    #[test]
    fn records_round_trip() {
        let put = encode(true, Kind::Queue, "/\0orders", b"{\"durable\":true}");
        assert_eq!(
            decode(&put),
            Some(Record::Put {
                kind: Kind::Queue,
                key: "/\0orders".into(),
                value: Bytes::from_static(b"{\"durable\":true}"),
            })
        );
        let remove = encode(false, Kind::Binding, "k", b"");
        assert_eq!(
            decode(&remove),
            Some(Record::Remove {
                kind: Kind::Binding,
                key: "k".into()
            })
        );
    }

    #[test]
    fn damaged_records_are_refused_not_misread() {
        let put = encode(true, Kind::Exchange, "name", b"v");
        for cut in 0..HEADER_LEN + 4 {
            assert_eq!(decode(&put.slice(..cut)), None, "prefix of {cut} bytes");
        }
        assert_eq!(decode(&encode(false, Kind::User, "u", b"junk")), None);
        assert_eq!(decode(&Bytes::from_static(&[9, 1, 0, 0])), None);
        assert_eq!(decode(&Bytes::from_static(&[1, 99, 0, 0])), None);
        assert!(header(true, Kind::Vhost, &"x".repeat(70_000)).is_none());
    }
}
