//! Users as the configuration file lists them (`[[amqp.users]]`).

use serde::{Deserialize, Serialize};

/// One user as written in the configuration file. The password is hashed when the user is
/// seeded into the store; `vhosts` become full permissions (`.*` for configure, write and
/// read) on each, `"*"` on every vhost that exists at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
    /// Vhosts the user may open; `"*"` means every vhost.
    pub vhosts: Vec<String>,
    /// RabbitMQ user tags (`administrator`, `monitoring`, `management`, `impersonator`, ...).
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

    pub fn with_tags(mut self, tags: &[&str]) -> Self {
        self.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        self
    }
}
