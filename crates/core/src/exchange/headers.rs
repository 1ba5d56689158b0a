//! Headers routing: a binding's arguments are a pattern over the message's header table.
//!
//! `x-match` chooses how the other binding arguments combine:
//! `all` (the default) needs every one to match, `any` needs one; `all-with-x` and
//! `any-with-x` also count arguments whose keys start with `x-`, which `all`/`any` skip.
//! An argument of type void matches when the header is present with any value; any other
//! value matches a header equal to it as Erlang's `==` compares them (RabbitMQ's rule).

use crate::Error;
use crate::message::{FieldTable, FieldValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

/// A parsed headers-binding pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadersPattern {
    mode: Mode,
    /// `(key, None)` means "present"; `(key, Some(v))` means "equal to v".
    fields: Vec<(String, Option<FieldValue>)>,
}

impl HeadersPattern {
    /// Parses binding arguments; an `x-match` other than the four modes is refused, as
    /// RabbitMQ refuses it when the binding is created.
    pub fn parse(args: &FieldTable) -> Result<Self, Error> {
        let mode = match args.get("x-match") {
            None => Mode::All,
            Some(FieldValue::LongString(text)) => match text.as_ref() {
                b"all" => Mode::All,
                b"any" => Mode::Any,
                b"all-with-x" => Mode::AllWithX,
                b"any-with-x" => Mode::AnyWithX,
                other => {
                    return Err(Error::InvalidBinding {
                        reason: format!(
                            "Invalid x-match field value <<\"{}\">>; expected all, any, \
                             all-with-x, or any-with-x",
                            String::from_utf8_lossy(other)
                        ),
                    });
                }
            },
            Some(other) => {
                return Err(Error::InvalidBinding {
                    reason: format!(
                        "Invalid x-match field type {} (value {other}); expected longstr",
                        other.type_name()
                    ),
                });
            }
        };
        let with_x = matches!(mode, Mode::AllWithX | Mode::AnyWithX);
        let fields = args
            .iter()
            .filter(|(key, _)| *key != "x-match" && (with_x || !key.starts_with("x-")))
            .map(|(key, value)| {
                let value = (*value != FieldValue::Void).then(|| value.clone());
                (key.to_owned(), value)
            })
            .collect();
        Ok(Self { mode, fields })
    }

    /// Whether a message with `headers` matches.
    pub fn matches(&self, headers: Option<&FieldTable>) -> bool {
        let empty = FieldTable::new();
        let headers = headers.unwrap_or(&empty);
        let hit = |(key, expected): &(String, Option<FieldValue>)| match headers.get(key) {
            None => false,
            Some(actual) => expected.as_ref().is_none_or(|e| e.loosely_eq(actual)),
        };
        match self.mode {
            Mode::All | Mode::AllWithX => self.fields.iter().all(hit),
            Mode::Any | Mode::AnyWithX => self.fields.iter().any(hit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn all_and_any() {
        let all = HeadersPattern::parse(&table(&[
            ("x-match", FieldValue::string("all")),
            ("format", FieldValue::string("pdf")),
            ("type", FieldValue::string("report")),
        ]))
        .unwrap();
        let any = HeadersPattern::parse(&table(&[
            ("x-match", FieldValue::string("any")),
            ("format", FieldValue::string("pdf")),
            ("type", FieldValue::string("report")),
        ]))
        .unwrap();
        let both = table(&[
            ("type", FieldValue::string("report")),
            ("format", FieldValue::string("pdf")),
        ]);
        let one = table(&[("format", FieldValue::string("pdf"))]);
        assert!(all.matches(Some(&both)));
        assert!(!all.matches(Some(&one)));
        assert!(any.matches(Some(&one)));
        assert!(!any.matches(None));
        assert!(!all.matches(None));
    }

    #[test]
    fn x_keys_count_only_with_x_modes_and_void_means_present() {
        let args = |mode: &str| {
            table(&[
                ("x-match", FieldValue::string(mode)),
                ("x-tenant", FieldValue::I32(7)),
                ("flag", FieldValue::Void),
            ])
        };
        let headers = table(&[("flag", FieldValue::string("anything"))]);
        assert!(
            HeadersPattern::parse(&args("all"))
                .unwrap()
                .matches(Some(&headers))
        );
        assert!(
            !HeadersPattern::parse(&args("all-with-x"))
                .unwrap()
                .matches(Some(&headers))
        );
        let with_tenant = table(&[
            ("flag", FieldValue::Bool(false)),
            ("x-tenant", FieldValue::I64(7)),
        ]);
        assert!(
            HeadersPattern::parse(&args("all-with-x"))
                .unwrap()
                .matches(Some(&with_tenant))
        );
        assert!(
            HeadersPattern::parse(&args("any-with-x"))
                .unwrap()
                .matches(Some(&table(&[("x-tenant", FieldValue::U8(7))])))
        );
        // `all` with nothing but x- keys matches every message, as in RabbitMQ.
        let only_x = table(&[
            ("x-match", FieldValue::string("all")),
            ("x-a", FieldValue::I8(1)),
        ]);
        assert!(HeadersPattern::parse(&only_x).unwrap().matches(None));
    }

    #[test]
    fn bad_x_match_is_refused() {
        let bad = table(&[("x-match", FieldValue::string("most"))]);
        assert!(HeadersPattern::parse(&bad).is_err());
        let typed = table(&[("x-match", FieldValue::I32(1))]);
        assert!(HeadersPattern::parse(&typed).is_err());
    }
}
