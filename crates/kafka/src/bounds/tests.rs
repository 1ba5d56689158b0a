use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

use super::*;
use crate::message::{DecodeError, KafkaRequest};

/// A request frame payload: header for `api`/`version`, then `body`.
fn frame(api: ApiKey, version: i16, body: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("t")));
    header
        .encode(&mut out, api.request_header_version(version))
        .unwrap();
    out.extend_from_slice(body);
    out.freeze()
}

fn body_error(api: ApiKey, version: i16, body: &[u8]) -> String {
    match KafkaRequest::decode(frame(api, version, body)) {
        Err(DecodeError::Body { reason, .. }) => reason,
        other => panic!("expected a body error, got {other:?}"),
    }
}

#[test]
fn a_ten_byte_request_claiming_two_billion_topics_is_refused_unallocated() {
    // Metadata v0: topics array count 0x7fffffff, then nothing.
    let reason = body_error(ApiKey::Metadata, 0, &[0x7f, 0xff, 0xff, 0xff]);
    assert!(reason.contains("claims 2147483647 elements"), "{reason}");
    assert_eq!(
        walk(3, 0, &[0x7f, 0xff, 0xff, 0xff]),
        Err(BoundsError::ImplausibleCount {
            at: 0,
            count: 2_147_483_647,
            min_size: 2,
            have: 0
        })
    );
}

#[test]
fn compact_and_nested_counts_are_checked_too() {
    // Metadata v9 (flexible): compact array count as a 5-byte varint (~2^32).
    let reason = body_error(ApiKey::Metadata, 9, &[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(reason.contains("elements"), "{reason}");
    // Produce v3: one topic whose partition array claims a billion entries.
    let mut body = BytesMut::new();
    body.put_i16(-1); // transactional id
    body.put_i16(1); // acks
    body.put_i32(1000); // timeout
    body.put_i32(1); // one topic
    body.put_i16(1);
    body.put_u8(b't');
    body.put_i32(1 << 30);
    body.put_i32(0);
    let reason = body_error(ApiKey::Produce, 3, &body);
    assert!(reason.contains("claims 1073741824 elements"), "{reason}");
    // A string longer than what is left.
    let reason = body_error(ApiKey::Metadata, 1, &[0, 0, 0, 1, 0x7f, 0xff, b'a']);
    assert!(reason.contains("truncated"), "{reason}");
    // A negative length other than null.
    let reason = body_error(ApiKey::Metadata, 1, &[0xff, 0xff, 0xff, 0xfe]);
    assert!(reason.contains("negative length"), "{reason}");
}

#[test]
fn the_memory_the_decoder_would_reserve_is_capped() {
    // OffsetFetch v8 groups of 3 bytes each decode into much larger structs.
    let count = 200_000u32;
    let mut body = BytesMut::new();
    let mut varint = count + 1;
    while varint >= 0x80 {
        body.put_u8(u8::try_from(varint & 0x7f).unwrap() | 0x80);
        varint >>= 7;
    }
    body.put_u8(u8::try_from(varint).unwrap());
    for _ in 0..count {
        body.extend_from_slice(&[1, 0, 0]); // group_id "", topics null, no tags
    }
    body.extend_from_slice(&[0, 0]); // require_stable, tags
    let reserved = usize::try_from(count).unwrap() * size_of::<OffsetFetchRequestGroup>();
    assert!(
        reserved > budget(body.len()),
        "the test must exceed the budget"
    );
    assert_eq!(
        walk(9, 8, &body),
        Err(BoundsError::OverBudget {
            budget: budget(body.len())
        })
    );
}

#[test]
fn every_schema_walks_an_empty_request_of_every_version() {
    use kafka_protocol::messages::*;
    macro_rules! check {
        ($api:expr, $t:ty) => {{
            let (min, max) = crate::versions::range($api).unwrap();
            for v in min..=max {
                let mut body = BytesMut::new();
                <$t>::default().encode(&mut body, v).unwrap();
                assert_eq!(
                    walk($api as i16, v, &body),
                    Ok(body.len()),
                    "{:?} v{v}",
                    $api
                );
            }
        }};
    }
    check!(ApiKey::Produce, ProduceRequest);
    check!(ApiKey::Fetch, FetchRequest);
    check!(ApiKey::ListOffsets, ListOffsetsRequest);
    check!(ApiKey::Metadata, MetadataRequest);
    check!(ApiKey::OffsetCommit, OffsetCommitRequest);
    check!(ApiKey::OffsetFetch, OffsetFetchRequest);
    check!(ApiKey::FindCoordinator, FindCoordinatorRequest);
    check!(ApiKey::JoinGroup, JoinGroupRequest);
    check!(ApiKey::Heartbeat, HeartbeatRequest);
    check!(ApiKey::LeaveGroup, LeaveGroupRequest);
    check!(ApiKey::SyncGroup, SyncGroupRequest);
    check!(ApiKey::DescribeGroups, DescribeGroupsRequest);
    check!(ApiKey::ListGroups, ListGroupsRequest);
    check!(ApiKey::ApiVersions, ApiVersionsRequest);
    check!(ApiKey::CreateTopics, CreateTopicsRequest);
    check!(ApiKey::DeleteTopics, DeleteTopicsRequest);
    check!(ApiKey::DeleteRecords, DeleteRecordsRequest);
    check!(ApiKey::InitProducerId, InitProducerIdRequest);
    check!(ApiKey::AddPartitionsToTxn, AddPartitionsToTxnRequest);
    check!(ApiKey::AddOffsetsToTxn, AddOffsetsToTxnRequest);
    check!(ApiKey::EndTxn, EndTxnRequest);
    check!(ApiKey::TxnOffsetCommit, TxnOffsetCommitRequest);
    check!(ApiKey::DescribeTransactions, DescribeTransactionsRequest);
    check!(ApiKey::ListTransactions, ListTransactionsRequest);
    check!(ApiKey::OffsetForLeaderEpoch, OffsetForLeaderEpochRequest);
    check!(ApiKey::DescribeConfigs, DescribeConfigsRequest);
    check!(ApiKey::AlterConfigs, AlterConfigsRequest);
    check!(ApiKey::CreatePartitions, CreatePartitionsRequest);
    check!(ApiKey::DeleteGroups, DeleteGroupsRequest);
    check!(
        ApiKey::IncrementalAlterConfigs,
        IncrementalAlterConfigsRequest
    );
    check!(ApiKey::OffsetDelete, OffsetDeleteRequest);
    check!(ApiKey::DescribeCluster, DescribeClusterRequest);
    check!(ApiKey::SaslHandshake, SaslHandshakeRequest);
    check!(ApiKey::DescribeAcls, DescribeAclsRequest);
    check!(ApiKey::CreateAcls, CreateAclsRequest);
    check!(ApiKey::DeleteAcls, DeleteAclsRequest);
    check!(ApiKey::SaslAuthenticate, SaslAuthenticateRequest);
    check!(
        ApiKey::DescribeUserScramCredentials,
        DescribeUserScramCredentialsRequest
    );
    check!(
        ApiKey::AlterUserScramCredentials,
        AlterUserScramCredentialsRequest
    );
}

#[test]
fn known_tagged_fields_are_walked_as_the_decoder_reads_them() {
    use kafka_protocol::messages::fetch_request::ReplicaState;
    use kafka_protocol::messages::{BrokerId, FetchRequest};
    let request = FetchRequest::default()
        .with_cluster_id(Some(StrBytes::from_static_str("cluster")))
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(3))
                .with_replica_epoch(9),
        );
    for v in [12, 15, 16] {
        let mut body = BytesMut::new();
        let mut request = request.clone();
        if v < 15 {
            request.replica_state = ReplicaState::default();
        }
        request.encode(&mut body, v).unwrap();
        assert_eq!(walk(1, v, &body), Ok(body.len()), "Fetch v{v}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes after a valid header: a clean result either way, never a panic.
    #[test]
    fn arbitrary_bodies_never_panic(api in prop::sample::select(crate::versions::SUPPORTED.to_vec()),
                                    pick in any::<u16>(),
                                    body in prop::collection::vec(any::<u8>(), 0..256)) {
        let (key, min, max) = api;
        let span = u16::try_from(max - min + 1).unwrap();
        let version = min + i16::try_from(pick % span).unwrap();
        let _ = KafkaRequest::decode(frame(key, version, &body));
    }

    /// Whole frames of arbitrary bytes, including arbitrary headers.
    #[test]
    fn arbitrary_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = KafkaRequest::decode(Bytes::from(bytes));
    }
}
