//! The ready list of a queue: messages waiting for a consumer, in delivery order.
//!
//! Without `x-max-priority` it is one FIFO. With it, one FIFO per priority level, served
//! highest first. Requeued messages go back to their original place (ordered by sequence
//! number within their level), as RabbitMQ's classic queues do.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::time::Instant;

use crate::message::Message;

/// A message in a queue, with the per-queue facts that travel with it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Position in the queue: increasing in publish order, unique per queue.
    pub seq: u64,
    pub message: Arc<Message>,
    /// Delivered before (and requeued).
    pub redelivered: bool,
    /// When it expires (queue or per-message TTL), fixed when it was enqueued.
    pub expires_at: Option<Instant>,
    /// Its priority level in this queue (0 when the queue has no priorities).
    pub level: u8,
    /// How many times it was requeued (quorum queues' `x-delivery-limit` counts these).
    pub requeues: u32,
}

#[derive(Debug)]
pub(crate) struct Ready {
    levels: Vec<VecDeque<Entry>>,
    len: usize,
    bytes: u64,
}

impl Ready {
    pub(crate) fn new(max_priority: Option<u8>) -> Self {
        let count = usize::from(max_priority.unwrap_or(0)) + 1;
        Self {
            levels: (0..count).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sum of body sizes (what `x-max-length-bytes` limits).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The level a message of priority `priority` goes to.
    pub(crate) fn level_for(&self, priority: Option<u8>) -> u8 {
        let max = u8::try_from(self.levels.len() - 1).unwrap_or(u8::MAX);
        priority.unwrap_or(0).min(max)
    }

    pub(crate) fn push_back(&mut self, entry: Entry) {
        self.bytes += entry.message.body_size();
        self.len += 1;
        let level = usize::from(entry.level).min(self.levels.len() - 1);
        if let Some(fifo) = self.levels.get_mut(level) {
            fifo.push_back(entry);
        }
    }

    /// Puts a requeued entry back at its original position.
    pub(crate) fn insert_by_seq(&mut self, entry: Entry) {
        self.bytes += entry.message.body_size();
        self.len += 1;
        let level = usize::from(entry.level).min(self.levels.len() - 1);
        if let Some(fifo) = self.levels.get_mut(level) {
            let at = fifo.partition_point(|e| e.seq < entry.seq);
            fifo.insert(at, entry);
        }
    }

    fn front_level(&self) -> Option<usize> {
        self.levels.iter().rposition(|fifo| !fifo.is_empty())
    }

    pub(crate) fn pop_front(&mut self) -> Option<Entry> {
        let level = self.front_level()?;
        let entry = self.levels.get_mut(level)?.pop_front()?;
        self.len -= 1;
        self.bytes -= entry.message.body_size();
        Some(entry)
    }

    /// Removes, from the head of every level, entries that have expired at `now`.
    pub(crate) fn take_expired(&mut self, now: Instant, out: &mut Vec<Entry>) {
        for fifo in &mut self.levels {
            while fifo
                .front()
                .is_some_and(|e| e.expires_at.is_some_and(|t| t <= now))
            {
                if let Some(entry) = fifo.pop_front() {
                    self.len -= 1;
                    self.bytes -= entry.message.body_size();
                    out.push(entry);
                }
            }
        }
    }

    /// The earliest expiry among level heads (only heads expire, as in RabbitMQ).
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.levels
            .iter()
            .filter_map(|fifo| fifo.front()?.expires_at)
            .min()
    }

    /// Removes everything; returns how many entries there were.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.len;
        for fifo in &mut self.levels {
            fifo.clear();
        }
        self.len = 0;
        self.bytes = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::message::Properties;

    fn entry(seq: u64, level: u8, body: &'static str) -> Entry {
        Entry {
            seq,
            message: Arc::new(Message::new(
                "",
                "",
                Properties::default(),
                Bytes::from_static(body.as_bytes()),
            )),
            redelivered: false,
            expires_at: None,
            level,
            requeues: 0,
        }
    }

    #[test]
    fn priorities_then_fifo_and_requeue_in_place() {
        let mut ready = Ready::new(Some(5));
        assert_eq!(ready.level_for(Some(9)), 5);
        assert_eq!(ready.level_for(None), 0);
        ready.push_back(entry(1, 0, "a"));
        ready.push_back(entry(2, 5, "bb"));
        ready.push_back(entry(3, 0, "c"));
        ready.push_back(entry(4, 5, "d"));
        assert_eq!(ready.bytes(), 5);
        let order: Vec<u64> = std::iter::from_fn(|| ready.pop_front())
            .map(|e| e.seq)
            .collect();
        assert_eq!(order, [2, 4, 1, 3]);
        assert!(ready.is_empty());
        ready.push_back(entry(7, 0, "x"));
        ready.insert_by_seq(entry(3, 0, "y"));
        ready.insert_by_seq(entry(5, 0, "z"));
        let order: Vec<u64> = std::iter::from_fn(|| ready.pop_front())
            .map(|e| e.seq)
            .collect();
        assert_eq!(order, [3, 5, 7]);
        assert_eq!(ready.bytes(), 0);
    }

    #[test]
    fn only_heads_expire() {
        let now = Instant::now();
        let mut ready = Ready::new(None);
        let mut a = entry(1, 0, "a");
        a.expires_at = Some(now + std::time::Duration::from_secs(10));
        let mut b = entry(2, 0, "b");
        b.expires_at = Some(now);
        ready.push_back(a);
        ready.push_back(b);
        let mut out = Vec::new();
        ready.take_expired(now, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            ready.next_expiry(),
            Some(now + std::time::Duration::from_secs(10))
        );
        ready.take_expired(now + std::time::Duration::from_secs(10), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(ready.len(), 0);
    }
}
