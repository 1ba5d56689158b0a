//! Opening a connection: protocol header, start/start-ok (PLAIN, AMQPLAIN), tune/tune-ok,
//! open/open-ok.
//!
//! ```text
//! client: AMQP 0 0 9 1        server: connection.start (properties, "PLAIN AMQPLAIN")
//! client: start-ok            server: connection.tune (channel_max, frame_max, heartbeat)
//! client: tune-ok             (values checked: not above ours, frame_max >= 4096)
//! client: open(vhost)         server: open-ok
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use amq_protocol::protocol::{AMQPClass, connection};
use bytes::{BufMut, Bytes, BytesMut};
use ferrymq_auth::User;
use ferrymq_core::connections::PeerCertificate;
use ferrymq_core::message::{FieldTable, FieldValue};
use ferrymq_core::{Error as CoreError, VHost};

use crate::codec::table::{Reader, from_amqp_table, to_amqp_table};
use crate::config::CertLogin;
use crate::context::AmqpContext;
use crate::error::{AmqpError, ReplyCode};

/// The protocol header ferrymq speaks (and answers with when a client speaks another).
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// What RabbitMQ calls itself to clients. kombu (and so Celery) reads `product` and
/// `version`: for "RabbitMQ" >= 3.3 it knows `basic.qos(global=false)` is per consumer and
/// asks for the channel-wide limit with `global=true`, which is what ferrymq implements.
pub const PRODUCT: &str = "RabbitMQ";
pub const VERSION: &str = "3.13.7";

/// The capabilities table of connection.start (RabbitMQ's list).
pub const CAPABILITIES: &[&str] = &[
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "consumer_priorities",
    "authentication_failure_close",
    "per_consumer_qos",
    "direct_reply_to",
];

/// connection.start; EXTERNAL is offered to a client that presented a verified certificate.
pub fn start_method(external: bool) -> AMQPClass {
    let mut caps = FieldTable::new();
    for cap in CAPABILITIES {
        caps.push(*cap, FieldValue::Bool(true));
    }
    let mut props = FieldTable::new();
    props.push("capabilities", FieldValue::Table(caps));
    props.push("cluster_name", FieldValue::string("ferrymq"));
    props.push(
        "copyright",
        FieldValue::string("Copyright (c) the ferrymq authors"),
    );
    props.push(
        "information",
        FieldValue::string(format!(
            "ferrymq {}: one broker for AMQP 0-9-1 and Kafka clients, Apache-2.0",
            env!("CARGO_PKG_VERSION")
        )),
    );
    props.push(
        "platform",
        FieldValue::string(format!("ferrymq {} (Rust)", env!("CARGO_PKG_VERSION"))),
    );
    props.push("product", FieldValue::string(PRODUCT));
    props.push("version", FieldValue::string(VERSION));
    AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: to_amqp_table(&props),
        mechanisms: if external {
            "PLAIN AMQPLAIN EXTERNAL"
        } else {
            "PLAIN AMQPLAIN"
        }
        .into(),
        locales: "en_US".into(),
    }))
}

/// What the client said about itself in start-ok.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub auth_failure_close: bool,
    pub blocked_notifications: bool,
    pub cancel_notify: bool,
    pub name: Option<String>,
    /// start-ok's client properties, for listings.
    pub properties: FieldTable,
    pub mechanism: String,
}

impl ClientInfo {
    pub fn from_properties(properties: &FieldTable) -> Self {
        let caps = match properties.get("capabilities") {
            Some(FieldValue::Table(t)) => t.clone(),
            _ => FieldTable::new(),
        };
        let cap = |name: &str| caps.get(name).and_then(FieldValue::as_bool) == Some(true);
        Self {
            auth_failure_close: cap("authentication_failure_close"),
            blocked_notifications: cap("connection.blocked"),
            cancel_notify: cap("consumer_cancel_notify"),
            name: properties
                .get("connection_name")
                .and_then(FieldValue::as_str)
                .map(str::to_owned),
            properties: properties.clone(),
            mechanism: String::new(),
        }
    }
}

/// Why authentication failed, and whether the client should be told.
#[derive(Debug)]
pub enum AuthFailure {
    /// Bad mechanism or response: the client gets a connection.close.
    Protocol(AmqpError),
    /// Wrong credentials: connection.close 403 only with authentication_failure_close.
    Refused(AmqpError),
}

/// Checks start-ok's credentials. EXTERNAL takes the user from the client certificate
/// (`amqp.ssl_cert_login_from`), as RabbitMQ's rabbitmq_auth_mechanism_ssl does.
pub fn authenticate(
    ctx: &AmqpContext,
    start_ok: &connection::StartOk,
    peer: SocketAddr,
    certificate: Option<&PeerCertificate>,
) -> Result<(Arc<User>, ClientInfo), AuthFailure> {
    let mut info = ClientInfo::from_properties(&from_amqp_table(&start_ok.client_properties));
    let mechanism = start_ok.mechanism.as_str();
    info.mechanism = mechanism.to_owned();
    let response = Bytes::copy_from_slice(start_ok.response.as_bytes());
    let loopback = peer.ip().is_loopback();
    let limiter = ctx.users.limiter();
    let (user, outcome) = match (mechanism, certificate) {
        _ if !limiter.allows(peer.ip()) => {
            (String::new(), Err(ferrymq_auth::Error::TooManyFailures))
        }
        ("EXTERNAL", Some(cert)) => {
            let name = match ctx.config.ssl_cert_login_from {
                CertLogin::CommonName => cert.common_name.clone().unwrap_or_default(),
                CertLogin::DistinguishedName => cert.subject.clone(),
            };
            let outcome = ctx.users.authenticate_certified(&name, loopback);
            (name, outcome)
        }
        ("PLAIN" | "AMQPLAIN", _) => {
            let (user, password) = if mechanism == "PLAIN" {
                parse_plain(&response)
            } else {
                parse_amqplain(&response)
            }
            .ok_or_else(|| {
                AuthFailure::Protocol(
                    AmqpError::new(
                        ReplyCode::SyntaxError,
                        format!("{mechanism} authentication response is malformed"),
                    )
                    .on((10, 11)),
                )
            })?;
            let outcome = ctx.users.authenticate(&user, &password, loopback);
            (user, outcome)
        }
        (other, _) => {
            return Err(AuthFailure::Protocol(
                AmqpError::new(
                    ReplyCode::CommandInvalid,
                    format!("unknown authentication mechanism '{other}'"),
                )
                .on((10, 11)),
            ));
        }
    };
    match outcome {
        Ok(u) => Ok((u, info)),
        Err(error) => {
            if !matches!(error, ferrymq_auth::Error::TooManyFailures) {
                limiter.failed(peer.ip());
            }
            tracing::warn!(%peer, user = %user, mechanism, %error, "login refused");
            let text = if info.auth_failure_close {
                format!(
                    "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
                )
            } else {
                error.to_string()
            };
            Err(AuthFailure::Refused(
                AmqpError::new(ReplyCode::AccessRefused, text).on((10, 11)),
            ))
        }
    }
}

/// PLAIN: `authzid \0 authcid \0 password` (authzid ignored).
fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let password = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    Some((
        String::from_utf8(user.to_vec()).ok()?,
        String::from_utf8(password.to_vec()).ok()?,
    ))
}

/// AMQPLAIN: a field table *without* its length prefix, with LOGIN and PASSWORD.
fn parse_amqplain(response: &Bytes) -> Option<(String, String)> {
    let mut framed = BytesMut::with_capacity(response.len() + 4);
    framed.put_u32(u32::try_from(response.len()).ok()?);
    framed.extend_from_slice(response);
    let table = Reader::new(framed.freeze()).table().ok()?;
    let field = |key: &str| match table.get(key)? {
        FieldValue::LongString(b) => String::from_utf8(b.to_vec()).ok(),
        _ => None,
    };
    Some((field("LOGIN")?, field("PASSWORD")?))
}

/// What tune-ok settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuned {
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
}

/// Checks tune-ok against what the server offered, as RabbitMQ does: a value may be lower
/// than offered but not higher, not 0 where the server has a limit, and frame_max not
/// below the 4096 minimum.
pub fn check_tune_ok(offer: Tuned, ok: &connection::TuneOk) -> Result<Tuned, AmqpError> {
    let fail = |field: &str, value: u64, how: &str, limit: u64| {
        AmqpError::new(
            ReplyCode::NotAllowed,
            format!("negotiated {field} = {value} is {how} the allowed value ({limit})"),
        )
        .on((10, 31))
    };
    if ok.frame_max != 0 && ok.frame_max < 4096 {
        return Err(fail(
            "frame_max",
            ok.frame_max.into(),
            "lower than the minimum",
            4096,
        ));
    }
    if offer.frame_max != 0 && (ok.frame_max == 0 || ok.frame_max > offer.frame_max) {
        return Err(fail(
            "frame_max",
            ok.frame_max.into(),
            "higher than the maximum",
            offer.frame_max.into(),
        ));
    }
    if offer.channel_max != 0 && (ok.channel_max == 0 || ok.channel_max > offer.channel_max) {
        return Err(fail(
            "channel_max",
            ok.channel_max.into(),
            "higher than the maximum",
            offer.channel_max.into(),
        ));
    }
    Ok(Tuned {
        channel_max: ok.channel_max,
        frame_max: ok.frame_max,
        heartbeat: ok.heartbeat,
    })
}

/// connection.open: the vhost must exist and the user may use it (its `max-connections` limit
/// is checked when the connection is registered, see `Admission`).
pub fn open_vhost(ctx: &AmqpContext, user: &User, vhost: &str) -> Result<Arc<VHost>, AmqpError> {
    let found = ctx.broker.vhost(vhost).ok_or_else(|| {
        AmqpError::from(CoreError::UnknownVhost {
            vhost: vhost.to_owned(),
        })
        .on((10, 40))
    })?;
    if ctx.users.permission(vhost, &user.name).is_none() {
        return Err(AmqpError::from(CoreError::VhostAccessRefused {
            vhost: vhost.to_owned(),
            user: user.name.clone(),
        })
        .on((10, 40)));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_amqplain_responses() {
        assert_eq!(
            parse_plain(b"\0guest\0secret"),
            Some(("guest".into(), "secret".into()))
        );
        assert_eq!(parse_plain(b"guest"), None);
        assert_eq!(parse_plain(b"\0a\0b\0c"), None);
        // AMQPLAIN as pika/py-amqp send it: table entries without the length prefix.
        let mut body = BytesMut::new();
        body.put_u8(5);
        body.put_slice(b"LOGIN");
        body.put_u8(b'S');
        body.put_u32(5);
        body.put_slice(b"guest");
        body.put_u8(8);
        body.put_slice(b"PASSWORD");
        body.put_u8(b'S');
        body.put_u32(2);
        body.put_slice(b"pw");
        assert_eq!(
            parse_amqplain(&body.freeze()),
            Some(("guest".into(), "pw".into()))
        );
        assert_eq!(parse_amqplain(&Bytes::from_static(b"\x05LOG")), None);
    }

    #[test]
    fn tune_ok_is_checked_like_rabbitmq() {
        let offer = Tuned {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
        };
        let ok = |channel_max, frame_max, heartbeat| connection::TuneOk {
            channel_max,
            frame_max,
            heartbeat,
        };
        assert_eq!(
            check_tune_ok(offer, &ok(100, 8192, 0)),
            Ok(Tuned {
                channel_max: 100,
                frame_max: 8192,
                heartbeat: 0
            })
        );
        for bad in [
            ok(0, 8192, 0),
            ok(3000, 8192, 0),
            ok(10, 1000, 0),
            ok(10, 200_000, 0),
            ok(10, 0, 0),
        ] {
            let err = check_tune_ok(offer, &bad).unwrap_err();
            assert_eq!(err.code, ReplyCode::NotAllowed);
        }
    }

    #[test]
    fn start_advertises_every_capability() {
        let AMQPClass::Connection(connection::AMQPMethod::Start(start)) = start_method(false)
        else {
            panic!("not a start method");
        };
        let props = from_amqp_table(&start.server_properties);
        let Some(FieldValue::Table(caps)) = props.get("capabilities") else {
            panic!("no capabilities");
        };
        for cap in CAPABILITIES {
            assert_eq!(caps.get(cap), Some(&FieldValue::Bool(true)), "{cap}");
        }
        assert_eq!(
            props.get("product").and_then(FieldValue::as_str),
            Some("RabbitMQ")
        );
        assert_eq!(start.mechanisms.to_string(), "PLAIN AMQPLAIN");
    }
}
