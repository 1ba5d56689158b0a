//! An in-process broker and a minimal Kafka client speaking kafka-protocol over a pipe.

#![allow(dead_code, reason = "each test binary uses a different part")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support code"
)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use ferrymq_core::{Broker, BrokerConfig};
use ferrymq_kafka::{Ctx, KafkaConfig};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

pub struct TestBroker {
    pub dir: tempfile::TempDir,
    pub ctx: Arc<Ctx>,
    pub shutdown: CancellationToken,
}

impl TestBroker {
    pub fn start(config: KafkaConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
        let ctx = Ctx::new(broker, config, "127.0.0.1", 9092).unwrap();
        Self {
            dir,
            ctx,
            shutdown: CancellationToken::new(),
        }
    }

    pub fn default_config() -> KafkaConfig {
        KafkaConfig {
            group_initial_rebalance_delay_ms: 0,
            ..KafkaConfig::default()
        }
    }

    pub fn client(&self) -> Client {
        let (client, server) = tokio::io::duplex(4 << 20);
        let (r, w) = tokio::io::split(server);
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        tokio::spawn(ferrymq_kafka::serve(
            r,
            w,
            peer,
            Arc::clone(&self.ctx),
            self.shutdown.clone(),
        ));
        let (reader, writer) = tokio::io::split(client);
        Client {
            reader,
            writer,
            next: 1,
        }
    }
}

pub struct Client {
    pub reader: ReadHalf<DuplexStream>,
    pub writer: WriteHalf<DuplexStream>,
    next: i32,
}

impl Client {
    /// Sends raw frame bytes (already size-prefixed).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// Encodes a request frame.
    pub fn frame<Req: Encodable + HeaderVersion>(
        &mut self,
        api: ApiKey,
        version: i16,
        req: &Req,
    ) -> (i32, Bytes) {
        let correlation = self.next;
        self.next += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("conformance")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, Req::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&i32::try_from(body.len()).unwrap().to_be_bytes());
        frame.extend_from_slice(&body);
        (correlation, frame.freeze())
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.reader.read_exact(&mut size).await.ok()?;
        let mut body = vec![0; usize::try_from(i32::from_be_bytes(size)).unwrap()];
        self.reader.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    pub async fn call<Req, Resp>(&mut self, api: ApiKey, version: i16, req: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let (correlation, frame) = self.frame(api, version, req);
        self.send_raw(&frame).await;
        let mut response = self.read_frame().await.unwrap_or_else(|| {
            panic!("{api:?} v{version}: connection closed instead of a response")
        });
        assert_eq!(response.get_i32(), correlation, "{api:?} v{version}");
        if Resp::header_version(version) >= 1 {
            assert_eq!(
                response.get_u8(),
                0,
                "{api:?} v{version}: response header tags"
            );
        }
        let decoded = Resp::decode(&mut response, version)
            .unwrap_or_else(|e| panic!("{api:?} v{version}: undecodable response: {e}"));
        assert!(
            response.is_empty(),
            "{api:?} v{version}: {} trailing bytes",
            response.len()
        );
        decoded
    }
}

/// A v2 record batch of `n` records as a client builds it.
pub fn batch(n: i64, compression: Compression) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i32::try_from(i).unwrap() - 1,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.freeze()
}
