//! Request schemas of the APIs ferrymq serves, as [`super::walk`] needs them: field order,
//! the versions each field exists in, wire kinds, and the size of the Rust element each array
//! decodes into. They mirror Apache Kafka's `*Request.json` message definitions.

use std::mem::size_of;

use kafka_protocol::messages::{
    add_partitions_to_txn_request as add_partitions, txn_offset_commit_request as txn_offset_commit,
};
use kafka_protocol::messages::{
    alter_configs_request as alter_configs, create_partitions_request as create_partitions,
    create_topics_request as create_topics, delete_records_request as delete_records,
    delete_topics_request as delete_topics, describe_configs_request as describe_configs,
    fetch_request as fetch, incremental_alter_configs_request as incremental,
    join_group_request as join_group, leave_group_request as leave_group,
    list_offsets_request as list_offsets, metadata_request as metadata,
    offset_commit_request as offset_commit, offset_delete_request as offset_delete,
    offset_fetch_request as offset_fetch, offset_for_leader_epoch_request as leader_epoch,
    produce_request as produce, sync_group_request as sync_group,
};
use kafka_protocol::messages::{
    alter_user_scram_credentials_request as scram_alter, create_acls_request as create_acls,
    delete_acls_request as delete_acls, describe_user_scram_credentials_request as scram_describe,
};
use kafka_protocol::protocol::StrBytes;

use super::{Elem, Field, Kind, Schema};

const ALL: i16 = i16::MAX;
const NONE: i16 = i16::MAX;
const BOOL: Kind = Kind::Fixed(1);
const I8: Kind = Kind::Fixed(1);
const I16: Kind = Kind::Fixed(2);
const I32: Kind = Kind::Fixed(4);
const I64: Kind = Kind::Fixed(8);
const UUID: Kind = Kind::Fixed(16);
const STR: Kind = Kind::Str;
const BYTES: Kind = Kind::Bytes;
const STRINGS: Kind = Kind::Array(Elem::Str, size_of::<StrBytes>());
const INT32S: Kind = Kind::Array(Elem::Fixed(4), size_of::<i32>());
const INT64S: Kind = Kind::Array(Elem::Fixed(8), size_of::<i64>());

const fn f(kind: Kind, min: i16, max: i16) -> Field {
    Field {
        kind,
        min,
        max,
        tag: None,
    }
}

const fn tagged(tag: u32, kind: Kind, min: i16) -> Field {
    Field {
        kind,
        min,
        max: ALL,
        tag: Some(tag),
    }
}

const fn array<T>(fields: &'static [Field]) -> Kind {
    Kind::Array(Elem::Struct(fields), size_of::<T>())
}

/// The schema of request `api_key`, if ferrymq serves that API.
pub(crate) fn schema(api_key: i16) -> Option<&'static Schema> {
    Some(match api_key {
        0 => &PRODUCE,
        1 => &FETCH,
        2 => &LIST_OFFSETS,
        3 => &METADATA,
        8 => &OFFSET_COMMIT,
        9 => &OFFSET_FETCH,
        10 => &FIND_COORDINATOR,
        11 => &JOIN_GROUP,
        12 => &HEARTBEAT,
        13 => &LEAVE_GROUP,
        14 => &SYNC_GROUP,
        15 => &DESCRIBE_GROUPS,
        16 => &LIST_GROUPS,
        18 => &API_VERSIONS,
        19 => &CREATE_TOPICS,
        20 => &DELETE_TOPICS,
        21 => &DELETE_RECORDS,
        22 => &INIT_PRODUCER_ID,
        24 => &ADD_PARTITIONS_TO_TXN,
        25 => &ADD_OFFSETS_TO_TXN,
        26 => &END_TXN,
        28 => &TXN_OFFSET_COMMIT,
        65 => &DESCRIBE_TRANSACTIONS,
        66 => &LIST_TRANSACTIONS,
        23 => &OFFSET_FOR_LEADER_EPOCH,
        32 => &DESCRIBE_CONFIGS,
        33 => &ALTER_CONFIGS,
        37 => &CREATE_PARTITIONS,
        42 => &DELETE_GROUPS,
        44 => &INCREMENTAL_ALTER_CONFIGS,
        47 => &OFFSET_DELETE,
        60 => &DESCRIBE_CLUSTER,
        17 => &SASL_HANDSHAKE,
        29 => &DESCRIBE_ACLS,
        30 => &CREATE_ACLS,
        31 => &DELETE_ACLS,
        36 => &SASL_AUTHENTICATE,
        50 => &DESCRIBE_USER_SCRAM_CREDENTIALS,
        51 => &ALTER_USER_SCRAM_CREDENTIALS,
        _ => return None,
    })
}

static PRODUCE: Schema = Schema {
    flexible_from: 9,
    fields: &[
        f(STR, 3, ALL), // transactional_id
        f(I16, 0, ALL), // acks
        f(I32, 0, ALL), // timeout_ms
        f(
            array::<produce::TopicProduceData>(&[
                f(STR, 0, 12),    // name
                f(UUID, 13, ALL), // topic_id
                f(
                    array::<produce::PartitionProduceData>(&[
                        f(I32, 0, ALL),   // index
                        f(BYTES, 0, ALL), // records
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
    ],
};

static FETCH: Schema = Schema {
    flexible_from: 12,
    fields: &[
        tagged(0, STR, 12),                                               // cluster_id
        f(I32, 0, 14),                                                    // replica_id
        tagged(1, Kind::Struct(&[f(I32, 15, ALL), f(I64, 15, ALL)]), 15), // replica_state
        f(I32, 0, ALL),                                                   // max_wait_ms
        f(I32, 0, ALL),                                                   // min_bytes
        f(I32, 3, ALL),                                                   // max_bytes
        f(I8, 4, ALL),                                                    // isolation_level
        f(I32, 7, ALL),                                                   // session_id
        f(I32, 7, ALL),                                                   // session_epoch
        f(
            array::<fetch::FetchTopic>(&[
                f(STR, 0, 12),    // topic
                f(UUID, 13, ALL), // topic_id
                f(
                    array::<fetch::FetchPartition>(&[
                        f(I32, 0, ALL),      // partition
                        f(I32, 9, ALL),      // current_leader_epoch
                        f(I64, 0, ALL),      // fetch_offset
                        f(I32, 12, ALL),     // last_fetched_epoch
                        f(I64, 5, ALL),      // log_start_offset
                        f(I32, 0, ALL),      // partition_max_bytes
                        tagged(0, UUID, 17), // replica_directory_id
                        tagged(1, I64, 18),  // high_watermark
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(
            array::<fetch::ForgottenTopic>(&[
                f(STR, 7, 12),     // topic
                f(UUID, 13, ALL),  // topic_id
                f(INT32S, 7, ALL), // partitions
            ]),
            7,
            ALL,
        ),
        f(STR, 11, ALL), // rack_id
    ],
};

static LIST_OFFSETS: Schema = Schema {
    flexible_from: 6,
    fields: &[
        f(I32, 0, ALL), // replica_id
        f(I8, 2, ALL),  // isolation_level
        f(
            array::<list_offsets::ListOffsetsTopic>(&[
                f(STR, 0, ALL),
                f(
                    array::<list_offsets::ListOffsetsPartition>(&[
                        f(I32, 0, ALL), // partition_index
                        f(I32, 4, ALL), // current_leader_epoch
                        f(I64, 0, ALL), // timestamp
                        f(I32, 0, 0),   // max_num_offsets
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(I32, 10, ALL), // timeout_ms
    ],
};

static METADATA: Schema = Schema {
    flexible_from: 9,
    fields: &[
        f(
            array::<metadata::MetadataRequestTopic>(&[
                f(UUID, 10, ALL), // topic_id
                f(STR, 0, ALL),   // name
            ]),
            0,
            ALL,
        ),
        f(BOOL, 4, ALL), // allow_auto_topic_creation
        f(BOOL, 8, 10),  // include_cluster_authorized_operations
        f(BOOL, 8, ALL), // include_topic_authorized_operations
    ],
};

static OFFSET_COMMIT: Schema = Schema {
    flexible_from: 8,
    fields: &[
        f(STR, 0, ALL), // group_id
        f(I32, 1, ALL), // generation_id_or_member_epoch
        f(STR, 1, ALL), // member_id
        f(STR, 7, ALL), // group_instance_id
        f(I64, 2, 4),   // retention_time_ms
        f(
            array::<offset_commit::OffsetCommitRequestTopic>(&[
                f(STR, 0, 9),     // name
                f(UUID, 10, ALL), // topic_id
                f(
                    array::<offset_commit::OffsetCommitRequestPartition>(&[
                        f(I32, 0, ALL), // partition_index
                        f(I64, 0, ALL), // committed_offset
                        f(I32, 6, ALL), // committed_leader_epoch
                        f(I64, 1, 1),   // commit_timestamp
                        f(STR, 0, ALL), // committed_metadata
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
    ],
};

static OFFSET_FETCH: Schema = Schema {
    flexible_from: 6,
    fields: &[
        f(STR, 0, 7), // group_id
        f(
            array::<offset_fetch::OffsetFetchRequestTopic>(&[
                f(STR, 0, 7),    // name
                f(INT32S, 0, 7), // partition_indexes
            ]),
            0,
            7,
        ),
        f(
            array::<offset_fetch::OffsetFetchRequestGroup>(&[
                f(STR, 8, ALL), // group_id
                f(STR, 9, ALL), // member_id
                f(I32, 9, ALL), // member_epoch
                f(
                    array::<offset_fetch::OffsetFetchRequestTopics>(&[
                        f(STR, 8, 9),      // name
                        f(UUID, 10, ALL),  // topic_id
                        f(INT32S, 8, ALL), // partition_indexes
                    ]),
                    8,
                    ALL,
                ),
            ]),
            8,
            ALL,
        ),
        f(BOOL, 7, ALL), // require_stable
    ],
};

static FIND_COORDINATOR: Schema = Schema {
    flexible_from: 3,
    fields: &[
        f(STR, 0, 3),       // key
        f(I8, 1, ALL),      // key_type
        f(STRINGS, 4, ALL), // coordinator_keys
    ],
};

static JOIN_GROUP: Schema = Schema {
    flexible_from: 6,
    fields: &[
        f(STR, 0, ALL), // group_id
        f(I32, 0, ALL), // session_timeout_ms
        f(I32, 1, ALL), // rebalance_timeout_ms
        f(STR, 0, ALL), // member_id
        f(STR, 5, ALL), // group_instance_id
        f(STR, 0, ALL), // protocol_type
        f(
            array::<join_group::JoinGroupRequestProtocol>(&[f(STR, 0, ALL), f(BYTES, 0, ALL)]),
            0,
            ALL,
        ),
        f(STR, 8, ALL), // reason
    ],
};

static HEARTBEAT: Schema = Schema {
    flexible_from: 4,
    fields: &[
        f(STR, 0, ALL),
        f(I32, 0, ALL),
        f(STR, 0, ALL),
        f(STR, 3, ALL),
    ],
};

static LEAVE_GROUP: Schema = Schema {
    flexible_from: 4,
    fields: &[
        f(STR, 0, ALL), // group_id
        f(STR, 0, 2),   // member_id
        f(
            array::<leave_group::MemberIdentity>(&[
                f(STR, 3, ALL), // member_id
                f(STR, 3, ALL), // group_instance_id
                f(STR, 5, ALL), // reason
            ]),
            3,
            ALL,
        ),
    ],
};

static SYNC_GROUP: Schema = Schema {
    flexible_from: 4,
    fields: &[
        f(STR, 0, ALL), // group_id
        f(I32, 0, ALL), // generation_id
        f(STR, 0, ALL), // member_id
        f(STR, 3, ALL), // group_instance_id
        f(STR, 5, ALL), // protocol_type
        f(STR, 5, ALL), // protocol_name
        f(
            array::<sync_group::SyncGroupRequestAssignment>(&[f(STR, 0, ALL), f(BYTES, 0, ALL)]),
            0,
            ALL,
        ),
    ],
};

static DESCRIBE_GROUPS: Schema = Schema {
    flexible_from: 5,
    fields: &[f(STRINGS, 0, ALL), f(BOOL, 3, ALL)],
};

static LIST_GROUPS: Schema = Schema {
    flexible_from: 3,
    fields: &[f(STRINGS, 4, ALL), f(STRINGS, 5, ALL)],
};

static API_VERSIONS: Schema = Schema {
    flexible_from: 3,
    fields: &[f(STR, 3, ALL), f(STR, 3, ALL)],
};

static CREATE_TOPICS: Schema = Schema {
    flexible_from: 5,
    fields: &[
        f(
            array::<create_topics::CreatableTopic>(&[
                f(STR, 0, ALL), // name
                f(I32, 0, ALL), // num_partitions
                f(I16, 0, ALL), // replication_factor
                f(
                    array::<create_topics::CreatableReplicaAssignment>(&[
                        f(I32, 0, ALL),
                        f(INT32S, 0, ALL),
                    ]),
                    0,
                    ALL,
                ),
                f(
                    array::<create_topics::CreatableTopicConfig>(&[f(STR, 0, ALL), f(STR, 0, ALL)]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(I32, 0, ALL),  // timeout_ms
        f(BOOL, 1, ALL), // validate_only
    ],
};

static DELETE_TOPICS: Schema = Schema {
    flexible_from: 4,
    fields: &[
        f(
            array::<delete_topics::DeleteTopicState>(&[f(STR, 6, ALL), f(UUID, 6, ALL)]),
            6,
            ALL,
        ),
        f(STRINGS, 0, 5), // topic_names
        f(I32, 0, ALL),   // timeout_ms
    ],
};

static DELETE_RECORDS: Schema = Schema {
    flexible_from: 2,
    fields: &[
        f(
            array::<delete_records::DeleteRecordsTopic>(&[
                f(STR, 0, ALL),
                f(
                    array::<delete_records::DeleteRecordsPartition>(&[
                        f(I32, 0, ALL),
                        f(I64, 0, ALL),
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(I32, 0, ALL),
    ],
};

static INIT_PRODUCER_ID: Schema = Schema {
    flexible_from: 2,
    fields: &[
        f(STR, 0, ALL),  // transactional_id
        f(I32, 0, ALL),  // transaction_timeout_ms
        f(I64, 3, ALL),  // producer_id
        f(I16, 3, ALL),  // producer_epoch
        f(BOOL, 6, ALL), // enable_2pc
        f(BOOL, 6, ALL), // keep_prepared_txn
    ],
};

// v4+ (KIP-890, brokers only) is not served: its batched layout is not described.
static ADD_PARTITIONS_TO_TXN: Schema = Schema {
    flexible_from: 3,
    fields: &[
        f(STR, 0, 3), // v3_and_below_transactional_id
        f(I64, 0, 3), // v3_and_below_producer_id
        f(I16, 0, 3), // v3_and_below_producer_epoch
        f(
            array::<add_partitions::AddPartitionsToTxnTopic>(&[
                f(STR, 0, ALL),    // name
                f(INT32S, 0, ALL), // partitions
            ]),
            0,
            3,
        ),
    ],
};

static ADD_OFFSETS_TO_TXN: Schema = Schema {
    flexible_from: 3,
    fields: &[
        f(STR, 0, ALL), // transactional_id
        f(I64, 0, ALL), // producer_id
        f(I16, 0, ALL), // producer_epoch
        f(STR, 0, ALL), // group_id
    ],
};

static END_TXN: Schema = Schema {
    flexible_from: 3,
    fields: &[
        f(STR, 0, ALL),  // transactional_id
        f(I64, 0, ALL),  // producer_id
        f(I16, 0, ALL),  // producer_epoch
        f(BOOL, 0, ALL), // committed
    ],
};

static TXN_OFFSET_COMMIT: Schema = Schema {
    flexible_from: 3,
    fields: &[
        f(STR, 0, ALL), // transactional_id
        f(STR, 0, ALL), // group_id
        f(I64, 0, ALL), // producer_id
        f(I16, 0, ALL), // producer_epoch
        f(I32, 3, ALL), // generation_id
        f(STR, 3, ALL), // member_id
        f(STR, 3, ALL), // group_instance_id
        f(
            array::<txn_offset_commit::TxnOffsetCommitRequestTopic>(&[
                f(STR, 0, ALL), // name
                f(
                    array::<txn_offset_commit::TxnOffsetCommitRequestPartition>(&[
                        f(I32, 0, ALL), // partition_index
                        f(I64, 0, ALL), // committed_offset
                        f(I32, 2, ALL), // committed_leader_epoch
                        f(STR, 0, ALL), // committed_metadata
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
    ],
};

static DESCRIBE_TRANSACTIONS: Schema = Schema {
    flexible_from: 0,
    fields: &[f(STRINGS, 0, ALL)], // transactional_ids
};

static LIST_TRANSACTIONS: Schema = Schema {
    flexible_from: 0,
    fields: &[
        f(STRINGS, 0, ALL), // state_filters
        f(INT64S, 0, ALL),  // producer_id_filters
        f(I64, 1, ALL),     // duration_filter
        f(STR, 2, ALL),     // transactional_id_pattern
    ],
};

static OFFSET_FOR_LEADER_EPOCH: Schema = Schema {
    flexible_from: 4,
    fields: &[
        f(I32, 3, ALL), // replica_id
        f(
            array::<leader_epoch::OffsetForLeaderTopic>(&[
                f(STR, 0, ALL),
                f(
                    array::<leader_epoch::OffsetForLeaderPartition>(&[
                        f(I32, 0, ALL), // partition
                        f(I32, 2, ALL), // current_leader_epoch
                        f(I32, 0, ALL), // leader_epoch
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
    ],
};

static DESCRIBE_CONFIGS: Schema = Schema {
    flexible_from: 4,
    fields: &[
        f(
            array::<describe_configs::DescribeConfigsResource>(&[
                f(I8, 0, ALL),      // resource_type
                f(STR, 0, ALL),     // resource_name
                f(STRINGS, 0, ALL), // configuration_keys
            ]),
            0,
            ALL,
        ),
        f(BOOL, 1, ALL), // include_synonyms
        f(BOOL, 3, ALL), // include_documentation
    ],
};

static ALTER_CONFIGS: Schema = Schema {
    flexible_from: 2,
    fields: &[
        f(
            array::<alter_configs::AlterConfigsResource>(&[
                f(I8, 0, ALL),
                f(STR, 0, ALL),
                f(
                    array::<alter_configs::AlterableConfig>(&[f(STR, 0, ALL), f(STR, 0, ALL)]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(BOOL, 0, ALL), // validate_only
    ],
};

static CREATE_PARTITIONS: Schema = Schema {
    flexible_from: 2,
    fields: &[
        f(
            array::<create_partitions::CreatePartitionsTopic>(&[
                f(STR, 0, ALL), // name
                f(I32, 0, ALL), // count
                f(
                    array::<create_partitions::CreatePartitionsAssignment>(&[f(INT32S, 0, ALL)]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(I32, 0, ALL),  // timeout_ms
        f(BOOL, 0, ALL), // validate_only
    ],
};

static DELETE_GROUPS: Schema = Schema {
    flexible_from: 2,
    fields: &[f(STRINGS, 0, ALL)],
};

static INCREMENTAL_ALTER_CONFIGS: Schema = Schema {
    flexible_from: 1,
    fields: &[
        f(
            array::<incremental::AlterConfigsResource>(&[
                f(I8, 0, ALL),
                f(STR, 0, ALL),
                f(
                    array::<incremental::AlterableConfig>(&[
                        f(STR, 0, ALL), // name
                        f(I8, 0, ALL),  // config_operation
                        f(STR, 0, ALL), // value
                    ]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
        f(BOOL, 0, ALL),
    ],
};

static OFFSET_DELETE: Schema = Schema {
    flexible_from: NONE,
    fields: &[
        f(STR, 0, ALL),
        f(
            array::<offset_delete::OffsetDeleteRequestTopic>(&[
                f(STR, 0, ALL),
                f(
                    array::<offset_delete::OffsetDeleteRequestPartition>(&[f(I32, 0, ALL)]),
                    0,
                    ALL,
                ),
            ]),
            0,
            ALL,
        ),
    ],
};

/// ConsumerProtocolSubscription v0-3 (not a request: the `consumer` protocol's JoinGroup
/// metadata), never flexible.
pub(crate) static CONSUMER_SUBSCRIPTION: Schema = Schema {
    flexible_from: NONE,
    fields: &[
        f(STRINGS, 0, ALL), // topics
        f(BYTES, 0, ALL),   // user_data
        f(
            array::<kafka_protocol::messages::consumer_protocol_subscription::TopicPartition>(&[
                f(STR, 1, ALL),
                f(INT32S, 1, ALL),
            ]),
            1,
            ALL,
        ), // owned_partitions
        f(I32, 2, ALL),     // generation_id
        f(STR, 3, ALL),     // rack_id
    ],
};

/// An ACL filter (DescribeAcls' body, each of DeleteAcls' filters): resource type, name,
/// pattern type (v1+), principal, host, operation, permission type.
const ACL_FILTER: &[Field] = &[
    f(I8, 0, ALL),
    f(STR, 0, ALL),
    f(I8, 1, ALL),
    f(STR, 0, ALL),
    f(STR, 0, ALL),
    f(I8, 0, ALL),
    f(I8, 0, ALL),
];

static DESCRIBE_ACLS: Schema = Schema {
    flexible_from: 2,
    fields: ACL_FILTER,
};

static CREATE_ACLS: Schema = Schema {
    flexible_from: 2,
    fields: &[f(array::<create_acls::AclCreation>(ACL_FILTER), 0, ALL)],
};

static DELETE_ACLS: Schema = Schema {
    flexible_from: 2,
    fields: &[f(
        array::<delete_acls::DeleteAclsFilter>(ACL_FILTER),
        0,
        ALL,
    )],
};

static SASL_HANDSHAKE: Schema = Schema {
    flexible_from: NONE,
    fields: &[f(STR, 0, ALL)], // mechanism
};

static SASL_AUTHENTICATE: Schema = Schema {
    flexible_from: 2,
    fields: &[f(BYTES, 0, ALL)], // auth_bytes
};

static DESCRIBE_USER_SCRAM_CREDENTIALS: Schema = Schema {
    flexible_from: 0,
    fields: &[f(
        array::<scram_describe::UserName>(&[f(STR, 0, ALL)]), // users (name)
        0,
        ALL,
    )],
};

static ALTER_USER_SCRAM_CREDENTIALS: Schema = Schema {
    flexible_from: 0,
    fields: &[
        f(
            array::<scram_alter::ScramCredentialDeletion>(&[
                f(STR, 0, ALL), // name
                f(I8, 0, ALL),  // mechanism
            ]),
            0,
            ALL,
        ),
        f(
            array::<scram_alter::ScramCredentialUpsertion>(&[
                f(STR, 0, ALL),   // name
                f(I8, 0, ALL),    // mechanism
                f(I32, 0, ALL),   // iterations
                f(BYTES, 0, ALL), // salt
                f(BYTES, 0, ALL), // salted_password
            ]),
            0,
            ALL,
        ),
    ],
};

static DESCRIBE_CLUSTER: Schema = Schema {
    flexible_from: 0,
    fields: &[f(BOOL, 0, ALL), f(I8, 1, ALL), f(BOOL, 2, ALL)],
};
