//! The transaction coordinator (KIP-98, KIP-360, KIP-447): transactional ids, their producer
//! id and epoch, and the state machine that ends each transaction with markers in every
//! partition it wrote to.
//!
//! ```text
//!            add partitions/offsets           end (commit|abort)
//! Empty ─────────────────────────> Ongoing ─────────────────────> PrepareCommit|PrepareAbort
//!   ^                                                               │ markers in every partition,
//!   └──── CompleteCommit|CompleteAbort <────────────────────────────┘ offsets applied on commit
//! ```
//! State lives in its own journal, `<data_dir>/meta/transactions/` (a `DefinitionStore`
//! keyed by transactional id), written before a transition is answered. At open, a
//! transaction whose decision was logged (Prepare*) is completed, and one still Ongoing is
//! aborted with a bumped epoch, which fences the producer that left it.
//!
//! # Invariants
//! - Requests of all transactional ids are applied one at a time (transaction control is rare
//!   next to produce, which never takes this lock).
//! - A decision is durable before any marker is written, and a transaction is Complete only
//!   once every marker is visible, so a crash in between completes it at the next open.
//! - Every marker of a transaction carries the epoch that ended it: a producer with an older
//!   epoch is fenced in every partition it touched.

mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ferrymq_log::LogConfig;
use tokio::sync::Mutex;

pub use state::{PendingOffset, TxnError, TxnMeta, TxnState};

use crate::Error;
use crate::group::CommittedOffset;
use crate::group::Coordinator as Groups;
use crate::store::{DefinitionStore, Kind};
use crate::stream::txn::Outcome;
use crate::stream::{ProducerIds, Streams};

/// Kafka's `transaction.max.timeout.ms` default (15 minutes).
pub const DEFAULT_MAX_TIMEOUT_MS: i32 = 900_000;
/// How often open transactions are checked against their timeout.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

/// The coordinator of every transactional id of the broker's Kafka vhost.
#[derive(Debug)]
pub struct TransactionCoordinator {
    store: DefinitionStore,
    txns: Mutex<HashMap<String, TxnMeta>>,
    /// The state as last stored, for the Produce path (see [`Self::check_produce`]).
    visible: std::sync::RwLock<HashMap<String, TxnMeta>>,
    streams: Arc<Streams>,
    producer_ids: Arc<ProducerIds>,
    groups: Arc<Groups>,
    max_timeout_ms: i32,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn storage(e: impl std::fmt::Display) -> TxnError {
    TxnError::Storage {
        reason: e.to_string(),
    }
}

impl TransactionCoordinator {
    /// Opens the journal in `dir` (blocking). [`Self::start`] then completes what a crash
    /// interrupted.
    pub fn open(
        dir: &Path,
        log_config: &LogConfig,
        streams: Arc<Streams>,
        producer_ids: Arc<ProducerIds>,
        groups: Arc<Groups>,
        max_timeout_ms: i32,
    ) -> Result<Arc<Self>, Error> {
        let (store, recovered) = DefinitionStore::open(dir, log_config)?;
        let mut txns = HashMap::new();
        for d in recovered.iter().filter(|d| d.kind == Kind::Transaction) {
            let meta: TxnMeta = DefinitionStore::decode_json(Kind::Transaction, &d.key, &d.value)?;
            txns.insert(d.key.clone(), meta);
        }
        Ok(Arc::new(Self {
            store,
            visible: std::sync::RwLock::new(txns.clone()),
            txns: Mutex::new(txns),
            streams,
            producer_ids,
            groups,
            max_timeout_ms,
        }))
    }

    /// Completes what a crash interrupted: decided transactions get their markers, undecided
    /// ones are aborted and their producers fenced. Requests meanwhile wait for it (they
    /// take the same lock) or, for a transaction still being completed, are told
    /// CONCURRENT_TRANSACTIONS.
    pub async fn recover(&self) -> Result<(), TxnError> {
        let mut txns = self.txns.lock().await;
        let ids: Vec<String> = txns.keys().cloned().collect();
        for id in ids {
            let Some(meta) = txns.get_mut(&id) else {
                continue;
            };
            match meta.state {
                TxnState::PrepareCommit => self.complete(meta, Outcome::Commit).await?,
                TxnState::PrepareAbort => self.complete(meta, Outcome::Abort).await?,
                TxnState::Ongoing => {
                    tracing::info!(transactional_id = %id, "aborting a transaction left open");
                    self.abort_fencing(meta).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Starts the task that recovers (see [`Self::recover`]) and then aborts transactions
    /// past their timeout.
    pub fn start(self: &Arc<Self>) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        let recovering = Arc::clone(self);
        handle.spawn(async move {
            if let Err(e) = recovering.recover().await {
                tracing::error!("completing transactions left by the last run: {e}");
            }
            drop(recovering);
            let mut tick = tokio::time::interval(EXPIRY_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(coordinator) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = coordinator.expire(now_ms()).await {
                    tracing::error!("aborting expired transactions: {e}");
                }
            }
        });
    }

    async fn persist(&self, meta: &TxnMeta) -> Result<(), TxnError> {
        let pending = self
            .store
            .put_json(Kind::Transaction, &meta.transactional_id, meta)
            .map_err(storage)?;
        pending.durable().await.map_err(storage)?;
        self.visible
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(meta.transactional_id.clone(), meta.clone());
        Ok(())
    }

    /// InitProducerId with a transactional id: the producer id and a new epoch, after ending
    /// whatever the previous holder of the id left open (aborted, which fences it).
    /// `expected` is KIP-360's (producer id, epoch) of a producer re-initialising itself.
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(TxnError::InvalidTimeout {
                timeout_ms,
                max: self.max_timeout_ms,
            });
        }
        let mut txns = self.txns.lock().await;
        let Some(meta) = txns.get_mut(transactional_id) else {
            if expected.is_some_and(|(pid, _)| pid >= 0) {
                return Err(TxnError::InvalidMapping);
            }
            let ids = Arc::clone(&self.producer_ids);
            let producer_id = tokio::task::spawn_blocking(move || ids.allocate())
                .await
                .map_err(storage)?
                .map_err(storage)?;
            let meta = TxnMeta::new(transactional_id, producer_id, timeout_ms, now_ms());
            self.persist(&meta).await?;
            txns.insert(transactional_id.to_owned(), meta);
            return Ok((producer_id, 0));
        };
        if let Some((pid, epoch)) = expected
            && pid >= 0
            && (pid != meta.producer_id || epoch != meta.producer_epoch)
        {
            return Err(TxnError::Fenced);
        }
        match meta.state {
            TxnState::PrepareCommit => self.complete(meta, Outcome::Commit).await?,
            TxnState::PrepareAbort => self.complete(meta, Outcome::Abort).await?,
            // Ending it bumps the epoch already: the old producer is fenced by its markers.
            TxnState::Ongoing => {
                self.abort_fencing(meta).await?;
                meta.timeout_ms = timeout_ms;
                self.persist(meta).await?;
                return Ok((meta.producer_id, meta.producer_epoch));
            }
            _ => {}
        }
        if meta.producer_epoch >= i16::MAX - 1 {
            let ids = Arc::clone(&self.producer_ids);
            meta.producer_id = tokio::task::spawn_blocking(move || ids.allocate())
                .await
                .map_err(storage)?
                .map_err(storage)?;
            meta.producer_epoch = 0;
        } else {
            meta.producer_epoch += 1;
        }
        meta.timeout_ms = timeout_ms;
        meta.state = TxnState::Empty;
        meta.updated_ms = now_ms();
        self.persist(meta).await?;
        Ok((meta.producer_id, meta.producer_epoch))
    }

    /// The transaction of `transactional_id`, checked to belong to this producer instance.
    fn owned<'a>(
        txns: &'a mut HashMap<String, TxnMeta>,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&'a mut TxnMeta, TxnError> {
        let meta = txns
            .get_mut(transactional_id)
            .filter(|m| m.producer_id == producer_id)
            .ok_or(TxnError::InvalidMapping)?;
        if epoch != meta.producer_epoch {
            return Err(TxnError::Fenced);
        }
        Ok(meta)
    }

    /// Makes the transaction Ongoing (if it is not already) for an addition.
    fn begin(meta: &mut TxnMeta) -> Result<(), TxnError> {
        match meta.state {
            TxnState::Ongoing => Ok(()),
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                meta.state = TxnState::Ongoing;
                meta.partitions.clear();
                meta.groups.clear();
                meta.offsets.clear();
                meta.started_ms = now_ms();
                Ok(())
            }
            TxnState::Dead => Err(TxnError::InvalidState { state: meta.state }),
        }
    }

    /// AddPartitionsToTxn: each partition's outcome (an unknown one fails alone, and then the
    /// others are not added, as Kafka answers OPERATION_NOT_ATTEMPTED).
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, u32)],
    ) -> Result<Vec<Result<(), TxnError>>, TxnError> {
        let mut txns = self.txns.lock().await;
        let meta = Self::owned(&mut txns, transactional_id, producer_id, epoch)?;
        let known: Vec<bool> = partitions
            .iter()
            .map(|(topic, p)| {
                self.streams
                    .get(topic)
                    .and_then(|s| s.partition(*p))
                    .is_some()
            })
            .collect();
        if known.contains(&false) {
            return Ok(known
                .into_iter()
                .map(|k| {
                    if k {
                        Err(TxnError::NotAttempted)
                    } else {
                        Err(TxnError::UnknownPartition)
                    }
                })
                .collect());
        }
        Self::begin(meta)?;
        for partition in partitions {
            meta.partitions.insert(partition.clone());
        }
        meta.updated_ms = now_ms();
        self.persist(meta).await?;
        Ok(partitions.iter().map(|_| Ok(())).collect())
    }

    /// AddOffsetsToTxn: the group whose offsets the transaction will commit.
    pub async fn add_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
    ) -> Result<(), TxnError> {
        let mut txns = self.txns.lock().await;
        let meta = Self::owned(&mut txns, transactional_id, producer_id, epoch)?;
        Self::begin(meta)?;
        meta.groups.insert(group.to_owned());
        meta.updated_ms = now_ms();
        self.persist(meta).await
    }

    /// TxnOffsetCommit: offsets that become the group's committed offsets when the
    /// transaction commits (and are dropped if it aborts).
    pub async fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        group: &str,
        offsets: Vec<PendingOffset>,
    ) -> Result<(), TxnError> {
        let mut txns = self.txns.lock().await;
        let meta = Self::owned(&mut txns, transactional_id, producer_id, epoch)?;
        if meta.state != TxnState::Ongoing || !meta.groups.contains(group) {
            return Err(TxnError::InvalidState { state: meta.state });
        }
        for offset in offsets {
            meta.offsets.retain(|o| {
                (o.group.as_str(), o.topic.as_str(), o.partition)
                    != (
                        offset.group.as_str(),
                        offset.topic.as_str(),
                        offset.partition,
                    )
            });
            meta.offsets.push(offset);
        }
        meta.updated_ms = now_ms();
        self.persist(meta).await
    }

    /// Whether this producer may write transactional records to `topic`/`partition` now
    /// (its transaction is Ongoing and added the partition): the Produce path's check, which
    /// reads the last stored state without waiting for the coordinator's lock.
    pub fn check_produce(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        topic: &str,
        partition: u32,
    ) -> Result<(), TxnError> {
        let visible = self
            .visible
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let meta = visible
            .get(transactional_id)
            .filter(|m| m.producer_id == producer_id)
            .ok_or(TxnError::InvalidMapping)?;
        if epoch != meta.producer_epoch {
            return Err(TxnError::Fenced);
        }
        if meta.state != TxnState::Ongoing
            || !meta.partitions.contains(&(topic.to_owned(), partition))
        {
            return Err(TxnError::InvalidState { state: meta.state });
        }
        Ok(())
    }

    /// EndTxn: commits or aborts. Answered once every marker is written and visible.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let mut txns = self.txns.lock().await;
        let meta = Self::owned(&mut txns, transactional_id, producer_id, epoch)?;
        let outcome = if commit {
            Outcome::Commit
        } else {
            Outcome::Abort
        };
        match (meta.state, outcome) {
            (TxnState::Ongoing, _) => {}
            // A retry of what already happened.
            (TxnState::CompleteCommit, Outcome::Commit)
            | (TxnState::CompleteAbort, Outcome::Abort) => return Ok(()),
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                return Err(TxnError::ConcurrentTransactions);
            }
            (state, _) => return Err(TxnError::InvalidState { state }),
        }
        meta.state = match outcome {
            Outcome::Commit => TxnState::PrepareCommit,
            Outcome::Abort => TxnState::PrepareAbort,
        };
        meta.updated_ms = now_ms();
        self.persist(meta).await?;
        self.complete(meta, outcome).await
    }

    /// Writes the decided outcome's markers, applies the offsets of a commit, and records the
    /// transaction complete.
    async fn complete(&self, meta: &mut TxnMeta, outcome: Outcome) -> Result<(), TxnError> {
        let now = now_ms();
        // Every marker is appended (which starts each partition's fsync) before any is
        // awaited, so the partitions sync at once rather than one after another.
        let mut written = Vec::with_capacity(meta.partitions.len());
        for (topic, index) in &meta.partitions {
            let Some(partition) = self.streams.get(topic).and_then(|s| s.partition(*index)) else {
                continue; // deleted since: nothing of it is left to mark
            };
            let appended = partition
                .write_marker(meta.producer_id, meta.producer_epoch, outcome, 0, now)
                .map_err(storage)?;
            written.push((partition, appended.end_offset));
        }
        for (partition, end) in written {
            partition.wait_visible(end).await.map_err(storage)?;
        }
        if outcome == Outcome::Commit && !meta.offsets.is_empty() {
            let mut by_group: HashMap<&str, Vec<(String, i32, CommittedOffset)>> = HashMap::new();
            for o in &meta.offsets {
                by_group.entry(&o.group).or_default().push((
                    o.topic.clone(),
                    o.partition,
                    CommittedOffset {
                        offset: o.offset,
                        leader_epoch: o.leader_epoch,
                        metadata: o.metadata.clone(),
                        commit_ms: now,
                    },
                ));
            }
            for (group, offsets) in by_group {
                let end = self
                    .groups
                    .commit_transactional(group, offsets)
                    .map_err(storage)?;
                if let Some(end) = end {
                    self.groups.wait_durable(end).await.map_err(storage)?;
                }
            }
        }
        meta.state = match outcome {
            Outcome::Commit => TxnState::CompleteCommit,
            Outcome::Abort => TxnState::CompleteAbort,
        };
        meta.offsets.clear();
        meta.updated_ms = now_ms();
        self.persist(meta).await
    }

    /// Aborts an Ongoing transaction with the next epoch, fencing the producer that has it.
    async fn abort_fencing(&self, meta: &mut TxnMeta) -> Result<(), TxnError> {
        meta.producer_epoch = meta.producer_epoch.saturating_add(1);
        meta.state = TxnState::PrepareAbort;
        meta.updated_ms = now_ms();
        self.persist(meta).await?;
        self.complete(meta, Outcome::Abort).await
    }

    /// Aborts every Ongoing transaction whose timeout has passed at `now_ms`.
    pub async fn expire(&self, now_ms: i64) -> Result<(), TxnError> {
        let mut txns = self.txns.lock().await;
        for meta in txns.values_mut() {
            if meta.state == TxnState::Ongoing
                && now_ms > meta.started_ms.saturating_add(i64::from(meta.timeout_ms))
            {
                tracing::info!(transactional_id = %meta.transactional_id,
                    timeout_ms = meta.timeout_ms, "aborting a transaction past its timeout");
                self.abort_fencing(meta).await?;
            }
        }
        Ok(())
    }

    /// One transactional id's state.
    pub async fn describe(&self, transactional_id: &str) -> Option<TxnMeta> {
        self.txns.lock().await.get(transactional_id).cloned()
    }

    /// Every transactional id's state as last stored, by id (DescribeTransactions,
    /// ListTransactions: without waiting for a transaction being completed).
    pub fn snapshot(&self) -> Vec<TxnMeta> {
        let mut all: Vec<TxnMeta> = self
            .visible
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// Writes the journal's buffered records (shutdown).
    pub fn flush(&self) -> Result<(), Error> {
        self.store.flush()
    }
}
