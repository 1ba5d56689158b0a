//! lapin (the Rust AMQP client) against an in-process ferrymq AMQP listener: publish with
//! confirms, mandatory returns, consume with prefetch and acks, properties preserved.
//!
#![expect(
    clippy::expect_used,
    reason = "test setup: any failure must fail the test"
)]

mod common;

use std::net::SocketAddr;

use ferrymq_amqp::AmqpConfig;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};

async fn connect(addr: SocketAddr) -> Connection {
    Connection::connect(
        &format!("amqp://guest:guest@{addr}/%2f"),
        ConnectionProperties::default(),
    )
    .await
    .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapin_publishes_with_confirms_and_consumes_with_acks() {
    let server = common::server("127.0.0.1:0", AmqpConfig::default()).await;
    let conn = connect(server.addr).await;
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_declare(
        "lapin-q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let mut headers = FieldTable::default();
    headers.insert(ShortString::from("n"), AMQPValue::LongInt(7));
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_headers(headers.clone())
        .with_message_id("m-1".into())
        .with_delivery_mode(2);
    for i in 0..100u32 {
        let confirm = ch
            .basic_publish(
                "".into(),
                "lapin-q".into(),
                BasicPublishOptions::default(),
                i.to_string().as_bytes(),
                props.clone(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
    }
    // Mandatory and unroutable: returned, then acked.
    let confirm = ch
        .basic_publish(
            "".into(),
            "nowhere".into(),
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            b"lost",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(confirm.is_ack());
    let returned = confirm.take_message().expect("a basic.return");
    assert_eq!(returned.reply_code, 312);

    let consumer_ch = conn.create_channel().await.expect("channel");
    consumer_ch
        .basic_qos(10, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = consumer_ch
        .basic_consume(
            "lapin-q".into(),
            "lapin-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    for i in 0..100u32 {
        let delivery = consumer.next().await.expect("a delivery").expect("ok");
        assert_eq!(delivery.data, i.to_string().as_bytes());
        assert_eq!(
            delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str()),
            Some("m-1")
        );
        assert_eq!(delivery.properties.headers().as_ref(), Some(&headers));
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    conn.close(200, "bye".into()).await.expect("close");
    server.shutdown.cancel();
}
