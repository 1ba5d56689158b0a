//! Authorisation: may this user do this to that resource? RabbitMQ's rules.
//!
//! ```text
//! configure  queue.declare (not passive), queue.delete, exchange.declare, exchange.delete
//! write      basic.publish (exchange), queue.bind (queue), exchange.bind (destination),
//!            x-dead-letter-exchange and alternate-exchange targets
//! read       basic.consume, basic.get, queue.purge (queue), binding sources (exchange)
//! topic      on topic exchanges only, when a topic permission for the exchange exists:
//!            write = routing keys a user may publish with, read = binding keys it may bind
//! ```
//!
//! A refusal names the resource as RabbitMQ's 403 ACCESS_REFUSED does:
//! `access to queue 'q' in vhost '/' refused for user 'u'`.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::Error;

/// What is done to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Configure,
    Write,
    Read,
}

/// What kind of resource it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceType {
    Queue,
    Exchange,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Exchange => "exchange",
        }
    }
}

/// A refused request, with RabbitMQ's reply text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text}")]
pub struct Refusal {
    pub text: String,
}

impl Refusal {
    pub(crate) fn resource(kind: ResourceType, name: &str, vhost: &str, user: &str) -> Self {
        // The default exchange's name is "" (which permission patterns match), shown as
        // RabbitMQ shows it.
        let shown = if kind == ResourceType::Exchange && name.is_empty() {
            "amq.default"
        } else {
            name
        };
        Self {
            text: format!(
                "access to {} '{shown}' in vhost '{vhost}' refused for user '{user}'",
                kind.as_str()
            ),
        }
    }

    pub(crate) fn topic(key: &str, exchange: &str, vhost: &str, user: &str) -> Self {
        Self {
            text: format!(
                "access to topic '{key}' in exchange '{exchange}' in vhost '{vhost}' refused for \
                 user '{user}'"
            ),
        }
    }
}

/// The two patterns of a topic permission, as stored and as definitions files carry them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPatterns {
    pub write: String,
    pub read: String,
}

/// What routing keys `user` may publish with (write) and bind with (read) on topic exchange
/// `exchange` of `vhost`. `{username}` and `{vhost}` in a pattern stand for the user's name
/// and the vhost (escaped), as in RabbitMQ.
#[derive(Debug, Clone)]
pub struct TopicPermission {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    patterns: TopicPatterns,
    write: Regex,
    read: Regex,
}

fn compile(which: &'static str, pattern: &str, user: &str, vhost: &str) -> Result<Regex, Error> {
    let expanded = pattern
        .replace("{username}", &regex::escape(user))
        .replace("{vhost}", &regex::escape(vhost));
    let source = if expanded.is_empty() { "^$" } else { &expanded };
    Regex::new(source).map_err(|e| Error::InvalidPattern {
        which,
        pattern: pattern.to_owned(),
        reason: e.to_string(),
    })
}

impl TopicPermission {
    pub fn new(
        user: &str,
        vhost: &str,
        exchange: &str,
        patterns: TopicPatterns,
    ) -> Result<Self, Error> {
        Ok(Self {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            exchange: exchange.to_owned(),
            write: compile("write", &patterns.write, user, vhost)?,
            read: compile("read", &patterns.read, user, vhost)?,
            patterns,
        })
    }

    pub fn patterns(&self) -> &TopicPatterns {
        &self.patterns
    }

    /// Whether routing key `key` is allowed for `action` (Write or Read).
    pub fn allows(&self, action: Action, key: &str) -> bool {
        match action {
            Action::Write => self.write.is_match(key),
            Action::Read => self.read.is_match(key),
            Action::Configure => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_rabbitmqs() {
        assert_eq!(
            Refusal::resource(ResourceType::Exchange, "", "/", "u").text,
            "access to exchange 'amq.default' in vhost '/' refused for user 'u'"
        );
        assert_eq!(
            Refusal::topic("a.b", "amq.topic", "/", "u").text,
            "access to topic 'a.b' in exchange 'amq.topic' in vhost '/' refused for user 'u'"
        );
    }

    #[test]
    fn topic_patterns_expand_the_user_and_the_vhost() {
        let p = TopicPermission::new(
            "app.1",
            "/",
            "amq.topic",
            TopicPatterns {
                write: "^{username}\\.".into(),
                read: "".into(),
            },
        )
        .unwrap();
        assert!(p.allows(Action::Write, "app.1.events"));
        assert!(
            !p.allows(Action::Write, "app11.events"),
            "the name is escaped"
        );
        assert!(!p.allows(Action::Read, "anything"));
        assert!(p.allows(Action::Read, ""));
    }
}
