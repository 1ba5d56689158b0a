//! AMQP 0-9-1 field tables and arrays in RabbitMQ's binary dialect, for header values that
//! have no natural text form (arrays and tables) when they travel as Kafka header bytes.
//!
//! ```text
//! table := u32 byte-length, then entries: u8 key-length | key | value
//! array := u32 byte-length, then values
//! value := u8 tag | payload
//!   t u8 (0/1)   b i8   B u8   s i16   u u16   I i32   i u32   l i64   f f32   d f64
//!   D u8 scale, u32 value   S u32 length | bytes   x u32 length | bytes
//!   A array   T u64 seconds   F table   V nothing
//! ```
//! All integers big-endian. This is the encoding the AMQP frontend speaks on the wire; the
//! core keeps its own small copy because a frontend's codec is not the core's to use.
//!
//! # Invariants
//! - Decoding checks every length against the bytes present before slicing and bounds
//!   nesting at [`MAX_DEPTH`]; hostile bytes fail with `None`, never a panic.

use bytes::{BufMut, Bytes};

use crate::message::{FieldTable, FieldValue};

/// Deepest nesting of tables and arrays accepted.
const MAX_DEPTH: usize = 64;

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
}

/// Appends `value` with its tag.
pub(crate) fn put_value(out: &mut Vec<u8>, value: &FieldValue) {
    match value {
        FieldValue::Bool(v) => {
            out.put_u8(b't');
            out.put_u8(u8::from(*v));
        }
        FieldValue::I8(v) => {
            out.put_u8(b'b');
            out.put_i8(*v);
        }
        FieldValue::U8(v) => {
            out.put_u8(b'B');
            out.put_u8(*v);
        }
        FieldValue::I16(v) => {
            out.put_u8(b's');
            out.put_i16(*v);
        }
        FieldValue::U16(v) => {
            out.put_u8(b'u');
            out.put_u16(*v);
        }
        FieldValue::I32(v) => {
            out.put_u8(b'I');
            out.put_i32(*v);
        }
        FieldValue::U32(v) => {
            out.put_u8(b'i');
            out.put_u32(*v);
        }
        FieldValue::I64(v) => {
            out.put_u8(b'l');
            out.put_i64(*v);
        }
        FieldValue::F32(v) => {
            out.put_u8(b'f');
            out.put_f32(*v);
        }
        FieldValue::F64(v) => {
            out.put_u8(b'd');
            out.put_f64(*v);
        }
        FieldValue::Decimal { scale, value } => {
            out.put_u8(b'D');
            out.put_u8(*scale);
            out.put_u32(*value);
        }
        FieldValue::LongString(bytes) => {
            out.put_u8(b'S');
            put_len(out, bytes.len());
            out.extend_from_slice(bytes);
        }
        FieldValue::ByteArray(bytes) => {
            out.put_u8(b'x');
            put_len(out, bytes.len());
            out.extend_from_slice(bytes);
        }
        FieldValue::Array(items) => {
            out.put_u8(b'A');
            put_array(out, items);
        }
        FieldValue::Timestamp(v) => {
            out.put_u8(b'T');
            out.put_u64(*v);
        }
        FieldValue::Table(table) => {
            out.put_u8(b'F');
            put_table(out, table);
        }
        FieldValue::Void => out.put_u8(b'V'),
    }
}

/// Appends the values of an array, length-prefixed (no tag).
pub(crate) fn put_array(out: &mut Vec<u8>, items: &[FieldValue]) {
    let at = out.len();
    out.put_u32(0);
    for item in items {
        put_value(out, item);
    }
    patch_len(out, at);
}

/// Appends a table, length-prefixed (no tag). Keys longer than a short string allows are
/// cut at a character boundary.
pub(crate) fn put_table(out: &mut Vec<u8>, table: &FieldTable) {
    let at = out.len();
    out.put_u32(0);
    for (key, value) in table.iter() {
        let key = short(key);
        out.put_u8(u8::try_from(key.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(key.as_bytes());
        put_value(out, value);
    }
    patch_len(out, at);
}

fn patch_len(out: &mut [u8], at: usize) {
    let len = out.len().saturating_sub(at + 4);
    if let Some(dst) = out.get_mut(at..at + 4) {
        dst.copy_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
}

/// `text` cut to at most 255 bytes at a character boundary (an AMQP short string).
pub(crate) fn short(text: &str) -> &str {
    if text.len() <= 255 {
        return text;
    }
    let mut cut = 255;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.get(..cut).unwrap_or_default()
}

/// A bounds-checked reader over encoded bytes.
struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.pos.checked_add(n)?;
        let slice = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    fn bytes(&mut self, n: usize) -> Option<Bytes> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len())?;
        let out = self.data.slice(self.pos..end);
        self.pos = end;
        Some(out)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        <[u8; N]>::try_from(self.take(N)?).ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.u32()?).ok()
    }

    fn value(&mut self, depth: usize) -> Option<FieldValue> {
        let tag = self.u8()?;
        Some(match tag {
            b't' => FieldValue::Bool(self.u8()? != 0),
            b'b' => FieldValue::I8(i8::from_be_bytes(self.array()?)),
            b'B' => FieldValue::U8(self.u8()?),
            b's' => FieldValue::I16(i16::from_be_bytes(self.array()?)),
            b'u' => FieldValue::U16(u16::from_be_bytes(self.array()?)),
            b'I' => FieldValue::I32(i32::from_be_bytes(self.array()?)),
            b'i' => FieldValue::U32(u32::from_be_bytes(self.array()?)),
            b'l' | b'L' => FieldValue::I64(i64::from_be_bytes(self.array()?)),
            b'f' => FieldValue::F32(f32::from_be_bytes(self.array()?)),
            b'd' => FieldValue::F64(f64::from_be_bytes(self.array()?)),
            b'D' => FieldValue::Decimal {
                scale: self.u8()?,
                value: self.u32()?,
            },
            b'S' => {
                let n = self.len()?;
                FieldValue::LongString(self.bytes(n)?)
            }
            b'x' => {
                let n = self.len()?;
                FieldValue::ByteArray(self.bytes(n)?)
            }
            b'A' => FieldValue::Array(self.array_body(depth + 1)?),
            b'T' => FieldValue::Timestamp(u64::from_be_bytes(self.array()?)),
            b'F' => FieldValue::Table(self.table_body(depth + 1)?),
            b'V' => FieldValue::Void,
            _ => return None,
        })
    }

    fn array_body(&mut self, depth: usize) -> Option<Vec<FieldValue>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let n = self.len()?;
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len())?;
        let mut items = Vec::new();
        while self.pos < end {
            items.push(self.value(depth)?);
        }
        (self.pos == end).then_some(items)
    }

    fn table_body(&mut self, depth: usize) -> Option<FieldTable> {
        if depth > MAX_DEPTH {
            return None;
        }
        let n = self.len()?;
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len())?;
        let mut table = FieldTable::new();
        while self.pos < end {
            let key_len = usize::from(self.u8()?);
            let key = String::from_utf8_lossy(self.take(key_len)?).into_owned();
            let value = self.value(depth)?;
            table.push(key, value);
        }
        (self.pos == end).then_some(table)
    }
}

/// Decodes a length-prefixed array that is exactly `data`.
pub(crate) fn decode_array(data: &Bytes) -> Option<Vec<FieldValue>> {
    let mut r = Reader { data, pos: 0 };
    let items = r.array_body(1)?;
    (r.pos == data.len()).then_some(items)
}

/// Decodes a length-prefixed table that is exactly `data`.
pub(crate) fn decode_table(data: &Bytes) -> Option<FieldTable> {
    let mut r = Reader { data, pos: 0 };
    let table = r.table_body(1)?;
    (r.pos == data.len()).then_some(table)
}

/// A table holding one value of every type (tests).
#[cfg(test)]
pub(crate) fn every_type() -> FieldTable {
    let mut inner = FieldTable::new();
    inner.push("n", FieldValue::I32(-7));
    let mut t = FieldTable::new();
    for (k, v) in [
        ("t", FieldValue::Bool(true)),
        ("b", FieldValue::I8(-1)),
        ("B", FieldValue::U8(255)),
        ("s", FieldValue::I16(-300)),
        ("u", FieldValue::U16(65535)),
        ("I", FieldValue::I32(i32::MIN)),
        ("i", FieldValue::U32(u32::MAX)),
        ("l", FieldValue::I64(i64::MIN)),
        ("f", FieldValue::F32(1.5)),
        ("d", FieldValue::F64(-0.25)),
        (
            "D",
            FieldValue::Decimal {
                scale: 2,
                value: 150,
            },
        ),
        ("S", FieldValue::string("text")),
        ("x", FieldValue::ByteArray(Bytes::from_static(b"\x00\xff"))),
        (
            "A",
            FieldValue::Array(vec![FieldValue::I32(1), FieldValue::string("a")]),
        ),
        ("T", FieldValue::Timestamp(1_700_000_000)),
        ("F", FieldValue::Table(inner)),
        ("V", FieldValue::Void),
    ] {
        t.push(k, v);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_arrays_round_trip() {
        let table = every_type();
        let mut out = Vec::new();
        put_table(&mut out, &table);
        let bytes = Bytes::from(out);
        assert_eq!(decode_table(&bytes), Some(table.clone()));
        for len in 0..bytes.len() {
            assert_eq!(decode_table(&bytes.slice(..len)), None, "prefix {len}");
        }
        let items = vec![FieldValue::Table(table), FieldValue::Void];
        let mut out = Vec::new();
        put_array(&mut out, &items);
        assert_eq!(decode_array(&Bytes::from(out)), Some(items));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut value = FieldValue::Void;
        for _ in 0..(MAX_DEPTH + 2) {
            value = FieldValue::Array(vec![value]);
        }
        let mut out = Vec::new();
        let FieldValue::Array(items) = value else {
            unreachable!()
        };
        put_array(&mut out, &items);
        assert_eq!(decode_array(&Bytes::from(out)), None);
    }
}
