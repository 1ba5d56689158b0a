//! The three record formats of a durable queue: a message, its index entry, and the items of
//! the acknowledgement journal. All integers little-endian.
//!
//! Message (one `messages/` log entry, span 1; the entry timestamp is the enqueue time):
//!
//! ```text
//! 0     1  flags: bit 0 persistent, bit 1 has an expiry
//! 1     1  priority level in the queue
//! 2     8  expiry, ms since the Unix epoch (i64; 0 without one)
//! 10    2  exchange length e, then e bytes of UTF-8
//! ..    2  routing key length r, then r bytes of UTF-8
//! ..    4  properties length p, then p bytes: the AMQP 0-9-1 basic property flags and list
//!          (`message::wire`), as the publisher sent them when the message is unchanged
//! ..       body: the rest of the entry
//! ```
//!
//! Index (one `index/` log entry spans n offsets, aligned with the message log; its payload
//! is n slots of 8 bytes, or empty for a hole whose messages must be read to be known):
//!
//! ```text
//! 0  4  body size
//! 4  1  priority level
//! 5  1  flags (as in the message)
//! 6  2  reserved, 0
//! ```
//!
//! Acknowledgement journal (one `acks/` log entry holds one or more items):
//!
//! ```text
//! 1 acked      u32 n, then n x (start u64, end u64): these offsets left the queue for good
//! 2 delivered  u8 level, u64 upto: every offset of that level below upto was delivered
//! 3 below      u64 offset: every offset below it left the queue
//! ```
//! Items only ever add knowledge (a set union and maxima), so replaying any prefix of the
//! journal, or old items followed by part of a snapshot, gives a state that was true.

use bytes::{BufMut, Bytes, BytesMut};

use crate::message::wire::{Reader, decode_properties, encode_properties};
use crate::message::{Message, Properties};

const FLAG_PERSISTENT: u8 = 1;
const FLAG_EXPIRES: u8 = 2;
const MESSAGE_FIXED: usize = 10;
pub(crate) const INDEX_SLOT: usize = 8;

const ITEM_ACKED: u8 = 1;
const ITEM_DELIVERED: u8 = 2;
const ITEM_BELOW: u8 = 3;

/// Per-message facts the index keeps so recovery never reads message bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Info {
    pub(crate) body_size: u32,
    pub(crate) level: u8,
    pub(crate) persistent: bool,
}

impl Info {
    pub(crate) fn encode(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.body_size.to_le_bytes());
        out.push(self.level);
        out.push(if self.persistent { FLAG_PERSISTENT } else { 0 });
        out.extend_from_slice(&[0, 0]);
    }

    /// The slot at `index` of an index entry's payload.
    pub(crate) fn decode_slot(payload: &[u8], index: usize) -> Option<Info> {
        let start = index.checked_mul(INDEX_SLOT)?;
        let slot = payload.get(start..start.checked_add(INDEX_SLOT)?)?;
        let (size, rest) = slot.split_first_chunk::<4>()?;
        let (&[level, flags], _) = rest.split_first_chunk::<2>()?;
        Some(Info {
            body_size: u32::from_le_bytes(*size),
            level,
            persistent: flags & FLAG_PERSISTENT != 0,
        })
    }
}

/// A message as read back from the log.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) level: u8,
    pub(crate) expires_ms: Option<i64>,
    pub(crate) message: Message,
}

/// Why a stored record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed queue record: {reason}")]
pub(crate) struct RecordError {
    pub(crate) reason: String,
}

fn malformed(reason: impl Into<String>) -> RecordError {
    RecordError {
        reason: reason.into(),
    }
}

/// The parts of a message record, for a vectored append (the body is not copied).
pub(crate) struct Encoded {
    pub(crate) head: Vec<u8>,
    pub(crate) properties: Bytes,
}

/// Encodes everything but the body; `None` if a name is too long to store.
pub(crate) fn encode_message(
    message: &Message,
    level: u8,
    persistent: bool,
    expires_ms: Option<i64>,
) -> Option<Encoded> {
    let properties = match &message.encoded_properties {
        Some(raw) => raw.clone(),
        None => {
            let mut out = BytesMut::new();
            encode_properties(&message.properties, &mut out);
            out.freeze()
        }
    };
    let exchange = u16::try_from(message.exchange.len()).ok()?;
    let key = u16::try_from(message.routing_key.len()).ok()?;
    let props = u32::try_from(properties.len()).ok()?;
    let mut head = Vec::with_capacity(MESSAGE_FIXED + 8 + message.exchange.len() + 64);
    let mut flags = 0;
    if persistent {
        flags |= FLAG_PERSISTENT;
    }
    if expires_ms.is_some() {
        flags |= FLAG_EXPIRES;
    }
    head.push(flags);
    head.push(level);
    head.extend_from_slice(&expires_ms.unwrap_or(0).to_le_bytes());
    head.extend_from_slice(&exchange.to_le_bytes());
    head.extend_from_slice(message.exchange.as_bytes());
    head.extend_from_slice(&key.to_le_bytes());
    head.extend_from_slice(message.routing_key.as_bytes());
    head.extend_from_slice(&props.to_le_bytes());
    Some(Encoded { head, properties })
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| malformed("length overflow"))?;
        let out = self.data.get(self.pos..end).ok_or_else(|| {
            malformed(format!(
                "need {n} bytes at {}, have {}",
                self.pos,
                self.data.len()
            ))
        })?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn text(&mut self) -> Result<&'a str, RecordError> {
        let len = usize::from(u16::from_le_bytes(self.array()?));
        std::str::from_utf8(self.take(len)?).map_err(|_| malformed("name is not UTF-8"))
    }
}

/// The header fields and where the properties and body lie in `payload`.
struct Layout<'a> {
    flags: u8,
    level: u8,
    expires: i64,
    exchange: &'a str,
    routing_key: &'a str,
    properties: (usize, usize),
    body_start: usize,
}

fn layout(payload: &[u8]) -> Result<Layout<'_>, RecordError> {
    let mut c = Cursor {
        data: payload,
        pos: 0,
    };
    let [flags, level] = c.array()?;
    let expires = i64::from_le_bytes(c.array()?);
    let exchange = c.text()?;
    let routing_key = c.text()?;
    let props_len = usize::try_from(u32::from_le_bytes(c.array()?))
        .map_err(|_| malformed("properties length"))?;
    let props_start = c.pos;
    c.take(props_len)?;
    Ok(Layout {
        flags,
        level,
        expires,
        exchange,
        routing_key,
        properties: (props_start, props_start + props_len),
        body_start: c.pos,
    })
}

/// Reads only what the index needs (recovery of a tail the index lacks).
pub(crate) fn peek(payload: &[u8]) -> Result<Info, RecordError> {
    let l = layout(payload)?;
    let body = payload.len() - l.body_start;
    Ok(Info {
        body_size: u32::try_from(body).map_err(|_| malformed("body too large"))?,
        level: l.level,
        persistent: l.flags & FLAG_PERSISTENT != 0,
    })
}

/// Decodes a whole message; the body and the property bytes are views of `payload`.
pub(crate) fn decode_message(payload: &Bytes) -> Result<Stored, RecordError> {
    let l = layout(payload)?;
    let raw = payload.slice(l.properties.0..l.properties.1);
    let properties: Properties = decode_properties(&mut Reader::new(raw.clone()))
        .map_err(|e| malformed(format!("properties: {e}")))?;
    Ok(Stored {
        level: l.level,
        expires_ms: (l.flags & FLAG_EXPIRES != 0).then_some(l.expires),
        message: Message {
            exchange: l.exchange.to_owned(),
            routing_key: l.routing_key.to_owned(),
            properties,
            encoded_properties: Some(raw),
            body: payload.slice(l.body_start..),
        },
    })
}

/// One item of the acknowledgement journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    Acked(Vec<(u64, u64)>),
    Delivered { level: u8, upto: u64 },
    Below(u64),
}

impl Item {
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        match self {
            Item::Acked(ranges) => {
                out.put_u8(ITEM_ACKED);
                out.put_u32_le(u32::try_from(ranges.len()).unwrap_or(u32::MAX));
                for (start, end) in ranges.iter().take(u32::MAX as usize) {
                    out.put_u64_le(*start);
                    out.put_u64_le(*end);
                }
            }
            Item::Delivered { level, upto } => {
                out.put_u8(ITEM_DELIVERED);
                out.put_u8(*level);
                out.put_u64_le(*upto);
            }
            Item::Below(offset) => {
                out.put_u8(ITEM_BELOW);
                out.put_u64_le(*offset);
            }
        }
    }

    /// Every item of one journal entry.
    pub(crate) fn decode_all(payload: &[u8]) -> Result<Vec<Item>, RecordError> {
        let mut c = Cursor {
            data: payload,
            pos: 0,
        };
        let mut items = Vec::new();
        while c.pos < payload.len() {
            let [tag] = c.array()?;
            items.push(match tag {
                ITEM_ACKED => {
                    let n = usize::try_from(u32::from_le_bytes(c.array()?))
                        .map_err(|_| malformed("range count"))?;
                    // Bounded by the bytes present before anything is allocated.
                    if n.saturating_mul(16) > payload.len() - c.pos {
                        return Err(malformed(format!("{n} ranges do not fit")));
                    }
                    let mut ranges = Vec::with_capacity(n);
                    for _ in 0..n {
                        let start = u64::from_le_bytes(c.array()?);
                        let end = u64::from_le_bytes(c.array()?);
                        if start >= end {
                            return Err(malformed("empty range"));
                        }
                        ranges.push((start, end));
                    }
                    Item::Acked(ranges)
                }
                ITEM_DELIVERED => {
                    let [level] = c.array()?;
                    Item::Delivered {
                        level,
                        upto: u64::from_le_bytes(c.array()?),
                    }
                }
                ITEM_BELOW => Item::Below(u64::from_le_bytes(c.array()?)),
                other => return Err(malformed(format!("unknown journal item {other}"))),
            });
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{FieldTable, FieldValue};

    fn sample() -> Message {
        let mut headers = FieldTable::new();
        headers.push("h", FieldValue::I32(7));
        Message::new(
            "orders",
            "eu.new",
            Properties {
                delivery_mode: Some(2),
                headers: Some(headers),
                ..Properties::default()
            },
            Bytes::from_static(b"body bytes"),
        )
    }

    fn record(message: &Message, expires: Option<i64>) -> Bytes {
        let encoded = encode_message(message, 3, true, expires).unwrap();
        let mut out = encoded.head.clone();
        out.extend_from_slice(&encoded.properties);
        out.extend_from_slice(&message.body);
        Bytes::from(out)
    }

    #[test]
    fn messages_round_trip_with_their_property_bytes() {
        let message = sample();
        let bytes = record(&message, Some(1_700_000_000_123));
        let stored = decode_message(&bytes).unwrap();
        assert_eq!(stored.level, 3);
        assert_eq!(stored.expires_ms, Some(1_700_000_000_123));
        assert_eq!(stored.message.properties, message.properties);
        assert_eq!(stored.message.exchange, "orders");
        assert_eq!(stored.message.routing_key, "eu.new");
        assert_eq!(stored.message.body, message.body);
        let info = peek(&bytes).unwrap();
        assert_eq!(
            info,
            Info {
                body_size: 10,
                level: 3,
                persistent: true
            }
        );
        assert_eq!(
            decode_message(&record(&message, None)).unwrap().expires_ms,
            None
        );

        // Bytes the publisher sent are stored and given back unchanged.
        let mut raw = message.clone();
        raw.encoded_properties = Some(Bytes::from_static(&[0x10, 0x00, 2]));
        let back = decode_message(&record(&raw, None)).unwrap();
        assert_eq!(
            back.message.encoded_properties.as_deref(),
            Some(&[0x10, 0x00, 2][..])
        );
        assert_eq!(back.message.properties.delivery_mode, Some(2));
    }

    #[test]
    fn every_prefix_of_a_header_fails_cleanly() {
        let bytes = record(&sample(), None);
        let body_start = bytes.len() - sample().body.len();
        for cut in 0..body_start {
            assert!(decode_message(&bytes.slice(..cut)).is_err(), "prefix {cut}");
            assert!(peek(&bytes[..cut]).is_err(), "prefix {cut}");
        }
    }

    #[test]
    fn index_slots_round_trip() {
        let mut payload = Vec::new();
        let a = Info {
            body_size: 1024,
            level: 0,
            persistent: true,
        };
        let b = Info {
            body_size: 0,
            level: 9,
            persistent: false,
        };
        a.encode(&mut payload);
        b.encode(&mut payload);
        assert_eq!(Info::decode_slot(&payload, 0), Some(a));
        assert_eq!(Info::decode_slot(&payload, 1), Some(b));
        assert_eq!(Info::decode_slot(&payload, 2), None);
        assert_eq!(Info::decode_slot(&payload[..12], 1), None);
    }

    #[test]
    fn journal_items_round_trip_and_refuse_damage() {
        let items = [
            Item::Acked(vec![(0, 5), (9, 10)]),
            Item::Delivered { level: 2, upto: 77 },
            Item::Below(3),
        ];
        let mut out = BytesMut::new();
        for item in &items {
            item.encode(&mut out);
        }
        assert_eq!(Item::decode_all(&out).unwrap(), items);
        let full = out.freeze();
        for cut in 1..full.len() {
            // A cut inside an item fails; a cut between items decodes the items before it.
            if let Ok(decoded) = Item::decode_all(&full[..cut]) {
                assert!(items.starts_with(&decoded), "cut {cut}");
            }
        }
        assert!(Item::decode_all(&[9]).is_err());
        assert!(Item::decode_all(&[ITEM_ACKED, 255, 255, 255, 255]).is_err());
        assert!(
            Item::decode_all(&[
                ITEM_ACKED, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0
            ])
            .is_err()
        );
    }
}
