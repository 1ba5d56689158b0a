//! A user's permissions on one vhost: three patterns, as RabbitMQ has them.
//!
//! ```text
//! configure  declare and delete queues and exchanges whose names match
//! write      publish to exchanges, bind queues and exchanges (as destination) that match
//! read       consume from queues, get, purge; bind from exchanges that match
//! ```
//!
//! Patterns are regular expressions matched anywhere in the name (RabbitMQ does not anchor
//! them: write `^app\.` to mean a prefix). The empty pattern matches nothing but the empty
//! name (the default exchange), as RabbitMQ treats `""` like `^$`.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The three patterns as stored and as definitions files carry them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patterns {
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl Patterns {
    /// Everything (`.*` three times), what a vhost's creator and seeded config users get.
    pub fn all() -> Self {
        Self {
            configure: ".*".to_owned(),
            write: ".*".to_owned(),
            read: ".*".to_owned(),
        }
    }
}

/// Compiled permissions of `user` on `vhost`.
#[derive(Debug, Clone)]
pub struct Permission {
    pub user: String,
    pub vhost: String,
    patterns: Patterns,
    configure: Regex,
    write: Regex,
    read: Regex,
}

fn compile(which: &'static str, pattern: &str) -> Result<Regex, Error> {
    let source = if pattern.is_empty() { "^$" } else { pattern };
    Regex::new(source).map_err(|e| Error::InvalidPattern {
        which,
        pattern: pattern.to_owned(),
        reason: e.to_string(),
    })
}

impl Permission {
    pub fn new(user: &str, vhost: &str, patterns: Patterns) -> Result<Self, Error> {
        Ok(Self {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            configure: compile("configure", &patterns.configure)?,
            write: compile("write", &patterns.write)?,
            read: compile("read", &patterns.read)?,
            patterns,
        })
    }

    pub fn patterns(&self) -> &Patterns {
        &self.patterns
    }

    pub fn can_configure(&self, name: &str) -> bool {
        self.configure.is_match(name)
    }

    pub fn can_write(&self, name: &str) -> bool {
        self.write.is_match(name)
    }

    pub fn can_read(&self, name: &str) -> bool {
        self.read.is_match(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(configure: &str, write: &str, read: &str) -> Permission {
        Permission::new(
            "u",
            "/",
            Patterns {
                configure: configure.into(),
                write: write.into(),
                read: read.into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn patterns_match_anywhere_and_empty_means_nothing() {
        let p = perm("^app\\.", "", ".*");
        assert!(p.can_configure("app.jobs"));
        assert!(!p.can_configure("other.app.jobs"));
        assert!(!p.can_write("app.jobs"));
        assert!(p.can_write(""));
        assert!(p.can_read("anything"));
        let unanchored = perm("jobs", "jobs", "jobs");
        assert!(unanchored.can_read("my-jobs-queue"));
    }

    #[test]
    fn a_bad_pattern_is_refused_with_its_name() {
        let err = Permission::new(
            "u",
            "/",
            Patterns {
                configure: ".*".into(),
                write: "(".into(),
                read: ".*".into(),
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("write"), "{err}");
    }
}
