//! Producer ids for idempotent producers, unique across restarts.
//!
//! Ids are handed out from blocks of [`BLOCK`]; before the first id of a block is used, the
//! start of the *next* block is recorded (and flushed) in the definitions journal as setting
//! `producer-id-next-block`. After a crash the broker resumes from that value, so it may
//! skip ids but never repeats one.

use std::sync::{Arc, Mutex};

use super::partition::lock;
use crate::Error;
use crate::store::{DefinitionStore, Kind};

/// Ids reserved per journal write.
pub const BLOCK: i64 = 1000;
const KEY: &str = "producer-id-next-block";

#[derive(Debug)]
struct State {
    next: i64,
    reserved_to: i64,
}

/// The producer-id allocator.
#[derive(Debug)]
pub struct ProducerIds {
    store: Arc<DefinitionStore>,
    state: Mutex<State>,
}

impl ProducerIds {
    /// Opens the allocator whose state is in `store`.
    pub fn open(store: Arc<DefinitionStore>) -> Result<Self, Error> {
        let next = match store.get(Kind::Setting, KEY) {
            Some(value) => DefinitionStore::decode_json::<i64>(Kind::Setting, KEY, &value)?,
            None => 0,
        };
        Ok(Self {
            store,
            state: Mutex::new(State {
                next,
                reserved_to: next,
            }),
        })
    }

    /// A fresh producer id (blocking: may append to and flush the journal).
    pub fn allocate(&self) -> Result<i64, Error> {
        let mut state = lock(&self.state);
        if state.next >= state.reserved_to {
            let reserved_to = state.next.saturating_add(BLOCK);
            drop(self.store.put_json(Kind::Setting, KEY, &reserved_to)?);
            self.store.flush()?;
            state.reserved_to = reserved_to;
        }
        let id = state.next;
        state.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let config = ferrymq_log::LogConfig::default();
        {
            let (store, _) = DefinitionStore::open(dir.path(), &config).unwrap();
            let ids = ProducerIds::open(Arc::new(store)).unwrap();
            let first: Vec<i64> = (0..3).map(|_| ids.allocate().unwrap()).collect();
            assert_eq!(first, vec![0, 1, 2]);
        }
        let (store, _) = DefinitionStore::open(dir.path(), &config).unwrap();
        let again = ProducerIds::open(Arc::new(store)).unwrap();
        assert_eq!(again.allocate().unwrap(), BLOCK);
    }
}
