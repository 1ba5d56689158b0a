//! RabbitMQ's user tags and what they allow in the management API.
//!
//! ```text
//! (none)         no management access (AMQP and Kafka only)
//! management     the API for the vhosts the user has permissions on, own connections
//! policymaker    management + policies and parameters of those vhosts
//! monitoring     management + every vhost, connection and channel, node figures (read)
//! administrator  everything: users, vhosts, permissions, definitions, closing connections
//! impersonator   (ferrymq and RabbitMQ) may publish with someone else's user_id
//! ```

/// A user's tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<String>);

impl Tags {
    pub fn new(tags: Vec<String>) -> Self {
        let mut tags: Vec<String> = tags
            .into_iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        tags.dedup();
        Self(tags)
    }

    /// Parses RabbitMQ's comma-separated form (`"administrator,monitoring"`).
    pub fn parse(list: &str) -> Self {
        Self::new(list.split(',').map(str::to_owned).collect())
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    fn has(&self, tag: &str) -> bool {
        self.0.iter().any(|t| t == tag)
    }

    pub fn is_administrator(&self) -> bool {
        self.has("administrator")
    }

    /// Sees every vhost, connection and channel.
    pub fn is_monitor(&self) -> bool {
        self.is_administrator() || self.has("monitoring")
    }

    pub fn is_policymaker(&self) -> bool {
        self.is_administrator() || self.has("policymaker")
    }

    /// May use the management API at all.
    pub fn is_management(&self) -> bool {
        self.is_monitor() || self.is_policymaker() || self.has("management")
    }

    pub fn is_impersonator(&self) -> bool {
        self.has("impersonator")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_imply_rabbitmqs_levels() {
        let admin = Tags::parse("administrator");
        assert!(admin.is_monitor() && admin.is_policymaker() && admin.is_management());
        let monitoring = Tags::parse(" monitoring ");
        assert!(monitoring.is_monitor() && !monitoring.is_administrator());
        assert!(!monitoring.is_policymaker() && monitoring.is_management());
        let management = Tags::parse("management");
        assert!(management.is_management() && !management.is_monitor());
        let none = Tags::parse("");
        assert!(none.as_slice().is_empty() && !none.is_management());
        assert!(Tags::parse("impersonator").is_impersonator());
        assert!(!Tags::parse("impersonator").is_management());
    }
}
