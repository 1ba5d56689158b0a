//! What the coordinator keeps per transactional id (journaled as JSON), and its errors.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Kafka's transaction states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
}

impl TxnState {
    /// As DescribeTransactions and ListTransactions name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Ongoing => "Ongoing",
            Self::PrepareCommit => "PrepareCommit",
            Self::PrepareAbort => "PrepareAbort",
            Self::CompleteCommit => "CompleteCommit",
            Self::CompleteAbort => "CompleteAbort",
            Self::Dead => "Dead",
        }
    }
}

/// An offset a transaction commits for a group when it commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// One transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// (topic, partition) written to by the current (or last) transaction.
    pub partitions: BTreeSet<(String, u32)>,
    /// Groups added with AddOffsetsToTxn.
    pub groups: BTreeSet<String>,
    pub offsets: Vec<PendingOffset>,
    /// When the current transaction began (wall clock, ms).
    pub started_ms: i64,
    pub updated_ms: i64,
}

impl TxnMeta {
    pub(crate) fn new(
        transactional_id: &str,
        producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
    ) -> Self {
        Self {
            transactional_id: transactional_id.to_owned(),
            producer_id,
            producer_epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            offsets: Vec::new(),
            started_ms: -1,
            updated_ms: now_ms,
        }
    }
}

/// Why the coordinator refused a request (each is one Kafka error code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("transaction timeout {timeout_ms} ms is not in 1..={max} (transaction.max.timeout.ms)")]
    InvalidTimeout { timeout_ms: i32, max: i32 },
    /// A newer producer instance holds the transactional id.
    #[error("the producer was fenced by a newer instance with the same transactional id")]
    Fenced,
    #[error("the producer id does not belong to this transactional id")]
    InvalidMapping,
    #[error("the previous transaction is still being completed")]
    ConcurrentTransactions,
    #[error("the transaction is {}: not allowed now", state.as_str())]
    InvalidState { state: TxnState },
    #[error("unknown topic or partition")]
    UnknownPartition,
    #[error("not attempted: another partition of the request failed")]
    NotAttempted,
    #[error("transaction state could not be stored: {reason}")]
    Storage { reason: String },
}
