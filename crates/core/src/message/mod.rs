//! Messages: what a publisher hands the broker and a consumer receives.
//!
//! A [`Message`] is immutable once published and shared as `Arc<Message>` by every queue it
//! is routed to (fan-out copies a pointer, never a body). Per-queue facts (position,
//! redelivered flag, expiry) live in the queue beside the `Arc`.
//!
//! Properties are typed ([`Properties`], [`FieldTable`]) so routing, TTL, priorities and
//! dead-lettering can read them without knowing a wire format. A frontend that received the
//! message in its own encoding may keep those bytes in [`Message::encoded_properties`]; they
//! describe exactly `properties`, so a frontend can send them back verbatim (byte-exact,
//! no re-encoding). Any change to the properties produces a new `Message` without them.
//!
//! # Invariants
//! - `encoded_properties`, when present, decodes to `properties`.
//! - `body` is never copied by the core: `Bytes` clones are reference counts.

mod properties;
mod table;
pub mod wire;

use bytes::Bytes;

pub use properties::{MAX_TTL_MS, Properties, PropertyError};
pub use table::{FieldTable, FieldValue};

/// One published message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The exchange it was published to (`""` for the default exchange).
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    pub properties: Properties,
    /// The properties as the publishing frontend received them on the wire, if unchanged.
    pub encoded_properties: Option<Bytes>,
    pub body: Bytes,
}

impl Message {
    /// A message whose properties have no wire encoding yet.
    pub fn new(
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
        properties: Properties,
        body: Bytes,
    ) -> Self {
        Self {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            properties,
            encoded_properties: None,
            body,
        }
    }

    /// Body size in bytes: what `x-max-length-bytes` counts, as in RabbitMQ.
    pub fn body_size(&self) -> u64 {
        self.body.len() as u64
    }

    /// Approximate memory held by the message, for the memory watermark.
    pub fn memory_size(&self) -> u64 {
        let props = self
            .encoded_properties
            .as_ref()
            .map_or(64, |encoded| encoded.len() as u64);
        self.body_size() + props + 64
    }

    /// Every routing key: the published one, then `CC` and `BCC` header entries.
    pub fn routing_keys(&self) -> Vec<&str> {
        let mut keys = vec![self.routing_key.as_str()];
        keys.extend(self.properties.header_routes());
        keys
    }

    /// The message with its properties replaced (its encoding is dropped with them).
    pub fn with_properties(&self, properties: Properties) -> Self {
        Self {
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            properties,
            encoded_properties: None,
            body: self.body.clone(),
        }
    }

    /// The message as delivered: a `BCC` header is removed (RabbitMQ never shows it).
    pub fn without_bcc(&self) -> Option<Self> {
        if !self.properties.has_bcc() {
            return None;
        }
        let mut properties = self.properties.clone();
        if let Some(headers) = properties.headers.as_mut() {
            headers.remove("BCC");
        }
        Some(self.with_properties(properties))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changing_properties_drops_the_encoding() {
        let mut headers = FieldTable::new();
        headers.push("BCC", FieldValue::Array(vec![FieldValue::string("hidden")]));
        headers.push("CC", FieldValue::Array(vec![FieldValue::string("copy")]));
        let mut msg = Message::new(
            "x",
            "rk",
            Properties {
                headers: Some(headers),
                ..Properties::default()
            },
            Bytes::from_static(b"body"),
        );
        msg.encoded_properties = Some(Bytes::from_static(b"\x20\x00"));
        assert_eq!(msg.routing_keys(), ["rk", "copy", "hidden"]);
        let stripped = msg.without_bcc().unwrap();
        assert_eq!(stripped.encoded_properties, None);
        assert_eq!(stripped.routing_keys(), ["rk", "copy"]);
        assert!(stripped.without_bcc().is_none());
        assert_eq!(stripped.body, msg.body);
    }
}
