//! Where things live under the data directory, and how names become file names.
//!
//! ```text
//! <data_dir>/
//!   LOCK                                    held by the running process (server crate)
//!   meta/definitions/                       log: durable exchanges, queues, bindings, users,
//!                                           vhosts, streams and their configs
//!   meta/offsets/                           log: committed consumer-group offsets
//!   streams/<vhost>/<stream>/<partition>/   one log per partition (Kafka topic = stream queue)
//!   queues/<vhost>/<queue>/                 journal of a durable classic queue
//!   transient/<n>/                          a non-durable queue paged out of memory
//!                                           (removed at every start)
//! ```
//! Names are made file-system safe by [`encode_name`].

use std::path::{Path, PathBuf};

use crate::Error;

/// Creates the top-level directories if missing, and empties `transient/`: non-durable
/// queues do not survive a restart, so neither do their paged messages.
pub(crate) fn prepare(data_dir: &Path) -> Result<(), Error> {
    let transient = data_dir.join("transient");
    match std::fs::remove_dir_all(&transient) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::DataDir {
                path: transient,
                source,
            });
        }
    }
    for sub in ["meta", "streams", "queues", "transient"] {
        let path = data_dir.join(sub);
        std::fs::create_dir_all(&path).map_err(|source| Error::DataDir { path, source })?;
    }
    Ok(())
}

/// Directory of the `n`th non-durable queue to page since the broker started.
pub(crate) fn transient_dir(data_dir: &Path, n: u64) -> PathBuf {
    data_dir.join("transient").join(n.to_string())
}

/// Directory of the definitions journal.
pub fn definitions_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("meta").join("definitions")
}

/// Directory of partition `partition` of stream `stream` in `vhost`.
pub fn partition_dir(data_dir: &Path, vhost: &str, stream: &str, partition: u32) -> PathBuf {
    data_dir
        .join("streams")
        .join(encode_name(vhost))
        .join(encode_name(stream))
        .join(partition.to_string())
}

/// Directory of every stream of `vhost`.
pub fn vhost_streams_dir(data_dir: &Path, vhost: &str) -> PathBuf {
    data_dir.join("streams").join(encode_name(vhost))
}

/// Directory of every durable queue of `vhost`.
pub fn vhost_queues_dir(data_dir: &Path, vhost: &str) -> PathBuf {
    data_dir.join("queues").join(encode_name(vhost))
}

/// Directory of the journal of durable queue `queue` in `vhost`.
pub fn queue_dir(data_dir: &Path, vhost: &str, queue: &str) -> PathBuf {
    data_dir
        .join("queues")
        .join(encode_name(vhost))
        .join(encode_name(queue))
}

/// A file name for an arbitrary UTF-8 name (AMQP names may hold `/`, spaces, anything).
///
/// ASCII letters, digits, `-` and `_` stay; every other byte becomes `%XX`, and so does a
/// leading `.`, so no name can become `.`, `..` or a hidden file. The empty name is `%`.
/// The mapping is injective: [`decode_name`] inverts it.
pub fn encode_name(name: &str) -> String {
    if name.is_empty() {
        return "%".to_owned();
    }
    let mut out = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let keep =
            byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Inverse of [`encode_name`]; `None` for anything it could not have produced.
pub fn decode_name(file_name: &str) -> Option<String> {
    if file_name == "%" {
        return Some(String::new());
    }
    let mut bytes = Vec::with_capacity(file_name.len());
    let mut rest = file_name.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = tail.get(..2)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_stay_in_their_directory() {
        for name in [
            "",
            "/",
            ".",
            "..",
            "orders",
            "a/b c",
            ".hidden",
            "amq.gen-x",
            "日本",
            "%",
        ] {
            let encoded = encode_name(name);
            assert!(!encoded.contains('/'), "{encoded}");
            assert!(encoded != "." && encoded != ".." && !encoded.starts_with('.'));
            assert_eq!(decode_name(&encoded).as_deref(), Some(name));
        }
    }

    #[test]
    fn distinct_names_never_share_a_file() {
        assert_ne!(encode_name("a%2F"), encode_name("a/"));
        assert_eq!(decode_name("%zz"), None);
        assert_eq!(decode_name("%4"), None);
    }
}
