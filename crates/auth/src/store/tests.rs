use super::*;
use ferrymq_log::LogConfig;

fn open_store(dir: &std::path::Path, seed: &[UserConfig]) -> (UserStore, Arc<DefinitionStore>) {
    let (definitions, _) = DefinitionStore::open(dir, &LogConfig::default()).unwrap();
    let definitions = Arc::new(definitions);
    let store = UserStore::open(
        &definitions,
        seed,
        &["guest".to_owned()],
        &["/".to_owned(), "other".to_owned()],
    )
    .unwrap();
    (store, definitions)
}

#[test]
fn guest_is_loopback_only_and_passwords_must_match() {
    let store = UserStore::in_memory(
        &[
            UserConfig::new("guest", "guest", &["/"]),
            UserConfig::new("admin", "pw", &["*"]),
        ],
        &["guest".to_owned()],
    )
    .unwrap();
    assert!(store.authenticate("guest", "guest", true).is_ok());
    assert!(matches!(
        store.authenticate("guest", "guest", false),
        Err(Error::LoopbackOnly { .. })
    ));
    assert!(matches!(
        store.authenticate("guest", "gues", true),
        Err(Error::LoginRefused { .. })
    ));
    assert!(matches!(
        store.authenticate("nobody", "", true),
        Err(Error::LoginRefused { .. })
    ));
    assert!(store.permission("/", "admin").is_some());
    assert!(store.permission("other", "guest").is_none());
}

#[test]
fn users_and_permissions_survive_a_reopen_and_seeding_happens_once() {
    let dir = tempfile::tempdir().unwrap();
    let seed = [UserConfig::new("guest", "guest", &["*"]).with_tags(&["administrator"])];
    {
        let (store, definitions) = open_store(dir.path(), &seed);
        assert!(store.permission("other", "guest").is_some());
        store
            .put_user(UserUpdate {
                name: "app".into(),
                credentials: Credentials::Password {
                    password: "pw".into(),
                    algorithm: HashingAlgorithm::Sha512,
                },
                tags: Tags::parse("monitoring"),
            })
            .unwrap();
        store.set_permission("/", "app", Patterns::all()).unwrap();
        assert!(store.delete_user("guest").unwrap().is_some());
        definitions.flush().unwrap();
    }
    let (store, _) = open_store(dir.path(), &seed);
    // guest was seeded before and deleted since: it stays deleted.
    assert!(store.user("guest").is_none());
    assert!(store.permission("/", "guest").is_none());
    let app = store.authenticate("app", "pw", false).unwrap();
    assert!(app.tags.is_monitor());
    assert_eq!(app.hash.algorithm(), HashingAlgorithm::Sha512);
    assert!(store.permission("/", "app").is_some());
}

#[test]
fn authorisation_follows_the_patterns_and_topic_permissions_persist() {
    let dir = tempfile::tempdir().unwrap();
    let seed = [UserConfig::new("u", "pw", &[])];
    {
        let (store, definitions) = open_store(dir.path(), &seed);
        let patterns = Patterns {
            configure: "^cfg\\.".into(),
            write: "".into(),
            read: ".*".into(),
        };
        store.set_permission("/", "u", patterns).unwrap();
        let q = ResourceType::Queue;
        assert!(
            store
                .authorize("u", "/", q, "cfg.a", Action::Configure)
                .is_ok()
        );
        let refused = store
            .authorize("u", "/", q, "a", Action::Configure)
            .unwrap_err();
        assert_eq!(
            refused.text,
            "access to queue 'a' in vhost '/' refused for user 'u'"
        );
        assert!(
            store
                .authorize("u", "/", ResourceType::Exchange, "", Action::Write)
                .is_ok()
        );
        assert!(
            store
                .authorize("u", "other", q, "cfg.a", Action::Read)
                .is_err()
        );
        assert!(!store.has_topic_permissions("u", "/"));
        let topic = TopicPatterns {
            write: "^a\\.".into(),
            read: ".*".into(),
        };
        store
            .set_topic_permission("/", "u", "amq.topic", topic)
            .unwrap();
        definitions.flush().unwrap();
    }
    let (store, _) = open_store(dir.path(), &seed);
    assert!(store.has_topic_permissions("u", "/"));
    assert!(
        store
            .authorize_topic("u", "/", "amq.topic", "a.b", Action::Write)
            .is_ok()
    );
    assert!(
        store
            .authorize_topic("u", "/", "amq.topic", "b.b", Action::Write)
            .is_err()
    );
    assert!(
        store
            .authorize_topic("u", "/", "other", "b.b", Action::Write)
            .is_ok()
    );
    store.clear_vhost("/").unwrap();
    assert!(store.topic_permissions().is_empty());
}

#[test]
fn a_permission_needs_a_user_and_updates_keep_the_password() {
    let store = UserStore::in_memory(&[UserConfig::new("u", "pw", &["/"])], &[]).unwrap();
    assert!(matches!(
        store.set_permission("/", "ghost", Patterns::all()),
        Err(Error::NoSuchUser { .. })
    ));
    let (created, _) = store
        .put_user(UserUpdate {
            name: "u".into(),
            credentials: Credentials::Unchanged,
            tags: Tags::parse("management"),
        })
        .unwrap();
    assert!(!created);
    assert!(store.authenticate("u", "pw", false).is_ok());
    store.clear_vhost("/").unwrap();
    assert!(store.permission("/", "u").is_none());
    assert!(store.clear_permission("/", "u").unwrap().is_none());
}
