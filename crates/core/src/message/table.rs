//! Field tables and field values: the typed header model every protocol maps onto.
//!
//! A [`FieldTable`] keeps its entries in the order they were received and allows what the
//! AMQP wire allows (duplicate keys included), so a table that is only read and passed on
//! loses nothing. Lookups return the first entry with a key, as RabbitMQ does.

use bytes::Bytes;

/// One value in a field table or array: every type RabbitMQ accepts on the wire.
///
/// The type letters are RabbitMQ's (see its AMQP 0-9-1 errata), not the 0-9-1 spec's:
///
/// ```text
/// t bool   b i8   B u8   s i16   u u16   I i32   i u32   l/L i64   f f32   d f64
/// D decimal (scale u8, value u32)   S long string   x byte array   A array
/// T timestamp (u64 seconds)   F table   V void
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal {
        scale: u8,
        value: u32,
    },
    /// `S`: a long string. Bytes, not text: RabbitMQ clients put binary data here.
    LongString(Bytes),
    /// `x`: RabbitMQ's byte array.
    ByteArray(Bytes),
    Array(Vec<FieldValue>),
    Timestamp(u64),
    Table(FieldTable),
    Void,
}

impl FieldValue {
    /// A long string value from text.
    pub fn string(text: impl Into<String>) -> Self {
        Self::LongString(Bytes::from(text.into()))
    }

    /// The value as an integer, for any integer type (RabbitMQ accepts any of them for
    /// numeric arguments such as `x-max-length`).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::I8(v) => Some(i64::from(v)),
            Self::U8(v) => Some(i64::from(v)),
            Self::I16(v) => Some(i64::from(v)),
            Self::U16(v) => Some(i64::from(v)),
            Self::I32(v) => Some(i64::from(v)),
            Self::U32(v) => Some(i64::from(v)),
            Self::I64(v) => Some(v),
            Self::Timestamp(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as text when it is a long string holding UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::LongString(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// Equality as Erlang's `==` sees it, which is what RabbitMQ's headers exchange and
    /// argument checks use: integers of different widths compare by value, and an integer
    /// equals a float of the same value; strings compare by bytes.
    pub fn loosely_eq(&self, other: &Self) -> bool {
        match (self.as_number(), other.as_number()) {
            (Some(a), Some(b)) => a == b,
            (None, None) => match (self, other) {
                (
                    Self::LongString(a) | Self::ByteArray(a),
                    Self::LongString(b) | Self::ByteArray(b),
                ) => a == b,
                (Self::Array(a), Self::Array(b)) => {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.loosely_eq(y))
                }
                (Self::Table(a), Self::Table(b)) => a.loosely_eq(b),
                _ => self == other,
            },
            _ => false,
        }
    }

    fn as_number(&self) -> Option<Number> {
        match *self {
            Self::F32(v) => Some(Number::Float(f64::from(v))),
            Self::F64(v) => Some(Number::Float(v)),
            _ => self.as_i64().map(Number::Int),
        }
    }

    /// RabbitMQ's name for the value's type, as it appears in its error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Bool(_) => "bool",
            Self::I8(_) => "byte",
            Self::U8(_) => "unsignedbyte",
            Self::I16(_) => "short",
            Self::U16(_) => "unsignedshort",
            Self::I32(_) => "signedint",
            Self::U32(_) => "unsignedint",
            Self::I64(_) => "long",
            Self::F32(_) => "float",
            Self::F64(_) => "double",
            Self::Decimal { .. } => "decimal",
            Self::LongString(_) => "longstr",
            Self::ByteArray(_) => "binary",
            Self::Array(_) => "array",
            Self::Timestamp(_) => "timestamp",
            Self::Table(_) => "table",
            Self::Void => "void",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

impl PartialEq for Number {
    #[expect(
        clippy::cast_precision_loss,
        reason = "Erlang compares int and float by value too"
    )]
    fn eq(&self, other: &Self) -> bool {
        match (*self, *other) {
            (Self::Int(a), Self::Int(b)) => a == b,
            (Self::Float(a), Self::Float(b)) => a == b,
            (Self::Int(a), Self::Float(b)) | (Self::Float(b), Self::Int(a)) => a as f64 == b,
        }
    }
}

impl std::fmt::Display for FieldValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(v) => write!(f, "{v}"),
            Self::I8(v) => write!(f, "{v}"),
            Self::U8(v) => write!(f, "{v}"),
            Self::I16(v) => write!(f, "{v}"),
            Self::U16(v) => write!(f, "{v}"),
            Self::I32(v) => write!(f, "{v}"),
            Self::U32(v) => write!(f, "{v}"),
            Self::I64(v) => write!(f, "{v}"),
            Self::F32(v) => write!(f, "{v}"),
            Self::F64(v) => write!(f, "{v}"),
            Self::Decimal { scale, value } => write!(f, "{{{scale},{value}}}"),
            Self::LongString(v) | Self::ByteArray(v) => write!(f, "{}", String::from_utf8_lossy(v)),
            Self::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Self::Timestamp(v) => write!(f, "{v}"),
            Self::Table(t) => write!(f, "{t}"),
            Self::Void => f.write_str("undefined"),
        }
    }
}

/// An ordered list of `(key, value)` entries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldTable {
    entries: Vec<(String, FieldValue)>,
}

impl FieldTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The first value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Appends an entry without looking for an existing one (the wire allows duplicates).
    pub fn push(&mut self, key: impl Into<String>, value: FieldValue) {
        self.entries.push((key.into(), value));
    }

    /// Replaces the first entry under `key` in place, or appends one.
    pub fn set(&mut self, key: impl Into<String>, value: FieldValue) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes every entry under `key`; returns the first removed value.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        let (_, value) = self.entries.remove(index);
        self.entries.retain(|(k, _)| k != key);
        Some(value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &FieldValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Sorts entries by key, stable: RabbitMQ sorts a header table whenever it edits one.
    pub fn sort_by_key(&mut self) {
        self.entries
            .sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    }

    /// Equal as sets of keys with loosely equal values (argument equivalence).
    pub fn loosely_eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .all(|(k, v)| other.get(k).is_some_and(|o| o.loosely_eq(v)))
    }
}

impl FromIterator<(String, FieldValue)> for FieldTable {
    fn from_iter<T: IntoIterator<Item = (String, FieldValue)>>(iter: T) -> Self {
        Self {
            entries: iter.into_iter().collect(),
        }
    }
}

impl<'a> IntoIterator for &'a FieldTable {
    type Item = &'a (String, FieldValue);
    type IntoIter = std::slice::Iter<'a, (String, FieldValue)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

impl std::fmt::Display for FieldTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{{{k},{v}}}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_duplicates_survive() {
        let mut t = FieldTable::new();
        t.push("b", FieldValue::I32(1));
        t.push("a", FieldValue::I32(2));
        t.push("b", FieldValue::I32(3));
        let keys: Vec<&str> = t.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["b", "a", "b"]);
        assert_eq!(t.get("b"), Some(&FieldValue::I32(1)));
        t.set("b", FieldValue::Bool(true));
        assert_eq!(t.get("b"), Some(&FieldValue::Bool(true)));
        assert_eq!(t.len(), 3);
        assert_eq!(t.remove("b"), Some(FieldValue::Bool(true)));
        assert_eq!(t.len(), 1);
        t.push("0", FieldValue::Void);
        t.sort_by_key();
        assert_eq!(t.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["0", "a"]);
    }

    #[test]
    fn loose_equality_follows_erlang() {
        assert!(FieldValue::I32(5).loosely_eq(&FieldValue::I64(5)));
        assert!(FieldValue::U8(5).loosely_eq(&FieldValue::F64(5.0)));
        assert!(!FieldValue::I32(5).loosely_eq(&FieldValue::string("5")));
        assert!(FieldValue::string("x").loosely_eq(&FieldValue::string("x")));
        assert!(!FieldValue::Bool(true).loosely_eq(&FieldValue::I8(1)));
        let a: FieldTable = [("k".to_owned(), FieldValue::I16(1))].into_iter().collect();
        let b: FieldTable = [("k".to_owned(), FieldValue::I64(1))].into_iter().collect();
        assert!(a.loosely_eq(&b));
        assert!(!a.loosely_eq(&FieldTable::new()));
    }
}
