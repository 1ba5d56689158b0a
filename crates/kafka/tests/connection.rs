//! Connection behaviour over a real byte stream: ordering, pipelining, limits, malformed
//! input, long polls, and produce validation.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use common::{TestBroker, batch};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

async fn create(c: &mut common::Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_string((*k).to_owned()))
                .with_value(Some(StrBytes::from_string((*v).to_owned())))
        })
        .collect();
    let req = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(configs),
    ]);
    let resp: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req).await;
    assert_eq!(resp.topics[0].error_code, 0);
}

fn produce_req(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ])
}

async fn produce(
    c: &mut common::Client,
    topic: &str,
    partition: i32,
    records: Bytes,
) -> produce_response::PartitionProduceResponse {
    let resp: ProduceResponse = c
        .call(
            ApiKey::Produce,
            9,
            &produce_req(topic, partition, records, -1),
        )
        .await;
    resp.responses[0].partition_responses[0].clone()
}

fn fetch_req(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(name(topic))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ])
}

#[tokio::test]
async fn pipelined_requests_are_applied_and_answered_in_order() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    create(&mut c, "pipe", 1, &[]).await;
    // A long poll first: everything after it must still come back in order behind it.
    let mut wire = BytesMut::new();
    let mut expected = Vec::new();
    let (id, f) = c.frame(ApiKey::Fetch, 12, &fetch_req("pipe", 0, 300));
    wire.extend_from_slice(&f);
    expected.push((id, ApiKey::Fetch));
    for _ in 0..20 {
        let (id, f) = c.frame(
            ApiKey::Produce,
            9,
            &produce_req("pipe", 0, batch(2, Compression::None), 1),
        );
        wire.extend_from_slice(&f);
        expected.push((id, ApiKey::Produce));
        let (id, f) = c.frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        wire.extend_from_slice(&f);
        expected.push((id, ApiKey::ApiVersions));
    }
    c.send_raw(&wire).await;
    let mut offsets = Vec::new();
    for (id, api) in expected {
        let mut frame = c.read_frame().await.unwrap();
        assert_eq!(frame.get_i32(), id, "responses in request order");
        if api == ApiKey::Produce {
            frame.get_u8();
            let resp = ProduceResponse::decode(&mut frame, 9).unwrap();
            offsets.push(resp.responses[0].partition_responses[0].base_offset);
        }
    }
    assert_eq!(
        offsets,
        (0..20).map(|i| i * 2).collect::<Vec<_>>(),
        "applied in order"
    );
}

#[tokio::test]
async fn acks_0_gets_no_response_and_the_next_request_still_does() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    create(&mut c, "quiet", 1, &[]).await;
    let (_, f) = c.frame(
        ApiKey::Produce,
        9,
        &produce_req("quiet", 0, batch(3, Compression::None), 0),
    );
    c.send_raw(&f).await;
    let resp: MetadataResponse = c
        .call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        )
        .await;
    assert_eq!(resp.topics.len(), 1);
    // The append is visible (latest offset) once fsynced, which acks=0 does not wait for.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lo: ListOffsetsResponse = c
            .call(
                ApiKey::ListOffsets,
                7,
                &ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![
                        list_offsets_request::ListOffsetsTopic::default()
                            .with_name(name("quiet"))
                            .with_partitions(vec![
                                list_offsets_request::ListOffsetsPartition::default()
                                    .with_timestamp(-1),
                            ]),
                    ]),
            )
            .await;
        if lo.topics[0].partitions[0].offset == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acks=0 records never became visible"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_oversized_frame_closes_only_its_connection_before_its_bytes_arrive() {
    let b = TestBroker::start(ferrymq_kafka::KafkaConfig {
        max_request_bytes: 4096,
        ..TestBroker::default_config()
    });
    let mut bad = b.client();
    let mut good = b.client();
    // Announce 1 GiB and send nothing more: the broker must not wait for (or reserve) it.
    bad.send_raw(&(1u32 << 30).to_be_bytes()).await;
    assert!(
        tokio::time::timeout(Duration::from_secs(5), bad.read_frame())
            .await
            .unwrap()
            .is_none()
    );
    let mut just_over = b.client();
    just_over.send_raw(&4097u32.to_be_bytes()).await;
    assert!(
        tokio::time::timeout(Duration::from_secs(5), just_over.read_frame())
            .await
            .unwrap()
            .is_none()
    );
    let resp: ApiVersionsResponse = good
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(resp.error_code, 0, "other connections carry on");
}

#[tokio::test]
async fn unknown_apis_and_garbage_close_the_connection_and_nothing_else() {
    let b = TestBroker::start(TestBroker::default_config());
    for garbage in [
        &b"\0\0\0\x0a\x7f\x7f\0\0\0\0\0\x01\0\0"[..],
        b"\0\0\0\x02\0\x03",
        b"\xff\xff\xff\xff",
    ] {
        let mut c = b.client();
        c.send_raw(garbage).await;
        assert!(
            tokio::time::timeout(Duration::from_secs(5), c.read_frame())
                .await
                .unwrap()
                .is_none()
        );
    }
    let mut good = b.client();
    let resp: ApiVersionsResponse = good
        .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    assert_eq!(resp.error_code, 0);
}

#[tokio::test]
async fn a_malformed_request_with_a_top_level_error_gets_invalid_request() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    // Heartbeat v0 whose body stops inside the group id.
    let mut frame = BytesMut::new();
    let body: &[u8] = &[0, 12, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0, 9, b'g'];
    frame.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(body);
    c.send_raw(&frame).await;
    let mut resp = c.read_frame().await.unwrap();
    assert_eq!(resp.get_i32(), 5);
    let hb = HeartbeatResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(hb.error_code, 42, "INVALID_REQUEST");
    let ok: ApiVersionsResponse = c
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(ok.error_code, 0, "the connection stays usable");
}

#[tokio::test]
async fn api_versions_newer_than_ours_gets_the_ranges_in_a_v0_body() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    let (id, _) = c.frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    // Header v2 for ApiVersions v99, an empty v99 body the broker cannot know.
    let body: Vec<u8> = [
        &[0u8, 18, 0, 99][..],
        &id.to_be_bytes(),
        &[0, 1, b'x', 0],
        &[0xde, 0xad],
    ]
    .concat();
    let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    c.send_raw(&frame).await;
    let mut resp = c.read_frame().await.unwrap();
    assert_eq!(resp.get_i32(), id);
    let v0 = ApiVersionsResponse::decode(&mut resp, 0).unwrap();
    assert_eq!(v0.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(
        v0.api_keys
            .iter()
            .any(|k| k.api_key == 18 && k.max_version == 3)
    );
    assert!(resp.is_empty());
}

#[tokio::test]
async fn produce_validation_maps_to_kafka_errors() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    create(&mut c, "strict", 1, &[("max.message.bytes", "200")]).await;
    let good = batch(2, Compression::None);
    let mut bad_crc = BytesMut::from(&good[..]);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert_eq!(
        produce(&mut c, "strict", 0, bad_crc.freeze())
            .await
            .error_code,
        2,
        "CORRUPT_MESSAGE"
    );
    let mut two = BytesMut::from(&good[..]);
    two.extend_from_slice(&good);
    assert_eq!(
        produce(&mut c, "strict", 0, two.freeze()).await.error_code,
        87,
        "INVALID_RECORD"
    );
    assert_eq!(
        produce(&mut c, "strict", 0, batch(20, Compression::None))
            .await
            .error_code,
        10,
        "MESSAGE_TOO_LARGE"
    );
    assert_eq!(
        produce(&mut c, "strict", 5, good.clone()).await.error_code,
        3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
    assert_eq!(
        produce(&mut c, "strict", 0, good.slice(..30))
            .await
            .error_code,
        2,
        "truncated"
    );
    let ok = produce(&mut c, "strict", 0, good).await;
    assert_eq!((ok.error_code, ok.base_offset), (0, 0));
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_data_arrives() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut consumer = b.client();
    let mut producer = b.client();
    create(&mut consumer, "poll", 1, &[]).await;
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        let resp: FetchResponse = consumer
            .call(ApiKey::Fetch, 12, &fetch_req("poll", 0, 10_000))
            .await;
        resp
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "nothing to read yet: the fetch waits"
    );
    produce(&mut producer, "poll", 0, batch(1, Compression::None)).await;
    let resp = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(3),
        "woken by the append, not the 10 s timeout: {elapsed:?}"
    );
    assert!(
        !resp.responses[0].partitions[0]
            .records
            .as_ref()
            .unwrap()
            .is_empty()
    );

    // With nothing arriving, max_wait_ms bounds the wait.
    let mut idle = b.client();
    let t = Instant::now();
    let resp: FetchResponse = idle
        .call(ApiKey::Fetch, 12, &fetch_req("poll", 1, 300))
        .await;
    assert!(t.elapsed() >= Duration::from_millis(250));
    assert!(
        resp.responses[0].partitions[0]
            .records
            .as_ref()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_offset_past_the_end_is_out_of_range_with_watermarks() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    create(&mut c, "range", 1, &[]).await;
    produce(&mut c, "range", 0, batch(4, Compression::None)).await;
    let resp: FetchResponse = c
        .call(ApiKey::Fetch, 12, &fetch_req("range", 1000, 500))
        .await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.high_watermark, p.log_start_offset),
        (1, 4, 0)
    );
    let resp: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_req("range", 4, 0)).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.last_stable_offset),
        (0, 4),
        "the end itself is in range"
    );
}

#[tokio::test]
async fn shutdown_answers_waiting_joins_and_long_polls_at_once() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut first = b.client();
    create(&mut first, "bye", 1, &[]).await;
    let join = |member: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("bye")))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(60_000)
            .with_member_id(StrBytes::from_string(member.to_owned()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range")),
            ])
    };
    let joined: JoinGroupResponse = first.call(ApiKey::JoinGroup, 1, &join("")).await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    // A second member forces a rebalance the first never rejoins: its join waits.
    let mut second = b.client();
    let waiting_join = tokio::spawn(async move {
        let resp: JoinGroupResponse = second.call(ApiKey::JoinGroup, 1, &join("")).await;
        resp
    });
    let mut third = b.client();
    let waiting_fetch = tokio::spawn(async move {
        let resp: FetchResponse = third
            .call(ApiKey::Fetch, 12, &fetch_req("bye", 0, 30_000))
            .await;
        resp
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting_join.is_finished() && !waiting_fetch.is_finished());
    b.shutdown.cancel();
    let join = tokio::time::timeout(Duration::from_secs(2), waiting_join)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        join.error_code, 15,
        "COORDINATOR_NOT_AVAILABLE: find the coordinator again"
    );
    let fetch = tokio::time::timeout(Duration::from_secs(2), waiting_fetch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetch.responses[0].partitions[0].error_code, 0);
}

#[tokio::test]
async fn fetch_limits_bound_the_response_but_always_return_one_batch() {
    let b = TestBroker::start(TestBroker::default_config());
    let mut c = b.client();
    create(&mut c, "limits", 2, &[]).await;
    let one = batch(5, Compression::None);
    for p in 0..2 {
        for _ in 0..4 {
            produce(&mut c, "limits", p, one.clone()).await;
        }
    }
    let size = one.len();
    let fetch = |max_bytes: i32, partition_max: i32| {
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(max_bytes)
            .with_session_epoch(-1)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(name("limits"))
                    .with_partitions(
                        (0..2)
                            .map(|p| {
                                fetch_request::FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(0)
                                    .with_partition_max_bytes(partition_max)
                            })
                            .collect(),
                    ),
            ])
    };
    let lens = |resp: FetchResponse| -> Vec<usize> {
        resp.responses[0]
            .partitions
            .iter()
            .map(|p| p.records.as_ref().unwrap().len())
            .collect()
    };
    // Plenty of room: everything.
    let all: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch(1 << 20, 1 << 20)).await;
    assert_eq!(lens(all), vec![4 * size, 4 * size]);
    // Per-partition limit of two batches.
    let two: FetchResponse = c
        .call(
            ApiKey::Fetch,
            12,
            &fetch(1 << 20, i32::try_from(2 * size).unwrap()),
        )
        .await;
    assert_eq!(lens(two), vec![2 * size, 2 * size]);
    // Limits smaller than a batch: the first partition still gets one whole batch (progress),
    // the second nothing (the response is full).
    let tiny: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch(10, 10)).await;
    assert_eq!(lens(tiny), vec![size, 0]);
}
