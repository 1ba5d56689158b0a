//! Users and their vhost permissions, from configuration.
//!
//! A user has a password, a list of vhosts it may open (`"*"` for all) and RabbitMQ-style
//! tags (`impersonator` lets it publish with any `user_id` property). Users listed as
//! loopback-only (by default `guest`, as in RabbitMQ) may only connect from a loopback
//! address.
//!
//! ```
//! use ferrymq_core::auth::{UserConfig, Users};
//! let users = Users::new(&[UserConfig::new("app", "secret", &["/"])], &[]);
//! let user = users.authenticate("app", "secret", false).unwrap();
//! assert!(user.can_access("/"));
//! assert!(users.authenticate("app", "wrong", true).is_err());
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Error;

/// One user as written in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
    /// Vhosts the user may open; `"*"` means every vhost.
    pub vhosts: Vec<String>,
    /// RabbitMQ user tags; `impersonator` is the one ferrymq acts on.
    pub tags: Vec<String>,
}

impl Default for UserConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            password: String::new(),
            vhosts: vec!["/".to_owned()],
            tags: Vec::new(),
        }
    }
}

impl UserConfig {
    pub fn new(name: &str, password: &str, vhosts: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            password: password.to_owned(),
            vhosts: vhosts.iter().map(|v| (*v).to_owned()).collect(),
            tags: Vec::new(),
        }
    }
}

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    password: String,
    vhosts: Vec<String>,
    pub tags: Vec<String>,
}

impl User {
    pub fn can_access(&self, vhost: &str) -> bool {
        self.vhosts.iter().any(|v| v == "*" || v == vhost)
    }

    /// May publish messages whose `user_id` names someone else.
    pub fn is_impersonator(&self) -> bool {
        self.tags.iter().any(|t| t == "impersonator")
    }
}

/// The configured users.
#[derive(Debug, Clone, Default)]
pub struct Users {
    users: HashMap<String, Arc<User>>,
    loopback_only: HashSet<String>,
}

/// Compares without an early exit, so timing does not reveal how much of a password matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, byte) in a.iter().enumerate() {
        diff |= usize::from(byte ^ b.get(i).copied().unwrap_or(!byte));
    }
    diff == 0
}

impl Users {
    pub fn new(users: &[UserConfig], loopback_only: &[String]) -> Self {
        Self {
            users: users
                .iter()
                .map(|u| {
                    let user = User {
                        name: u.name.clone(),
                        password: u.password.clone(),
                        vhosts: u.vhosts.clone(),
                        tags: u.tags.clone(),
                    };
                    (u.name.clone(), Arc::new(user))
                })
                .collect(),
            loopback_only: loopback_only.iter().cloned().collect(),
        }
    }

    /// Checks credentials. `from_loopback` tells whether the peer address is a loopback one.
    pub fn authenticate(
        &self,
        name: &str,
        password: &str,
        from_loopback: bool,
    ) -> Result<Arc<User>, Error> {
        let refused = || Error::LoginRefused {
            user: name.to_owned(),
        };
        let user = self.users.get(name).ok_or_else(refused)?;
        if !constant_time_eq(user.password.as_bytes(), password.as_bytes()) {
            return Err(refused());
        }
        if !from_loopback && self.loopback_only.contains(name) {
            return Err(Error::LoopbackOnly {
                user: name.to_owned(),
            });
        }
        Ok(user.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_is_loopback_only_and_passwords_must_match() {
        let users = Users::new(
            &[
                UserConfig::new("guest", "guest", &["/"]),
                UserConfig::new("admin", "pw", &["*"]),
            ],
            &["guest".to_owned()],
        );
        assert!(users.authenticate("guest", "guest", true).is_ok());
        assert!(matches!(
            users.authenticate("guest", "guest", false),
            Err(Error::LoopbackOnly { .. })
        ));
        assert!(matches!(
            users.authenticate("guest", "gues", true),
            Err(Error::LoginRefused { .. })
        ));
        assert!(matches!(
            users.authenticate("nobody", "", true),
            Err(Error::LoginRefused { .. })
        ));
        let admin = users.authenticate("admin", "pw", false).unwrap();
        assert!(admin.can_access("/anything"));
        let guest = users.authenticate("guest", "guest", true).unwrap();
        assert!(guest.can_access("/"));
        assert!(!guest.can_access("other"));
        assert!(!guest.is_impersonator());
    }

    #[test]
    fn constant_time_comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
