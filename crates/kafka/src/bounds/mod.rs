//! A pre-flight walk over a request body that proves every length in it is plausible before
//! `kafka-protocol` decodes it.
//!
//! `kafka-protocol` 0.18 sizes each array with `Vec::with_capacity(count)` straight from the
//! wire. A 10-byte request claiming two billion elements would make the allocator abort the
//! whole broker. This module walks the same grammar (the request schemas of the APIs
//! ferrymq serves, in [`tables`]) without allocating, and refuses a body in which
//! - an array claims more elements than the remaining bytes could hold (each element has a
//!   minimum encoded size, computed from the schema),
//! - the `Vec` capacities the decoder would reserve add up to more than
//!   [`budget`] bytes,
//! - a string, byte array or skipped tagged field runs past the end.
//!
//! ```text
//! walk(api, version, body) ── Ok ──> kafka-protocol decode (its allocations are now bounded)
//!                          └─ Err ─> error response or close, nothing allocated
//! ```
//!
//! # Invariants
//! - The walk follows kafka-protocol's decoders exactly, including known tagged fields, which
//!   kafka-protocol reads from the main buffer regardless of their declared size. A test
//!   encodes requests of every supported version with kafka-protocol and checks the walk
//!   consumes each exactly.
//! - Nullability is not enforced here (a null where a value is required is the decoder's
//!   error to report); only sizes are.

mod tables;

pub(crate) use tables::schema;

/// Why a body was refused before decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    #[error("truncated request body: needed {need} more bytes at offset {at}, {have} left")]
    Truncated { at: usize, need: usize, have: usize },
    #[error(
        "array at offset {at} claims {count} elements of at least {min_size} bytes, only {have} bytes left"
    )]
    ImplausibleCount {
        at: usize,
        count: u64,
        min_size: usize,
        have: usize,
    },
    #[error("request would need more than {budget} bytes of decoded structures")]
    OverBudget { budget: usize },
    #[error("malformed varint at offset {at}")]
    Varint { at: usize },
    #[error("negative length {len} at offset {at}")]
    NegativeLength { at: usize, len: i32 },
    #[error("API key {api_key} has no request schema")]
    NoSchema { api_key: i16 },
}

/// What one field of a request struct looks like on the wire.
#[derive(Debug)]
pub(crate) enum Kind {
    /// Fixed-width: bool/int8 = 1, int16 = 2, int32 = 4, int64 = 8, uuid = 16.
    Fixed(usize),
    /// (Nullable) string: int16 length, or compact uvarint length + 1 in flexible versions.
    Str,
    /// (Nullable) bytes and records: int32 length, or compact in flexible versions.
    Bytes,
    /// A struct inline (only as a known tagged field).
    Struct(&'static [Field]),
    /// (Nullable) array; the `usize` is `size_of` the Rust element kafka-protocol builds.
    Array(Elem, usize),
}

/// The element of an array.
#[derive(Debug)]
pub(crate) enum Elem {
    Fixed(usize),
    Str,
    Struct(&'static [Field]),
}

/// A field present in versions `min..=max`; `tag` marks a known tagged field.
#[derive(Debug)]
pub(crate) struct Field {
    pub kind: Kind,
    pub min: i16,
    pub max: i16,
    pub tag: Option<u32>,
}

impl Field {
    fn present(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

/// A request schema: its fields and the first flexible version (`i16::MAX`: none).
#[derive(Debug)]
pub(crate) struct Schema {
    pub fields: &'static [Field],
    pub flexible_from: i16,
}

/// The most memory the decoded structures of a request of `frame_len` bytes may reserve.
///
/// Legitimate requests decode to a few times their wire size (`Vec<T>` elements are larger
/// than their encodings); sixteen times plus a megabyte leaves ample room for those and caps
/// what a hostile one can make the decoder reserve.
pub fn budget(frame_len: usize) -> usize {
    frame_len.saturating_mul(16).saturating_add(1 << 20)
}

/// Walks `body` as request `api_key` at `version`. Returns the number of bytes the decoder
/// will consume.
pub fn walk(api_key: i16, version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    let schema = schema(api_key).ok_or(BoundsError::NoSchema { api_key })?;
    walk_schema(schema, version, body)
}

/// Walks `body` as a consumer-protocol subscription (the member metadata of `consumer`
/// groups) at `version`, which the metadata's first two bytes carry.
pub fn walk_subscription(version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    walk_schema(&tables::CONSUMER_SUBSCRIPTION, version, body)
}

fn walk_schema(schema: &'static Schema, version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    let mut walker = Walker {
        buf: body,
        pos: 0,
        version,
        flexible: version >= schema.flexible_from,
        reserved: 0,
        budget: budget(body.len()),
    };
    walker.walk_struct(schema.fields)?;
    Ok(walker.pos)
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
    reserved: usize,
    budget: usize,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], BoundsError> {
        let have = self.remaining();
        let end = self.pos.checked_add(n).filter(|_| n <= have);
        let Some(end) = end else {
            return Err(BoundsError::Truncated {
                at: self.pos,
                need: n,
                have,
            });
        };
        let out = self.buf.get(self.pos..end).ok_or(BoundsError::Truncated {
            at: self.pos,
            need: n,
            have,
        })?;
        self.pos = end;
        Ok(out)
    }

    fn int(&mut self, width: usize) -> Result<i64, BoundsError> {
        let bytes = self.take(width)?;
        let mut value: i64 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
            -1
        } else {
            0
        };
        for b in bytes {
            value = (value << 8) | i64::from(*b);
        }
        Ok(value)
    }

    /// An unsigned varint as kafka-protocol reads it: at most five bytes, 32 bits.
    fn uvarint(&mut self) -> Result<u32, BoundsError> {
        let at = self.pos;
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = *self.take(1)?.first().ok_or(BoundsError::Varint { at })?;
            let bits = u32::from(byte & 0x7f);
            if shift == 28 && bits > 0x0f {
                return Err(BoundsError::Varint { at });
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BoundsError::Varint { at })
    }

    /// A length prefix: `None` for null, else the length.
    fn length(&mut self, non_flexible_width: usize) -> Result<Option<usize>, BoundsError> {
        let at = self.pos;
        if self.flexible {
            let n = self.uvarint()?;
            return Ok(n.checked_sub(1).map(|n| n as usize));
        }
        let n = self.int(non_flexible_width)?;
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(BoundsError::NegativeLength {
                at,
                len: i32::try_from(n).unwrap_or(i32::MIN),
            }),
            n => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        }
    }

    fn walk_struct(&mut self, fields: &'static [Field]) -> Result<(), BoundsError> {
        let version = self.version;
        for field in fields
            .iter()
            .filter(|f| f.tag.is_none() && f.present(version))
        {
            self.walk_kind(&field.kind)?;
        }
        if self.flexible {
            self.walk_tagged(fields)?;
        }
        Ok(())
    }

    fn walk_tagged(&mut self, fields: &'static [Field]) -> Result<(), BoundsError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let known = fields
                .iter()
                .find(|f| f.tag == Some(tag) && f.present(self.version));
            match known {
                // kafka-protocol decodes a known tag from the stream, ignoring `size`.
                Some(field) => self.walk_kind(&field.kind)?,
                None => {
                    self.take(size)?;
                }
            }
        }
        Ok(())
    }

    fn walk_kind(&mut self, kind: &'static Kind) -> Result<(), BoundsError> {
        match kind {
            Kind::Fixed(width) => {
                self.take(*width)?;
            }
            Kind::Str => {
                if let Some(n) = self.length(2)? {
                    self.take(n)?;
                }
            }
            Kind::Bytes => {
                if let Some(n) = self.length(4)? {
                    self.take(n)?;
                }
            }
            Kind::Struct(fields) => self.walk_struct(fields)?,
            Kind::Array(elem, rust_size) => self.walk_array(elem, *rust_size)?,
        }
        Ok(())
    }

    fn walk_array(&mut self, elem: &'static Elem, rust_size: usize) -> Result<(), BoundsError> {
        let at = self.pos;
        let Some(count) = self.length(4)? else {
            return Ok(());
        };
        let min_size = self.min_elem_size(elem).max(1);
        let have = self.remaining();
        if count.saturating_mul(min_size) > have {
            return Err(BoundsError::ImplausibleCount {
                at,
                count: count as u64,
                min_size,
                have,
            });
        }
        self.reserved = self
            .reserved
            .saturating_add(count.saturating_mul(rust_size));
        if self.reserved > self.budget {
            return Err(BoundsError::OverBudget {
                budget: self.budget,
            });
        }
        for _ in 0..count {
            match elem {
                Elem::Fixed(width) => {
                    self.take(*width)?;
                }
                Elem::Str => self.walk_kind(&Kind::Str)?,
                Elem::Struct(fields) => self.walk_struct(fields)?,
            }
        }
        Ok(())
    }

    fn min_elem_size(&self, elem: &Elem) -> usize {
        match elem {
            Elem::Fixed(width) => *width,
            Elem::Str => self.min_kind_size(&Kind::Str),
            Elem::Struct(fields) => self.min_struct_size(fields),
        }
    }

    fn min_struct_size(&self, fields: &[Field]) -> usize {
        let body: usize = fields
            .iter()
            .filter(|f| f.tag.is_none() && f.present(self.version))
            .map(|f| self.min_kind_size(&f.kind))
            .sum();
        body + usize::from(self.flexible)
    }

    fn min_kind_size(&self, kind: &Kind) -> usize {
        match (kind, self.flexible) {
            (Kind::Fixed(width), _) => *width,
            (Kind::Str | Kind::Bytes | Kind::Array(..), true) => 1,
            (Kind::Str, false) => 2,
            (Kind::Bytes | Kind::Array(..), false) => 4,
            (Kind::Struct(fields), _) => self.min_struct_size(fields),
        }
    }
}

#[cfg(test)]
mod tests;
