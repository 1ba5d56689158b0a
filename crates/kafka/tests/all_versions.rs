//! Every API at every advertised version, through a real connection: the request decodes,
//! the handler answers, and the response encodes at that version and decodes back.

mod common;

use bytes::Bytes;
use common::{TestBroker, batch};
use ferrymq_kafka::versions::{SUPPORTED, range};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

#[expect(clippy::unwrap_used, reason = "test helper")]
fn versions(api: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (min, max) = range(api).unwrap();
    min..=max
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

async fn create_topic(c: &mut common::Client, topic: &str, partitions: i32) -> uuid::Uuid {
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1),
    ]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(
        resp.topics[0].error_code, 0,
        "{:?}",
        resp.topics[0].error_message
    );
    resp.topics[0].topic_id
}

#[tokio::test]
async fn api_versions_every_version() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    for v in versions(ApiKey::ApiVersions) {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(str("conformance"))
            .with_client_software_version(str("1.0"));
        let resp: ApiVersionsResponse = c.call(ApiKey::ApiVersions, v, &req).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.api_keys.len(), SUPPORTED.len());
    }
}

#[tokio::test]
async fn topic_admin_every_version() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    for v in versions(ApiKey::CreateTopics) {
        let topic = format!("create-v{v}");
        let req = CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(name(&topic))
                .with_num_partitions(2)
                .with_replication_factor(-1)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(str("retention.ms"))
                        .with_value(Some(str("3600000"))),
                ]),
        ]);
        let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, v, &req).await;
        assert_eq!(
            resp.topics[0].error_code, 0,
            "v{v}: {:?}",
            resp.topics[0].error_message
        );
        let again: CreateTopicsResponse = c.call(ApiKey::CreateTopics, v, &req).await;
        assert_eq!(again.topics[0].error_code, 36, "TOPIC_ALREADY_EXISTS");
    }
    for v in versions(ApiKey::CreatePartitions) {
        let req = CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(name("create-v7"))
                .with_count(3 + i32::from(v)),
        ]);
        let resp: CreatePartitionsResponse = c.call(ApiKey::CreatePartitions, v, &req).await;
        assert_eq!(
            resp.results[0].error_code, 0,
            "v{v}: {:?}",
            resp.results[0].error_message
        );
    }
    for v in versions(ApiKey::DescribeConfigs) {
        let req = DescribeConfigsRequest::default()
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(str("create-v7"))
                    .with_configuration_keys(None),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(str("0"))
                    .with_configuration_keys(None),
            ])
            .with_include_synonyms(true)
            .with_include_documentation(v >= 3);
        let resp: DescribeConfigsResponse = c.call(ApiKey::DescribeConfigs, v, &req).await;
        let topic = &resp.results[0];
        assert_eq!(topic.error_code, 0);
        let retention = topic
            .configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .unwrap();
        assert_eq!(retention.value.as_deref(), Some("3600000"));
        assert_eq!(retention.config_source, 1, "DYNAMIC_TOPIC_CONFIG");
        assert!(resp.results[1].configs.len() > 10);
    }
    for v in versions(ApiKey::AlterConfigs) {
        let req = AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(str("create-v7"))
                .with_configs(vec![
                    alter_configs_request::AlterableConfig::default()
                        .with_name(str("retention.bytes"))
                        .with_value(Some(str("1048576"))),
                ]),
        ]);
        let resp: AlterConfigsResponse = c.call(ApiKey::AlterConfigs, v, &req).await;
        assert_eq!(
            resp.responses[0].error_code, 0,
            "v{v}: {:?}",
            resp.responses[0].error_message
        );
    }
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(str("create-v7"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(str("max.message.bytes"))
                        .with_config_operation(0)
                        .with_value(Some(str("2000000"))),
                ]),
        ]);
        let resp: IncrementalAlterConfigsResponse =
            c.call(ApiKey::IncrementalAlterConfigs, v, &req).await;
        assert_eq!(
            resp.responses[0].error_code, 0,
            "v{v}: {:?}",
            resp.responses[0].error_message
        );
    }
    for v in versions(ApiKey::DescribeCluster) {
        let req = DescribeClusterRequest::default();
        let resp: DescribeClusterResponse = c.call(ApiKey::DescribeCluster, v, &req).await;
        assert_eq!((resp.error_code, resp.brokers.len()), (0, 1));
    }
    for v in versions(ApiKey::Metadata) {
        let topics = Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("create-v7"))),
        ]);
        let req = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(v < 4);
        let resp: MetadataResponse = c.call(ApiKey::Metadata, v, &req).await;
        assert_eq!(resp.topics.len(), 1, "v{v}");
        assert_eq!(resp.topics[0].partitions.len(), 4 + 2, "v{v}");
        assert_eq!(resp.brokers[0].port, 9092);
    }
    for v in versions(ApiKey::DeleteTopics) {
        let topic = format!("create-v{}", 1 + v);
        let mut req = DeleteTopicsRequest::default();
        if v >= 6 {
            req.topics = vec![
                delete_topics_request::DeleteTopicState::default().with_name(Some(name(&topic))),
            ];
        } else {
            req.topic_names = vec![name(&topic)];
        }
        let resp: DeleteTopicsResponse = c.call(ApiKey::DeleteTopics, v, &req).await;
        assert_eq!(
            resp.responses[0].error_code, 0,
            "v{v}: {:?}",
            resp.responses[0].error_message
        );
    }
}

#[tokio::test]
async fn produce_fetch_and_offsets_every_version() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    let topic_id = create_topic(&mut c, "data", 1).await;
    let mut produced = 0i64;
    for v in versions(ApiKey::Produce) {
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(name("data"))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(
                                3,
                                if v >= 7 {
                                    Compression::Zstd
                                } else {
                                    Compression::Lz4
                                },
                            ))),
                    ]),
            ]);
        let resp: ProduceResponse = c.call(ApiKey::Produce, v, &req).await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, produced),
            "v{v}: {:?}",
            p.error_message
        );
        produced += 3;
    }
    for v in versions(ApiKey::Fetch) {
        let mut topic = fetch_request::FetchTopic::default().with_partitions(vec![
            fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(4)
                .with_partition_max_bytes(1 << 20),
        ]);
        if v >= 13 {
            topic.topic_id = topic_id;
        } else {
            topic.topic = name("data");
        }
        let req = FetchRequest::default()
            .with_max_wait_ms(100)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![topic]);
        let resp: FetchResponse = c.call(ApiKey::Fetch, v, &req).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{v}");
        assert_eq!(p.high_watermark, produced, "v{v}");
        let records = p.records.as_ref().unwrap();
        assert!(!records.is_empty(), "v{v}");
        // Offset 4 lies in the second batch (offsets 3..6): that whole batch comes first.
        assert_eq!(
            i64::from_be_bytes(records[..8].try_into().unwrap()),
            3,
            "v{v}"
        );
    }
    for v in versions(ApiKey::ListOffsets) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(name("data"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-2),
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(1_700_000_000_002),
                    ]),
            ]);
        let resp: ListOffsetsResponse = c.call(ApiKey::ListOffsets, v, &req).await;
        let offsets: Vec<i64> = resp.topics[0].partitions.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, vec![produced, 0, 2], "v{v}");
    }
    for v in versions(ApiKey::DeleteRecords) {
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default()
                    .with_name(name("data"))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(i64::from(v)),
                    ]),
            ]);
        let resp: DeleteRecordsResponse = c.call(ApiKey::DeleteRecords, v, &req).await;
        let p = &resp.topics[0].partitions[0];
        assert_eq!((p.error_code, p.low_watermark), (0, i64::from(v)), "v{v}");
    }
    for v in versions(ApiKey::OffsetForLeaderEpoch) {
        let req = OffsetForLeaderEpochRequest::default().with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(name("data"))
                .with_partitions(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_leader_epoch(0),
                ]),
        ]);
        let resp: OffsetForLeaderEpochResponse =
            c.call(ApiKey::OffsetForLeaderEpoch, v, &req).await;
        assert_eq!(resp.topics[0].partitions[0].end_offset, produced);
    }
    for v in versions(ApiKey::InitProducerId) {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let resp: InitProducerIdResponse = c.call(ApiKey::InitProducerId, v, &req).await;
        assert_eq!(resp.error_code, 0);
        assert!(resp.producer_id.0 >= 0);
    }
}

async fn join(c: &mut common::Client, group: &str, v: i16) -> (String, i32) {
    let protocol = join_group_request::JoinGroupRequestProtocol::default()
        .with_name(str("range"))
        .with_metadata(Bytes::from_static(&[
            0, 0, 0, 0, 0, 1, 0, 4, b'd', b'a', b't', b'a', 0xff, 0xff, 0xff, 0xff,
        ]));
    let mut req = JoinGroupRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(str("consumer"))
        .with_protocols(vec![protocol]);
    let mut resp: JoinGroupResponse = c.call(ApiKey::JoinGroup, v, &req).await;
    if resp.error_code == 79 {
        req.member_id = resp.member_id.clone();
        resp = c.call(ApiKey::JoinGroup, v, &req).await;
    }
    assert_eq!(resp.error_code, 0, "JoinGroup v{v}");
    assert_eq!(resp.leader, resp.member_id);
    assert_eq!(resp.members.len(), 1);
    (resp.member_id.to_string(), resp.generation_id)
}

async fn sync(c: &mut common::Client, group: &str, member: &str, generation: i32, v: i16) {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(str(group)))
        .with_generation_id(generation)
        .with_member_id(str(member))
        .with_protocol_type(if v >= 5 { Some(str("consumer")) } else { None })
        .with_protocol_name(if v >= 5 { Some(str("range")) } else { None })
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(str(member))
                .with_assignment(Bytes::from_static(b"assignment")),
        ]);
    let resp: SyncGroupResponse = c.call(ApiKey::SyncGroup, v, &req).await;
    assert_eq!(resp.error_code, 0, "SyncGroup v{v}");
    assert_eq!(&resp.assignment[..], b"assignment");
}

#[tokio::test]
async fn group_apis_every_version() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    create_topic(&mut c, "data", 2).await;
    for v in versions(ApiKey::FindCoordinator) {
        let mut req = FindCoordinatorRequest::default().with_key_type(0);
        if v >= 4 {
            req.coordinator_keys = vec![str("g")];
        } else {
            req.key = str("g");
        }
        let resp: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, v, &req).await;
        let port = if v >= 4 {
            resp.coordinators[0].port
        } else {
            resp.port
        };
        assert_eq!(port, 9092, "v{v}");
    }
    for v in versions(ApiKey::JoinGroup) {
        let group = format!("join-v{v}");
        let (member, generation) = join(&mut c, &group, v).await;
        sync(&mut c, &group, &member, generation, 3).await;
    }
    for v in versions(ApiKey::SyncGroup) {
        let group = format!("sync-v{v}");
        let (member, generation) = join(&mut c, &group, 5).await;
        sync(&mut c, &group, &member, generation, v).await;
    }
    let (member, generation) = join(&mut c, "main", 9).await;
    sync(&mut c, "main", &member, generation, 5).await;
    for v in versions(ApiKey::Heartbeat) {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(str("main")))
            .with_generation_id(generation)
            .with_member_id(str(&member));
        let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
    }
    for v in versions(ApiKey::OffsetCommit) {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(str("main")))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(str(&member))
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(name("data"))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(1)
                            .with_committed_offset(100 + i64::from(v))
                            .with_committed_metadata(Some(str("meta"))),
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(7)
                            .with_committed_offset(1),
                    ]),
            ]);
        let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, v, &req).await;
        let codes: Vec<i16> = resp.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(codes, vec![0, 3], "v{v}: partition 7 does not exist");
    }
    for v in versions(ApiKey::OffsetFetch) {
        let mut req = OffsetFetchRequest::default();
        if v >= 8 {
            req.groups = vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(str("main")))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(name("data"))
                            .with_partition_indexes(vec![0, 1]),
                    ])),
            ];
        } else {
            req.group_id = GroupId(str("main"));
            req.topics = Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(name("data"))
                    .with_partition_indexes(vec![0, 1]),
            ]);
        }
        let resp: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, v, &req).await;
        let offsets: Vec<i64> = if v >= 8 {
            resp.groups[0].topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .collect()
        } else {
            resp.topics[0]
                .partitions
                .iter()
                .map(|p| p.committed_offset)
                .collect()
        };
        assert_eq!(offsets, vec![-1, 109], "v{v}");
    }
    for v in versions(ApiKey::DescribeGroups) {
        let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(str("main"))]);
        let resp: DescribeGroupsResponse = c.call(ApiKey::DescribeGroups, v, &req).await;
        assert_eq!(resp.groups[0].group_state.as_str(), "Stable", "v{v}");
        assert_eq!(resp.groups[0].members.len(), 1);
    }
    for v in versions(ApiKey::ListGroups) {
        let resp: ListGroupsResponse = c
            .call(ApiKey::ListGroups, v, &ListGroupsRequest::default())
            .await;
        assert!(
            resp.groups.iter().any(|g| g.group_id.as_str() == "main"),
            "v{v}"
        );
    }
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(str("main")))
        .with_topics(vec![
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(name("data"))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default()
                        .with_partition_index(1),
                ]),
        ]);
    let resp: OffsetDeleteResponse = c.call(ApiKey::OffsetDelete, 0, &req).await;
    assert_eq!(
        resp.topics[0].partitions[0].error_code, 86,
        "GROUP_SUBSCRIBED_TO_TOPIC"
    );
    for v in versions(ApiKey::LeaveGroup) {
        let group = format!("leave-v{v}");
        let (member, generation) = join(&mut c, &group, 5).await;
        sync(&mut c, &group, &member, generation, 5).await;
        let mut req = LeaveGroupRequest::default().with_group_id(GroupId(str(&group)));
        if v >= 3 {
            req.members =
                vec![leave_group_request::MemberIdentity::default().with_member_id(str(&member))];
        } else {
            req.member_id = str(&member);
        }
        let resp: LeaveGroupResponse = c.call(ApiKey::LeaveGroup, v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
    }
    for v in versions(ApiKey::DeleteGroups) {
        let req = DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(str(&format!("leave-v{v}")))]);
        let resp: DeleteGroupsResponse = c.call(ApiKey::DeleteGroups, v, &req).await;
        assert_eq!(resp.results[0].error_code, 0, "v{v}");
    }
}
