//! The persisted log start offset.
//!
//! ```text
//! log-start-offset (20 bytes, little-endian)
//!   0   6  magic "FMQSTA"
//!   6   2  format version, u16 (1)
//!   8   8  log start offset, u64
//!  16   4  crc32 over bytes 0..16
//! ```
//!
//! Written to a temporary file, fsynced, renamed over the old one and the directory fsynced,
//! so after a crash the file holds either the old or the new offset, whole.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::Path;

use crate::entry::{FORMAT_VERSION, u16_at, u32_at, u64_at};
use crate::{Damage, LogError};

const MAGIC: &[u8; 6] = b"FMQSTA";
const LEN: usize = 20;
pub(crate) const FILE_NAME: &str = "log-start-offset";

fn encode(start: u64) -> [u8; LEN] {
    let mut bytes = [0u8; LEN];
    bytes[..6].copy_from_slice(MAGIC);
    bytes[6..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[8..16].copy_from_slice(&start.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..16]);
    bytes[16..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Result<u64, Damage> {
    if bytes.len() != LEN {
        return Err(Damage::ShortHeader {
            need: LEN as u64,
            len: bytes.len() as u64,
        });
    }
    if bytes.get(..6) != Some(&MAGIC[..]) {
        return Err(Damage::BadMagic);
    }
    let version = u16_at(bytes, 6).ok_or(Damage::BadMagic)?;
    if version != FORMAT_VERSION {
        return Err(Damage::UnsupportedVersion { found: version });
    }
    let stored = u32_at(bytes, 16).ok_or(Damage::BadMagic)?;
    let computed = crc32fast::hash(bytes.get(..16).unwrap_or_default());
    if stored != computed {
        return Err(Damage::ChecksumMismatch { stored, computed });
    }
    u64_at(bytes, 8).ok_or(Damage::BadMagic)
}

/// The persisted start offset, `None` if never written.
pub(crate) fn read(dir: &Path) -> Result<Option<u64>, LogError> {
    let path = dir.join(FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes)
            .map(Some)
            .map_err(|d| LogError::corrupt(&path, 0, d)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LogError::io(&path, e)),
    }
}

/// Durably replaces the persisted start offset.
pub(crate) fn write(dir: &Path, start: u64) -> Result<(), LogError> {
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let io = |e| LogError::io(&tmp, e);
    let mut file = File::create(&tmp).map_err(io)?;
    file.write_all(&encode(start)).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, &path).map_err(|e| LogError::io(&path, e))?;
    sync_dir(dir)
}

/// Makes created, renamed and removed directory entries durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), 1234).unwrap();
        write(dir.path(), 5678).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(5678));
        assert!(!dir.path().join("log-start-offset.tmp").exists());

        let mut bytes = fs::read(dir.path().join(FILE_NAME)).unwrap();
        bytes[9] ^= 1;
        fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
        let err = read(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::Corrupt {
                    damage: Damage::ChecksumMismatch { .. },
                    ..
                }
            ),
            "{err}"
        );
    }
}
