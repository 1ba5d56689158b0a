//! Idempotent-producer state of one partition: per producer id, its epoch and the last five
//! batches it appended, so a retried batch is recognised and not appended twice.
//!
//! The rules are Kafka's (KIP-98, KIP-360): a batch whose first and last sequence match one of
//! the last five of the same epoch is a duplicate and is answered with its original offset;
//! otherwise its first sequence must follow the last one (wrapping after `i32::MAX`), or be 0
//! when the epoch is newer. An older epoch is fenced. A producer the partition knows nothing
//! about (new, or its batches were removed by retention) may start at any sequence.
//!
//! Snapshot layout (`<partition>.producers`, written on close, read on open; batches after
//! its offset are replayed from the log):
//! ```text
//! magic "FPS1" | covers_to u64 | count u32 | { pid i64 | epoch i16 | n u8
//!                                              | { first i32 | last i32 | base u64 | ts i64 }*n }*
//! | crc32c u32 of everything before it
//! ```
//!
//! # Invariants
//! - Checked and updated under the partition's append lock, so check-then-append is atomic.
//! - At most [`RETAINED_BATCHES`] batches are kept per producer.

use std::collections::{HashMap, VecDeque};

use crate::stream::batch::RecordBatch;

/// Batches remembered per producer (Kafka's `max.in.flight.requests.per.connection` bound).
pub const RETAINED_BATCHES: usize = 5;
const MAGIC: &[u8; 4] = b"FPS1";

/// A batch already appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedBatch {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: u64,
    /// The log-append time given to it, or -1.
    pub log_append_time: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Producer {
    epoch: i16,
    batches: VecDeque<AppendedBatch>,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    Append,
    Duplicate(AppendedBatch),
}

/// Why a batch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    Fenced {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: sequence {got} does not follow {last} (epoch {epoch})")]
    OutOfOrder {
        producer_id: i64,
        epoch: i16,
        last: i32,
        got: i32,
    },
}

/// Producer states of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Producers {
    map: HashMap<i64, Producer>,
}

fn follows(last: i32, next: i32) -> bool {
    if last == i32::MAX {
        next == 0
    } else {
        next == last + 1
    }
}

impl Producers {
    /// Checks an idempotent batch (`batch.producer_id() >= 0`).
    pub fn check(&self, batch: &RecordBatch) -> Result<SequenceCheck, SequenceError> {
        let producer_id = batch.producer_id();
        let epoch = batch.producer_epoch();
        let (first, last) = (batch.base_sequence(), batch.last_sequence());
        let Some(state) = self.map.get(&producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        if epoch < state.epoch {
            return Err(SequenceError::Fenced {
                producer_id,
                epoch,
                current: state.epoch,
            });
        }
        if epoch > state.epoch {
            if first != 0 {
                return Err(SequenceError::OutOfOrder {
                    producer_id,
                    epoch,
                    last: -1,
                    got: first,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(dup) = state
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        match state.batches.back() {
            Some(prev) if !follows(prev.last_seq, first) => Err(SequenceError::OutOfOrder {
                producer_id,
                epoch,
                last: prev.last_seq,
                got: first,
            }),
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records an appended idempotent batch.
    pub fn record(&mut self, producer_id: i64, epoch: i16, appended: AppendedBatch) {
        let state = self.map.entry(producer_id).or_default();
        if epoch != state.epoch {
            state.epoch = epoch;
            state.batches.clear();
        }
        if state.batches.len() == RETAINED_BATCHES {
            state.batches.pop_front();
        }
        state.batches.push_back(appended);
    }

    /// A transaction marker of `producer_id` at `epoch`: fenced if older than the producer's
    /// epoch; a newer epoch becomes the producer's, with no batches remembered (its next batch
    /// may begin anywhere). Markers take no sequence numbers.
    pub fn apply_marker(&mut self, producer_id: i64, epoch: i16) -> Result<(), SequenceError> {
        match self.map.get_mut(&producer_id) {
            Some(state) if epoch < state.epoch => Err(SequenceError::Fenced {
                producer_id,
                epoch,
                current: state.epoch,
            }),
            Some(state) if epoch > state.epoch => {
                state.epoch = epoch;
                state.batches.clear();
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Replays a stored batch (recovery).
    pub fn replay(&mut self, batch: &RecordBatch) {
        if batch.producer_id() < 0 {
            return;
        }
        if crate::stream::txn::is_control(batch) {
            let _ = self.apply_marker(batch.producer_id(), batch.producer_epoch());
            return;
        }
        let appended = AppendedBatch {
            first_seq: batch.base_sequence(),
            last_seq: batch.last_sequence(),
            base_offset: u64::try_from(batch.base_offset()).unwrap_or(0),
            log_append_time: if batch.is_log_append_time() {
                batch.max_timestamp()
            } else {
                -1
            },
        };
        self.record(batch.producer_id(), batch.producer_epoch(), appended);
    }

    /// Forgets batches below `start` (retention or DeleteRecords removed them).
    pub fn truncate_below(&mut self, start: u64) {
        self.map.retain(|_, p| {
            p.batches.retain(|b| b.base_offset >= start);
            !p.batches.is_empty()
        });
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The snapshot bytes, covering batches below `covers_to`.
    pub fn encode(&self, covers_to: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.map.len() * 80);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&covers_to.to_be_bytes());
        out.extend_from_slice(
            &u32::try_from(self.map.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        for (pid, p) in &self.map {
            out.extend_from_slice(&pid.to_be_bytes());
            out.extend_from_slice(&p.epoch.to_be_bytes());
            out.push(u8::try_from(p.batches.len()).unwrap_or(u8::MAX));
            for b in &p.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.log_append_time.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot; `None` if it is damaged (the caller replays the log instead).
    pub fn decode(bytes: &[u8]) -> Option<(Self, u64)> {
        let (body, crc) = bytes.split_last_chunk::<4>()?;
        if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
            return None;
        }
        let mut r = Reader(body);
        if r.take::<4>()? != *MAGIC {
            return None;
        }
        let covers_to = u64::from_be_bytes(r.take()?);
        let count = u32::from_be_bytes(r.take()?);
        let mut producers = Self::default();
        for _ in 0..count {
            let pid = i64::from_be_bytes(r.take()?);
            let epoch = i16::from_be_bytes(r.take()?);
            let [n] = r.take::<1>()?;
            let mut state = Producer {
                epoch,
                batches: VecDeque::new(),
            };
            for _ in 0..n {
                state.batches.push_back(AppendedBatch {
                    first_seq: i32::from_be_bytes(r.take()?),
                    last_seq: i32::from_be_bytes(r.take()?),
                    base_offset: u64::from_be_bytes(r.take()?),
                    log_append_time: i64::from_be_bytes(r.take()?),
                });
            }
            producers.map.insert(pid, state);
        }
        r.0.is_empty().then_some((producers, covers_to))
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

#[cfg(test)]
mod tests;
