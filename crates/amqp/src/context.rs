//! What every AMQP connection shares: the broker, the configuration, the users, and
//! connection ids.

use std::sync::Arc;

use ferrymq_auth::UserStore;
use ferrymq_core::Broker;

use crate::AmqpConfig;

/// Shared state of the AMQP frontend; one per server.
#[derive(Debug)]
pub struct AmqpContext {
    pub broker: Arc<Broker>,
    pub config: AmqpConfig,
    /// The broker's users and permissions (shared with the other frontends).
    pub users: Arc<UserStore>,
}

impl AmqpContext {
    /// Builds the context with the config's users kept in memory (tests, embedding).
    ///
    /// # Panics
    /// If a configured user cannot be hashed (no random source).
    pub fn new(broker: Arc<Broker>, config: AmqpConfig) -> Arc<Self> {
        #[expect(
            clippy::expect_used,
            reason = "config users come from code or a validated file"
        )]
        let users =
            UserStore::in_memory(&config.users, &config.loopback_users).expect("configured users");
        Self::with_users(broker, config, Arc::new(users))
    }

    /// Builds the context over the broker's user store. Publishers are blocked while one
    /// of the broker's resource alarms is in effect (whoever runs the broker raises them).
    pub fn with_users(broker: Arc<Broker>, config: AmqpConfig, users: Arc<UserStore>) -> Arc<Self> {
        Arc::new(Self {
            broker,
            config,
            users,
        })
    }
}
