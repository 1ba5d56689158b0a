//! Request header decoding (versions 0, 1 and 2) and response header encoding (0 and 1).
//!
//! ```text
//! request header v0:  api_key i16 | api_version i16 | correlation_id i32
//! request header v1:  v0 | client_id nullable string (int16 length)
//! request header v2:  v1 | tagged fields            (client_id stays non-compact)
//! response header v0: correlation_id i32
//! response header v1: correlation_id i32 | tagged fields (always empty from ferrymq)
//! ```
//! The header version follows from the API key and version: flexible versions of an API use
//! v2/v1, others v1/v0 (ControlledShutdown v0 alone uses request header v0). ApiVersions
//! responses always use response header v0 so that a client can read the error in it.
//!
//! # Invariants
//! - The first eight bytes (key, version, correlation id) are read before anything else, so
//!   every refusal after them can name the correlation id.
//! - Nothing here panics or allocates on malformed input beyond the client id's bytes, which
//!   are a zero-copy slice of the frame.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, RequestHeader as WireHeader};
use kafka_protocol::protocol::{Decodable, StrBytes};

/// A decoded request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRequestHeader {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<StrBytes>,
    /// 0, 1 or 2.
    pub header_version: i16,
}

/// Why a header could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("request of {len} bytes is shorter than the 8-byte header prefix")]
    Short { len: usize },
    #[error("unknown API key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error(
        "malformed request header v{header_version} for API key {api_key} (correlation id {correlation_id}): {reason}"
    )]
    Malformed {
        api_key: i16,
        header_version: i16,
        correlation_id: i32,
        reason: String,
    },
}

/// The first eight bytes of a request, which every header version shares.
pub fn peek_prefix(frame: &[u8]) -> Option<(i16, i16, i32)> {
    let prefix: &[u8; 8] = frame.first_chunk()?;
    let [k0, k1, v0, v1, c0, c1, c2, c3] = *prefix;
    Some((
        i16::from_be_bytes([k0, k1]),
        i16::from_be_bytes([v0, v1]),
        i32::from_be_bytes([c0, c1, c2, c3]),
    ))
}

/// ControlledShutdown, an inter-broker API removed from Kafka 4 (and from kafka-protocol):
/// its v0 is the one request with header v0.
const CONTROLLED_SHUTDOWN: i16 = 7;

/// The request header version of `api_key` at `api_version`, if the key is known.
pub fn request_header_version(api_key: i16, api_version: i16) -> Option<i16> {
    match api_key {
        CONTROLLED_SHUTDOWN => Some(if api_version == 0 { 0 } else { 1 }),
        key => ApiKey::try_from(key)
            .ok()
            .map(|api| api.request_header_version(api_version)),
    }
}

/// Decodes the header at the start of `frame`, advancing it to the request body.
pub fn decode(frame: &mut Bytes) -> Result<KafkaRequestHeader, HeaderError> {
    let Some((api_key, api_version, correlation_id)) = peek_prefix(frame) else {
        return Err(HeaderError::Short { len: frame.len() });
    };
    let header_version =
        request_header_version(api_key, api_version).ok_or(HeaderError::UnknownApiKey {
            api_key,
            correlation_id,
        })?;
    if header_version == 0 {
        frame.advance(8);
        return Ok(KafkaRequestHeader {
            api_key,
            api_version,
            correlation_id,
            client_id: None,
            header_version,
        });
    }
    let wire = WireHeader::decode(frame, header_version).map_err(|e| HeaderError::Malformed {
        api_key,
        header_version,
        correlation_id,
        reason: e.to_string(),
    })?;
    Ok(KafkaRequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id: wire.client_id,
        header_version,
    })
}

/// The response header version for `api` at `version`.
pub fn response_header_version(api: ApiKey, version: i16) -> i16 {
    api.response_header_version(version)
}

/// Appends a response header: the correlation id, plus an empty tagged-field section in v1.
pub fn encode_response(correlation_id: i32, header_version: i16, out: &mut bytes::BytesMut) {
    out.extend_from_slice(&correlation_id.to_be_bytes());
    if header_version >= 1 {
        out.extend_from_slice(&[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ApiVersions v3 as librdkafka 2.0.2 (kcat 1.7.1) sends it, minus the size prefix.
    const KCAT_API_VERSIONS: &[u8] = include_bytes!("../tests/fixtures/kcat-api-versions-v3.bin");

    #[test]
    fn decodes_a_v2_header_from_kcat() {
        let mut frame = Bytes::from_static(KCAT_API_VERSIONS);
        let header = decode(&mut frame).unwrap();
        assert_eq!(header.api_key, ApiKey::ApiVersions as i16);
        assert_eq!(header.api_version, 3);
        assert_eq!(header.header_version, 2);
        assert_eq!(header.client_id.as_deref(), Some("rdkafka"));
        assert!(frame.len() < KCAT_API_VERSIONS.len());
    }

    #[test]
    fn decodes_v0_and_v1_headers() {
        // ControlledShutdown v0 is the one request with header v0.
        let mut v0 = Bytes::from_static(&[0, 7, 0, 0, 0, 0, 0, 42, 0xAA]);
        let h = decode(&mut v0).unwrap();
        assert_eq!(
            (h.header_version, h.correlation_id, h.client_id),
            (0, 42, None)
        );
        assert_eq!(&v0[..], &[0xAA]);

        let mut v1 = Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 7, 0, 2, b'i', b'd', 0xBB]);
        let h = decode(&mut v1).unwrap();
        assert_eq!((h.header_version, h.client_id.as_deref()), (1, Some("id")));
        assert_eq!(&v1[..], &[0xBB]);

        let mut null_id = Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff]);
        assert_eq!(decode(&mut null_id).unwrap().client_id, None);
    }

    #[test]
    fn every_truncation_fails_cleanly_and_names_what_it_can() {
        for len in 0..KCAT_API_VERSIONS.len() {
            let mut frame = Bytes::copy_from_slice(&KCAT_API_VERSIONS[..len]);
            match decode(&mut frame) {
                Err(HeaderError::Short { len: l }) => assert!(l < 8 && l == len),
                Err(HeaderError::Malformed { correlation_id, .. }) => {
                    assert_eq!(correlation_id, peek_prefix(KCAT_API_VERSIONS).unwrap().2);
                }
                // The header may end before the body: then a shorter frame still decodes.
                Ok(h) => assert_eq!(h.client_id.as_deref(), Some("rdkafka")),
                Err(other) => panic!("{other}"),
            }
        }
    }

    #[test]
    fn unknown_api_keys_are_named() {
        let mut frame = Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(
            decode(&mut frame),
            Err(HeaderError::UnknownApiKey {
                api_key: 0x7f00,
                correlation_id: 9
            })
        );
    }

    #[test]
    fn response_headers() {
        let mut out = bytes::BytesMut::new();
        encode_response(5, 0, &mut out);
        encode_response(6, 1, &mut out);
        assert_eq!(&out[..], &[0, 0, 0, 5, 0, 0, 0, 6, 0]);
        assert_eq!(response_header_version(ApiKey::ApiVersions, 3), 0);
        assert_eq!(response_header_version(ApiKey::Metadata, 9), 1);
    }
}
