//! Topic routing: binding keys of dot-separated words with `*` (exactly one word) and `#`
//! (zero or more words), matched against routing keys with a trie walk, never a regex.
//!
//! ```text
//! bindings "a.*.c", "a.#", "#.c"        trie:  root ─a─> n1 ─*─> n2 ─c─> [q1]
//!                                                    └─#─> [q2]
//!                                              root ─#─> n3 ─c─> [q3]
//! ```
//! A walk follows the literal child, the `*` child and the `#` child (which may swallow any
//! number of words) at each step, so its cost depends on the routing key's length and the
//! shape of the bindings, not on how many bindings exist.
//!
//! Words are split as RabbitMQ splits them: `""` has no words, `"a."` is `["a", ""]`.

use std::collections::HashMap;

/// A trie of topic binding keys whose leaves hold values of type `T`.
#[derive(Debug)]
pub struct TopicTrie<T> {
    root: Node<T>,
}

#[derive(Debug)]
struct Node<T> {
    words: HashMap<String, Node<T>>,
    star: Option<Box<Node<T>>>,
    hash: Option<Box<Node<T>>>,
    values: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            words: HashMap::new(),
            star: None,
            hash: None,
            values: Vec::new(),
        }
    }
}

impl<T> Default for TopicTrie<T> {
    fn default() -> Self {
        Self {
            root: Node::default(),
        }
    }
}

/// Splits a key into words the way RabbitMQ does.
pub fn words(key: &str) -> impl Iterator<Item = &str> {
    let mut split = if key.is_empty() {
        None
    } else {
        Some(key.split('.'))
    };
    std::iter::from_fn(move || split.as_mut()?.next())
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.words.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
    }

    fn child_mut(&mut self, word: &str) -> &mut Node<T> {
        match word {
            "*" => self.star.get_or_insert_with(Box::default),
            "#" => self.hash.get_or_insert_with(Box::default),
            _ => self.words.entry(word.to_owned()).or_default(),
        }
    }

    /// Removes the first value at the end of `path` for which `pred` holds; prunes empty nodes.
    fn remove<'k>(
        &mut self,
        mut path: impl Iterator<Item = &'k str>,
        pred: &mut impl FnMut(&T) -> bool,
    ) -> Option<T> {
        let Some(word) = path.next() else {
            let index = self.values.iter().position(&mut *pred)?;
            return Some(self.values.remove(index));
        };
        match word {
            "*" | "#" => {
                let slot = if word == "*" {
                    &mut self.star
                } else {
                    &mut self.hash
                };
                let child = slot.as_mut()?;
                let removed = child.remove(path, pred);
                if child.is_empty() {
                    *slot = None;
                }
                removed
            }
            _ => {
                let child = self.words.get_mut(word)?;
                let removed = child.remove(path, pred);
                if child.is_empty() {
                    self.words.remove(word);
                }
                removed
            }
        }
    }

    fn collect<'a>(&'a self, key: &[&str], out: &mut Vec<&'a T>) {
        if let Some(hash) = &self.hash {
            // `#` swallows zero or more of the remaining words.
            for skip in 0..=key.len() {
                if let Some(rest) = key.get(skip..) {
                    hash.collect(rest, out);
                }
            }
        }
        let Some((first, rest)) = key.split_first() else {
            out.extend(self.values.iter());
            return;
        };
        if let Some(child) = self.words.get(*first) {
            child.collect(rest, out);
        }
        if let Some(star) = &self.star {
            star.collect(rest, out);
        }
    }
}

impl<T> TopicTrie<T> {
    pub fn insert(&mut self, binding_key: &str, value: T) {
        let mut node = &mut self.root;
        for word in words(binding_key) {
            node = node.child_mut(word);
        }
        node.values.push(value);
    }

    /// Removes one value bound with `binding_key` for which `pred` holds.
    pub fn remove(&mut self, binding_key: &str, mut pred: impl FnMut(&T) -> bool) -> Option<T> {
        self.root.remove(words(binding_key), &mut pred)
    }

    /// Every value whose binding key matches `routing_key`; a value bound by several
    /// matching keys appears once per key (callers deduplicate destinations).
    pub fn matches(&self, routing_key: &str) -> Vec<&T> {
        let key: Vec<&str> = words(routing_key).collect();
        let mut out = Vec::new();
        self.root.collect(&key, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(trie: &TopicTrie<&'static str>, key: &str) -> Vec<&'static str> {
        let mut out: Vec<&str> = trie.matches(key).into_iter().copied().collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    #[test]
    fn star_and_hash_follow_rabbitmq() {
        let mut trie = TopicTrie::default();
        for key in [
            "a.b.c", "a.*.c", "a.#", "#", "#.c", "*", "a.#.c", "", "*.*", "a.*", "#.#",
        ] {
            trie.insert(key, key);
        }
        assert_eq!(
            matched(&trie, "a.b.c"),
            ["#", "#.#", "#.c", "a.#", "a.#.c", "a.*.c", "a.b.c"]
        );
        assert_eq!(matched(&trie, "a"), ["#", "#.#", "*", "a.#"]);
        assert_eq!(matched(&trie, ""), ["", "#", "#.#"]);
        assert_eq!(
            matched(&trie, "a.c"),
            ["#", "#.#", "#.c", "*.*", "a.#", "a.#.c", "a.*"]
        );
        assert_eq!(matched(&trie, "x.y.z.c"), ["#", "#.#", "#.c"]);
        assert_eq!(matched(&trie, "a."), ["#", "#.#", "*.*", "a.#", "a.*"]);
    }

    #[test]
    fn removal_prunes_and_keeps_other_values() {
        let mut trie = TopicTrie::default();
        trie.insert("a.*", 1);
        trie.insert("a.*", 2);
        trie.insert("a.#.b", 3);
        assert_eq!(trie.remove("a.*", |v| *v == 2), Some(2));
        assert_eq!(trie.remove("a.*", |v| *v == 2), None);
        assert_eq!(trie.matches("a.x"), [&1]);
        assert_eq!(trie.remove("a.#.b", |_| true), Some(3));
        assert_eq!(trie.remove("a.*", |_| true), Some(1));
        assert!(trie.root.is_empty());
    }

    #[test]
    fn words_split_like_rabbitmq() {
        assert_eq!(words("").count(), 0);
        assert_eq!(words("a.").collect::<Vec<_>>(), ["a", ""]);
        assert_eq!(words(".").collect::<Vec<_>>(), ["", ""]);
    }

    /// The definition, as a slow recursive matcher: `#` takes zero or more words.
    fn reference(binding: &[&str], key: &[&str]) -> bool {
        match (binding.split_first(), key.split_first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some((&"#", rest)), _) => {
                (0..=key.len()).any(|skip| reference(rest, key.get(skip..).unwrap_or_default()))
            }
            (Some(_), None) => false,
            (Some((&"*", rest)), Some((_, key_rest))) => reference(rest, key_rest),
            (Some((word, rest)), Some((k, key_rest))) => word == k && reference(rest, key_rest),
        }
    }

    fn join(words: &[&str]) -> String {
        words.join(".")
    }

    proptest::proptest! {
        #[test]
        fn trie_agrees_with_the_definition(
            bindings in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(vec!["a", "b", "*", "#"]), 0..5),
                1..8,
            ),
            key in proptest::collection::vec(proptest::sample::select(vec!["a", "b", "c"]), 0..6),
        ) {
            let mut trie = TopicTrie::default();
            for (i, b) in bindings.iter().enumerate() {
                trie.insert(&join(b), i);
            }
            // An empty binding key and an empty routing key both have no words.
            let key_text = join(&key);
            let mut got: Vec<usize> = trie.matches(&key_text).into_iter().copied().collect();
            got.sort_unstable();
            got.dedup();
            let expected: Vec<usize> = bindings
                .iter()
                .enumerate()
                .filter(|(_, b)| reference(b, &key))
                .map(|(i, _)| i)
                .collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
