//! Golden bytes: a session recorded between pika 1.4.4 and RabbitMQ 3.10
//! (`tests/amqp/record_golden.py`). The codec must read every frame pika sent, keep the
//! published content header byte for byte, and produce the same delivery frames RabbitMQ
//! produced for it.
#![expect(
    clippy::expect_used,
    reason = "fixture helpers: a fixture that does not decode must fail the test loudly"
)]

use amq_protocol::protocol::{AMQPClass, basic, connection, queue};
use bytes::{Bytes, BytesMut};
use ferrymq_amqp::codec::content::put_content;
use ferrymq_amqp::codec::method::{decode_method, put_get_ok};
use ferrymq_amqp::codec::properties::{ContentHeader, encode_properties};
use ferrymq_amqp::codec::{AmqpFrame, FrameKind};
use ferrymq_core::message::{FieldValue, Message};

const CLIENT: &[u8] = include_bytes!("fixtures/pika_session.client.bin");
const SERVER: &[u8] = include_bytes!("fixtures/pika_session.server.bin");

fn frames(bytes: &[u8]) -> Vec<AmqpFrame> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(frame) = AmqpFrame::decode(&mut buf, 131_072).expect("valid frame") {
        out.push(frame);
    }
    assert!(buf.is_empty(), "trailing bytes");
    out
}

#[test]
fn every_client_frame_decodes() {
    assert_eq!(&CLIENT[..8], b"AMQP\x00\x00\x09\x01");
    let frames = frames(&CLIENT[8..]);
    let methods: Vec<AMQPClass> = frames
        .iter()
        .filter(|f| f.kind == FrameKind::Method)
        .map(|f| decode_method(&f.payload).expect("client method"))
        .collect();
    let AMQPClass::Connection(connection::AMQPMethod::StartOk(start_ok)) = &methods[0] else {
        panic!("first method is {:?}", methods[0]);
    };
    assert_eq!(start_ok.mechanism.as_str(), "PLAIN");
    assert_eq!(start_ok.response.as_bytes(), b"\0guest\0guest");
    assert!(matches!(
        &methods[1],
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(t)) if t.frame_max == 4096
    ));
    assert!(methods.iter().any(|m| matches!(
        m,
        AMQPClass::Queue(queue::AMQPMethod::Declare(d)) if d.queue.as_str() == "golden"
    )));
    assert!(methods.iter().any(|m| matches!(
        m,
        AMQPClass::Basic(basic::AMQPMethod::Publish(p)) if p.routing_key.as_str() == "golden"
    )));
    let bodies: Vec<usize> = frames
        .iter()
        .filter(|f| f.kind == FrameKind::Body)
        .map(|f| f.payload.len())
        .collect();
    assert_eq!(bodies, [4088, 4088, 1824], "pika splits at frame_max - 8");
}

fn published() -> (ContentHeader, Bytes) {
    let frames = frames(&CLIENT[8..]);
    let header = frames
        .iter()
        .find(|f| f.kind == FrameKind::Header)
        .expect("a content header");
    let header = ContentHeader::decode(&header.payload).expect("content header");
    let mut body = BytesMut::new();
    for f in frames.iter().filter(|f| f.kind == FrameKind::Body) {
        body.extend_from_slice(&f.payload);
    }
    (header, body.freeze())
}

#[test]
fn all_properties_and_header_types_survive_byte_for_byte() {
    let (header, body) = published();
    assert_eq!(header.body_size, 10_000);
    assert_eq!(body.len(), 10_000);
    let p = &header.properties;
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.content_encoding.as_deref(), Some("utf-8"));
    assert_eq!(p.delivery_mode, Some(2));
    assert_eq!(p.priority, Some(5));
    assert_eq!(p.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(p.reply_to.as_deref(), Some("replies"));
    assert_eq!(p.expiration.as_deref(), Some("60000"));
    assert_eq!(p.message_id.as_deref(), Some("msg-1"));
    assert_eq!(p.timestamp, Some(1_700_000_000));
    assert_eq!(p.kind.as_deref(), Some("golden.type"));
    assert_eq!(p.user_id.as_deref(), Some("guest"));
    assert_eq!(p.app_id.as_deref(), Some("recorder"));
    assert_eq!(p.cluster_id.as_deref(), Some("cluster-x"));
    let h = p.headers.as_ref().expect("headers");
    assert_eq!(h.get("str"), Some(&FieldValue::string("text")));
    assert_eq!(h.get("int"), Some(&FieldValue::I32(42)));
    assert_eq!(h.get("big"), Some(&FieldValue::I64(1 << 40)));
    assert_eq!(h.get("neg"), Some(&FieldValue::I32(-7)));
    assert_eq!(h.get("bool"), Some(&FieldValue::Bool(true)));
    assert_eq!(h.get("none"), Some(&FieldValue::Void));
    assert_eq!(
        h.get("bytes"),
        Some(&FieldValue::ByteArray(Bytes::from_static(b"\x00\xff")))
    );
    assert_eq!(
        h.get("dec"),
        Some(&FieldValue::Decimal {
            scale: 2,
            value: 314
        })
    );
    assert!(matches!(h.get("ts"), Some(FieldValue::Timestamp(_))));
    assert!(matches!(h.get("list"), Some(FieldValue::Array(items)) if items.len() == 3));
    assert!(matches!(h.get("dict"), Some(FieldValue::Table(_))));
    // Re-encoding the typed properties gives back exactly what pika sent.
    let mut again = BytesMut::new();
    encode_properties(p, &mut again);
    assert_eq!(again.freeze(), header.raw);
}

#[test]
fn get_ok_frames_match_what_rabbitmq_sent() {
    let (header, body) = published();
    let mut message = Message::new("", "golden", header.properties.clone(), body);
    message.encoded_properties = Some(header.raw.clone());
    // RabbitMQ's reply to basic.get: get-ok, content header, three body frames.
    let server = frames(SERVER);
    let start = server
        .iter()
        .position(|f| f.kind == FrameKind::Method && f.payload.get(..4) == Some(&[0, 60, 0, 71]))
        .expect("get-ok");
    let mut expected = BytesMut::new();
    for f in &server[start..start + 5] {
        AmqpFrame::encode(f.kind, f.channel, &f.payload, &mut expected);
    }
    let mut ours = BytesMut::new();
    put_get_ok(&mut ours, 1, 1, false, "", "golden", 0);
    put_content(&mut ours, 1, &message, 4096);
    assert_eq!(ours, expected);
}
