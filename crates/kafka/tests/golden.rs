//! Golden bytes: request frames captured from the real clients (kcat 1.7.1 / librdkafka
//! 2.0.2, confluent-kafka 2.16, kafka-python 3.0.12, aiokafka 0.14) with
//! `tests/kafka/capture.py`, one file per client, API and version in `tests/fixtures/`.
//!
//! Each must decode, every strict prefix must fail cleanly, and the in-process broker must
//! answer it with a response that decodes at the same version.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;

use std::path::PathBuf;

use bytes::{Buf, Bytes};
use common::TestBroker;
use ferrymq_kafka::header;
use ferrymq_kafka::message::KafkaRequest;
use kafka_protocol::messages::ApiKey;

struct Fixture {
    name: String,
    bytes: Bytes,
}

fn fixtures() -> Vec<Fixture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out: Vec<Fixture> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .map(|p| Fixture {
            name: p.file_stem().unwrap().to_string_lossy().into_owned(),
            bytes: Bytes::from(std::fs::read(&p).unwrap()),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(out.len() >= 60, "captured fixtures missing: {}", out.len());
    out
}

/// The version a fixture's name ends with (`...-v12`).
fn named_version(name: &str) -> i16 {
    name.rsplit_once("-v").unwrap().1.parse().unwrap()
}

#[test]
fn every_captured_request_decodes_as_what_its_name_says() {
    for f in fixtures() {
        let (_, version, _) = header::peek_prefix(&f.bytes).unwrap();
        assert_eq!(version, named_version(&f.name), "{}", f.name);
        match KafkaRequest::decode(f.bytes.clone()) {
            Ok(request) => {
                assert_eq!(request.header.api_version, version, "{}", f.name);
                assert!(request.header.client_id.is_some(), "{}", f.name);
            }
            // kafka-python opens with ApiVersions v4, newer than ours: the downgrade path.
            Err(ferrymq_kafka::message::DecodeError::UnsupportedVersion {
                api: ApiKey::ApiVersions,
                version: 4,
                ..
            }) if f.name == "kafka-python-api-versions-v4" => {}
            Err(e) => panic!("{}: {e}", f.name),
        }
    }
}

#[test]
fn every_strict_prefix_of_every_captured_request_fails_cleanly() {
    for f in fixtures() {
        for len in 0..f.bytes.len() {
            let prefix = f.bytes.slice(..len);
            let result = std::panic::catch_unwind(|| KafkaRequest::decode(prefix));
            let decoded = result.unwrap_or_else(|_| panic!("{} prefix {len} panicked", f.name));
            assert!(decoded.is_err(), "{} prefix of {len} bytes decoded", f.name);
        }
    }
}

#[tokio::test]
async fn the_broker_answers_every_captured_request_at_its_version() {
    let broker = TestBroker::start(TestBroker::default_config());
    for f in fixtures() {
        let (api, version, correlation) = header::peek_prefix(&f.bytes).unwrap();
        let api = ApiKey::try_from(api).unwrap();
        // Produce with acks=0 gets no response; none of the captures uses it.
        let mut c = broker.client();
        let mut frame = Vec::with_capacity(f.bytes.len() + 4);
        frame.extend_from_slice(&u32::try_from(f.bytes.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&f.bytes);
        c.send_raw(&frame).await;
        let mut response = c
            .read_frame()
            .await
            .unwrap_or_else(|| panic!("{}: connection closed without a response", f.name));
        assert_eq!(response.get_i32(), correlation, "{}", f.name);
        let version = if f.name == "kafka-python-api-versions-v4" {
            0
        } else {
            version
        };
        if api.response_header_version(version) >= 1 {
            assert_eq!(response.get_u8(), 0, "{}: header tags", f.name);
        }
        decode_response(api, version, &mut response).unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert!(
            response.is_empty(),
            "{}: {} trailing bytes",
            f.name,
            response.len()
        );
    }
}

fn decode_response(api: ApiKey, version: i16, buf: &mut Bytes) -> Result<(), String> {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Decodable;
    macro_rules! d {
        ($t:ty) => {
            <$t>::decode(buf, version)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
    }
    match api {
        ApiKey::Produce => d!(ProduceResponse),
        ApiKey::Fetch => d!(FetchResponse),
        ApiKey::ListOffsets => d!(ListOffsetsResponse),
        ApiKey::Metadata => d!(MetadataResponse),
        ApiKey::OffsetCommit => d!(OffsetCommitResponse),
        ApiKey::OffsetFetch => d!(OffsetFetchResponse),
        ApiKey::FindCoordinator => d!(FindCoordinatorResponse),
        ApiKey::JoinGroup => d!(JoinGroupResponse),
        ApiKey::Heartbeat => d!(HeartbeatResponse),
        ApiKey::LeaveGroup => d!(LeaveGroupResponse),
        ApiKey::SyncGroup => d!(SyncGroupResponse),
        ApiKey::DescribeGroups => d!(DescribeGroupsResponse),
        ApiKey::ListGroups => d!(ListGroupsResponse),
        ApiKey::ApiVersions => d!(ApiVersionsResponse),
        ApiKey::CreateTopics => d!(CreateTopicsResponse),
        ApiKey::DeleteTopics => d!(DeleteTopicsResponse),
        ApiKey::DeleteRecords => d!(DeleteRecordsResponse),
        ApiKey::InitProducerId => d!(InitProducerIdResponse),
        ApiKey::DescribeConfigs => d!(DescribeConfigsResponse),
        ApiKey::AlterConfigs => d!(AlterConfigsResponse),
        ApiKey::CreatePartitions => d!(CreatePartitionsResponse),
        ApiKey::DeleteGroups => d!(DeleteGroupsResponse),
        ApiKey::IncrementalAlterConfigs => d!(IncrementalAlterConfigsResponse),
        ApiKey::OffsetDelete => d!(OffsetDeleteResponse),
        ApiKey::DescribeCluster => d!(DescribeClusterResponse),
        ApiKey::OffsetForLeaderEpoch => d!(OffsetForLeaderEpochResponse),
        other => Err(format!("no decoder for {other:?}")),
    }
}
