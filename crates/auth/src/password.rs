//! Password hashes in RabbitMQ's format, so a user exported from RabbitMQ logs in unchanged.
//!
//! ```text
//! password_hash = base64( salt[4] ++ H(salt[4] ++ utf8(password)) )
//! H             = SHA-256 (rabbit_password_hashing_sha256, the default)
//!               | SHA-512 (rabbit_password_hashing_sha512)
//!               | MD5     (rabbit_password_hashing_md5, for old exports only)
//! ""            = no password: the user cannot log in with one
//! ```
//!
//! The password itself is never stored.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::Error;

const SALT_LEN: usize = 4;

/// RabbitMQ's hashing modules, by the names definitions files carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum HashingAlgorithm {
    #[default]
    #[serde(rename = "rabbit_password_hashing_sha256")]
    Sha256,
    #[serde(rename = "rabbit_password_hashing_sha512")]
    Sha512,
    #[serde(rename = "rabbit_password_hashing_md5")]
    Md5,
}

impl HashingAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "rabbit_password_hashing_sha256",
            Self::Sha512 => "rabbit_password_hashing_sha512",
            Self::Md5 => "rabbit_password_hashing_md5",
        }
    }

    /// Parses a module name as the management API and definitions files give it.
    pub fn parse(name: &str) -> Result<Self, Error> {
        match name {
            "rabbit_password_hashing_sha256" => Ok(Self::Sha256),
            "rabbit_password_hashing_sha512" => Ok(Self::Sha512),
            "rabbit_password_hashing_md5" => Ok(Self::Md5),
            other => Err(Error::UnknownHashingAlgorithm {
                name: other.to_owned(),
            }),
        }
    }

    fn digest(self, salt: &[u8], password: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
            Self::Sha512 => Sha512::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
            Self::Md5 => Md5::new()
                .chain_update(salt)
                .chain_update(password)
                .finalize()
                .to_vec(),
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha512 => 64,
            Self::Md5 => 16,
        }
    }
}

/// A salted password hash (or none), with the algorithm that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordHash {
    algorithm: HashingAlgorithm,
    /// Salt followed by the digest; empty when the user has no password.
    bytes: Vec<u8>,
}

impl PasswordHash {
    /// Hashes `password` with a fresh random salt.
    pub fn new(algorithm: HashingAlgorithm, password: &str) -> Result<Self, Error> {
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).map_err(|e| Error::Random {
            reason: e.to_string(),
        })?;
        Ok(Self::with_salt(algorithm, salt, password))
    }

    fn with_salt(algorithm: HashingAlgorithm, salt: [u8; SALT_LEN], password: &str) -> Self {
        let mut bytes = salt.to_vec();
        bytes.extend(algorithm.digest(&salt, password.as_bytes()));
        Self { algorithm, bytes }
    }

    /// A user without a password (RabbitMQ's `password_hash: ""`).
    pub fn none() -> Self {
        Self {
            algorithm: HashingAlgorithm::default(),
            bytes: Vec::new(),
        }
    }

    /// Reads a base64 hash as RabbitMQ exports it. An empty string is "no password".
    pub fn from_base64(algorithm: HashingAlgorithm, encoded: &str) -> Result<Self, Error> {
        if encoded.is_empty() {
            return Ok(Self {
                algorithm,
                bytes: Vec::new(),
            });
        }
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|e| Error::InvalidPasswordHash {
                reason: e.to_string(),
            })?;
        if bytes.len() != SALT_LEN + algorithm.digest_len() {
            return Err(Error::InvalidPasswordHash {
                reason: format!(
                    "{} bytes, {} expected for {}",
                    bytes.len(),
                    SALT_LEN + algorithm.digest_len(),
                    algorithm.as_str()
                ),
            });
        }
        Ok(Self { algorithm, bytes })
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.bytes)
    }

    pub fn algorithm(&self) -> HashingAlgorithm {
        self.algorithm
    }

    pub fn is_none(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whether `password` hashes to this, compared in constant time.
    pub fn verify(&self, password: &str) -> bool {
        let Some((salt, digest)) = self.bytes.split_first_chunk::<SALT_LEN>() else {
            return false;
        };
        let computed = self.algorithm.digest(salt, password.as_bytes());
        constant_time_eq(&computed, digest)
    }
}

/// Compares without an early exit, so timing does not reveal how much of a digest matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, byte) in a.iter().enumerate() {
        diff |= usize::from(byte ^ b.get(i).copied().unwrap_or(!byte));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        for algorithm in [
            HashingAlgorithm::Sha256,
            HashingAlgorithm::Sha512,
            HashingAlgorithm::Md5,
        ] {
            let hash = PasswordHash::new(algorithm, "s3cret").unwrap();
            assert!(hash.verify("s3cret"));
            assert!(!hash.verify("s3cre"));
            assert!(!hash.verify(""));
            let again = PasswordHash::from_base64(algorithm, &hash.to_base64()).unwrap();
            assert_eq!(again, hash);
        }
    }

    #[test]
    fn salts_differ_between_hashes_of_one_password() {
        let a = PasswordHash::new(HashingAlgorithm::Sha256, "pw").unwrap();
        let b = PasswordHash::new(HashingAlgorithm::Sha256, "pw").unwrap();
        assert_ne!(a.to_base64(), b.to_base64());
    }

    #[test]
    fn matches_rabbitmqs_documented_example() {
        // RabbitMQ's passwords guide hashes "test12" with the salt 908D C60A to this value.
        let salt = [0x90, 0x8D, 0xC6, 0x0A];
        let hash = PasswordHash::with_salt(HashingAlgorithm::Sha256, salt, "test12");
        assert_eq!(
            hash.to_base64(),
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR"
        );
        let parsed = PasswordHash::from_base64(
            HashingAlgorithm::Sha256,
            "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
        )
        .unwrap();
        assert!(parsed.verify("test12"));
    }

    #[test]
    fn no_password_never_verifies_and_bad_hashes_are_refused() {
        assert!(!PasswordHash::none().verify(""));
        assert!(
            PasswordHash::from_base64(HashingAlgorithm::Sha256, "")
                .unwrap()
                .is_none()
        );
        assert!(PasswordHash::from_base64(HashingAlgorithm::Sha256, "not base64!").is_err());
        assert!(PasswordHash::from_base64(HashingAlgorithm::Sha256, "AAAA").is_err());
        assert!(HashingAlgorithm::parse("rabbit_password_hashing_sha1").is_err());
    }
}
