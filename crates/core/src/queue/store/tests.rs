//! Durable queues across restarts: what survives a crash (the broker dropped without a
//! shutdown, as after kill -9), redelivered flags, disk use after draining, and recovery from
//! a torn write at every byte of the last records of each log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::message::{FieldTable, FieldValue, Message, Properties};
use crate::queue::{Enqueued, Entry, Queue, QueueSpec};
use crate::{Broker, BrokerConfig, VHost};

fn open(dir: &Path, cache: u64, segment_bytes: u64) -> Arc<Broker> {
    let mut config = BrokerConfig::with_data_dir(dir);
    config.storage.queue_cache_bytes = cache;
    config.storage.segment_bytes = segment_bytes;
    // A crash here is dropping the broker: data in the page cache survives it, as it
    // survives kill -9, so tests need no fsyncs.
    config.storage.fsync = crate::FsyncMode::Never;
    Broker::open(config).unwrap()
}

fn vhost(broker: &Broker) -> Arc<VHost> {
    broker.vhost("/").unwrap()
}

fn durable(vhost: &Arc<VHost>, name: &str, args: &[(&str, FieldValue)]) -> Arc<Queue> {
    let mut spec = QueueSpec::new(name);
    spec.durable = true;
    for (k, v) in args {
        spec.arguments.push(*k, v.clone());
    }
    vhost.declare_queue(spec, false, 1).unwrap().queue
}

fn message(body: &str, persistent: bool, priority: Option<u8>) -> Arc<Message> {
    let mut headers = FieldTable::new();
    headers.push("n", FieldValue::string(body));
    Arc::new(Message::new(
        "",
        "rk",
        Properties {
            delivery_mode: Some(if persistent { 2 } else { 1 }),
            priority,
            headers: Some(headers),
            content_type: Some("text/plain".into()),
            ..Properties::default()
        },
        Bytes::from(body.to_owned()),
    ))
}

fn persistent(body: &str) -> Arc<Message> {
    message(body, true, None)
}

fn body(entry: &Entry) -> String {
    String::from_utf8(entry.message.body.to_vec()).unwrap()
}

/// Every ready message, taken with no-ack: (body, redelivered).
fn drain(queue: &Arc<Queue>) -> Vec<(String, bool)> {
    std::iter::from_fn(|| queue.get(true).unwrap())
        .map(|(entry, _)| (body(&entry), entry.redelivered))
        .collect()
}

/// Zeros a log's active segment file may hold past its entries: ferrymq-log writes them ahead
/// of the entries, up to the next 64 KiB boundary.
const ZEROS_AHEAD: u64 = 64 * 1024;

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

fn queue_dir(data: &Path, name: &str) -> PathBuf {
    crate::layout::queue_dir(data, "/", name)
}

#[test]
fn persistent_messages_survive_a_crash_in_order_and_transient_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let sent = {
        let broker = open(dir.path(), 64 * 1024 * 1024, 64 * 1024 * 1024);
        let q = durable(&vhost(&broker), "orders", &[]);
        let mut sent = Vec::new();
        for i in 0..20 {
            let m = message(&format!("m{i}"), i % 3 != 1, None);
            if m.properties.is_persistent() {
                sent.push(m.clone());
            }
            q.publish(m);
        }
        assert_eq!(q.message_count(), 20);
        sent
        // Dropped without shutdown: a crash.
    };
    let broker = open(dir.path(), 64 * 1024 * 1024, 64 * 1024 * 1024);
    let q = vhost(&broker).queue("orders").unwrap();
    assert!(q.is_durable());
    assert_eq!(q.message_count() as usize, sent.len());
    let mut got = Vec::new();
    while let Some((entry, _)) = q.get(true).unwrap() {
        got.push(entry);
    }
    assert_eq!(got.len(), sent.len());
    for (entry, original) in got.iter().zip(&sent) {
        assert_eq!(entry.message.body, original.body);
        assert_eq!(entry.message.properties, original.properties);
        assert!(!entry.redelivered, "never delivered before the crash");
    }
}

#[test]
fn acknowledged_messages_stay_gone_and_unacknowledged_deliveries_come_back_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path(), 0, 4096);
        let q = durable(&vhost(&broker), "work", &[]);
        for i in 0..10 {
            q.publish(persistent(&format!("m{i}")));
        }
        let taken: Vec<Entry> = (0..4).map(|_| q.get(false).unwrap().unwrap().0).collect();
        // m0 and m2 acknowledged, m1 rejected back (requeued), m3 left unacknowledged.
        q.ack(&[taken[0].clone(), taken[2].clone()]);
        q.requeue(vec![taken[1].clone()]);
        let (m5, _) = q.get(true).unwrap().unwrap();
        assert_eq!(body(&m5), "m1", "requeued to its place");
    }
    let broker = open(dir.path(), 0, 4096);
    let q = vhost(&broker).queue("work").unwrap();
    assert_eq!(
        drain(&q),
        [
            ("m3".to_owned(), true),
            ("m4".to_owned(), false),
            ("m5".to_owned(), false),
            ("m6".to_owned(), false),
            ("m7".to_owned(), false),
            ("m8".to_owned(), false),
            ("m9".to_owned(), false),
        ],
        "m1 was taken without acknowledgement mode (acked at once), m3 was in flight"
    );
}

#[test]
fn priority_levels_keep_their_own_delivered_marks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path(), 0, 4096);
        let q = durable(
            &vhost(&broker),
            "prio",
            &[("x-max-priority", FieldValue::U8(5))],
        );
        q.publish(message("low-0", true, Some(0)));
        q.publish(message("high-0", true, Some(5)));
        q.publish(message("low-1", true, Some(0)));
        q.publish(message("high-1", true, Some(5)));
        // Two deliveries: both high ones, left unacknowledged.
        let a = q.get(false).unwrap().unwrap().0;
        let b = q.get(false).unwrap().unwrap().0;
        assert_eq!((body(&a), body(&b)), ("high-0".into(), "high-1".into()));
    }
    let broker = open(dir.path(), 0, 4096);
    let q = vhost(&broker).queue("prio").unwrap();
    assert_eq!(
        drain(&q),
        [
            ("high-0".to_owned(), true),
            ("high-1".to_owned(), true),
            ("low-0".to_owned(), false),
            ("low-1".to_owned(), false),
        ]
    );
}

#[test]
fn queue_arguments_and_message_ttl_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path(), 0, 4096);
        let v = vhost(&broker);
        let q = durable(
            &v,
            "limited",
            &[
                ("x-max-length", FieldValue::I32(3)),
                ("x-message-ttl", FieldValue::I32(3_600_000)),
            ],
        );
        for i in 0..5 {
            q.publish(persistent(&format!("m{i}")));
        }
        assert_eq!(q.message_count(), 3, "drop-head kept the newest three");
    }
    let broker = open(dir.path(), 0, 4096);
    let q = vhost(&broker).queue("limited").unwrap();
    assert_eq!(q.args().max_length, Some(3));
    assert_eq!(q.args().message_ttl, Some(3_600_000));
    let (entry, _) = q.get(true).unwrap().unwrap();
    assert_eq!(body(&entry), "m2");
    let left = entry
        .expires_at
        .unwrap()
        .saturating_duration_since(tokio::time::Instant::now());
    assert!(
        left > std::time::Duration::from_secs(3500) && left <= std::time::Duration::from_secs(3600),
        "the TTL counts from the publish, not the restart: {left:?}"
    );
    q.publish(persistent("new"));
    assert_eq!(drain(&q).len(), 3);
}

#[test]
fn a_drained_queue_frees_its_disk_and_journal() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 0, 16 * 1024);
    let q = durable(&vhost(&broker), "churn", &[]);
    let payload = "x".repeat(200);
    for round in 0..5 {
        for _ in 0..4000 {
            q.publish(persistent(&payload));
        }
        let mut n = 0;
        while let Some((entry, _)) = q.get(false).unwrap() {
            q.ack(&[entry]);
            n += 1;
        }
        assert_eq!(n, 4000, "round {round}");
    }
    q.compact_now();
    // 5 x 4000 x ~250 B = ~5 MB of messages and ~1.2 MB of journal were written; what
    // remains is about one segment of each log.
    let sizes = ["messages", "acks", "index"]
        .map(|log| dir_size(&queue_dir(dir.path(), "churn").join(log)));
    let at_most = |bytes: u64| bytes + ZEROS_AHEAD;
    assert!(
        sizes[0] < at_most(48 * 1024),
        "message log holds {} bytes",
        sizes[0]
    );
    assert!(
        sizes[1] < at_most(512 * 1024),
        "journal holds {} bytes",
        sizes[1]
    );
    assert!(
        sizes[2] < at_most(200 * 1024),
        "index holds {} bytes",
        sizes[2]
    );
    drop(q);
    drop(broker);
    let broker = open(dir.path(), 0, 16 * 1024);
    let q = vhost(&broker).queue("churn").unwrap();
    assert_eq!(q.message_count(), 0);
}

#[test]
fn a_stuck_message_keeps_only_its_own_segment() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path(), 0, 16 * 1024);
        let q = durable(&vhost(&broker), "stuck", &[]);
        let payload = "y".repeat(200);
        for i in 0..3000 {
            q.publish(persistent(&format!("{i:04}{payload}")));
        }
        let (held, _) = q.get(false).unwrap().unwrap();
        assert!(body(&held).starts_with("0000"));
        while let Some((entry, _)) = q.get(false).unwrap() {
            q.ack(&[entry]);
        }
        q.compact_now();
        let size = dir_size(&queue_dir(dir.path(), "stuck").join("messages"));
        assert!(
            size < 48 * 1024 + ZEROS_AHEAD,
            "fully acknowledged middle segments must go: {size} bytes left of ~650 KB"
        );
        // Crash with `held` delivered and unacknowledged.
    }
    let broker = open(dir.path(), 0, 16 * 1024);
    let q = vhost(&broker).queue("stuck").unwrap();
    let left = drain(&q);
    assert_eq!(left.len(), 1);
    assert!(left[0].0.starts_with("0000") && left[0].1);
}

#[test]
fn the_message_cache_is_shared_and_returns_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 10 * 1024, 64 * 1024);
    let v = vhost(&broker);
    let a = durable(&v, "a", &[]);
    let b = durable(&v, "b", &[]);
    let payload = "z".repeat(1000);
    for _ in 0..50 {
        a.publish(persistent(&payload));
        b.publish(persistent(&payload));
    }
    let cache = Arc::clone(&v.storage().cache);
    assert!(cache.used() <= 10 * 1024, "{}", cache.used());
    assert!(a.memory() + b.memory() < 20 * 1024);
    assert_eq!(drain(&a).len(), 50);
    assert_eq!(drain(&b).len(), 50);
    assert_eq!(cache.used(), 0);
    let c = durable(&v, "c", &[]);
    c.publish(persistent(&payload));
    let one = cache.used();
    assert!(
        (1000..1000 + 1024).contains(&one),
        "a body and its overhead: {one}"
    );
    v.delete_queue("c", false, false, 1).unwrap();
    assert_eq!(cache.used(), 0);
}

#[test]
fn small_messages_are_charged_their_overhead_not_just_their_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 64 * 1024, 1024 * 1024);
    let v = vhost(&broker);
    let q = durable(&v, "tiny", &[]);
    for i in 0..10_000 {
        q.publish(persistent(&format!("{i:08}")));
    }
    let cache = Arc::clone(&v.storage().cache);
    assert!(cache.used() <= 64 * 1024, "{}", cache.used());
    // Counting bodies alone would keep 8192 eight-byte messages in 64 KiB.
    let in_memory = q.memory() / 8;
    assert!(in_memory < 400, "{in_memory} messages held in memory");
    assert_eq!(q.message_count(), 10_000);
    let bodies: Vec<String> = drain(&q).into_iter().map(|(b, _)| b).collect();
    assert_eq!(bodies.len(), 10_000);
    assert!(
        bodies
            .iter()
            .enumerate()
            .all(|(i, b)| *b == format!("{i:08}"))
    );
    assert_eq!(cache.used(), 0);
}

#[test]
fn recovery_reads_the_index_not_the_bodies() {
    let dir = tempfile::tempdir().unwrap();
    {
        let broker = open(dir.path(), 0, 1024 * 1024);
        let q = durable(&vhost(&broker), "big", &[]);
        let payload = "b".repeat(1024);
        for _ in 0..20_000 {
            q.publish(persistent(&payload));
        }
    }
    let ctx = super::StorageContext::new(
        dir.path().to_path_buf(),
        ferrymq_log::FsyncPolicy::Always,
        1024 * 1024,
        0,
    );
    let (_, recovered) =
        super::Store::open(&ctx, &queue_dir(dir.path(), "big"), "big".into(), 1).unwrap();
    assert_eq!(recovered.report.messages, 20_000);
    assert_eq!(recovered.report.bytes, 20_000 * 1024);
    assert!(
        recovered.report.indexed_from_log < 1024,
        "only the unindexed tail is read: {}",
        recovered.report.indexed_from_log
    );
}

/// The only segment file of `log` in a queue's directory.
fn segment(data: &Path, queue: &str, log: &str) -> PathBuf {
    let dir = queue_dir(data, queue).join(log);
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs.remove(0)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.metadata().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Cuts and corrupts `log` of queue `q` at every byte from `from` to `len`, the end of its
/// entries (the file may go on with zeros written ahead of them), reopens, and checks the
/// bodies left against `expect(position)`.
fn damage_every_byte(
    pristine: &Path,
    log: &str,
    from: u64,
    len: u64,
    expect: impl Fn(u64) -> Vec<String>,
) {
    let file = segment(pristine, "q", log);
    assert!(from < len && len <= std::fs::metadata(&file).unwrap().len());
    for position in from..len {
        for flip in [false, true] {
            let work = tempfile::tempdir().unwrap();
            copy_dir(pristine, work.path());
            let target = segment(work.path(), "q", log);
            if flip {
                let mut bytes = std::fs::read(&target).unwrap();
                bytes[usize::try_from(position).unwrap()] ^= 0x5a;
                std::fs::write(&target, bytes).unwrap();
            } else {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .unwrap();
                file.set_len(position).unwrap();
            }
            let broker = open(work.path(), 0, 1024 * 1024);
            let q = vhost(&broker).queue("q").unwrap();
            let bodies: Vec<String> = drain(&q).into_iter().map(|(b, _)| b).collect();
            assert_eq!(
                bodies,
                expect(position),
                "{log}: {} at byte {position} of {len}",
                if flip { "corrupted" } else { "cut" }
            );
        }
    }
}

#[test]
fn a_torn_message_log_keeps_exactly_the_whole_messages_before_the_damage() {
    let pristine = tempfile::tempdir().unwrap();
    let mut ends = Vec::new();
    {
        let broker = open(pristine.path(), 0, 1024 * 1024);
        let q = durable(&vhost(&broker), "q", &[]);
        for i in 0..6 {
            q.publish(persistent(&format!("m{i}")));
            ends.push(q.store_log_end("messages"));
        }
    }
    let from = ends[2];
    damage_every_byte(pristine.path(), "messages", from, ends[5], |position| {
        (0..6)
            .filter(|i| ends[*i] <= position)
            .map(|i| format!("m{i}"))
            .collect()
    });
}

#[test]
fn a_torn_ack_journal_keeps_exactly_the_whole_acknowledgements_before_the_damage() {
    let pristine = tempfile::tempdir().unwrap();
    let mut ends = Vec::new();
    {
        let broker = open(pristine.path(), 0, 1024 * 1024);
        let q = durable(&vhost(&broker), "q", &[]);
        for i in 0..6 {
            q.publish(persistent(&format!("m{i}")));
        }
        // Each no-ack get journals one entry (its acknowledgement and delivered mark).
        for _ in 0..4 {
            q.get(true).unwrap().unwrap();
            ends.push(q.store_log_end("acks"));
        }
    }
    let from = ends[1];
    damage_every_byte(pristine.path(), "acks", from, ends[3], |position| {
        let acked = ends.iter().filter(|end| **end <= position).count();
        (acked..6).map(|i| format!("m{i}")).collect()
    });
}

#[test]
fn a_torn_index_is_rebuilt_from_the_messages() {
    let pristine = tempfile::tempdir().unwrap();
    let len = {
        let broker = open(pristine.path(), 0, 1024 * 1024);
        let q = durable(&vhost(&broker), "q", &[]);
        for i in 0..1100 {
            q.publish(message(&format!("m{i}"), i % 100 != 7, None));
        }
        q.store_log_end("index")
    };
    let expected: Vec<String> = (0..1100)
        .filter(|i| i % 100 != 7)
        .map(|i| format!("m{i}"))
        .collect();
    // One batch of 1024 slots is written; damage its last slots.
    damage_every_byte(pristine.path(), "index", len - 24, len, |_| {
        expected.clone()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_declared_again_after_deletion_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 0, 4096);
    let v = vhost(&broker);
    for round in 0..20 {
        let q = durable(&v, "again", &[]);
        assert_eq!(q.message_count(), 0, "round {round}");
        q.publish(persistent("old"));
        v.delete_queue("again", false, false, 1).unwrap();
    }
}

// One runtime thread: the 500 publishes all happen before the flusher task first runs, as
// when many publishers append while an fsync is in progress.
#[tokio::test(flavor = "current_thread")]
async fn persistent_messages_are_confirmed_once_fsynced_and_concurrent_ones_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::with_data_dir(dir.path());
    config.storage.fsync = crate::FsyncMode::Always;
    let broker = Broker::open(config).unwrap();
    let v = vhost(&broker);
    let q = durable(&v, "confirmed", &[]);
    let log = Arc::clone(&q.lock().ready.store().unwrap().messages);
    let before = log.fsync_count();
    let mut waits = Vec::new();
    for i in 0..500u64 {
        match q.publish(persistent(&format!("m{i}"))) {
            Enqueued::Accepted {
                durable: Some(wait),
            } => waits.push((i, wait)),
            Enqueued::Accepted { durable: None } => panic!("m{i}: no durability wait"),
            Enqueued::Rejected => panic!("m{i}: rejected"),
        }
    }
    let transient = q.publish(message("t", false, None));
    assert!(
        matches!(transient, Enqueued::Accepted { durable: None }),
        "a transient message is confirmed without waiting"
    );
    for (i, wait) in waits {
        assert!(wait.await, "m{i} confirmed");
        // Offsets start at 0: message i is on disk once the durable offset passed it.
        assert!(
            log.durable_offset() > i,
            "m{i} confirmed before it was on disk"
        );
    }
    let fsyncs = log.fsync_count() - before;
    assert!(
        (1..=2).contains(&fsyncs),
        "{fsyncs} fsyncs for 500 concurrent publishes (one group commit, at most one more)"
    );
}

fn transient(vhost: &Arc<VHost>, name: &str) -> Arc<Queue> {
    vhost
        .declare_queue(QueueSpec::new(name), false, 1)
        .unwrap()
        .queue
}

fn files_under(path: &Path) -> usize {
    std::fs::read_dir(path).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    files_under(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

#[test]
fn a_non_durable_queue_pages_to_scratch_files_once_the_cache_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("transient");
    {
        let broker = open(dir.path(), 16 * 1024, 64 * 1024);
        let v = vhost(&broker);
        let q = transient(&v, "t");
        let cache = Arc::clone(&v.storage().cache);
        for i in 0..20 {
            q.publish(message(&format!("{i:05}"), false, None));
        }
        assert_eq!(
            files_under(&scratch),
            0,
            "what fits in the cache stays in memory"
        );
        // Held before the queue pages: acknowledged and requeued after it does.
        let early: Vec<Entry> = (0..6).map(|_| q.get(false).unwrap().unwrap().0).collect();
        for i in 20..3000 {
            q.publish(message(&format!("{i:05}"), i % 2 == 0, None));
            assert!(cache.used() <= 16 * 1024, "{} at {i}", cache.used());
        }
        assert!(files_under(&scratch) > 0, "the backlog is on disk");
        assert!(q.memory() < 64 * 1024, "{}", q.memory());
        let (acked, requeued) = early.split_at(3);
        q.ack(acked);
        q.requeue(requeued.to_vec());
        let got = drain(&q);
        assert_eq!(got.len(), 2997);
        let expected: Vec<String> = (3..3000).map(|i| format!("{i:05}")).collect();
        let bodies: Vec<&String> = got.iter().map(|(b, _)| b).collect();
        assert!(
            bodies.iter().zip(&expected).all(|(a, b)| *a == b),
            "in order"
        );
        assert!(got.iter().take(3).all(|(_, redelivered)| *redelivered));
        assert!(!got.iter().skip(3).any(|(_, redelivered)| *redelivered));
        assert_eq!(cache.used(), 0);
    }
    // Non-durable queues do not survive a restart, and neither do their files.
    let broker = open(dir.path(), 16 * 1024, 64 * 1024);
    assert!(vhost(&broker).queue("t").is_err());
    assert_eq!(files_under(&scratch), 0);
}

#[test]
fn a_paging_priority_queue_keeps_each_levels_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), 8 * 1024, 64 * 1024);
    let v = vhost(&broker);
    let mut spec = QueueSpec::new("prio");
    spec.arguments.push("x-max-priority", FieldValue::U8(3));
    let q = v.declare_queue(spec, false, 1).unwrap().queue;
    for i in 0..3000 {
        let priority = u8::try_from(i % 4).unwrap();
        q.publish(message(
            &format!("{priority}-{i:05}"),
            false,
            Some(priority),
        ));
    }
    assert!(files_under(&dir.path().join("transient")) > 0, "paged");
    let bodies: Vec<String> = drain(&q).into_iter().map(|(b, _)| b).collect();
    let expected: Vec<String> = (0..4u32)
        .rev()
        .flat_map(|p| {
            (0..3000)
                .filter(move |i| i % 4 == p)
                .map(move |i| format!("{p}-{i:05}"))
        })
        .collect();
    assert_eq!(bodies, expected);
    assert_eq!(v.storage().cache.used(), 0);
}
