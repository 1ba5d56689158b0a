//! Random operations on a real log agree with a simple in-memory model.
#![allow(
    clippy::cast_possible_truncation,
    clippy::unwrap_used,
    reason = "test helpers: data generators wrap on purpose, a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ferrymq_log::{Entry, FsyncPolicy, Log, LogConfig, LogError, SegmentInfo};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// (span, timestamp, payload length) per entry.
    Append(Vec<(u32, i64, usize)>),
    /// Offset as a fraction of [start, next + 1], and a byte budget.
    Read(f64, usize),
    FindTimestamp(i64),
    Roll,
    Reopen,
    /// retention_bytes, and (now, retention age) for age retention.
    Retention(Option<u64>, Option<(i64, u64)>),
    /// Fraction of [start, next].
    AdvanceStart(f64),
    /// Which sealed segment, as a fraction.
    DeleteSegment(f64),
}

fn op() -> impl Strategy<Value = Op> {
    let entry = (1u32..6, -50i64..300, 0usize..120);
    prop_oneof![
        8 => prop::collection::vec(entry, 1..5).prop_map(Op::Append),
        4 => (0.0..1.0f64, 0usize..400).prop_map(|(at, max)| Op::Read(at, max)),
        2 => (-60i64..320).prop_map(Op::FindTimestamp),
        1 => Just(Op::Roll),
        1 => Just(Op::Reopen),
        1 => (prop::option::of(0u64..3000), prop::option::of((0i64..600, 0u64..300)))
            .prop_map(|(bytes, age)| Op::Retention(bytes, age)),
        1 => (0.0..1.0f64).prop_map(Op::AdvanceStart),
        1 => (0.0..1.0f64).prop_map(Op::DeleteSegment),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Stored {
    span: u32,
    timestamp: i64,
    payload: Vec<u8>,
}

struct Model {
    /// Entries not deleted, by offset.
    entries: BTreeMap<u64, Stored>,
    start: u64,
    next: u64,
}

impl Model {
    /// Entries ending above `offset`, in order: what a read from `offset` walks.
    fn from(&self, offset: u64) -> impl Iterator<Item = (u64, &Stored)> {
        self.entries
            .iter()
            .map(|(&o, s)| (o, s))
            .filter(move |(o, s)| o + u64::from(s.span) > offset)
    }

    fn forget_segments(&mut self, gone: &[SegmentInfo]) {
        for segment in gone {
            self.entries
                .retain(|&o, _| o < segment.base_offset || o >= segment.next_offset);
        }
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 50,
        max_entry_bytes: 200,
        segment_age: None,
        retention_age: None,
        retention_bytes: None,
        fsync: FsyncPolicy::Never,
    }
}

fn pick(fraction: f64, lo: u64, hi: u64) -> u64 {
    lo + ((hi - lo) as f64 * fraction) as u64
}

fn check_shape(log: &Log, model: &Model) {
    assert_eq!(log.start_offset(), model.start);
    assert_eq!(log.next_offset(), model.next);
    let segments = log.segments();
    assert!(
        segments
            .windows(2)
            .all(|w| w[0].next_offset <= w[1].base_offset),
        "{segments:?}"
    );
    assert!(
        segments
            .last()
            .is_some_and(|s| s.active && s.next_offset == model.next)
    );
    assert!(segments[0].base_offset <= model.start);
}

fn run(dir: &Path, ops: Vec<Op>) {
    let mut log = Log::open(dir, config()).unwrap().0;
    let mut model = Model {
        entries: BTreeMap::new(),
        start: 0,
        next: 0,
    };
    for op in ops {
        match op {
            Op::Append(specs) => {
                let payloads: Vec<Vec<u8>> = specs
                    .iter()
                    .enumerate()
                    .map(|(i, &(_, _, len))| {
                        (0..len).map(|b| (b + i) as u8 ^ model.next as u8).collect()
                    })
                    .collect();
                let halves: Vec<[&[u8]; 2]> = payloads
                    .iter()
                    .map(|p| [&p[..p.len() / 2], &p[p.len() / 2..]])
                    .collect();
                let entries: Vec<Entry<'_>> = specs
                    .iter()
                    .zip(&halves)
                    .map(|(&(span, timestamp, _), parts)| Entry {
                        timestamp,
                        span,
                        parts,
                    })
                    .collect();
                let appended = log.append(&entries).unwrap();
                assert_eq!(appended.base_offset, model.next);
                for ((span, timestamp, _), payload) in specs.into_iter().zip(payloads) {
                    model.entries.insert(
                        model.next,
                        Stored {
                            span,
                            timestamp,
                            payload,
                        },
                    );
                    model.next += u64::from(span);
                }
                assert_eq!(appended.next_offset, model.next);
            }
            Op::Read(at, max) => {
                let offset = pick(at, model.start, model.next + 1);
                let got = log.read(offset, max);
                if offset > model.next {
                    assert!(
                        matches!(got, Err(LogError::OffsetOutOfRange { .. })),
                        "{got:?}"
                    );
                    continue;
                }
                let mut budget = max;
                let mut expected = Vec::new();
                for (o, s) in model.from(offset) {
                    if !expected.is_empty() && s.payload.len() > budget {
                        break;
                    }
                    budget = budget.saturating_sub(s.payload.len());
                    expected.push((o, s.clone()));
                }
                let got: Vec<_> = got
                    .unwrap()
                    .into_iter()
                    .map(|e| {
                        let stored = Stored {
                            span: e.span,
                            timestamp: e.timestamp,
                            payload: e.payload.to_vec(),
                        };
                        (e.offset, stored)
                    })
                    .collect();
                assert_eq!(got, expected, "read({offset}, {max})");
            }
            Op::FindTimestamp(ts) => {
                let expected = model
                    .from(model.start)
                    .find(|(_, s)| s.timestamp >= ts)
                    .map(|(o, _)| o);
                let got = log.find_by_timestamp(ts).unwrap().map(|e| e.offset);
                assert_eq!(got, expected, "find_by_timestamp({ts})");
            }
            Op::Roll => {
                let before = log.segments();
                log.roll().unwrap();
                let grew = before.last().is_some_and(|s| s.next_offset > s.base_offset);
                assert_eq!(log.segments().len(), before.len() + usize::from(grew));
            }
            Op::Reopen => {
                drop(log);
                let (reopened, recovery) = Log::open(dir, config()).unwrap();
                assert_eq!(recovery.truncated, None);
                assert!(recovery.indexes_rebuilt.is_empty(), "{recovery}");
                assert_eq!(
                    (recovery.start_offset, recovery.next_offset),
                    (model.start, model.next)
                );
                log = reopened;
            }
            Op::Retention(bytes, age) => {
                let mut config = config();
                config.retention_bytes = bytes;
                config.retention_age = age.map(|(_, ms)| Duration::from_millis(ms));
                let now = age.map_or(0, |(now, _)| now);
                log.set_config(config).unwrap();
                let before = log.segments();
                let mut remaining: u64 = before.iter().map(|s| s.size_bytes).sum();
                let mut gone = 0;
                for s in &before[..before.len() - 1] {
                    let below = s.next_offset <= model.start;
                    let by_bytes = bytes.is_some_and(|keep| remaining - s.size_bytes >= keep);
                    let by_age = age
                        .is_some_and(|(_, ms)| s.max_timestamp.is_none_or(|t| now - t > ms as i64));
                    if !(below || by_bytes || by_age) {
                        break;
                    }
                    gone += 1;
                    remaining -= s.size_bytes;
                }
                let retained = log.apply_retention(now).unwrap();
                assert_eq!(retained.segments_deleted, gone);
                model.forget_segments(&before[..gone]);
                model.start = model.start.max(before[gone].base_offset);
                assert_eq!(retained.start_offset, model.start);
                log.set_config(self::config()).unwrap();
            }
            Op::AdvanceStart(at) => {
                let offset = pick(at, model.start, model.next);
                let before = log.segments();
                log.advance_start(offset).unwrap();
                model.start = model.start.max(offset);
                let gone = before[..before.len() - 1]
                    .iter()
                    .take_while(|s| s.next_offset <= model.start)
                    .count();
                model.forget_segments(&before[..gone]);
                // Like Kafka: the start never points below the first remaining segment.
                model.start = model.start.max(before[gone].base_offset);
                assert_eq!(log.segments(), before[gone..]);
            }
            Op::DeleteSegment(at) => {
                let before = log.segments();
                if before.len() < 2 {
                    continue;
                }
                let i = pick(at, 0, before.len() as u64 - 1) as usize;
                log.delete_segment(before[i].base_offset).unwrap();
                model.forget_segments(&before[i..=i]);
                if i == 0 {
                    model.start = model.start.max(before[1].base_offset);
                }
            }
        }
        check_shape(&log, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn log_agrees_with_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), ops);
    }
}
