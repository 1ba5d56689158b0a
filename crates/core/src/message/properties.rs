//! The fourteen basic properties of a message.

use super::{FieldTable, FieldValue};

/// Largest per-message or per-queue TTL RabbitMQ accepts (ten years), in ms.
pub const MAX_TTL_MS: u64 = 315_360_000_000;

/// A message's properties. Every field is optional, as on the wire; short strings are held
/// as text (a non-UTF-8 short string is decoded lossily, which only matters if the broker
/// has to re-encode a message it changed, as dead-lettering does).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Properties {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub headers: Option<FieldTable>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<String>,
    pub reply_to: Option<String>,
    pub expiration: Option<String>,
    pub message_id: Option<String>,
    pub timestamp: Option<u64>,
    /// The `type` property.
    pub kind: Option<String>,
    pub user_id: Option<String>,
    pub app_id: Option<String>,
    pub cluster_id: Option<String>,
}

/// Why a message's properties cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertyError {
    #[error("invalid expiration '{value}': {reason}")]
    Expiration { value: String, reason: String },
    #[error("invalid message: {{delivery_mode_unknown,{mode}}}")]
    DeliveryMode { mode: u8 },
    #[error("invalid message: {{unacceptable_type_in_header,\"{header}\",{kind}}}")]
    RoutingHeader {
        header: &'static str,
        kind: &'static str,
    },
}

impl Properties {
    /// True for `delivery_mode` 2. RabbitMQ refuses modes other than 1 and 2.
    pub fn is_persistent(&self) -> bool {
        self.delivery_mode == Some(2)
    }

    /// Checks what RabbitMQ checks on publish: a parsable `expiration`, a known
    /// `delivery_mode`, and `CC`/`BCC` headers that are arrays.
    pub fn validate(&self) -> Result<(), PropertyError> {
        self.expiration_ms()?;
        match self.delivery_mode {
            None | Some(1 | 2) => {}
            Some(mode) => return Err(PropertyError::DeliveryMode { mode }),
        }
        if let Some(headers) = &self.headers {
            for header in ["CC", "BCC"] {
                match headers.get(header) {
                    None | Some(FieldValue::Array(_)) => {}
                    Some(other) => {
                        return Err(PropertyError::RoutingHeader {
                            header,
                            kind: other.type_name(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The per-message TTL in milliseconds, parsed as RabbitMQ does (a decimal integer,
    /// optionally signed, nothing after it, between 0 and [`MAX_TTL_MS`]).
    pub fn expiration_ms(&self) -> Result<Option<u64>, PropertyError> {
        let Some(text) = self.expiration.as_deref() else {
            return Ok(None);
        };
        let err = |reason: String| PropertyError::Expiration {
            value: text.to_owned(),
            reason,
        };
        let digits_start = usize::from(text.starts_with(['-', '+']));
        let digits_len = text.get(digits_start..).map_or(0, |rest| {
            rest.bytes().take_while(u8::is_ascii_digit).count()
        });
        if digits_len == 0 {
            return Err(err("no_integer".to_owned()));
        }
        let (number, rest) = text.split_at(digits_start + digits_len);
        if !rest.is_empty() {
            return Err(err(format!("{{leftover_string,\"{rest}\"}}")));
        }
        let value: i128 = number
            .trim_start_matches('+')
            .parse()
            .map_err(|_| err("no_integer".to_owned()))?;
        if value < 0 {
            return Err(err(format!("{{value_negative,{value}}}")));
        }
        match u64::try_from(value) {
            Ok(ms) if ms <= MAX_TTL_MS => Ok(Some(ms)),
            _ => Err(err(format!("{{value_too_large,{value}}}"))),
        }
    }

    /// Routing keys from the `CC` and `BCC` headers (long-string entries of arrays).
    pub fn header_routes(&self) -> impl Iterator<Item = &str> {
        let headers = self.headers.as_ref();
        ["CC", "BCC"]
            .into_iter()
            .filter_map(move |header| match headers?.get(header) {
                Some(FieldValue::Array(items)) => Some(items.iter().filter_map(FieldValue::as_str)),
                _ => None,
            })
            .flatten()
    }

    /// Whether a `BCC` header is present (it must be removed before delivery).
    pub fn has_bcc(&self) -> bool {
        self.headers.as_ref().is_some_and(|h| h.contains_key("BCC"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_expiration(text: &str) -> Properties {
        Properties {
            expiration: Some(text.to_owned()),
            ..Properties::default()
        }
    }

    #[test]
    fn expiration_parses_like_rabbitmq() {
        assert_eq!(with_expiration("0").expiration_ms(), Ok(Some(0)));
        assert_eq!(with_expiration("1500").expiration_ms(), Ok(Some(1500)));
        assert_eq!(with_expiration("+7").expiration_ms(), Ok(Some(7)));
        assert_eq!(Properties::default().expiration_ms(), Ok(None));
        assert_eq!(
            with_expiration("4294967296").expiration_ms(),
            Ok(Some(4_294_967_296))
        );
        for bad in ["", "abc", "-1", "10ms", "315360000001", " 5", "-"] {
            assert!(with_expiration(bad).expiration_ms().is_err(), "{bad}");
        }
        let err = with_expiration("-5").expiration_ms().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid expiration '-5': {value_negative,-5}"
        );
    }

    #[test]
    fn validation_rejects_unknown_delivery_modes_and_bad_cc() {
        let p = Properties {
            delivery_mode: Some(3),
            ..Properties::default()
        };
        assert_eq!(p.validate(), Err(PropertyError::DeliveryMode { mode: 3 }));
        let mut headers = FieldTable::new();
        headers.push("CC", FieldValue::string("x"));
        let p = Properties {
            headers: Some(headers),
            ..Properties::default()
        };
        assert!(p.validate().is_err());
        let mut headers = FieldTable::new();
        headers.push("CC", FieldValue::Array(vec![FieldValue::string("a")]));
        headers.push("BCC", FieldValue::Array(vec![FieldValue::string("b")]));
        let p = Properties {
            headers: Some(headers),
            ..Properties::default()
        };
        assert_eq!(p.validate(), Ok(()));
        assert_eq!(p.header_routes().collect::<Vec<_>>(), ["a", "b"]);
        assert!(p.has_bcc());
    }
}
