//! Field tables on the wire, in RabbitMQ's dialect, decoded into ferrymq-core's
//! order-preserving [`FieldTable`] (and converted from amq-protocol's tables for method
//! arguments).
//!
//! The binary codec itself is `ferrymq_core::message::wire` (it is also the storage format
//! of queued messages' properties); it is re-exported here under the names the frontend
//! uses.

use amq_protocol::types::{AMQPValue, FieldArray as AmqpArray, FieldTable as AmqpTable};
use bytes::Bytes;
use ferrymq_core::message::{FieldTable, FieldValue};

pub use ferrymq_core::message::wire::{
    Reader, WireError as TableError, decode_table, encode_table, put_short_string,
};

/// Converts a method argument table parsed by amq-protocol.
pub fn from_amqp_table(table: &AmqpTable) -> FieldTable {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), from_amqp_value(v)))
        .collect()
}

fn from_amqp_value(value: &AMQPValue) -> FieldValue {
    match value {
        AMQPValue::Boolean(v) => FieldValue::Bool(*v),
        AMQPValue::ShortShortInt(v) => FieldValue::I8(*v),
        AMQPValue::ShortShortUInt(v) => FieldValue::U8(*v),
        AMQPValue::ShortInt(v) => FieldValue::I16(*v),
        AMQPValue::ShortUInt(v) => FieldValue::U16(*v),
        AMQPValue::LongInt(v) => FieldValue::I32(*v),
        AMQPValue::LongUInt(v) => FieldValue::U32(*v),
        AMQPValue::LongLongInt(v) => FieldValue::I64(*v),
        AMQPValue::Float(v) => FieldValue::F32(*v),
        AMQPValue::Double(v) => FieldValue::F64(*v),
        AMQPValue::DecimalValue(d) => FieldValue::Decimal {
            scale: d.scale,
            value: d.value,
        },
        AMQPValue::ShortString(s) => FieldValue::string(s.as_str()),
        AMQPValue::LongString(s) => FieldValue::LongString(Bytes::copy_from_slice(s.as_bytes())),
        AMQPValue::ByteArray(b) => FieldValue::ByteArray(Bytes::copy_from_slice(b.as_slice())),
        AMQPValue::FieldArray(items) => {
            FieldValue::Array(items.as_slice().iter().map(from_amqp_value).collect())
        }
        AMQPValue::Timestamp(t) => FieldValue::Timestamp(*t),
        AMQPValue::FieldTable(t) => FieldValue::Table(from_amqp_table(t)),
        AMQPValue::Void => FieldValue::Void,
    }
}

/// Converts a table for an outgoing method built with amq-protocol.
pub fn to_amqp_table(table: &FieldTable) -> AmqpTable {
    let mut out = AmqpTable::default();
    for (k, v) in table.iter() {
        out.insert(k.into(), to_amqp_value(v));
    }
    out
}

fn to_amqp_value(value: &FieldValue) -> AMQPValue {
    match value {
        FieldValue::Bool(v) => AMQPValue::Boolean(*v),
        FieldValue::I8(v) => AMQPValue::ShortShortInt(*v),
        FieldValue::U8(v) => AMQPValue::ShortShortUInt(*v),
        FieldValue::I16(v) => AMQPValue::ShortInt(*v),
        FieldValue::U16(v) => AMQPValue::ShortUInt(*v),
        FieldValue::I32(v) => AMQPValue::LongInt(*v),
        FieldValue::U32(v) => AMQPValue::LongUInt(*v),
        FieldValue::I64(v) => AMQPValue::LongLongInt(*v),
        FieldValue::F32(v) => AMQPValue::Float(*v),
        FieldValue::F64(v) => AMQPValue::Double(*v),
        FieldValue::Decimal { scale, value } => {
            AMQPValue::DecimalValue(amq_protocol::types::DecimalValue {
                scale: *scale,
                value: *value,
            })
        }
        FieldValue::LongString(b) => AMQPValue::LongString(b.to_vec().into()),
        FieldValue::ByteArray(b) => AMQPValue::ByteArray(b.to_vec().into()),
        FieldValue::Array(items) => {
            let mut array = AmqpArray::default();
            for item in items {
                array.push(to_amqp_value(item));
            }
            AMQPValue::FieldArray(array)
        }
        FieldValue::Timestamp(t) => AMQPValue::Timestamp(*t),
        FieldValue::Table(t) => AMQPValue::FieldTable(to_amqp_table(t)),
        FieldValue::Void => AMQPValue::Void,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrymq_core::message::wire::every_type;

    #[test]
    fn amq_protocol_tables_convert_both_ways() {
        let table = every_type();
        let mut unique = FieldTable::new();
        for (k, v) in table.iter().filter(|(k, _)| *k != "dup") {
            unique.push(k, v.clone());
        }
        let round = from_amqp_table(&to_amqp_table(&unique));
        assert!(round.loosely_eq(&unique));
    }
}
