//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as a server, for Kafka's SASL.
//!
//! ```text
//! stored per user and mechanism:  salt, iterations, StoredKey = H(ClientKey), ServerKey
//!   SaltedPassword = PBKDF2-HMAC-H(password, salt, iterations)
//!   ClientKey = HMAC(SaltedPassword, "Client Key"), ServerKey = HMAC(SaltedPassword, "Server Key")
//! client-first   n,,n=<user>,r=<cnonce>
//! server-first   r=<cnonce><snonce>,s=<salt b64>,i=<iterations>
//! client-final   c=biws,r=<nonce>,p=<ClientKey XOR HMAC(StoredKey, AuthMessage), b64>
//! server-final   v=<HMAC(ServerKey, AuthMessage), b64>
//! AuthMessage = client-first-bare "," server-first "," client-final-without-proof
//! ```
//!
//! Neither the password nor the salted password is kept: a stolen credential cannot be
//! replayed as a login.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::Error;

/// Kafka's default (and minimum) iteration count.
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// Kafka refuses more than this in AlterUserScramCredentials.
pub const MAX_ITERATIONS: u32 = 16384;

/// A SCRAM mechanism, by its SASL name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha256, Mechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's ScramMechanism numbers (AlterUserScramCredentials, DescribeUserScram...).
    pub fn kafka_type(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // HMAC takes keys of any length: `new_from_slice` cannot fail here.
        match self {
            Self::Sha256 => Hmac::<Sha256>::new_from_slice(key)
                .map(|m| m.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
            Self::Sha512 => Hmac::<Sha512>::new_from_slice(key)
                .map(|m| m.chain_update(data).finalize().into_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    /// Hi(password, salt, iterations): PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            Self::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// What the server keeps of a user's SCRAM password for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

impl ScramCredential {
    /// From a password (a fresh random salt).
    pub fn from_password(
        mechanism: Mechanism,
        password: &str,
        iterations: u32,
    ) -> Result<Self, Error> {
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| Error::Random {
            reason: e.to_string(),
        })?;
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        Ok(Self::from_salted(mechanism, salt, iterations, &salted))
    }

    /// From a salted password, as AlterUserScramCredentials carries it.
    pub fn from_salted(
        mechanism: Mechanism,
        salt: Vec<u8>,
        iterations: u32,
        salted: &[u8],
    ) -> Self {
        let client_key = mechanism.hmac(salted, b"Client Key");
        Self {
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted, b"Server Key"),
        }
    }
}

/// Why a SCRAM exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("unknown user or wrong password")]
    InvalidCredentials,
    #[error("the SCRAM extension '{0}' is not supported")]
    Extension(String),
}

/// A client-first message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    pub user: String,
    nonce: String,
    gs2_header: String,
    bare: String,
}

/// Undoes SCRAM's saslname escaping (`=2C` is `,`, `=3D` is `=`).
fn unescape(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ClientFirst {
    pub fn parse(message: &[u8]) -> Result<Self, ScramError> {
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        // gs2-header: "n,," or "n,a=authzid," ("y"/"p" ask for channel binding: refused).
        let mut parts = text.splitn(3, ',');
        let flag = parts.next().ok_or(ScramError::Malformed("empty"))?;
        let authzid = parts.next().ok_or(ScramError::Malformed("no gs2 header"))?;
        let bare = parts
            .next()
            .ok_or(ScramError::Malformed("no client-first-bare"))?;
        if flag != "n" {
            return Err(ScramError::Malformed("channel binding is not supported"));
        }
        let gs2_header = format!("{flag},{authzid},");
        let mut user = None;
        let mut nonce = None;
        for attr in bare.split(',') {
            match attr.split_once('=') {
                Some(("n", v)) => user = Some(unescape(v)?),
                Some(("r", v)) if !v.is_empty() => nonce = Some(v.to_owned()),
                Some(("m", _)) => return Err(ScramError::Malformed("mandatory extension")),
                Some((name, _)) => return Err(ScramError::Extension(name.to_owned())),
                None => return Err(ScramError::Malformed("attribute without a value")),
            }
        }
        Ok(Self {
            user: user.ok_or(ScramError::Malformed("no user name"))?,
            nonce: nonce.ok_or(ScramError::Malformed("no nonce"))?,
            gs2_header,
            bare: bare.to_owned(),
        })
    }
}

/// The server's side of one exchange after its first message.
#[derive(Debug, Clone)]
pub struct ServerFirst {
    mechanism: Mechanism,
    credential: ScramCredential,
    client_first: ClientFirst,
    nonce: String,
    message: String,
}

impl ServerFirst {
    /// Answers `client_first` for a user with `credential`. `server_nonce` is random per
    /// exchange (printable, no comma).
    pub fn new(
        mechanism: Mechanism,
        credential: ScramCredential,
        client_first: ClientFirst,
        server_nonce: &str,
    ) -> Self {
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let message = format!(
            "r={nonce},s={},i={}",
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        Self {
            mechanism,
            credential,
            client_first,
            nonce,
            message,
        }
    }

    /// A random server nonce: 24 bytes, base64 (no commas).
    pub fn random_nonce() -> Result<String, Error> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| Error::Random {
            reason: e.to_string(),
        })?;
        Ok(STANDARD.encode(bytes))
    }

    pub fn message(&self) -> &[u8] {
        self.message.as_bytes()
    }

    pub fn user(&self) -> &str {
        &self.client_first.user
    }

    /// Checks the client-final message; returns the server-final message.
    pub fn finish(&self, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text =
            std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut binding = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            match attr.split_once('=') {
                Some(("c", v)) => binding = Some(v),
                Some(("r", v)) => nonce = Some(v),
                _ => return Err(ScramError::Malformed("unexpected attribute")),
            }
        }
        let expected_binding = STANDARD.encode(self.client_first.gs2_header.as_bytes());
        if binding != Some(expected_binding.as_str()) {
            return Err(ScramError::Malformed("channel binding does not match"));
        }
        // librdkafka before 2.6.1 (Debian's kcat among them) sends the client nonce twice,
        // `r=<cnonce><cnonce><snonce>` (librdkafka#4895); Kafka 3.8.1 to 3.9 accept it too. It
        // still carries this exchange's server nonce, so a replayed proof stays refused.
        let doubled = format!("{}{}", self.client_first.nonce, self.nonce);
        if nonce != Some(self.nonce.as_str()) && nonce != Some(doubled.as_str()) {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let proof = STANDARD
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first.bare, self.message
        );
        let m = self.mechanism;
        let signature = m.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let stored_key = m.hash(&client_key);
        let mut diff = 0u8;
        for (a, b) in stored_key.iter().zip(&self.credential.stored_key) {
            diff |= a ^ b;
        }
        if diff != 0 || stored_key.len() != self.credential.stored_key.len() {
            return Err(ScramError::InvalidCredentials);
        }
        let server_signature = m.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", STANDARD.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3's example exchange.
    #[test]
    fn rfc_7677_example() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = Mechanism::Sha256.salted_password(b"pencil", &salt, 4096);
        let credential = ScramCredential::from_salted(Mechanism::Sha256, salt, 4096, &salted);
        let first = ClientFirst::parse(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.user, "user");
        let server = ServerFirst::new(
            Mechanism::Sha256,
            credential,
            first,
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        assert_eq!(
            server.message(),
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            server.finish(client_final).unwrap(),
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // One character of the proof changed: a valid base64 proof that does not verify.
        let mut wrong = client_final.to_vec();
        let at = wrong.len() - 10;
        wrong[at] = if wrong[at] == b'A' { b'B' } else { b'A' };
        assert_eq!(server.finish(&wrong), Err(ScramError::InvalidCredentials));
    }

    /// librdkafka < 2.6.1's client-final repeats the client nonce; its proof signs that.
    #[test]
    fn a_doubled_client_nonce_is_accepted_and_any_other_nonce_refused() {
        let m = Mechanism::Sha256;
        let salt = b"salt-of-sixteen!".to_vec();
        let salted = m.salted_password(b"secret", &salt, 4096);
        let credential = ScramCredential::from_salted(m, salt, 4096, &salted);
        let first = ClientFirst::parse(b"n,,n=u,r=cnonce").unwrap();
        let server = ServerFirst::new(m, credential, first, "snonce");
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let final_with = |nonce: &str| {
            let without_proof = format!("c=biws,r={nonce}");
            let auth = format!(
                "n=u,r=cnonce,{},{without_proof}",
                std::str::from_utf8(server.message()).unwrap()
            );
            let signature = m.hmac(&stored_key, auth.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(a, b)| a ^ b)
                .collect();
            format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes()
        };
        assert!(server.finish(&final_with("cnoncesnonce")).is_ok());
        assert!(server.finish(&final_with("cnoncecnoncesnonce")).is_ok());
        for other in ["cnonce", "snonce", "cnoncesnoncex", "xcnoncesnonce"] {
            assert_eq!(
                server.finish(&final_with(other)),
                Err(ScramError::Malformed("nonce does not match")),
                "{other}"
            );
        }
    }

    #[test]
    fn malformed_messages_are_refused_without_panicking() {
        for bad in [
            &b""[..],
            b"n",
            b"y,,n=u,r=x",
            b"n,,r=x",
            b"n,,n=u",
            b"n,,n=a=2Xb,r=x",
            b"n,,n=u,r=x,ext=1",
            b"\xff\xfe",
        ] {
            assert!(ClientFirst::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            ClientFirst::parse(b"n,,n=a=2Cb=3D,r=x").unwrap().user,
            "a,b="
        );
        let cred = ScramCredential::from_password(Mechanism::Sha512, "pw", 4096).unwrap();
        let first = ClientFirst::parse(b"n,,n=u,r=abc").unwrap();
        let server = ServerFirst::new(Mechanism::Sha512, cred, first, "xyz");
        for bad in [
            &b""[..],
            b"c=biws,r=abcxyz",
            b"c=biws,r=nope,p=AAAA",
            b"c=eHl6,r=abcxyz,p=AAAA",
        ] {
            assert!(server.finish(bad).is_err(), "{bad:?}");
        }
    }
}
