//! What a request handler sees of its connection and what it gives back: the shared ground of
//! `connection` (which reads requests and writes responses) and `api` (the handlers), so that
//! requests flow one way, from the connection through the handlers, and neither imports the
//! other's internals.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use ferrymq_auth::acl::{AclOperation, AclResource, CLUSTER_NAME};
use ferrymq_auth::{DecisionCache, KafkaPrincipal};
use ferrymq_core::connections::Connection;
use kafka_protocol::protocol::StrBytes;
use tokio_util::sync::CancellationToken;

use crate::Ctx;
use crate::listeners::KafkaListener;
use crate::message::ResponseBody;
use crate::sasl::SaslSession;

/// Kafka's principal name for a client that did not authenticate.
pub const ANONYMOUS: &str = "ANONYMOUS";

/// A response still being produced.
pub type BoxFuture = Pin<Box<dyn Future<Output = ResponseBody> + Send + 'static>>;

/// What a handler gives back.
pub enum Reply {
    /// The response, complete.
    Now(ResponseBody),
    /// The response once this future completes (it may wait for fsync, data, a rebalance).
    Later(BoxFuture),
    /// No response at all (Produce with acks=0).
    Nothing,
}

/// Per-connection facts handlers may need.
#[derive(Debug)]
pub struct ConnState {
    pub peer: SocketAddr,
    pub client_id: Option<StrBytes>,
    /// Cancelled when the broker shuts down; long waits end early on it.
    pub shutdown: CancellationToken,
    /// The registered connection, for listings and traffic counts (`None` in tests that
    /// serve in-memory pipes).
    pub registered: Option<Arc<Connection>>,
    /// The listener it arrived on: its security protocol and advertised address.
    pub listener: Arc<KafkaListener>,
    /// SASL state (authenticated principal, session expiry).
    pub sasl: SaslSession,
    /// The subject of a verified client certificate (`SSL` listeners).
    pub certified: Option<String>,
    /// Authorisation decisions of this connection (see [`ConnState::may`]).
    pub decisions: Mutex<DecisionCache<(AclOperation, AclResource, String)>>,
}

impl ConnState {
    /// Kafka's principal name of the client: its SASL user, else its certificate's subject,
    /// else ANONYMOUS.
    pub fn principal(&self) -> &str {
        self.sasl
            .principal
            .as_deref()
            .or(self.certified.as_deref())
            .unwrap_or(ANONYMOUS)
    }

    /// May this client do `operation` to `resource` `name` (ACLs, then permissions)?
    /// Decisions are cached until users, permissions or ACLs change.
    pub fn may(
        &self,
        ctx: &Ctx,
        operation: AclOperation,
        resource: AclResource,
        name: &str,
    ) -> bool {
        let principal = self.principal();
        let host = self.peer.ip().to_string();
        let who = KafkaPrincipal {
            name: principal,
            host: &host,
            vhost: ctx.vhost.name(),
            super_user: ctx
                .config
                .super_users
                .iter()
                .any(|s| s.strip_prefix("User:") == Some(principal)),
            allow_everyone_if_no_acl_found: ctx.config.allow_everyone_if_no_acl_found,
        };
        self.decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or(&ctx.users, &(operation, resource, name.to_owned()), || {
                ctx.users.authorize_kafka(&who, operation, resource, name)
            })
    }

    /// Topic creation: CREATE on the cluster or on the topic, as Kafka checks it.
    pub fn may_create_topic(&self, ctx: &Ctx, name: &str) -> bool {
        self.may(
            ctx,
            AclOperation::Create,
            AclResource::Cluster,
            CLUSTER_NAME,
        ) || self.may(ctx, AclOperation::Create, AclResource::Topic, name)
    }

    /// An operation on the group `name`.
    pub fn may_group(&self, ctx: &Ctx, operation: AclOperation, name: &str) -> bool {
        self.may(ctx, operation, AclResource::Group, name)
    }

    /// An operation on the topic `name`.
    pub fn may_topic(&self, ctx: &Ctx, operation: AclOperation, name: &str) -> bool {
        self.may(ctx, operation, AclResource::Topic, name)
    }

    /// An operation on the cluster.
    pub fn may_cluster(&self, ctx: &Ctx, operation: AclOperation) -> bool {
        self.may(ctx, operation, AclResource::Cluster, CLUSTER_NAME)
    }
}
