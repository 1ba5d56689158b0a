//! The user store: users and permissions in memory, journaled in core's definitions store.
//!
//! ```text
//! Kind::User        key user name            {"name","password_hash","hashing_algorithm","tags",
//!                                             "scram": {"SCRAM-SHA-256": {salt,iterations,..}}}
//! Kind::Permission  key vhost \0 user        {"configure","write","read"}
//! Kind::TopicPermission  key vhost \0 user \0 exchange  {"write","read"}
//! Kind::Setting     key "auth.seeded"        names of config users seeded once already
//! ```
//!
//! Config users are seeded once per data directory: a config user is created on the first
//! boot that lists it, and from then on the store (changed at runtime) wins. Deleting a
//! seeded user at runtime keeps it deleted across restarts.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ferrymq_core::store::{DefinitionStore, Kind, Pending};
use serde::{Deserialize, Serialize};

use crate::access::{Action, Refusal, ResourceType, TopicPatterns, TopicPermission};
use crate::acl::AclBinding;
use crate::limiter::FailureLimiter;
use crate::permission::Patterns;
use crate::scram::{DEFAULT_ITERATIONS, Mechanism, ScramCredential};
use crate::{Error, HashingAlgorithm, PasswordHash, Permission, Tags, UserConfig};

mod kafka;

pub use kafka::KafkaPrincipal;

const SEEDED_KEY: &str = "auth.seeded";

/// One user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub hash: PasswordHash,
    pub tags: Tags,
    /// SCRAM credentials for Kafka's SASL, derived whenever a clear-text password is set
    /// (or set through AlterUserScramCredentials).
    pub scram: BTreeMap<Mechanism, ScramCredential>,
}

impl User {
    /// May publish messages whose `user_id` names someone else.
    pub fn is_impersonator(&self) -> bool {
        self.tags.is_impersonator()
    }
}

/// How a user's password is given when it is created or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A clear-text password, hashed with the algorithm before it is kept.
    Password {
        password: String,
        algorithm: HashingAlgorithm,
    },
    /// A hash as exported by RabbitMQ or ferrymq.
    Hash(PasswordHash),
    /// Keep the current password (a new user gets none).
    Unchanged,
}

/// A user to create or replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUpdate {
    pub name: String,
    pub credentials: Credentials,
    pub tags: Tags,
}

/// The stored form of a user: RabbitMQ's definitions-file fields.
#[derive(Debug, Serialize, Deserialize)]
struct StoredUser {
    name: String,
    password_hash: String,
    hashing_algorithm: HashingAlgorithm,
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scram: BTreeMap<Mechanism, ScramCredential>,
}

impl StoredUser {
    fn of(user: &User) -> Self {
        Self {
            name: user.name.clone(),
            password_hash: user.hash.to_base64(),
            hashing_algorithm: user.hash.algorithm(),
            tags: user.tags.as_slice().to_vec(),
            scram: user.scram.clone(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, Arc<User>>,
    /// (vhost, user) -> permission.
    permissions: BTreeMap<(String, String), Arc<Permission>>,
    /// (vhost, user, exchange) -> topic permission.
    topics: BTreeMap<(String, String, String), Arc<TopicPermission>>,
    /// Kafka ACLs.
    acls: Vec<AclBinding>,
}

/// Users and permissions of one broker.
#[derive(Debug)]
pub struct UserStore {
    /// `None`: kept in memory only (tests, embedding).
    definitions: Option<Arc<DefinitionStore>>,
    loopback_only: HashSet<String>,
    state: RwLock<State>,
    /// Bumped by every change: decisions cached per connection are good while it stands.
    generation: AtomicU64,
    /// Failed logins per client address, shared by every protocol.
    limiter: FailureLimiter,
}

fn permission_key(vhost: &str, user: &str) -> String {
    format!("{vhost}\0{user}")
}

fn topic_key(vhost: &str, user: &str, exchange: &str) -> String {
    format!("{vhost}\0{user}\0{exchange}")
}

/// Decisions of one connection, kept while the store's [`UserStore::generation`] stands, so
/// that a publish or produce path checks a map instead of patterns and ACLs.
#[derive(Debug)]
pub struct DecisionCache<K> {
    generation: u64,
    decisions: std::collections::HashMap<K, bool>,
}

impl<K> Default for DecisionCache<K> {
    fn default() -> Self {
        Self {
            generation: 0,
            decisions: std::collections::HashMap::new(),
        }
    }
}

/// Entries one connection keeps at most (a client touching more names starts over).
const CACHE_ENTRIES: usize = 1024;

impl<K: std::hash::Hash + Eq> DecisionCache<K> {
    /// The cached decision for `key`, or `decide()`'s, cached. A hit neither allocates nor
    /// evaluates a pattern.
    pub fn get_or<Q>(&mut self, store: &UserStore, key: &Q, decide: impl FnOnce() -> bool) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let generation = store.generation();
        if generation != self.generation || self.decisions.len() >= CACHE_ENTRIES {
            self.decisions.clear();
            self.generation = generation;
        }
        if let Some(decision) = self.decisions.get(key) {
            return *decision;
        }
        let decision = decide();
        self.decisions.insert(key.to_owned(), decision);
        decision
    }
}

impl UserStore {
    /// Loads users and permissions from `definitions`, then seeds the config users that were
    /// never seeded. `vhosts` are those that exist now (for a config user's `"*"`).
    pub fn open(
        definitions: &Arc<DefinitionStore>,
        seed: &[UserConfig],
        loopback_only: &[String],
        vhosts: &[String],
    ) -> Result<Self, Error> {
        let mut state = State::default();
        for name in definitions.keys(Kind::User) {
            let Some(bytes) = definitions.get(Kind::User, &name) else {
                continue;
            };
            let stored: StoredUser = DefinitionStore::decode_json(Kind::User, &name, &bytes)?;
            let hash = PasswordHash::from_base64(stored.hashing_algorithm, &stored.password_hash)?;
            let user = User {
                name: stored.name,
                hash,
                tags: Tags::new(stored.tags),
                scram: stored.scram,
            };
            state.users.insert(name, Arc::new(user));
        }
        for key in definitions.keys(Kind::Permission) {
            let Some(bytes) = definitions.get(Kind::Permission, &key) else {
                continue;
            };
            let Some((vhost, user)) = key.split_once('\0') else {
                continue;
            };
            let patterns: Patterns = DefinitionStore::decode_json(Kind::Permission, &key, &bytes)?;
            let permission = Permission::new(user, vhost, patterns)?;
            state
                .permissions
                .insert((vhost.to_owned(), user.to_owned()), Arc::new(permission));
        }
        for key in definitions.keys(Kind::TopicPermission) {
            let Some(bytes) = definitions.get(Kind::TopicPermission, &key) else {
                continue;
            };
            let mut parts = key.splitn(3, '\0');
            let (Some(vhost), Some(user), Some(exchange)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let patterns: TopicPatterns =
                DefinitionStore::decode_json(Kind::TopicPermission, &key, &bytes)?;
            let topic = TopicPermission::new(user, vhost, exchange, patterns)?;
            state.topics.insert(
                (vhost.to_owned(), user.to_owned(), exchange.to_owned()),
                Arc::new(topic),
            );
        }
        for key in definitions.keys(Kind::Acl) {
            let Some(bytes) = definitions.get(Kind::Acl, &key) else {
                continue;
            };
            state
                .acls
                .push(DefinitionStore::decode_json(Kind::Acl, &key, &bytes)?);
        }
        let seeded: BTreeSet<String> = match definitions.get(Kind::Setting, SEEDED_KEY) {
            Some(bytes) => DefinitionStore::decode_json(Kind::Setting, SEEDED_KEY, &bytes)?,
            None => BTreeSet::new(),
        };
        let store = Self {
            definitions: Some(Arc::clone(definitions)),
            loopback_only: loopback_only.iter().cloned().collect(),
            state: RwLock::new(state),
            generation: AtomicU64::new(0),
            limiter: FailureLimiter::default(),
        };
        let mut now_seeded = seeded.clone();
        for config in seed.iter().filter(|c| !seeded.contains(&c.name)) {
            store.seed(config, vhosts)?;
            now_seeded.insert(config.name.clone());
        }
        if now_seeded != seeded {
            // Durable with the users it names: the journal keeps order, one sync covers all.
            let _pending = definitions.put_json(Kind::Setting, SEEDED_KEY, &now_seeded)?;
        }
        Ok(store)
    }

    /// A store that is not persisted, holding the given users.
    pub fn in_memory(users: &[UserConfig], loopback_only: &[String]) -> Result<Self, Error> {
        let store = Self {
            definitions: None,
            loopback_only: loopback_only.iter().cloned().collect(),
            state: RwLock::new(State::default()),
            generation: AtomicU64::new(0),
            limiter: FailureLimiter::default(),
        };
        let vhosts: Vec<String> = users
            .iter()
            .flat_map(|u| u.vhosts.iter().filter(|v| *v != "*").cloned())
            .collect();
        for config in users {
            store.seed(config, &vhosts)?;
        }
        Ok(store)
    }

    fn seed(&self, config: &UserConfig, vhosts: &[String]) -> Result<(), Error> {
        let _ = self.put_user(UserUpdate {
            name: config.name.clone(),
            credentials: Credentials::Password {
                password: config.password.clone(),
                algorithm: HashingAlgorithm::Sha256,
            },
            tags: Tags::new(config.tags.clone()),
        })?;
        let every = config.vhosts.iter().any(|v| v == "*");
        let targets: Vec<&String> = if every {
            vhosts.iter().collect()
        } else {
            config.vhosts.iter().collect()
        };
        for vhost in targets {
            let _ = self.set_permission(vhost, &config.name, Patterns::all())?;
        }
        tracing::info!(user = %config.name, "seeded a user from the configuration");
        Ok(())
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        let guard = self.state.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::Release);
        guard
    }

    /// Failed logins per client address (every frontend counts its failures here).
    pub fn limiter(&self) -> &FailureLimiter {
        &self.limiter
    }

    /// Changes with every change to users, permissions or ACLs (see [`DecisionCache`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Checks a name and password. `from_loopback` tells whether the peer is on loopback.
    pub fn authenticate(
        &self,
        name: &str,
        password: &str,
        from_loopback: bool,
    ) -> Result<Arc<User>, Error> {
        let refused = || Error::LoginRefused {
            user: name.to_owned(),
        };
        let user = self.user(name).ok_or_else(refused)?;
        if !user.hash.verify(password) {
            return Err(refused());
        }
        self.check_loopback(user, from_loopback)
    }

    /// A user the transport vouched for (a verified client certificate naming them): it must
    /// exist, and loopback-only users still log in from loopback only.
    pub fn authenticate_certified(
        &self,
        name: &str,
        from_loopback: bool,
    ) -> Result<Arc<User>, Error> {
        let user = self.user(name).ok_or_else(|| Error::LoginRefused {
            user: name.to_owned(),
        })?;
        self.check_loopback(user, from_loopback)
    }

    fn check_loopback(&self, user: Arc<User>, from_loopback: bool) -> Result<Arc<User>, Error> {
        if !from_loopback && self.loopback_only.contains(&user.name) {
            return Err(Error::LoopbackOnly {
                user: user.name.clone(),
            });
        }
        Ok(user)
    }

    pub fn is_loopback_only(&self, name: &str) -> bool {
        self.loopback_only.contains(name)
    }

    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.read().users.get(name).cloned()
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<Arc<User>> {
        self.read().users.values().cloned().collect()
    }

    /// Creates or replaces a user. Returns whether it was created, and the journal write to
    /// await (`None` for an in-memory store).
    pub fn put_user(&self, update: UserUpdate) -> Result<(bool, Option<Pending>), Error> {
        if update.name.is_empty() {
            return Err(Error::EmptyName);
        }
        // Derived outside the lock: PBKDF2 is deliberately slow.
        let (hash, scram) = match update.credentials {
            Credentials::Password {
                password,
                algorithm,
            } => {
                let mut scram = BTreeMap::new();
                for m in Mechanism::ALL {
                    scram.insert(
                        m,
                        ScramCredential::from_password(m, &password, DEFAULT_ITERATIONS)?,
                    );
                }
                (Some(PasswordHash::new(algorithm, &password)?), Some(scram))
            }
            // Credentials of another password would be stale.
            Credentials::Hash(hash) => (Some(hash), Some(BTreeMap::new())),
            Credentials::Unchanged => (None, None),
        };
        let mut state = self.write();
        let existing = state.users.get(&update.name).cloned();
        let user = User {
            name: update.name.clone(),
            hash: hash
                .or_else(|| existing.as_ref().map(|u| u.hash.clone()))
                .unwrap_or_else(PasswordHash::none),
            tags: update.tags,
            scram: scram
                .or_else(|| existing.as_ref().map(|u| u.scram.clone()))
                .unwrap_or_default(),
        };
        let pending = self.journal_user(&user)?;
        state.users.insert(update.name, Arc::new(user));
        Ok((existing.is_none(), pending))
    }

    fn journal_user(&self, user: &User) -> Result<Option<Pending>, Error> {
        match &self.definitions {
            Some(definitions) => Ok(Some(definitions.put_json(
                Kind::User,
                &user.name,
                &StoredUser::of(user),
            )?)),
            None => Ok(None),
        }
    }

    /// `name`'s SCRAM credential for `mechanism`, if it has one.
    pub fn scram_credential(&self, name: &str, mechanism: Mechanism) -> Option<ScramCredential> {
        self.read()
            .users
            .get(name)
            .and_then(|u| u.scram.get(&mechanism).cloned())
    }

    /// Sets (`Some`) or deletes (`None`) `name`'s SCRAM credential for `mechanism`, as
    /// AlterUserScramCredentials does. A user that does not exist is created without a
    /// password, tags or permissions (Kafka's SCRAM users are only names). Deleting a
    /// credential that does not exist is `Error::NoSuchUser`.
    pub fn set_scram(
        &self,
        name: &str,
        mechanism: Mechanism,
        credential: Option<ScramCredential>,
    ) -> Result<Option<Pending>, Error> {
        if name.is_empty() {
            return Err(Error::EmptyName);
        }
        let mut state = self.write();
        let mut user = match state.users.get(name) {
            Some(u) => (**u).clone(),
            None if credential.is_some() => User {
                name: name.to_owned(),
                hash: PasswordHash::none(),
                tags: Tags::default(),
                scram: BTreeMap::new(),
            },
            None => {
                return Err(Error::NoSuchUser {
                    user: name.to_owned(),
                });
            }
        };
        match credential {
            Some(c) => {
                user.scram.insert(mechanism, c);
            }
            None => {
                if user.scram.remove(&mechanism).is_none() {
                    return Err(Error::NoSuchUser {
                        user: name.to_owned(),
                    });
                }
            }
        }
        let pending = self.journal_user(&user)?;
        state.users.insert(name.to_owned(), Arc::new(user));
        Ok(pending)
    }

    /// Deletes a user and its permissions. `Ok(None)` if there was no such user.
    pub fn delete_user(&self, name: &str) -> Result<Option<Option<Pending>>, Error> {
        let mut state = self.write();
        if state.users.remove(name).is_none() {
            return Ok(None);
        }
        let keys: Vec<(String, String)> = state
            .permissions
            .keys()
            .filter(|(_, user)| user == name)
            .cloned()
            .collect();
        let mut pending = None;
        let topics: Vec<(String, String, String)> = state
            .topics
            .keys()
            .filter(|(_, user, _)| user == name)
            .cloned()
            .collect();
        for (vhost, user, exchange) in topics {
            state
                .topics
                .remove(&(vhost.clone(), user.clone(), exchange.clone()));
            if let Some(definitions) = &self.definitions {
                pending = definitions
                    .remove(Kind::TopicPermission, &topic_key(&vhost, &user, &exchange))?
                    .or(pending);
            }
        }
        for (vhost, user) in keys {
            state.permissions.remove(&(vhost.clone(), user.clone()));
            if let Some(definitions) = &self.definitions {
                pending = definitions
                    .remove(Kind::Permission, &permission_key(&vhost, &user))?
                    .or(pending);
            }
        }
        if let Some(definitions) = &self.definitions {
            pending = definitions.remove(Kind::User, name)?.or(pending);
        }
        Ok(Some(pending))
    }

    /// The permissions of `user` on `vhost`; `None` means no access to that vhost.
    pub fn permission(&self, vhost: &str, user: &str) -> Option<Arc<Permission>> {
        self.read()
            .permissions
            .get(&(vhost.to_owned(), user.to_owned()))
            .cloned()
    }

    /// Every permission, by vhost then user.
    pub fn permissions(&self) -> Vec<Arc<Permission>> {
        self.read().permissions.values().cloned().collect()
    }

    /// Sets `user`'s patterns on `vhost`; the user must exist. Returns whether the permission
    /// was new.
    pub fn set_permission(
        &self,
        vhost: &str,
        user: &str,
        patterns: Patterns,
    ) -> Result<(bool, Option<Pending>), Error> {
        let permission = Permission::new(user, vhost, patterns)?;
        let mut state = self.write();
        if !state.users.contains_key(user) {
            return Err(Error::NoSuchUser {
                user: user.to_owned(),
            });
        }
        let pending = match &self.definitions {
            Some(definitions) => Some(definitions.put_json(
                Kind::Permission,
                &permission_key(vhost, user),
                permission.patterns(),
            )?),
            None => None,
        };
        let created = state
            .permissions
            .insert((vhost.to_owned(), user.to_owned()), Arc::new(permission))
            .is_none();
        Ok((created, pending))
    }

    /// Removes `user`'s permissions on `vhost`. `Ok(None)` if it had none.
    pub fn clear_permission(
        &self,
        vhost: &str,
        user: &str,
    ) -> Result<Option<Option<Pending>>, Error> {
        let mut state = self.write();
        if state
            .permissions
            .remove(&(vhost.to_owned(), user.to_owned()))
            .is_none()
        {
            return Ok(None);
        }
        let pending = match &self.definitions {
            Some(definitions) => {
                definitions.remove(Kind::Permission, &permission_key(vhost, user))?
            }
            None => None,
        };
        Ok(Some(pending))
    }

    /// Every topic permission, by vhost, user and exchange.
    pub fn topic_permissions(&self) -> Vec<Arc<TopicPermission>> {
        self.read().topics.values().cloned().collect()
    }

    /// Sets `user`'s topic permission on `exchange` of `vhost`; the user must exist.
    /// Returns whether it was new.
    pub fn set_topic_permission(
        &self,
        vhost: &str,
        user: &str,
        exchange: &str,
        patterns: TopicPatterns,
    ) -> Result<(bool, Option<Pending>), Error> {
        let topic = TopicPermission::new(user, vhost, exchange, patterns)?;
        let mut state = self.write();
        if !state.users.contains_key(user) {
            return Err(Error::NoSuchUser {
                user: user.to_owned(),
            });
        }
        let pending = match &self.definitions {
            Some(definitions) => Some(definitions.put_json(
                Kind::TopicPermission,
                &topic_key(vhost, user, exchange),
                topic.patterns(),
            )?),
            None => None,
        };
        let created = state
            .topics
            .insert(
                (vhost.to_owned(), user.to_owned(), exchange.to_owned()),
                Arc::new(topic),
            )
            .is_none();
        Ok((created, pending))
    }

    /// Removes `user`'s topic permissions on `vhost` (one exchange's, or all with `None`).
    /// `Ok(None)` if there were none.
    pub fn clear_topic_permissions(
        &self,
        vhost: &str,
        user: &str,
        exchange: Option<&str>,
    ) -> Result<Option<Option<Pending>>, Error> {
        let mut state = self.write();
        let keys: Vec<(String, String, String)> = state
            .topics
            .keys()
            .filter(|(v, u, x)| v == vhost && u == user && exchange.is_none_or(|e| e == x))
            .cloned()
            .collect();
        if keys.is_empty() {
            return Ok(None);
        }
        let mut pending = None;
        for key in keys {
            state.topics.remove(&key);
            if let Some(definitions) = &self.definitions {
                pending = definitions
                    .remove(Kind::TopicPermission, &topic_key(&key.0, &key.1, &key.2))?
                    .or(pending);
            }
        }
        Ok(Some(pending))
    }

    /// Whether `user` may do `action` to the queue or exchange `name` of `vhost`.
    pub fn authorize(
        &self,
        user: &str,
        vhost: &str,
        kind: ResourceType,
        name: &str,
        action: Action,
    ) -> Result<(), Refusal> {
        let allowed = self.permission(vhost, user).is_some_and(|p| match action {
            Action::Configure => p.can_configure(name),
            Action::Write => p.can_write(name),
            Action::Read => p.can_read(name),
        });
        if allowed {
            Ok(())
        } else {
            Err(Refusal::resource(kind, name, vhost, user))
        }
    }

    /// Whether `user` may publish (Write) or bind (Read) with routing key `key` on topic
    /// exchange `exchange`: yes unless a topic permission for that exchange says no.
    pub fn authorize_topic(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        key: &str,
        action: Action,
    ) -> Result<(), Refusal> {
        let topic = self
            .read()
            .topics
            .get(&(vhost.to_owned(), user.to_owned(), exchange.to_owned()))
            .cloned();
        match topic {
            Some(t) if !t.allows(action, key) => Err(Refusal::topic(key, exchange, vhost, user)),
            _ => Ok(()),
        }
    }

    /// Whether any topic permission exists for `user` on `vhost` (publishers skip the check
    /// entirely when none does).
    pub fn has_topic_permissions(&self, user: &str, vhost: &str) -> bool {
        self.read()
            .topics
            .keys()
            .any(|(v, u, _)| v == vhost && u == user)
    }
    /// Removes every permission on `vhost` (the vhost was deleted).
    pub fn clear_vhost(&self, vhost: &str) -> Result<(), Error> {
        let users: Vec<String> = self
            .read()
            .permissions
            .keys()
            .filter(|(v, _)| v == vhost)
            .map(|(_, u)| u.clone())
            .collect();
        for user in users {
            let _ = self.clear_permission(vhost, &user)?;
        }
        let topic_users: Vec<String> = self
            .read()
            .topics
            .keys()
            .filter(|(v, _, _)| v == vhost)
            .map(|(_, u, _)| u.clone())
            .collect();
        for user in topic_users {
            let _ = self.clear_topic_permissions(vhost, &user, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
