//! The API versions ferrymq implements: what ApiVersions advertises and what the request
//! decoder accepts. One table, so the two can never disagree.
//!
//! Minimums reach down to what librdkafka's feature probe needs (it enables consumer groups
//! only if JoinGroup, SyncGroup, Heartbeat, LeaveGroup v0, OffsetCommit v2 and OffsetFetch
//! v1 are offered, and message format v2 only with Produce v3 and Fetch v4); maximums are
//! those of Apache Kafka 3.7 where kafka-protocol decodes them, which covers what
//! librdkafka 2.x, kafka-python 3 and aiokafka 0.14 send.

use kafka_protocol::messages::ApiKey;

/// `(api, min, max)` for every API served, in api-key order.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 10),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    // librdkafka requires v0 to be offered before it uses v1; after a v0 handshake the
    // client sends bare SASL tokens (crate::sasl).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    // v4+ of AddPartitionsToTxn is KIP-890's broker-to-broker batch; clients send v0-3.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    // v0 (no pattern type) is gone from Kafka 4 and from kafka-protocol.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    // v2's transactional id pattern (a regular expression, KIP-1152) is not served.
    (ApiKey::ListTransactions, 0, 1),
];

/// The supported `(min, max)` of `api`, if served at all.
pub fn range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|&(_, min, max)| (min, max))
}

/// Whether `api` at `version` is served.
pub fn supports(api: ApiKey, version: i16) -> bool {
    range(api).is_some_and(|(min, max)| (min..=max).contains(&version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    fn crate_range(api: ApiKey) -> (i16, i16) {
        macro_rules! r {
            ($req:ty, $resp:ty) => {{
                let (q, p) = (<$req>::VERSIONS, <$resp>::VERSIONS);
                (q.min.max(p.min), q.max.min(p.max))
            }};
        }
        match api {
            ApiKey::Produce => r!(ProduceRequest, ProduceResponse),
            ApiKey::Fetch => r!(FetchRequest, FetchResponse),
            ApiKey::ListOffsets => r!(ListOffsetsRequest, ListOffsetsResponse),
            ApiKey::Metadata => r!(MetadataRequest, MetadataResponse),
            ApiKey::OffsetCommit => r!(OffsetCommitRequest, OffsetCommitResponse),
            ApiKey::OffsetFetch => r!(OffsetFetchRequest, OffsetFetchResponse),
            ApiKey::FindCoordinator => r!(FindCoordinatorRequest, FindCoordinatorResponse),
            ApiKey::JoinGroup => r!(JoinGroupRequest, JoinGroupResponse),
            ApiKey::Heartbeat => r!(HeartbeatRequest, HeartbeatResponse),
            ApiKey::LeaveGroup => r!(LeaveGroupRequest, LeaveGroupResponse),
            ApiKey::SyncGroup => r!(SyncGroupRequest, SyncGroupResponse),
            ApiKey::DescribeGroups => r!(DescribeGroupsRequest, DescribeGroupsResponse),
            ApiKey::ListGroups => r!(ListGroupsRequest, ListGroupsResponse),
            ApiKey::ApiVersions => r!(ApiVersionsRequest, ApiVersionsResponse),
            ApiKey::CreateTopics => r!(CreateTopicsRequest, CreateTopicsResponse),
            ApiKey::DeleteTopics => r!(DeleteTopicsRequest, DeleteTopicsResponse),
            ApiKey::DeleteRecords => r!(DeleteRecordsRequest, DeleteRecordsResponse),
            ApiKey::InitProducerId => r!(InitProducerIdRequest, InitProducerIdResponse),
            ApiKey::OffsetForLeaderEpoch => {
                r!(OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse)
            }
            ApiKey::AddPartitionsToTxn => {
                r!(AddPartitionsToTxnRequest, AddPartitionsToTxnResponse)
            }
            ApiKey::AddOffsetsToTxn => r!(AddOffsetsToTxnRequest, AddOffsetsToTxnResponse),
            ApiKey::EndTxn => r!(EndTxnRequest, EndTxnResponse),
            ApiKey::TxnOffsetCommit => r!(TxnOffsetCommitRequest, TxnOffsetCommitResponse),
            ApiKey::DescribeConfigs => r!(DescribeConfigsRequest, DescribeConfigsResponse),
            ApiKey::AlterConfigs => r!(AlterConfigsRequest, AlterConfigsResponse),
            ApiKey::CreatePartitions => r!(CreatePartitionsRequest, CreatePartitionsResponse),
            ApiKey::DeleteGroups => r!(DeleteGroupsRequest, DeleteGroupsResponse),
            ApiKey::IncrementalAlterConfigs => {
                r!(
                    IncrementalAlterConfigsRequest,
                    IncrementalAlterConfigsResponse
                )
            }
            ApiKey::OffsetDelete => r!(OffsetDeleteRequest, OffsetDeleteResponse),
            ApiKey::DescribeCluster => r!(DescribeClusterRequest, DescribeClusterResponse),
            ApiKey::DescribeTransactions => {
                r!(DescribeTransactionsRequest, DescribeTransactionsResponse)
            }
            ApiKey::ListTransactions => r!(ListTransactionsRequest, ListTransactionsResponse),
            ApiKey::SaslHandshake => r!(SaslHandshakeRequest, SaslHandshakeResponse),
            ApiKey::DescribeAcls => r!(DescribeAclsRequest, DescribeAclsResponse),
            ApiKey::CreateAcls => r!(CreateAclsRequest, CreateAclsResponse),
            ApiKey::DeleteAcls => r!(DeleteAclsRequest, DeleteAclsResponse),
            ApiKey::SaslAuthenticate => r!(SaslAuthenticateRequest, SaslAuthenticateResponse),
            ApiKey::DescribeUserScramCredentials => r!(
                DescribeUserScramCredentialsRequest,
                DescribeUserScramCredentialsResponse
            ),
            ApiKey::AlterUserScramCredentials => r!(
                AlterUserScramCredentialsRequest,
                AlterUserScramCredentialsResponse
            ),
            other => panic!("no range for {other:?}"),
        }
    }

    #[test]
    fn every_advertised_version_is_one_kafka_protocol_can_decode_and_encode() {
        for &(api, min, max) in SUPPORTED {
            let (lo, hi) = crate_range(api);
            assert!(
                lo <= min && max <= hi,
                "{api:?} {min}..={max} outside {lo}..={hi}"
            );
            assert!(
                crate::bounds::schema(api as i16).is_some(),
                "{api:?} has no bounds schema"
            );
        }
    }

    #[test]
    fn the_table_is_sorted_and_unique() {
        let keys: Vec<i16> = SUPPORTED.iter().map(|(k, _, _)| *k as i16).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(keys, sorted);
        assert!(supports(ApiKey::Fetch, 16) && !supports(ApiKey::Fetch, 17));
        assert!(supports(ApiKey::SaslHandshake, 0) && supports(ApiKey::SaslHandshake, 1));
    }
}
