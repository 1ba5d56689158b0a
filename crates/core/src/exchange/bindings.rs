//! The bindings of one exchange: a list (identity, listing, deletion) plus an index shaped
//! for the exchange's kind (routing).

use std::collections::HashMap;

use super::headers::HeadersPattern;
use super::topic::TopicTrie;
use super::{Destination, ExchangeKind};
use crate::Error;
use crate::message::{FieldTable, Message};

/// A binding from an exchange to a destination.
#[derive(Debug, Clone)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: String,
    pub arguments: FieldTable,
}

impl Binding {
    fn is(&self, destination: &Destination, key: &str, args: &FieldTable) -> bool {
        self.destination.same(destination)
            && self.routing_key == key
            && same_args(&self.arguments, args)
    }
}

/// Binding identity compares arguments as sets of exactly typed entries, as RabbitMQ's
/// binding records do.
fn same_args(a: &FieldTable, b: &FieldTable) -> bool {
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k) == Some(v))
}

#[derive(Debug)]
enum Index {
    Direct(HashMap<String, Vec<Destination>>),
    Fanout,
    Topic(TopicTrie<Destination>),
    Headers(Vec<(HeadersPattern, Destination)>),
}

#[derive(Debug)]
pub(super) struct Bindings {
    list: Vec<Binding>,
    index: Index,
}

impl Bindings {
    pub(super) fn new(kind: ExchangeKind) -> Self {
        let index = match kind {
            ExchangeKind::Direct => Index::Direct(HashMap::new()),
            ExchangeKind::Fanout => Index::Fanout,
            ExchangeKind::Topic => Index::Topic(TopicTrie::default()),
            ExchangeKind::Headers => Index::Headers(Vec::new()),
        };
        Self {
            list: Vec::new(),
            index,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.list.len()
    }

    pub(super) fn list(&self) -> &[Binding] {
        &self.list
    }

    pub(super) fn clear(&mut self) {
        let kind = match self.index {
            Index::Direct(_) => ExchangeKind::Direct,
            Index::Fanout => ExchangeKind::Fanout,
            Index::Topic(_) => ExchangeKind::Topic,
            Index::Headers(_) => ExchangeKind::Headers,
        };
        *self = Self::new(kind);
    }

    pub(super) fn add(&mut self, binding: Binding) -> Result<bool, Error> {
        if self.list.iter().any(|b| {
            b.is(
                &binding.destination,
                &binding.routing_key,
                &binding.arguments,
            )
        }) {
            return Ok(false);
        }
        let destination = binding.destination.clone();
        match &mut self.index {
            Index::Direct(map) => map
                .entry(binding.routing_key.clone())
                .or_default()
                .push(destination),
            Index::Fanout => {}
            Index::Topic(trie) => trie.insert(&binding.routing_key, destination),
            Index::Headers(patterns) => {
                patterns.push((HeadersPattern::parse(&binding.arguments)?, destination));
            }
        }
        self.list.push(binding);
        Ok(true)
    }

    pub(super) fn remove(
        &mut self,
        destination: &Destination,
        key: &str,
        args: &FieldTable,
    ) -> bool {
        let Some(index) = self.list.iter().position(|b| b.is(destination, key, args)) else {
            return false;
        };
        let binding = self.list.remove(index);
        self.unindex(&binding);
        true
    }

    /// Removes every binding to `destination`: `(removed, left)`.
    pub(super) fn remove_destination(&mut self, destination: &Destination) -> (usize, usize) {
        let (gone, kept): (Vec<Binding>, Vec<Binding>) = std::mem::take(&mut self.list)
            .into_iter()
            .partition(|b| b.destination.same(destination));
        self.list = kept;
        for binding in &gone {
            self.unindex(binding);
        }
        (gone.len(), self.list.len())
    }

    fn unindex(&mut self, binding: &Binding) {
        let target = &binding.destination;
        match &mut self.index {
            Index::Direct(map) => {
                if let Some(dests) = map.get_mut(&binding.routing_key) {
                    if let Some(i) = dests.iter().position(|d| d.same(target)) {
                        dests.remove(i);
                    }
                    if dests.is_empty() {
                        map.remove(&binding.routing_key);
                    }
                }
            }
            Index::Fanout => {}
            Index::Topic(trie) => {
                trie.remove(&binding.routing_key, |d| d.same(target));
            }
            Index::Headers(patterns) => {
                // Patterns are stored in binding order; find the one for this binding.
                if let Ok(pattern) = HeadersPattern::parse(&binding.arguments)
                    && let Some(i) = patterns
                        .iter()
                        .position(|(p, d)| d.same(target) && *p == pattern)
                {
                    patterns.remove(i);
                }
            }
        }
    }

    pub(super) fn matches(&self, message: &Message, keys: &[&str], out: &mut Vec<Destination>) {
        match &self.index {
            Index::Direct(map) => {
                for key in keys {
                    if let Some(dests) = map.get(*key) {
                        out.extend(dests.iter().cloned());
                    }
                }
            }
            Index::Fanout => out.extend(self.list.iter().map(|b| b.destination.clone())),
            Index::Topic(trie) => {
                for key in keys {
                    out.extend(trie.matches(key).into_iter().cloned());
                }
            }
            Index::Headers(patterns) => {
                let headers = message.properties.headers.as_ref();
                out.extend(
                    patterns
                        .iter()
                        .filter(|(pattern, _)| pattern.matches(headers))
                        .map(|(_, d)| d.clone()),
                );
            }
        }
    }
}
