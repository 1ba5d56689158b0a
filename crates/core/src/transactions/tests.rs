use std::path::Path;
use std::sync::Arc;

use ferrymq_log::{FsyncPolicy, LogConfig};
use kafka_protocol::records::Compression;

use super::*;
use crate::group::GroupConfig;
use crate::stream::batch::RecordBatch;
use crate::stream::batch::tests::encoded_as;
use crate::stream::{Partition, StreamConfig};
use crate::{Broker, BrokerConfig};

struct World {
    broker: Arc<Broker>,
    groups: Arc<Groups>,
    producer_ids: Arc<ProducerIds>,
}

fn world(dir: &Path) -> World {
    let mut config = BrokerConfig::with_data_dir(dir);
    config.storage.stream_fsync = crate::FsyncMode::Never;
    let broker = Broker::open(config).unwrap();
    let groups = Groups::open(dir, FsyncPolicy::Never, GroupConfig::default()).unwrap();
    let producer_ids = Arc::new(ProducerIds::open(Arc::clone(broker.definitions())).unwrap());
    World {
        broker,
        groups,
        producer_ids,
    }
}

impl World {
    fn streams(&self) -> Arc<Streams> {
        Arc::clone(self.broker.kafka_vhost().unwrap().streams())
    }

    async fn coordinator(&self, dir: &Path) -> Arc<TransactionCoordinator> {
        let coordinator = TransactionCoordinator::open(
            &dir.join("meta/transactions"),
            &LogConfig::default(),
            self.streams(),
            Arc::clone(&self.producer_ids),
            Arc::clone(&self.groups),
            DEFAULT_MAX_TIMEOUT_MS,
        )
        .unwrap();
        coordinator.recover().await.unwrap();
        coordinator
    }

    fn partition(&self, topic: &str, index: u32) -> Arc<Partition> {
        let streams = self.streams();
        let stream = match streams.get(topic) {
            Some(s) => s,
            None => streams.create(topic, 2, StreamConfig::default()).unwrap(),
        };
        stream.partition(index).unwrap()
    }
}

fn records(pid: i64, first: i32, n: i64) -> RecordBatch {
    RecordBatch::parse(encoded_as(n, Compression::None, pid, first, true)).unwrap()
}

fn parts(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect()
}

#[tokio::test]
async fn a_committed_transaction_marks_every_partition_and_releases_the_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path());
    let (a, b) = (w.partition("a", 0), w.partition("b", 1));
    let txns = w.coordinator(dir.path()).await;
    let (pid, epoch) = txns.init_producer_id("app", 60_000, None).await.unwrap();
    assert_eq!(epoch, 0);
    let added = txns
        .add_partitions("app", pid, epoch, &parts(&[("a", 0), ("b", 1)]))
        .await
        .unwrap();
    assert!(added.iter().all(Result::is_ok));
    txns.check_produce("app", pid, epoch, "a", 0).unwrap();
    assert!(txns.check_produce("app", pid, epoch, "a", 1).is_err());
    a.append(&records(pid, 0, 3), 1).unwrap();
    b.append(&records(pid, 0, 2), 1).unwrap();
    assert_eq!((a.last_stable_offset(), b.last_stable_offset()), (0, 0));
    txns.end_txn("app", pid, epoch, true).await.unwrap();
    assert_eq!((a.last_stable_offset(), a.high_watermark()), (4, 4));
    assert_eq!((b.last_stable_offset(), b.high_watermark()), (3, 3));
    assert!(a.aborted_between(0, 4).is_empty());
    let meta = txns.describe("app").await.unwrap();
    assert_eq!(meta.state, TxnState::CompleteCommit);
    // A retried EndTxn of the same decision succeeds; the other decision does not.
    txns.end_txn("app", pid, epoch, true).await.unwrap();
    assert!(matches!(
        txns.end_txn("app", pid, epoch, false).await,
        Err(TxnError::InvalidState { .. })
    ));

    // The next transaction aborts: its records are listed as aborted.
    txns.add_partitions("app", pid, epoch, &parts(&[("a", 0)]))
        .await
        .unwrap();
    a.append(&records(pid, 3, 2), 1).unwrap(); // 4..6
    txns.end_txn("app", pid, epoch, false).await.unwrap(); // marker at 6
    let aborted = a.aborted_between(0, 7);
    assert_eq!(
        aborted
            .iter()
            .map(|t| (t.first_offset, t.last_offset))
            .collect::<Vec<_>>(),
        [(4, 6)]
    );
    assert!(matches!(
        txns.add_partitions("app", pid, epoch, &parts(&[("nope", 0)]))
            .await
            .unwrap()[..],
        [Err(TxnError::UnknownPartition)]
    ));
}

#[tokio::test]
async fn a_new_instance_fences_the_old_one_and_aborts_its_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path());
    let a = w.partition("a", 0);
    let txns = w.coordinator(dir.path()).await;
    let (pid, old) = txns.init_producer_id("app", 60_000, None).await.unwrap();
    txns.add_partitions("app", pid, old, &parts(&[("a", 0)]))
        .await
        .unwrap();
    a.append(&records(pid, 0, 2), 1).unwrap();
    let (same, new) = txns.init_producer_id("app", 60_000, None).await.unwrap();
    assert_eq!(same, pid);
    assert!(new > old);
    assert_eq!(a.last_stable_offset(), a.high_watermark(), "aborted");
    assert_eq!(a.aborted_between(0, 10).len(), 1);
    for result in [
        txns.add_partitions("app", pid, old, &parts(&[("a", 0)]))
            .await
            .map(drop),
        txns.end_txn("app", pid, old, true).await,
    ] {
        assert_eq!(result, Err(TxnError::Fenced));
    }
    // The old epoch is fenced in the partition too.
    assert!(a.write_marker(pid, old, Outcome::Commit, 0, 1).is_err());
    assert_eq!(
        txns.end_txn("app", pid + 1, new, true).await,
        Err(TxnError::InvalidMapping)
    );
    assert!(matches!(
        txns.init_producer_id("app", DEFAULT_MAX_TIMEOUT_MS + 1, None)
            .await,
        Err(TxnError::InvalidTimeout { .. })
    ));
}

#[tokio::test]
async fn an_expired_transaction_is_aborted_and_its_producer_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path());
    let a = w.partition("a", 0);
    let txns = w.coordinator(dir.path()).await;
    let (pid, epoch) = txns.init_producer_id("slow", 1_000, None).await.unwrap();
    txns.add_partitions("slow", pid, epoch, &parts(&[("a", 0)]))
        .await
        .unwrap();
    a.append(&records(pid, 0, 1), 1).unwrap();
    let started = txns.describe("slow").await.unwrap().started_ms;
    txns.expire(started + 500).await.unwrap();
    assert_eq!(
        txns.describe("slow").await.unwrap().state,
        TxnState::Ongoing
    );
    txns.expire(started + 1_001).await.unwrap();
    let meta = txns.describe("slow").await.unwrap();
    assert_eq!(
        (meta.state, meta.producer_epoch),
        (TxnState::CompleteAbort, epoch + 1)
    );
    assert_eq!(a.last_stable_offset(), a.high_watermark());
    assert_eq!(
        txns.end_txn("slow", pid, epoch, true).await,
        Err(TxnError::Fenced)
    );
}

#[tokio::test]
async fn offsets_of_a_transaction_reach_the_group_only_when_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let w = world(dir.path());
    w.partition("in", 0);
    let txns = w.coordinator(dir.path()).await;
    let (pid, epoch) = txns.init_producer_id("eos", 60_000, None).await.unwrap();
    let offset = |n| PendingOffset {
        group: "g".into(),
        topic: "in".into(),
        partition: 0,
        offset: n,
        leader_epoch: -1,
        metadata: None,
    };
    let committed = |groups: &Groups| {
        groups
            .fetch_offsets("g", None)
            .into_iter()
            .find_map(|(_, _, o)| o.map(|o| o.offset))
    };
    for (n, commit) in [(10, false), (20, true)] {
        assert!(
            txns.txn_offset_commit("eos", pid, epoch, "g", vec![offset(n)])
                .await
                .is_err(),
            "the group must be added first"
        );
        txns.add_offsets("eos", pid, epoch, "g").await.unwrap();
        txns.txn_offset_commit("eos", pid, epoch, "g", vec![offset(n)])
            .await
            .unwrap();
        assert_eq!(committed(&w.groups), None, "not before the commit");
        txns.end_txn("eos", pid, epoch, commit).await.unwrap();
    }
    assert_eq!(committed(&w.groups), Some(20));
}

#[tokio::test]
async fn after_a_crash_an_open_transaction_is_aborted_and_its_producer_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let (pid, epoch) = {
        let w = world(dir.path());
        let a = w.partition("a", 0);
        let txns = w.coordinator(dir.path()).await;
        let (pid, epoch) = txns.init_producer_id("app", 60_000, None).await.unwrap();
        txns.add_partitions("app", pid, epoch, &parts(&[("a", 0)]))
            .await
            .unwrap();
        a.append(&records(pid, 0, 2), 1).unwrap();
        a.flush().unwrap();
        (pid, epoch)
        // Dropped without closing: as after kill -9.
    };
    let w = world(dir.path());
    let a = w.partition("a", 0);
    assert_eq!(
        a.last_stable_offset(),
        0,
        "the partition alone still sees it open"
    );
    let txns = w.coordinator(dir.path()).await;
    let meta = txns.describe("app").await.unwrap();
    assert_eq!(
        (meta.state, meta.producer_epoch),
        (TxnState::CompleteAbort, epoch + 1)
    );
    assert_eq!(a.last_stable_offset(), a.high_watermark());
    assert_eq!(a.aborted_between(0, 10).len(), 1);
    assert_eq!(
        txns.end_txn("app", pid, epoch, true).await,
        Err(TxnError::Fenced)
    );
}
