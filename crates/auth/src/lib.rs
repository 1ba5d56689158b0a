//! ferrymq-auth: one user store for every protocol.
//!
//! Users (a salted password hash in RabbitMQ's format, RabbitMQ's tags) and their
//! configure/write/read permissions per vhost live here, persisted in core's definitions
//! journal, so a user created once (from the config, the management API or a definitions
//! file exported from RabbitMQ) logs in over AMQP, Kafka and HTTP alike.
//!
//! ```text
//! password   RabbitMQ's password hashes (sha256 default, sha512, md5)
//! scram      SCRAM-SHA-256/512 credentials and the server side of an exchange (Kafka SASL)
//! tags       what the management tags allow
//! limiter    failed logins per client address, rate-limited for every protocol
//! permission configure / write / read patterns of one user on one vhost
//! acl        Kafka's ACLs and how a request is decided against them
//! store      UserStore: users + permissions, journaled, seeded from the config
//! config     UserConfig, the config file's `[[amqp.users]]` entries
//! ```
//!
//! ```
//! use ferrymq_auth::{UserConfig, UserStore};
//! let store = UserStore::in_memory(&[UserConfig::new("app", "secret", &["/"])], &[]).unwrap();
//! let user = store.authenticate("app", "secret", false).unwrap();
//! assert!(store.permission("/", &user.name).is_some());
//! assert!(store.authenticate("app", "wrong", true).is_err());
//! ```
//!
//! # Invariants
//! - A password is hashed before it is stored or kept; only [`PasswordHash`] is kept.
//! - Every change is applied in memory and journaled under one short lock, so the journal's
//!   order is the order callers saw; callers await the returned `Pending` before answering.

pub mod access;
pub mod acl;
mod config;
mod error;
pub mod limiter;
pub mod password;
pub mod permission;
pub mod scram;
mod store;
pub mod tags;

pub use access::{Action, Refusal, ResourceType, TopicPatterns, TopicPermission};
pub use config::UserConfig;
pub use error::Error;
pub use password::{HashingAlgorithm, PasswordHash};
pub use permission::{Patterns, Permission};
pub use store::{Credentials, DecisionCache, KafkaPrincipal, User, UserStore, UserUpdate};
pub use tags::Tags;
