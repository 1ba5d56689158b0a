//! Durable exchanges and bindings in the broker's definitions journal, and their restoration
//! at open.
//!
//! ```text
//! Exchange  key: <vhost> NUL <name>
//!           value: {"kind": "topic", "auto_delete": b, "internal": b, "arguments": "<hex>"}
//! Binding   key: <vhost> NUL <source> NUL q|e|s NUL <destination> NUL <routing key> NUL <hex>
//!           value: {"source", "destination", "destination_kind": "queue"|"exchange"|"stream",
//!                   "routing_key", "arguments": "<hex>"}
//! ```
//! Arguments are the AMQP field-table encoding in hex (every field type survives); in a
//! binding's key they are sorted by name first, because a binding's identity compares its
//! arguments as a set, as RabbitMQ does.
//!
//! A binding is durable when both its ends are (the pre-declared `amq.*` exchanges are), as
//! in RabbitMQ: bindings involving a transient queue or exchange are gone after a restart.

use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Binding, Destination, Exchange, ExchangeKind, ExchangeSpec};
use crate::message::FieldTable;
use crate::queue::persist::{table_from_hex, table_to_hex};
use crate::store::{Definition, DefinitionStore, Kind};
use crate::{Error, VHost};

#[derive(Debug, Serialize, Deserialize)]
struct ExchangeDefinition {
    kind: String,
    auto_delete: bool,
    internal: bool,
    arguments: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct BindingDefinition {
    source: String,
    destination: String,
    destination_kind: String,
    routing_key: String,
    arguments: String,
}

/// (kind letter, kind name, durable) of a binding's destination.
fn destination_facts(destination: &Destination) -> (&'static str, &'static str, bool) {
    match destination {
        Destination::Queue(queue) => ("q", "queue", queue.is_durable()),
        Destination::Exchange(exchange) => ("e", "exchange", exchange.spec().durable),
        // A stream (Kafka topic) is always durable.
        Destination::Stream(_) => ("s", "stream", true),
    }
}

fn binding_key(vhost: &str, source: &str, binding: &Binding) -> String {
    let (letter, _, _) = destination_facts(&binding.destination);
    let mut sorted: Vec<(&str, &crate::message::FieldValue)> = binding.arguments.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let canonical: FieldTable = sorted
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    format!(
        "{vhost}\0{source}\0{letter}\0{}\0{}\0{}",
        binding.destination.name(),
        binding.routing_key,
        table_to_hex(&canonical)
    )
}

fn corrupt(key: &str, reason: &str) -> Error {
    Error::CorruptDefinition {
        kind: "exchange".to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}

impl VHost {
    /// Records a newly declared durable exchange.
    pub(crate) fn save_exchange(&self, exchange: &Exchange) -> Result<(), Error> {
        let spec = exchange.spec();
        let def = ExchangeDefinition {
            kind: spec.kind.as_str().to_owned(),
            auto_delete: spec.auto_delete,
            internal: spec.internal,
            arguments: table_to_hex(&spec.arguments),
        };
        drop(self.definitions().put_json(
            Kind::Exchange,
            &crate::queue::persist::key(self.name(), exchange.name()),
            &def,
        )?);
        Ok(())
    }

    /// Forgets a deleted durable exchange and the bindings it was the source of.
    pub(crate) fn forget_exchange(&self, exchange: &Exchange) {
        if !exchange.spec().durable {
            return;
        }
        for binding in exchange.bindings() {
            self.forget_binding(exchange, &binding);
        }
        let key = crate::queue::persist::key(self.name(), exchange.name());
        if let Err(e) = self.definitions().remove(Kind::Exchange, &key) {
            tracing::error!(exchange = %exchange.name(), vhost = %self.name(),
                "could not record the deletion of a durable exchange: {e}");
        }
    }

    /// Records a new binding if both its ends are durable.
    pub(crate) fn save_binding(&self, source: &Exchange, binding: &Binding) -> Result<(), Error> {
        let (_, kind, durable) = destination_facts(&binding.destination);
        if !(durable && source.spec().durable) {
            return Ok(());
        }
        let def = BindingDefinition {
            source: source.name().to_owned(),
            destination: binding.destination.name().to_owned(),
            destination_kind: kind.to_owned(),
            routing_key: binding.routing_key.clone(),
            arguments: table_to_hex(&binding.arguments),
        };
        drop(self.definitions().put_json(
            Kind::Binding,
            &binding_key(self.name(), source.name(), binding),
            &def,
        )?);
        Ok(())
    }

    /// Forgets a removed binding (nothing happens if it was not durable).
    pub(crate) fn forget_binding(&self, source: &Exchange, binding: &Binding) {
        let (_, _, durable) = destination_facts(&binding.destination);
        if !(durable && source.spec().durable) {
            return;
        }
        let key = binding_key(self.name(), source.name(), binding);
        if let Err(e) = self.definitions().remove(Kind::Binding, &key) {
            tracing::error!(source = %source.name(), vhost = %self.name(),
                "could not record the removal of a durable binding: {e}");
        }
    }

    /// Recreates the durable exchanges among `recovered`.
    pub(crate) fn restore_exchanges(&self, recovered: &[Definition]) -> Result<(), Error> {
        let prefix = crate::queue::persist::key(self.name(), "");
        let mut count = 0;
        for def in recovered.iter().filter(|d| d.kind == Kind::Exchange) {
            let Some(name) = def.key.strip_prefix(&prefix) else {
                continue;
            };
            let stored: ExchangeDefinition =
                DefinitionStore::decode_json(Kind::Exchange, &def.key, &def.value)?;
            let spec = ExchangeSpec {
                name: name.to_owned(),
                kind: ExchangeKind::from_str(&stored.kind)
                    .map_err(|_| corrupt(&def.key, "unknown exchange type"))?,
                durable: true,
                auto_delete: stored.auto_delete,
                internal: stored.internal,
                arguments: table_from_hex(&stored.arguments)
                    .ok_or_else(|| corrupt(&def.key, "undecodable arguments"))?,
            };
            let exchange = Arc::new(Exchange::new(self.name(), spec)?);
            self.exchanges.write().insert(name.to_owned(), exchange);
            count += 1;
        }
        if count > 0 {
            tracing::info!(vhost = %self.name(), exchanges = count, "restored durable exchanges");
        }
        Ok(())
    }

    /// Recreates the durable bindings among `recovered` (after exchanges and queues).
    pub(crate) fn restore_bindings(&self, recovered: &[Definition]) {
        let prefix = crate::queue::persist::key(self.name(), "");
        let mut count = 0;
        for def in recovered.iter().filter(|d| d.kind == Kind::Binding) {
            if !def.key.starts_with(&prefix) {
                continue;
            }
            match self.restore_binding(def) {
                Ok(()) => count += 1,
                Err(e) => tracing::warn!(vhost = %self.name(), key = ?def.key,
                    "durable binding not restored: {e}"),
            }
        }
        if count > 0 {
            tracing::info!(vhost = %self.name(), bindings = count, "restored durable bindings");
        }
    }

    fn restore_binding(&self, def: &Definition) -> Result<(), Error> {
        let stored: BindingDefinition =
            DefinitionStore::decode_json(Kind::Binding, &def.key, &def.value)?;
        let source = self.exchange(&stored.source)?;
        let destination = match stored.destination_kind.as_str() {
            "queue" => Destination::Queue(self.queue(&stored.destination)?),
            "exchange" => Destination::Exchange(self.exchange(&stored.destination)?),
            "stream" => {
                Destination::Stream(self.streams().get(&stored.destination).ok_or_else(|| {
                    Error::StreamNotFound {
                        stream: stored.destination.clone(),
                    }
                })?)
            }
            _ => return Err(corrupt(&def.key, "unknown destination kind")),
        };
        let arguments = table_from_hex(&stored.arguments)
            .ok_or_else(|| corrupt(&def.key, "undecodable arguments"))?;
        source.bind(Binding {
            destination,
            routing_key: stored.routing_key,
            arguments,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::message::{FieldValue, Message, Properties};
    use crate::queue::QueueSpec;
    use crate::{Broker, BrokerConfig, ResourceKind};

    fn open(dir: &std::path::Path) -> Arc<VHost> {
        Broker::open(BrokerConfig::with_data_dir(dir))
            .unwrap()
            .vhost("/")
            .unwrap()
    }

    fn queue(vhost: &Arc<VHost>, name: &str, durable: bool, exclusive: bool) {
        let mut spec = QueueSpec::new(name);
        spec.durable = durable;
        spec.exclusive = exclusive;
        if name == "orders" {
            spec.arguments.push("x-max-length", FieldValue::I64(7));
            spec.arguments
                .push("x-dead-letter-exchange", FieldValue::string("dlx"));
        }
        vhost.declare_queue(spec, false, 1).unwrap();
    }

    fn exchange(vhost: &VHost, name: &str, kind: ExchangeKind, durable: bool) {
        let mut spec = ExchangeSpec::new(name, kind);
        spec.durable = durable;
        if name == "events" {
            spec.internal = false;
            spec.arguments
                .push("alternate-exchange", FieldValue::string("unrouted"));
        }
        vhost.declare_exchange(spec, false).unwrap();
    }

    fn bind(vhost: &VHost, source: &str, dest: &str, kind: ResourceKind, key: &str) {
        let mut args = FieldTable::new();
        if source == "match" {
            args.push("x-match", FieldValue::string("any"));
            args.push("region", FieldValue::string("eu"));
        }
        vhost.bind(source, dest, kind, key, &args, 1).unwrap();
    }

    fn routed(
        vhost: &VHost,
        exchange: &str,
        key: &str,
        headers: Option<FieldTable>,
    ) -> Vec<String> {
        let x = vhost.exchange(exchange).unwrap();
        let message = Message::new(
            exchange,
            key,
            Properties {
                headers,
                ..Properties::default()
            },
            Bytes::new(),
        );
        let mut names: Vec<String> = vhost
            .route(&x, &message)
            .queues
            .iter()
            .map(|q| q.name().to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn durable_definitions_survive_and_transient_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        {
            let v = open(dir.path());
            exchange(&v, "events", ExchangeKind::Topic, true);
            exchange(&v, "match", ExchangeKind::Headers, true);
            exchange(&v, "fan", ExchangeKind::Fanout, true);
            exchange(&v, "temp", ExchangeKind::Direct, false);
            queue(&v, "orders", true, false);
            queue(&v, "audit", true, false);
            queue(&v, "scratch", false, false);
            queue(&v, "mine", true, true);
            bind(&v, "events", "orders", ResourceKind::Queue, "order.*");
            bind(&v, "events", "scratch", ResourceKind::Queue, "#");
            bind(&v, "match", "audit", ResourceKind::Queue, "");
            bind(&v, "events", "fan", ResourceKind::Exchange, "#");
            bind(&v, "fan", "audit", ResourceKind::Queue, "");
            bind(&v, "temp", "orders", ResourceKind::Queue, "k");
            bind(
                &v,
                "amq.direct",
                "orders",
                ResourceKind::Queue,
                "direct-key",
            );
            // Removed before the restart: must stay removed.
            queue(&v, "gone", true, false);
            bind(&v, "events", "gone", ResourceKind::Queue, "x");
            v.delete_queue("gone", false, false, 1).unwrap();
            exchange(&v, "old", ExchangeKind::Fanout, true);
            bind(&v, "old", "audit", ResourceKind::Queue, "");
            v.delete_exchange("old", false).unwrap();
            bind(&v, "events", "audit", ResourceKind::Queue, "tmp");
            v.unbind(
                "events",
                "audit",
                ResourceKind::Queue,
                "tmp",
                &FieldTable::new(),
                1,
            )
            .unwrap();
        }
        let v = open(dir.path());
        let events = v.exchange("events").unwrap();
        assert_eq!(events.kind(), ExchangeKind::Topic);
        assert!(events.spec().durable);
        assert_eq!(events.alternate(), Some("unrouted"));
        assert!(v.exchange("temp").is_err(), "transient exchange gone");
        assert!(v.exchange("old").is_err(), "deleted exchange gone");
        let orders = v.queue("orders").unwrap();
        assert_eq!(orders.args().max_length, Some(7));
        assert_eq!(orders.args().dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(
            orders.spec().arguments.get("x-max-length"),
            Some(&FieldValue::I64(7)),
            "argument types are kept"
        );
        for gone in ["scratch", "mine", "gone"] {
            assert!(v.lookup_queue(gone).is_none(), "{gone} must not come back");
        }
        assert_eq!(routed(&v, "events", "order.new", None), ["audit", "orders"]);
        assert_eq!(
            routed(&v, "events", "x", None),
            ["audit"],
            "via events -> fan"
        );
        assert_eq!(routed(&v, "events", "tmp", None), ["audit"]);
        assert_eq!(routed(&v, "amq.direct", "direct-key", None), ["orders"]);
        let mut eu = FieldTable::new();
        eu.push("region", FieldValue::string("eu"));
        assert_eq!(routed(&v, "match", "", Some(eu)), ["audit"]);
        assert_eq!(events.binding_count(), 2, "orders and fan only");
    }

    #[test]
    fn deleting_a_durable_queue_removes_its_bindings_and_files() {
        let dir = tempfile::tempdir().unwrap();
        {
            let v = open(dir.path());
            exchange(&v, "fan", ExchangeKind::Fanout, true);
            queue(&v, "orders", true, false);
            bind(&v, "fan", "orders", ResourceKind::Queue, "");
            v.delete_queue("orders", false, false, 1).unwrap();
            queue(&v, "orders", true, false);
        }
        let v = open(dir.path());
        assert!(v.lookup_queue("orders").is_some());
        assert_eq!(v.exchange("fan").unwrap().binding_count(), 0);
        let dirs = std::fs::read_dir(dir.path().join("queues").join("%2F"))
            .unwrap()
            .count();
        assert_eq!(dirs, 1);
    }
}
