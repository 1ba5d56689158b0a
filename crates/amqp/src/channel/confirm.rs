//! Publisher confirms: one sequence number per publish, settled possibly out of order
//! (a persistent message waits for its journal; a transient one is settled at once),
//! announced to the client in order-preserving batches.
//!
//! ```text
//! pending (oldest first): 1 ack | 2 ack | 3 waiting | 4 nack
//! flush -> basic.ack(2, multiple) ; basic.nack(4)    pending: 3 waiting
//! ```

use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Waiting for this many durability confirmations.
    Waiting(usize),
    Ack,
    Nack,
}

/// A confirm to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirm {
    pub ack: bool,
    pub delivery_tag: u64,
    pub multiple: bool,
}

#[derive(Debug, Default)]
pub struct ConfirmTracker {
    last: u64,
    pending: VecDeque<(u64, Status)>,
}

impl ConfirmTracker {
    /// Numbers the next publish; `waits` durability confirmations must arrive before it
    /// is acked (0: settled now, with `ack`).
    pub fn publish(&mut self, ack: bool, waits: usize) -> u64 {
        self.last += 1;
        let status = match (ack, waits) {
            (false, _) => Status::Nack,
            (true, 0) => Status::Ack,
            (true, n) => Status::Waiting(n),
        };
        self.pending.push_back((self.last, status));
        self.last
    }

    /// One durability confirmation for `seq` arrived (`ok == false`: it failed).
    pub fn settle(&mut self, seq: u64, ok: bool) {
        // Pending entries are in publish order, so sequence numbers ascend.
        let at = self.pending.partition_point(|(s, _)| *s < seq);
        if let Some((_, status)) = self.pending.get_mut(at).filter(|(s, _)| *s == seq) {
            *status = match (*status, ok) {
                (Status::Waiting(_), false) | (Status::Nack, _) => Status::Nack,
                (Status::Waiting(1), true) => Status::Ack,
                (Status::Waiting(n), true) => Status::Waiting(n - 1),
                (Status::Ack, true) => Status::Ack,
                (Status::Ack, false) => Status::Nack,
            };
        }
    }

    /// The confirms that can be sent now, removing them from the pending list.
    pub fn flush(&mut self) -> Vec<Confirm> {
        let mut out = Vec::new();
        // Settled prefix: runs of the same outcome collapse into one multiple confirm.
        let mut run: Option<(bool, u64, usize)> = None;
        while let Some(&(seq, status)) = self.pending.front() {
            let ack = match status {
                Status::Waiting(_) => break,
                Status::Ack => true,
                Status::Nack => false,
            };
            self.pending.pop_front();
            run = match run {
                Some((kind, _, n)) if kind == ack => Some((kind, seq, n + 1)),
                Some(previous) => {
                    out.push(run_confirm(previous));
                    Some((ack, seq, 1))
                }
                None => Some((ack, seq, 1)),
            };
        }
        if let Some(run) = run {
            out.push(run_confirm(run));
        }
        // Settled entries behind a waiting one go out one by one.
        self.pending.retain(|&(seq, status)| match status {
            Status::Waiting(_) => true,
            Status::Ack | Status::Nack => {
                out.push(Confirm {
                    ack: status == Status::Ack,
                    delivery_tag: seq,
                    multiple: false,
                });
                false
            }
        });
        out
    }
}

fn run_confirm((ack, last, count): (bool, u64, usize)) -> Confirm {
    Confirm {
        ack,
        delivery_tag: last,
        multiple: count > 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(ack: bool, delivery_tag: u64, multiple: bool) -> Confirm {
        Confirm {
            ack,
            delivery_tag,
            multiple,
        }
    }

    #[test]
    fn settled_runs_collapse_into_multiple() {
        let mut t = ConfirmTracker::default();
        for _ in 0..3 {
            t.publish(true, 0);
        }
        assert_eq!(t.flush(), [c(true, 3, true)]);
        t.publish(true, 0);
        assert_eq!(t.flush(), [c(true, 4, false)]);
        assert!(t.flush().is_empty());
    }

    #[test]
    fn waiting_entries_hold_back_the_prefix_only() {
        let mut t = ConfirmTracker::default();
        assert_eq!(t.publish(true, 0), 1);
        assert_eq!(t.publish(true, 0), 2);
        assert_eq!(t.publish(true, 1), 3);
        assert_eq!(t.publish(false, 0), 4);
        assert_eq!(t.publish(true, 2), 5);
        assert_eq!(t.flush(), [c(true, 2, true), c(false, 4, false)]);
        t.settle(5, true);
        assert!(
            t.flush().is_empty(),
            "5 still waits for a second confirmation"
        );
        t.settle(3, false);
        assert_eq!(t.flush(), [c(false, 3, false)]);
        t.settle(5, true);
        assert_eq!(t.flush(), [c(true, 5, false)]);
    }

    #[test]
    fn mixed_outcomes_alternate_runs() {
        let mut t = ConfirmTracker::default();
        t.publish(true, 0);
        t.publish(false, 0);
        t.publish(false, 0);
        t.publish(true, 0);
        assert_eq!(
            t.flush(),
            [c(true, 1, false), c(false, 3, true), c(true, 4, false)]
        );
    }
}
