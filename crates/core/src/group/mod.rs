//! Consumer groups: membership (Kafka's classic rebalance protocol) and committed offsets.
//!
//! ```text
//! Coordinator ── groups: id -> Mutex<Group>   (membership state machine: see `state`)
//!             ── store:  meta/offsets log     (commits and group metadata: see `store`)
//!             ── ticker: every TICK, session expiry and rebalance deadlines
//! ```
//! The member and assignment payloads (a consumer's subscription, its partitions) are opaque
//! bytes here: the protocol type ("consumer") and its encoding belong to the clients.
//!
//! # Invariants
//! - Each group has its own lock; nothing here holds one across an `.await` or a blocking
//!   call. Offset commits are applied in memory and appended under the group lock; the fsync
//!   that makes them durable runs afterwards on the blocking pool.
//! - Committed offsets and group metadata are rebuilt from the offsets log on open, so they
//!   survive restarts; members restored from it get a fresh session timeout.

mod codec;
mod coordinator;
mod membership;
mod offsets;
mod state;
mod store;

use bytes::Bytes;

pub use codec::CommittedOffset;
pub use coordinator::{Coordinator, GroupConfig, Pending};
pub use state::GroupState;

/// A JoinGroup as the coordinator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty for a member joining for the first time.
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub metadata: Bytes,
}

/// The JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member, for the leader only.
    pub members: Vec<JoinedMember>,
    /// The leader rejoined a stable group and must keep the current assignment (KIP-814).
    pub skip_assignment: bool,
}

impl JoinResponse {
    pub fn error(error: GroupError, member_id: String) -> Self {
        Self {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol: None,
            leader: String::new(),
            member_id,
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// The SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(error: GroupError) -> Self {
        Self {
            error: Some(error),
            protocol_type: None,
            protocol: None,
            assignment: Bytes::new(),
        }
    }
}

/// One member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Empty unless the group is stable.
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group as DescribeGroups and ListGroups report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberDescription>,
}

/// Why a group operation was refused. Frontends map each to their protocol's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("group '{group}' has no member '{member_id}'")]
    UnknownMember { group: String, member_id: String },
    #[error("generation {got} is not group '{group}''s current generation {current}")]
    IllegalGeneration {
        group: String,
        got: i32,
        current: i32,
    },
    #[error("group '{group}' is rebalancing")]
    RebalanceInProgress { group: String },
    #[error("group '{group}': {reason}")]
    InconsistentProtocol { group: String, reason: String },
    #[error("session timeout {timeout_ms} ms is outside [{min}, {max}] ms")]
    InvalidSessionTimeout { timeout_ms: i32, min: u32, max: u32 },
    #[error("invalid group id '{group}': {reason}")]
    InvalidGroupId { group: String, reason: String },
    #[error("group '{group}': rejoin with the assigned member id '{member_id}'")]
    MemberIdRequired { group: String, member_id: String },
    #[error(
        "group '{group}': instance '{instance_id}' is now owned by another member than '{member_id}'"
    )]
    FencedInstance {
        group: String,
        instance_id: String,
        member_id: String,
    },
    #[error("group '{group}' still has members")]
    NotEmpty { group: String },
    #[error("no group '{group}'")]
    NotFound { group: String },
    #[error("offset metadata of {len} bytes exceeds {max} bytes")]
    MetadataTooLarge { len: usize, max: usize },
    #[error("group '{group}' is subscribed to topic '{topic}'")]
    SubscribedToTopic { group: String, topic: String },
    #[error("the coordinator is shutting down")]
    ShuttingDown,
    #[error("group state could not be stored: {reason}")]
    Unstorable { reason: String },
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
