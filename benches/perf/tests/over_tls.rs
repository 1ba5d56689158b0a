//! ferrymq-perf over TLS against an in-process ferrymq (amqps and a Kafka SSL listener, both
//! terminated by ferrymq-tls with a certificate from a throwaway CA): `--ca-file` is what
//! makes the clients trust it, and every message still goes through.

#![expect(
    clippy::expect_used,
    reason = "test setup: any failure must fail the test"
)]

mod common;

use std::sync::Arc;

use common::{accept, num, perf, try_perf};
use ferrymq_amqp::{AmqpConfig, AmqpContext};
use ferrymq_core::connections::Transport;
use ferrymq_core::{Broker, BrokerConfig};
use ferrymq_kafka::{Ctx, KafkaConfig, KafkaListener, SecurityProtocol};
use ferrymq_tls::{TlsAcceptor, TlsSettings};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct TlsServer {
    amqps: String,
    kafka_ssl: String,
    ca_file: String,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A CA, and a certificate it signed for 127.0.0.1, as PEM files in `dir`: (settings, CA file).
fn certificates(dir: &std::path::Path) -> (TlsSettings, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ferrymq-perf test CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("certificate");
    let (ca_file, certfile, keyfile) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&ca_file, ca.pem()).expect("write");
    std::fs::write(&certfile, cert.pem()).expect("write");
    std::fs::write(&keyfile, key.serialize_pem()).expect("write");
    let settings = TlsSettings {
        certfile,
        keyfile,
        ..TlsSettings::default()
    };
    (settings, ca_file.to_string_lossy().into_owned())
}

async fn tls_server() -> TlsServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let (settings, ca_file) = certificates(dir.path());
    let tls = TlsAcceptor::load(&settings).expect("certificates");
    let broker =
        Broker::open(BrokerConfig::with_data_dir(dir.path().join("data"))).expect("broker");
    let shutdown = CancellationToken::new();

    let amqps = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let amqps_addr = amqps.local_addr().expect("addr");
    let amqp_ctx = AmqpContext::new(Arc::clone(&broker), AmqpConfig::default());
    let acceptor = Arc::clone(&tls);
    accept(amqps, &shutdown, move |s, peer, token| {
        let (tls, ctx) = (Arc::clone(&acceptor), Arc::clone(&amqp_ctx));
        async move {
            let local = s.local_addr().unwrap_or(peer);
            if let Ok(session) = tls.accept(s).await {
                let transport = Transport {
                    peer,
                    local,
                    tls: Some(session.info),
                };
                ferrymq_amqp::serve_stream(session.stream, transport, ctx, token).await;
            }
        }
    });

    let kafka = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let kafka_addr = kafka.local_addr().expect("addr");
    let config = KafkaConfig {
        group_initial_rebalance_delay_ms: 0,
        ..KafkaConfig::default()
    };
    let kafka_ctx = Ctx::new(broker, config, "127.0.0.1", kafka_addr.port()).expect("kafka ctx");
    let listener = Arc::new(KafkaListener {
        name: "SSL".to_owned(),
        security: SecurityProtocol::Ssl,
        advertised_host: "127.0.0.1".to_owned(),
        advertised_port: i32::from(kafka_addr.port()),
    });
    accept(kafka, &shutdown, move |s, peer, token| {
        let (tls, ctx, listener) = (
            Arc::clone(&tls),
            Arc::clone(&kafka_ctx),
            Arc::clone(&listener),
        );
        async move {
            let local = s.local_addr().unwrap_or(peer);
            if let Ok(session) = tls.accept(s).await {
                let transport = Transport {
                    peer,
                    local,
                    tls: Some(session.info),
                };
                ferrymq_kafka::serve_stream(session.stream, transport, ctx, listener, token).await;
            }
        }
    });
    TlsServer {
        amqps: format!("amqps://guest:guest@{amqps_addr}/%2f"),
        kafka_ssl: kafka_addr.to_string(),
        ca_file,
        shutdown,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_with_the_ca_file_delivers_every_message() {
    let s = tls_server().await;
    let r = perf(&[
        "amqp",
        "--uri",
        &s.amqps,
        "--ca-file",
        &s.ca_file,
        "--count",
        "2000",
        "--size",
        "100",
        "--confirm",
        "100",
        "--multi-ack-every",
        "10",
    ])
    .await;
    assert_eq!(num(&r, &["publish", "messages"]), 2000.0, "{r}");
    assert_eq!(num(&r, &["consume", "messages"]), 2000.0, "{r}");
    assert_eq!(num(&r, &["errors"]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_without_the_ca_file_is_refused() {
    let s = tls_server().await;
    let err = try_perf(&["amqp", "--uri", &s.amqps, "--count", "10"])
        .await
        .expect_err("a certificate from an unknown CA must not be trusted");
    assert!(
        format!("{err:#}").contains("connecting to amqps://"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_ssl_with_the_ca_file_produces_and_consumes() {
    let s = tls_server().await;
    let r = perf(&[
        "kafka",
        "--bootstrap",
        &s.kafka_ssl,
        "--security-protocol",
        "ssl",
        "--ca-file",
        &s.ca_file,
        "--count",
        "2000",
        "--size",
        "200",
        "--acks",
        "all",
    ])
    .await;
    assert_eq!(num(&r, &["publish", "messages"]), 2000.0, "{r}");
    assert_eq!(num(&r, &["consume", "messages"]), 2000.0, "{r}");
    assert_eq!(r["settings"]["security_protocol"], "ssl", "{r}");
}
