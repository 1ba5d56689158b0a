use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::message::Properties;
use crate::queue::{QueueSpec, REPLY_TO_PREFIX};
use crate::{Broker, BrokerConfig, ResourceKind, VHost};

fn vhost() -> (tempfile::TempDir, Arc<VHost>) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(BrokerConfig::with_data_dir(dir.path())).unwrap();
    let vhost = broker.vhost("/").unwrap();
    (dir, vhost)
}

fn queue(vhost: &Arc<VHost>, name: &str) {
    vhost.declare_queue(QueueSpec::new(name), false, 1).unwrap();
}

fn exchange(vhost: &VHost, name: &str, kind: ExchangeKind) -> Arc<Exchange> {
    vhost
        .declare_exchange(ExchangeSpec::new(name, kind), false)
        .unwrap()
}

fn message(key: &str, headers: Option<FieldTable>) -> Message {
    Message::new(
        "x",
        key,
        Properties {
            headers,
            ..Properties::default()
        },
        Bytes::from_static(b"m"),
    )
}

fn routed(vhost: &VHost, exchange: &str, msg: &Message) -> Vec<String> {
    let x = vhost.exchange(exchange).unwrap();
    let mut names: Vec<String> = vhost
        .route(&x, msg)
        .queues
        .iter()
        .map(|q| q.name().to_owned())
        .collect();
    names.sort();
    names
}

fn bind(vhost: &VHost, x: &str, q: &str, key: &str) {
    vhost
        .bind(x, q, ResourceKind::Queue, key, &FieldTable::new(), 1)
        .unwrap();
}

#[test]
fn default_direct_fanout_topic_routing() {
    let (_dir, vh) = vhost();
    for q in ["q1", "q2", "q3"] {
        queue(&vh, q);
    }
    assert_eq!(routed(&vh, "", &message("q2", None)), ["q2"]);
    assert!(routed(&vh, "", &message("nope", None)).is_empty());

    bind(&vh, "amq.direct", "q1", "k");
    bind(&vh, "amq.direct", "q2", "k");
    bind(&vh, "amq.direct", "q3", "other");
    assert_eq!(routed(&vh, "amq.direct", &message("k", None)), ["q1", "q2"]);

    bind(&vh, "amq.fanout", "q1", "ignored");
    bind(&vh, "amq.fanout", "q3", "");
    assert_eq!(
        routed(&vh, "amq.fanout", &message("zzz", None)),
        ["q1", "q3"]
    );

    bind(&vh, "amq.topic", "q1", "a.*");
    bind(&vh, "amq.topic", "q2", "a.#");
    bind(&vh, "amq.topic", "q2", "#");
    assert_eq!(
        routed(&vh, "amq.topic", &message("a.b", None)),
        ["q1", "q2"]
    );
    assert_eq!(routed(&vh, "amq.topic", &message("b", None)), ["q2"]);
}

#[test]
fn cc_headers_add_routing_keys() {
    let (_dir, vh) = vhost();
    queue(&vh, "q1");
    queue(&vh, "q2");
    let mut headers = FieldTable::new();
    headers.push("CC", FieldValue::Array(vec![FieldValue::string("q2")]));
    assert_eq!(routed(&vh, "", &message("q1", Some(headers))), ["q1", "q2"]);
}

#[test]
fn default_exchange_shortcut_and_walk_agree() {
    let (_dir, vh) = vhost();
    queue(&vh, "q1");
    let x = vh.exchange("").unwrap();
    // The shortcut (one key naming a queue) and the walk (a CC header) reach q1 once each.
    let plain = vh.route(&x, &message("q1", None));
    assert_eq!(plain.queues.len(), 1);
    assert!(plain.streams.is_empty());
    let mut headers = FieldTable::new();
    headers.push("CC", FieldValue::Array(vec![FieldValue::string("q1")]));
    assert_eq!(routed(&vh, "", &message("q1", Some(headers))), ["q1"]);
    // A name that is no queue takes the walk, which finds nothing.
    assert!(vh.route(&x, &message("q2", None)).is_empty());
    // A deleted queue is no longer reached by the shortcut.
    let q1 = vh.lookup_queue("q1").unwrap();
    vh.remove_queue(&q1);
    assert!(vh.route(&x, &message("q1", None)).is_empty());
}

#[test]
fn headers_exchange_routes_on_arguments() {
    let (_dir, vh) = vhost();
    queue(&vh, "q1");
    let mut args = FieldTable::new();
    args.push("x-match", FieldValue::string("any"));
    args.push("a", FieldValue::I32(1));
    vh.bind("amq.match", "q1", ResourceKind::Queue, "", &args, 1)
        .unwrap();
    let mut h = FieldTable::new();
    h.push("a", FieldValue::I64(1));
    assert_eq!(routed(&vh, "amq.match", &message("", Some(h))), ["q1"]);
    assert!(routed(&vh, "amq.match", &message("", None)).is_empty());
    let mut bad = FieldTable::new();
    bad.push("x-match", FieldValue::string("one"));
    assert!(matches!(
        vh.bind("amq.headers", "q1", ResourceKind::Queue, "", &bad, 1),
        Err(Error::InvalidBinding { .. })
    ));
}

#[test]
fn exchange_to_exchange_with_cycles_and_alternate() {
    let (_dir, vh) = vhost();
    queue(&vh, "q1");
    queue(&vh, "lost");
    exchange(&vh, "a", ExchangeKind::Fanout);
    exchange(&vh, "b", ExchangeKind::Fanout);
    vh.bind("a", "b", ResourceKind::Exchange, "", &FieldTable::new(), 1)
        .unwrap();
    vh.bind("b", "a", ResourceKind::Exchange, "", &FieldTable::new(), 1)
        .unwrap();
    bind(&vh, "b", "q1", "");
    assert_eq!(routed(&vh, "a", &message("k", None)), ["q1"]);

    let mut spec = ExchangeSpec::new("with-ae", ExchangeKind::Direct);
    spec.arguments
        .push("alternate-exchange", FieldValue::string("ae"));
    vh.declare_exchange(spec, false).unwrap();
    exchange(&vh, "ae", ExchangeKind::Fanout);
    bind(&vh, "ae", "lost", "");
    bind(&vh, "with-ae", "q1", "known");
    assert_eq!(routed(&vh, "with-ae", &message("known", None)), ["q1"]);
    assert_eq!(routed(&vh, "with-ae", &message("unknown", None)), ["lost"]);
}

#[test]
fn declare_rules_follow_rabbitmq() {
    let (_dir, vh) = vhost();
    exchange(&vh, "x", ExchangeKind::Direct);
    let err = vh
        .declare_exchange(ExchangeSpec::new("x", ExchangeKind::Topic), false)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "inequivalent arg 'type' for exchange 'x' in vhost '/': received 'topic' but current is 'direct'"
    );
    let mut durable = ExchangeSpec::new("x", ExchangeKind::Direct);
    durable.durable = true;
    assert!(matches!(
        vh.declare_exchange(durable, false),
        Err(Error::Inequivalent { .. })
    ));
    assert!(matches!(
        vh.declare_exchange(ExchangeSpec::new("amq.new", ExchangeKind::Direct), false),
        Err(Error::ReservedName { .. })
    ));
    // Redeclaring an existing amq.* exchange with the same properties is allowed.
    let mut amq = ExchangeSpec::new("amq.direct", ExchangeKind::Direct);
    amq.durable = true;
    assert!(vh.declare_exchange(amq, false).is_ok());
    assert!(matches!(
        vh.declare_exchange(ExchangeSpec::new("", ExchangeKind::Direct), false),
        Err(Error::AccessRefused { .. })
    ));
    assert!(matches!(
        vh.declare_exchange(ExchangeSpec::new("missing", ExchangeKind::Direct), true),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        vh.delete_exchange("amq.fanout", false),
        Err(Error::AccessRefused { .. })
    ));
    assert!(vh.delete_exchange("never-declared", false).is_ok());
}

#[test]
fn deletion_cascades_through_bindings() {
    let (_dir, vh) = vhost();
    queue(&vh, "q1");
    let mut auto = ExchangeSpec::new("auto", ExchangeKind::Fanout);
    auto.auto_delete = true;
    let auto = vh.declare_exchange(auto, false).unwrap();
    bind(&vh, "auto", "q1", "");
    assert!(matches!(
        vh.delete_exchange("auto", true),
        Err(Error::InUse { .. })
    ));
    vh.delete_queue("q1", false, false, 1).unwrap();
    assert!(auto.is_deleted());
    assert!(vh.exchange("auto").is_err());

    queue(&vh, "q2");
    exchange(&vh, "plain", ExchangeKind::Direct);
    bind(&vh, "plain", "q2", "k");
    vh.unbind(
        "plain",
        "q2",
        ResourceKind::Queue,
        "k",
        &FieldTable::new(),
        1,
    )
    .unwrap();
    assert_eq!(vh.exchange("plain").unwrap().binding_count(), 0);
    // Unbinding what is not there, or from missing objects, succeeds.
    vh.unbind(
        "plain",
        "q2",
        ResourceKind::Queue,
        "k",
        &FieldTable::new(),
        1,
    )
    .unwrap();
    vh.unbind(
        "ghost",
        "q2",
        ResourceKind::Queue,
        "k",
        &FieldTable::new(),
        1,
    )
    .unwrap();
    assert!(matches!(
        vh.bind(
            "ghost",
            "q2",
            ResourceKind::Queue,
            "k",
            &FieldTable::new(),
            1
        ),
        Err(Error::NotFound {
            kind: ResourceKind::Exchange,
            ..
        })
    ));
    assert!(matches!(
        vh.bind(
            "plain",
            "ghost",
            ResourceKind::Queue,
            "k",
            &FieldTable::new(),
            1
        ),
        Err(Error::NotFound {
            kind: ResourceKind::Queue,
            ..
        })
    ));
}

#[test]
fn reply_queues_are_reached_through_the_default_exchange_only() {
    let (_dir, vh) = vhost();
    let reply = vh.create_reply_queue(7);
    assert!(reply.name().starts_with(REPLY_TO_PREFIX));
    assert_eq!(
        routed(&vh, "", &message(reply.name(), None)),
        [reply.name()]
    );
    assert!(vh.lookup_queue(reply.name()).is_none());
    vh.remove_queue(&reply);
    assert!(routed(&vh, "", &message(reply.name(), None)).is_empty());
}
