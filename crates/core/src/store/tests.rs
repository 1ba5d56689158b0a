use std::fs::OpenOptions;

use super::*;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> (DefinitionStore, Vec<(Kind, String, Bytes)>) {
    let (store, recovered) = DefinitionStore::open(dir, &config()).unwrap();
    let recovered = recovered
        .into_iter()
        .map(|d| (d.kind, d.key, d.value))
        .collect();
    (store, recovered)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test]
async fn changes_survive_reopen_in_kind_then_key_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, recovered) = open(dir.path());
        assert!(recovered.is_empty());
        store
            .put(Kind::Queue, "/\0b", b("qb"))
            .unwrap()
            .durable()
            .await
            .unwrap();
        store
            .put(Kind::Exchange, "/\0x", b("x1"))
            .unwrap()
            .durable()
            .await
            .unwrap();
        store
            .put(Kind::Queue, "/\0a", b("qa"))
            .unwrap()
            .durable()
            .await
            .unwrap();
        store
            .put(Kind::Exchange, "/\0x", b("x2"))
            .unwrap()
            .durable()
            .await
            .unwrap();
        let removed = store.remove(Kind::Queue, "/\0b").unwrap();
        removed.unwrap().durable().await.unwrap();
        assert!(store.remove(Kind::Queue, "/\0nope").unwrap().is_none());
        assert_eq!(store.get(Kind::Exchange, "/\0x"), Some(b("x2")));
    }
    let (store, recovered) = open(dir.path());
    assert_eq!(
        recovered,
        vec![
            (Kind::Exchange, "/\0x".to_owned(), b("x2")),
            (Kind::Queue, "/\0a".to_owned(), b("qa")),
        ]
    );
    assert_eq!(store.len(), 2);
}

#[test]
fn json_values_round_trip_and_bad_ones_are_named() {
    #[derive(Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Q {
        durable: bool,
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let _pending = store
        .put_json(Kind::Queue, "q", &Q { durable: true })
        .unwrap();
    let raw = store.get(Kind::Queue, "q").unwrap();
    let q: Q = DefinitionStore::decode_json(Kind::Queue, "q", &raw).unwrap();
    assert_eq!(q, Q { durable: true });
    let err = DefinitionStore::decode_json::<Q>(Kind::Queue, "q", b"{").unwrap_err();
    assert!(err.to_string().contains("\"q\""), "{err}");
}

#[test]
fn churn_is_compacted_and_the_state_survives() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(dir.path());
        for i in 0..5_000u32 {
            let _p = store
                .put(Kind::Binding, &format!("k{}", i % 10), b(&i.to_string()))
                .unwrap();
        }
        let _p = store.remove(Kind::Binding, "k0").unwrap();
        // Without a runtime compaction runs inline, so the bound holds right away.
        assert!(
            store.journal_len() <= 2 * 10 + COMPACT_SLACK + 10,
            "{}",
            store.journal_len()
        );
        store.flush().unwrap();
    }
    let (store, recovered) = open(dir.path());
    assert_eq!(recovered.len(), 9);
    assert_eq!(store.get(Kind::Binding, "k9"), Some(b("4999")));
    assert_eq!(store.get(Kind::Binding, "k0"), None);
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        on_disk < 200 * 1024,
        "old segments were not deleted: {on_disk} bytes"
    );
}

#[test]
fn a_snapshot_interrupted_before_the_start_moved_replays_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(dir.path());
        let _p = store.put(Kind::User, "a", b("1")).unwrap();
        let _p = store.put(Kind::User, "b", b("2")).unwrap();
        let _p = store.remove(Kind::User, "a").unwrap();
        // The crash: the snapshot is appended but the start never moves.
        let (_end, _first) = store.snapshot_entries().unwrap();
        let _p = store.put(Kind::User, "c", b("3")).unwrap();
        store.flush().unwrap();
    }
    let (_, recovered) = open(dir.path());
    assert_eq!(
        recovered,
        vec![
            (Kind::User, "b".to_owned(), b("2")),
            (Kind::User, "c".to_owned(), b("3"))
        ]
    );
}

#[test]
fn a_torn_last_record_loses_only_that_change() {
    let dir = tempfile::tempdir().unwrap();
    let len = {
        let (store, _) = open(dir.path());
        let _p = store.put(Kind::Vhost, "one", b("1")).unwrap();
        let _p = store.put(Kind::Vhost, "two", b("2")).unwrap();
        store.flush().unwrap();
        // The end of the entries (the file may go on with zeros written ahead of them).
        store.log.segments().last().unwrap().size_bytes
    };
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(len - 2).unwrap();
    let (_, recovered) = open(dir.path());
    assert_eq!(recovered, vec![(Kind::Vhost, "one".to_owned(), b("1"))]);
}
