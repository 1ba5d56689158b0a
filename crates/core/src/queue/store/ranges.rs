//! An ordered set of `u64` offsets held as disjoint, non-adjacent half-open ranges.
//!
//! A queue's backlog is mostly contiguous runs of log offsets (FIFO publishing, FIFO
//! consuming), so a million waiting messages cost one range, not a million entries. Sets that
//! fragment (priority levels interleaved in one log, acknowledgements out of order) cost one
//! range per run.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    /// start -> end (exclusive); ranges never overlap or touch.
    ranges: BTreeMap<u64, u64>,
    len: u64,
}

impl RangeSet {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Number of offsets in the set.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn first(&self) -> Option<u64> {
        self.ranges.first_key_value().map(|(start, _)| *start)
    }

    pub(crate) fn contains(&self, offset: u64) -> bool {
        self.ranges
            .range(..=offset)
            .next_back()
            .is_some_and(|(_, end)| offset < *end)
    }

    /// Whether any offset of `[start, end)` is in the set.
    pub(crate) fn intersects(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return false;
        }
        if self.contains(start) {
            return true;
        }
        self.ranges.range(start..end).next().is_some()
    }

    /// Adds one offset; `false` if it was present.
    pub(crate) fn insert(&mut self, offset: u64) -> bool {
        if self.contains(offset) {
            return false;
        }
        self.insert_range(offset, offset.saturating_add(1));
        true
    }

    /// Adds `[start, end)`, merging with whatever it overlaps or touches.
    pub(crate) fn insert_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Fast path: appending right after the last range (FIFO publishing).
        if let Some(mut last) = self.ranges.last_entry()
            && *last.get() == start
        {
            *last.get_mut() = end;
            self.len += end - start;
            return;
        }
        let mut new_start = start;
        let mut new_end = end;
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back()
            && e >= start
        {
            new_start = s;
            new_end = new_end.max(e);
            self.ranges.remove(&s);
            self.len -= e - s;
        }
        while let Some((&s, &e)) = self.ranges.range(new_start..=new_end).next() {
            new_end = new_end.max(e);
            self.ranges.remove(&s);
            self.len -= e - s;
        }
        self.ranges.insert(new_start, new_end);
        self.len += new_end - new_start;
    }

    /// Removes one offset; `false` if it was absent.
    pub(crate) fn remove(&mut self, offset: u64) -> bool {
        let Some((&s, &e)) = self.ranges.range(..=offset).next_back() else {
            return false;
        };
        if offset >= e {
            return false;
        }
        self.ranges.remove(&s);
        if s < offset {
            self.ranges.insert(s, offset);
        }
        if offset + 1 < e {
            self.ranges.insert(offset + 1, e);
        }
        self.len -= 1;
        true
    }

    /// Removes every offset of `[start, end)`.
    pub(crate) fn remove_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // A range starting before `start` may reach into the removed span.
        if let Some((&s, &e)) = self.ranges.range(..start).next_back()
            && e > start
        {
            self.ranges.insert(s, start);
            self.len -= e - start;
            if e > end {
                self.ranges.insert(end, e);
                self.len += e - end;
                return;
            }
        }
        while let Some((&s, &e)) = self.ranges.range(start..end).next() {
            self.ranges.remove(&s);
            self.len -= e - s;
            if e > end {
                self.ranges.insert(end, e);
                self.len += e - end;
                break;
            }
        }
    }

    /// The ranges, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(s, e)| (*s, *e))
    }

    /// Adds every range of `other`.
    pub(crate) fn extend(&mut self, other: &RangeSet) {
        for (s, e) in other.iter() {
            self.insert_range(s, e);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.ranges.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn runs_merge_and_split() {
        let mut set = RangeSet::new();
        for x in 0..10 {
            assert!(set.insert(x));
        }
        assert_eq!((set.len(), set.iter().count()), (10, 1));
        assert!(!set.insert(3));
        assert!(set.remove(5));
        assert_eq!(set.iter().collect::<Vec<_>>(), [(0, 5), (6, 10)]);
        assert!(set.insert(5));
        assert_eq!(set.iter().count(), 1);
        set.remove_range(0, 4);
        assert_eq!(set.iter().collect::<Vec<_>>(), [(4, 10)]);
        assert!(set.intersects(9, 12));
        assert!(!set.intersects(10, 12));
        assert!(!set.intersects(0, 4));
        set.insert_range(20, 30);
        set.insert_range(8, 21);
        assert_eq!(set.iter().collect::<Vec<_>>(), [(4, 30)]);
        assert_eq!((set.first(), set.len()), (Some(4), 26));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64),
        InsertRange(u64, u64),
        Remove(u64),
        RemoveRange(u64, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..200).prop_map(Op::Insert),
            (0u64..200, 0u64..20).prop_map(|(s, n)| Op::InsertRange(s, s + n)),
            (0u64..200).prop_map(Op::Remove),
            (0u64..200, 0u64..40).prop_map(|(s, n)| Op::RemoveRange(s, s + n)),
        ]
    }

    proptest! {
        #[test]
        fn agrees_with_a_btreeset(ops in proptest::collection::vec(op(), 0..200)) {
            let mut set = RangeSet::new();
            let mut model = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Insert(x) => prop_assert_eq!(set.insert(x), model.insert(x)),
                    Op::InsertRange(s, e) => {
                        set.insert_range(s, e);
                        model.extend(s..e);
                    }
                    Op::Remove(x) => prop_assert_eq!(set.remove(x), model.remove(&x)),
                    Op::RemoveRange(s, e) => {
                        set.remove_range(s, e);
                        model.retain(|y| *y < s || *y >= e);
                    }
                }
                prop_assert_eq!(set.len(), model.len() as u64);
                prop_assert_eq!(set.first(), model.first().copied());
                prop_assert_eq!(set.intersects(50, 60), model.range(50..60).next().is_some());
                let flat: Vec<u64> = set.iter().flat_map(|(s, e)| s..e).collect();
                prop_assert_eq!(flat, model.iter().copied().collect::<Vec<_>>());
                // Ranges never touch: adjacent ones would have been merged.
                let ranges: Vec<(u64, u64)> = set.iter().collect();
                for pair in ranges.windows(2) {
                    prop_assert!(pair[0].1 < pair[1].0);
                }
            }
        }
    }
}
