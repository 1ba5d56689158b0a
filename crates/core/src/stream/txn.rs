//! Transactions as one partition sees them (KIP-98): which producers have a transaction open
//! here and from which offset, the transactions that were aborted (a consumer reading
//! committed data skips their records), and the markers that close them.
//!
//! A marker is what Kafka writes: a control batch (attributes transactional | control) of the
//! producer's id and epoch holding one record,
//! ```text
//! key   = version int16 (0) | type int16 (0 abort, 1 commit)
//! value = version int16 (0) | coordinator epoch int32
//! ```
//! appended through the log like any batch, so it takes one offset.
//!
//! # Invariants
//! - A producer has at most one transaction open per partition; its first offset is that of
//!   its first transactional batch after the last marker.
//! - The last stable offset is the first offset of the oldest open transaction, or the high
//!   watermark when none is open: everything below it is decided.
//! - Aborted transactions are kept in the order of their markers, so the ones a fetch must
//!   report are found without scanning the log.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::batch::{HEADER_LEN, RecordBatch};
use super::encode::put_varlong;
use super::records;

const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;
const CRC_START: usize = 21;
const MARKER_ABORT: i16 = 0;
const MARKER_COMMIT: i16 = 1;

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Commit,
    Abort,
}

/// An aborted transaction of one partition: the offsets from its first record to its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: u64,
    /// The offset of the abort marker.
    pub last_offset: u64,
}

/// The marker batch closing `producer_id`'s transaction, as a v2 batch with base offset 0
/// (the log patches it on append).
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    outcome: Outcome,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Bytes {
    let kind = match outcome {
        Outcome::Commit => MARKER_COMMIT,
        Outcome::Abort => MARKER_ABORT,
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut record = Vec::with_capacity(16);
    record.push(0); // attributes
    put_varlong(&mut record, 0); // timestamp delta
    put_varlong(&mut record, 0); // offset delta
    put_varlong(&mut record, 4);
    record.extend_from_slice(&key);
    put_varlong(&mut record, 6);
    record.extend_from_slice(&value);
    put_varlong(&mut record, 0); // headers
    let mut records = Vec::with_capacity(record.len() + 2);
    put_varlong(&mut records, i64::try_from(record.len()).unwrap_or(0));
    records.extend_from_slice(&record);

    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let batch_length = i32::try_from(HEADER_LEN - 12 + records.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    out.push(2); // magic
    out.extend_from_slice(&[0; 4]); // crc, below
    out.extend_from_slice(&(TRANSACTIONAL_BIT | CONTROL_BIT).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&producer_id.to_be_bytes());
    out.extend_from_slice(&producer_epoch.to_be_bytes());
    out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    out.extend_from_slice(&1i32.to_be_bytes()); // record count
    out.extend_from_slice(&records);
    let crc = crc32c::crc32c(out.get(CRC_START..).unwrap_or_default());
    if let Some(slot) = out.get_mut(17..21) {
        slot.copy_from_slice(&crc.to_be_bytes());
    }
    Bytes::from(out)
}

/// Whether `batch` is a control batch (a transaction marker).
pub fn is_control(batch: &RecordBatch) -> bool {
    batch.attributes() & CONTROL_BIT != 0
}

/// Whether `batch` holds records of a transaction (and is not its marker).
pub fn is_transactional_data(batch: &RecordBatch) -> bool {
    let attributes = batch.attributes();
    attributes & TRANSACTIONAL_BIT != 0 && attributes & CONTROL_BIT == 0
}

/// The outcome a control batch records; `None` for other batches and unknown control types.
pub fn marker_outcome(batch: &RecordBatch) -> Option<Outcome> {
    if !is_control(batch) {
        return None;
    }
    let mut outcome = None;
    records::for_each(batch, 1024, |record| {
        outcome = record
            .key
            .as_ref()
            .and_then(|key| key.get(2..4))
            .and_then(|kind| match i16::from_be_bytes([kind[0], kind[1]]) {
                MARKER_COMMIT => Some(Outcome::Commit),
                MARKER_ABORT => Some(Outcome::Abort),
                _ => None,
            });
        false
    })
    .ok()?;
    outcome
}

/// What a reader of committed data (the AMQP view of a partition) does with each batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Committed (or not transactional at all): deliver its records.
    Deliver,
    /// A marker, or records of an aborted transaction: skip them.
    Skip,
    /// At or past the last stable offset: not decided yet, stop reading here.
    Stop,
}

/// Sorts a partition's batches for readers that see committed records only, from one look at
/// its transaction state (see `Partition::committed_filter`).
#[derive(Debug, Clone)]
pub struct CommittedFilter {
    pub(crate) last_stable: u64,
    pub(crate) aborted: Vec<AbortedTxn>,
}

impl CommittedFilter {
    /// The last stable offset it was made with.
    pub fn last_stable(&self) -> u64 {
        self.last_stable
    }

    pub fn verdict(&self, batch: &RecordBatch) -> Verdict {
        let base = u64::try_from(batch.base_offset()).unwrap_or(u64::MAX);
        if base >= self.last_stable {
            return Verdict::Stop;
        }
        if is_control(batch) {
            return Verdict::Skip;
        }
        let aborted = is_transactional_data(batch)
            && self.aborted.iter().any(|t| {
                t.producer_id == batch.producer_id()
                    && (t.first_offset..=t.last_offset).contains(&base)
            });
        if aborted {
            Verdict::Skip
        } else {
            Verdict::Deliver
        }
    }
}

/// The transactions of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartitionTxns {
    /// Producer id -> first offset of its open transaction.
    open: BTreeMap<i64, u64>,
    /// In marker order.
    aborted: Vec<AbortedTxn>,
}

impl PartitionTxns {
    /// A transactional batch of `producer_id` was appended at `base_offset`.
    pub fn on_data(&mut self, producer_id: i64, base_offset: u64) {
        self.open.entry(producer_id).or_insert(base_offset);
    }

    /// `producer_id`'s marker was appended at `marker_offset`. A marker without an open
    /// transaction here (the coordinator writes one to every partition it added, even if
    /// nothing was produced there) closes nothing.
    pub fn on_marker(&mut self, producer_id: i64, outcome: Outcome, marker_offset: u64) {
        let Some(first_offset) = self.open.remove(&producer_id) else {
            return;
        };
        if outcome == Outcome::Abort {
            self.aborted.push(AbortedTxn {
                producer_id,
                first_offset,
                last_offset: marker_offset,
            });
        }
    }

    /// Replays one stored batch (recovery).
    pub fn replay(&mut self, batch: &RecordBatch, base_offset: u64) {
        if let Some(outcome) = marker_outcome(batch) {
            self.on_marker(batch.producer_id(), outcome, base_offset);
        } else if is_transactional_data(batch) {
            self.on_data(batch.producer_id(), base_offset);
        }
    }

    /// Whether `producer_id` has a transaction open here.
    pub fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// The first offset of the oldest open transaction.
    pub fn first_open(&self) -> Option<u64> {
        self.open.values().copied().min()
    }

    /// Everything below this is committed or aborted (`high_watermark` when nothing is open).
    pub fn last_stable_offset(&self, high_watermark: u64) -> u64 {
        self.first_open()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The aborted transactions a read of `[from, upto)` must know: those that end at or
    /// after `from` and begin before `upto`, oldest first.
    pub fn aborted_between(&self, from: u64, upto: u64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|t| t.last_offset < from);
        self.aborted
            .get(start..)
            .unwrap_or_default()
            .iter()
            .filter(|t| t.first_offset < upto)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below `log_start` (retention removed them).
    pub fn trim(&mut self, log_start: u64) {
        let gone = self.aborted.partition_point(|t| t.last_offset < log_start);
        self.aborted.drain(..gone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_batches_parse_as_kafka_control_batches() {
        for outcome in [Outcome::Commit, Outcome::Abort] {
            let bytes = marker_batch(7, 3, outcome, 0, 1_700_000_000_000);
            let batch = RecordBatch::parse(bytes).unwrap();
            assert!(is_control(&batch) && !is_transactional_data(&batch));
            assert_eq!((batch.producer_id(), batch.producer_epoch()), (7, 3));
            assert_eq!((batch.record_count(), batch.base_sequence()), (1, -1));
            assert_eq!(marker_outcome(&batch), Some(outcome));
            let mut key = None;
            records::for_each(&batch, 1024, |r| {
                key = r.key.clone();
                assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 0, 0][..]));
                true
            })
            .unwrap();
            let kind: &[u8] = if outcome == Outcome::Commit {
                &[0, 1]
            } else {
                &[0, 0]
            };
            assert_eq!(key.as_deref(), Some(&[&[0u8, 0][..], kind].concat()[..]));
        }
    }

    #[test]
    fn kafka_protocols_decoder_reads_a_marker_as_a_control_record() {
        use kafka_protocol::records::RecordBatchDecoder;
        let mut bytes = marker_batch(42, 1, Outcome::Abort, 5, 1_700_000_000_000);
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        let [record] = set.records.as_slice() else {
            panic!("one record: {:?}", set.records)
        };
        assert!(record.control && record.transactional);
        assert_eq!((record.producer_id, record.producer_epoch), (42, 1));
        assert_eq!(record.key.as_deref(), Some(&[0u8, 0, 0, 0][..]));
        assert_eq!(record.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 5][..]));
    }

    #[test]
    fn the_last_stable_offset_waits_for_the_oldest_open_transaction() {
        let mut txns = PartitionTxns::default();
        assert_eq!(txns.last_stable_offset(10), 10);
        txns.on_data(1, 10);
        txns.on_data(2, 12);
        txns.on_data(1, 14); // the same transaction
        assert_eq!(txns.last_stable_offset(20), 10);
        txns.on_marker(1, Outcome::Commit, 20);
        assert_eq!(txns.last_stable_offset(21), 12);
        txns.on_marker(2, Outcome::Abort, 21);
        assert_eq!(txns.last_stable_offset(22), 22);
        assert!(!txns.is_open(1) && !txns.is_open(2));
        // A marker where nothing was produced closes nothing and records nothing.
        txns.on_marker(3, Outcome::Abort, 22);
        assert_eq!(txns.aborted_between(0, 100).len(), 1);
    }

    #[test]
    fn aborted_transactions_are_found_by_range_and_trimmed_by_retention() {
        let mut txns = PartitionTxns::default();
        for (pid, first, last) in [(1, 0, 5), (2, 3, 9), (1, 10, 12)] {
            txns.on_data(pid, first);
            txns.on_marker(pid, Outcome::Abort, last);
        }
        let pids = |v: Vec<AbortedTxn>| {
            v.iter()
                .map(|t| (t.producer_id, t.first_offset))
                .collect::<Vec<_>>()
        };
        assert_eq!(pids(txns.aborted_between(6, 20)), [(2, 3), (1, 10)]);
        assert_eq!(pids(txns.aborted_between(0, 3)), [(1, 0)]);
        assert_eq!(pids(txns.aborted_between(13, 20)), []);
        txns.trim(10);
        assert_eq!(pids(txns.aborted_between(0, 100)), [(1, 10)]);
    }

    #[test]
    fn replay_rebuilds_the_same_state() {
        let data = |pid: i64| {
            let mut batch = RecordBatch::parse(marker_batch(pid, 0, Outcome::Commit, 0, 0))
                .unwrap()
                .bytes()
                .to_vec();
            // The same batch as transactional data: control bit off, CRC recomputed.
            batch[21..23].copy_from_slice(&TRANSACTIONAL_BIT.to_be_bytes());
            let crc = crc32c::crc32c(&batch[CRC_START..]);
            batch[17..21].copy_from_slice(&crc.to_be_bytes());
            RecordBatch::parse(Bytes::from(batch)).unwrap()
        };
        let marker =
            |pid, outcome| RecordBatch::parse(marker_batch(pid, 0, outcome, 0, 0)).unwrap();
        let mut replayed = PartitionTxns::default();
        replayed.replay(&data(1), 0);
        replayed.replay(&data(2), 1);
        replayed.replay(&marker(1, Outcome::Abort), 2);
        let mut live = PartitionTxns::default();
        live.on_data(1, 0);
        live.on_data(2, 1);
        live.on_marker(1, Outcome::Abort, 2);
        assert_eq!(replayed, live);
        assert_eq!(replayed.last_stable_offset(3), 1);
    }
}
