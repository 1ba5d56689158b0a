//! ApiVersions (key 18): the versions in [`crate::versions`], and the downgrade path.
//!
//! A client opens every connection with ApiVersions at the newest version it knows. If that
//! is newer than ours, the request cannot be decoded, so (KIP-511) the broker answers
//! UNSUPPORTED_VERSION with its ranges in a **v0** body (response header v0 as always); the
//! client then retries with the highest version both support.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::error::code;
use crate::message::{KafkaResponse, ResponseBody};
use crate::versions::SUPPORTED;

/// The ranges ferrymq serves.
fn api_keys() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(api, min, max)| {
            ApiVersion::default()
                .with_api_key(api as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// Answers a decodable ApiVersions request.
pub fn handle(request: &ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    // v3+ clients name themselves; Kafka refuses names outside [a-zA-Z0-9._-] with
    // INVALID_REQUEST (KIP-511).
    let valid = |s: &StrBytes| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && s.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
    };
    if version >= 3
        && !(valid(&request.client_software_name) && valid(&request.client_software_version))
    {
        return ApiVersionsResponse::default()
            .with_error_code(code::INVALID_REQUEST)
            .with_api_keys(api_keys());
    }
    ApiVersionsResponse::default().with_api_keys(api_keys())
}

/// The answer to an ApiVersions request at a version newer than ours.
pub fn unsupported(correlation_id: i32) -> KafkaResponse {
    KafkaResponse {
        correlation_id,
        version: 0,
        body: ResponseBody::ApiVersions(
            ApiVersionsResponse::default()
                .with_error_code(code::UNSUPPORTED_VERSION)
                .with_api_keys(api_keys()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::Decodable;

    use super::*;
    use crate::message::{KafkaRequest, RequestBody};

    const KCAT: &[u8] = include_bytes!("../../tests/fixtures/kcat-api-versions-v3.bin");
    const CONFLUENT: &[u8] = include_bytes!("../../tests/fixtures/confluent-api-versions-v3.bin");
    const AIOKAFKA: &[u8] = include_bytes!("../../tests/fixtures/aiokafka-api-versions-v0.bin");

    fn answer(frame: &[u8]) -> (i32, i16, ApiVersionsResponse) {
        let request = KafkaRequest::decode(Bytes::copy_from_slice(frame)).unwrap();
        let RequestBody::ApiVersions(body) = &request.body else {
            panic!("{request:?}")
        };
        let version = request.header.api_version;
        (
            request.header.correlation_id,
            version,
            handle(body, version),
        )
    }

    #[test]
    fn answers_each_clients_real_request_with_every_supported_range() {
        for frame in [KCAT, CONFLUENT, AIOKAFKA] {
            let (_, _, response) = answer(frame);
            assert_eq!(response.error_code, 0);
            assert_eq!(response.api_keys.len(), SUPPORTED.len());
            let fetch = response.api_keys.iter().find(|k| k.api_key == 1).unwrap();
            assert_eq!((fetch.min_version, fetch.max_version), (4, 16));
        }
    }

    #[test]
    fn the_v3_response_carries_no_tagged_fields() {
        let (correlation_id, version, body) = answer(KCAT);
        let mut out = BytesMut::new();
        KafkaResponse {
            correlation_id,
            version,
            body: ResponseBody::ApiVersions(body),
        }
        .encode(&mut out)
        .unwrap();
        // size, correlation id (header v0), error 0, compact array of N+1 entries of
        // (key i16, min i16, max i16, empty tags), throttle 0, empty tags.
        let n = SUPPORTED.len();
        assert_eq!(out.len(), 4 + 4 + 2 + 1 + n * 7 + 4 + 1);
        assert_eq!(
            out[out.len() - 1],
            0,
            "top-level tagged-field count must be 0"
        );
        for entry in out[11..11 + n * 7].chunks(7) {
            assert_eq!(entry[6], 0);
        }
    }

    #[test]
    fn a_too_new_request_gets_unsupported_version_with_a_v0_body() {
        let mut frame = BytesMut::from(CONFLUENT);
        frame[2..4].copy_from_slice(&9i16.to_be_bytes());
        let err = KafkaRequest::decode(frame.freeze()).unwrap_err();
        let crate::message::DecodeError::UnsupportedVersion {
            api,
            correlation_id,
            ..
        } = err
        else {
            panic!("{err}")
        };
        assert_eq!(api, ApiKey::ApiVersions);
        let mut out = BytesMut::new();
        unsupported(correlation_id).encode(&mut out).unwrap();
        let mut body = Bytes::copy_from_slice(&out[8..]);
        let decoded = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert_eq!(decoded.error_code, code::UNSUPPORTED_VERSION);
        assert!(
            decoded
                .api_keys
                .iter()
                .any(|k| k.api_key == 18 && k.max_version == 3)
        );
        assert!(body.is_empty());
    }

    #[test]
    fn invalid_software_names_are_refused() {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("bad name"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        assert_eq!(handle(&request, 3).error_code, code::INVALID_REQUEST);
        assert_eq!(handle(&request, 2).error_code, 0);
    }
}
