//! Where a stream's definition (id, partition count, settings) is kept across restarts: the
//! broker's definitions journal (`core::store`), kind `Stream`.
//!
//! ```text
//! key:   <encode_name(vhost)>/<encode_name(stream)>      (`/` never occurs in either part)
//! value: JSON {"id": "<32 hex>", "partitions": n, "config": {StreamConfig fields}}
//! files: <data>/streams/<vhost>/<stream>/<p>/            partition logs
//! ```
//!
//! # Invariants
//! - Every change is flushed to disk before the call returns (these are rare admin
//!   operations, run on the blocking pool): an acknowledged CreateTopics survives a crash.
//! - A stream's files are deleted only after its removal is durable; a directory left
//!   without a definition (a crash between the two) is removed at the next open.

use std::path::Path;

use crate::store::{Definition, DefinitionStore, Kind};
use crate::{Error, layout};

use super::StreamDefinition;

fn key(vhost: &str, stream: &str) -> String {
    format!(
        "{}/{}",
        layout::encode_name(vhost),
        layout::encode_name(stream)
    )
}

/// Records `def` as the definition of `stream` and flushes it.
pub(crate) fn save(
    store: &DefinitionStore,
    vhost: &str,
    stream: &str,
    def: &StreamDefinition,
) -> Result<(), Error> {
    let pending = store.put_json(Kind::Stream, &key(vhost, stream), def)?;
    drop(pending);
    store.flush()
}

/// Removes the definition of `stream` and flushes the removal.
pub(crate) fn remove(store: &DefinitionStore, vhost: &str, stream: &str) -> Result<(), Error> {
    if let Some(pending) = store.remove(Kind::Stream, &key(vhost, stream))? {
        drop(pending);
        store.flush()?;
    }
    Ok(())
}

/// The streams of `vhost` among the recovered definitions, by name.
pub(crate) fn load(
    recovered: &[Definition],
    vhost: &str,
) -> Result<Vec<(String, StreamDefinition)>, Error> {
    let prefix = format!("{}/", layout::encode_name(vhost));
    let mut out = Vec::new();
    for d in recovered.iter().filter(|d| d.kind == Kind::Stream) {
        let Some(encoded) = d.key.strip_prefix(&prefix) else {
            continue;
        };
        let name = layout::decode_name(encoded).ok_or_else(|| Error::CorruptDefinition {
            kind: "stream".to_owned(),
            key: d.key.clone(),
            reason: "undecodable stream name".to_owned(),
        })?;
        let def: StreamDefinition = DefinitionStore::decode_json(Kind::Stream, &d.key, &d.value)?;
        out.push((name, def));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Removes a stream's files (blocking).
pub(crate) fn remove_files(dir: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::DataDir {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes stream directories of `vhost_dir` that no definition names (left by a crash
/// between a definition change and its files).
pub(crate) fn remove_orphans(
    vhost_dir: &Path,
    known: &[(String, StreamDefinition)],
) -> Result<(), Error> {
    let entries = match std::fs::read_dir(vhost_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::DataDir {
                path: vhost_dir.to_path_buf(),
                source,
            });
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_str().and_then(layout::decode_name);
        let orphan = name.is_none_or(|n| !known.iter().any(|(k, _)| *k == n));
        if orphan && entry.path().is_dir() {
            tracing::warn!(path = %entry.path().display(), "removing a stream directory without a definition");
            remove_files(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{StreamConfig, StreamId, TimestampType};

    #[test]
    fn definitions_round_trip_through_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let config = ferrymq_log::LogConfig::default();
        let mut extra = StreamConfig {
            retention_ms: Some(-1),
            timestamp_type: Some(TimestampType::LogAppendTime),
            ..StreamConfig::default()
        };
        extra.extra.insert("cleanup.policy".into(), "delete".into());
        let def = StreamDefinition {
            id: StreamId([7; 16]),
            partitions: 6,
            config: extra,
        };
        {
            let (store, _) = DefinitionStore::open(dir.path(), &config).unwrap();
            save(&store, "/", "orders/eu", &def).unwrap();
            save(
                &store,
                "other",
                "x",
                &StreamDefinition {
                    partitions: 1,
                    ..def.clone()
                },
            )
            .unwrap();
            save(&store, "/", "gone", &def).unwrap();
            remove(&store, "/", "gone").unwrap();
        }
        let (_, recovered) = DefinitionStore::open(dir.path(), &config).unwrap();
        let streams = load(&recovered, "/").unwrap();
        assert_eq!(streams, vec![("orders/eu".to_owned(), def)]);
    }
}
