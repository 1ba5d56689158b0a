//! Unit tests of configuration layering: the generic machinery on a small schema, then the
//! real [`Config`](super::Config).

mod layering {
    use std::collections::BTreeMap;
    use std::ffi::OsString;

    use serde::{Deserialize, Serialize};
    use toml::Value;

    use crate::config::layers::{Layers, Origin};

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Root {
        a: Section,
        tags: BTreeMap<String, String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Section {
        name: String,
        count: u32,
        on: bool,
        ratio: f64,
        list: Vec<u16>,
    }

    impl Default for Section {
        fn default() -> Self {
            Self {
                name: "x".into(),
                count: 1,
                on: false,
                ratio: 0.5,
                list: vec![1],
            }
        }
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn env_names_come_from_the_serialized_defaults() {
        let layers = Layers::new(&Root::default()).unwrap();
        let names: Vec<String> = layers.env_names().into_iter().map(|(_, env)| env).collect();
        assert_eq!(
            names,
            [
                "FERRYMQ_A_COUNT",
                "FERRYMQ_A_LIST",
                "FERRYMQ_A_NAME",
                "FERRYMQ_A_ON",
                "FERRYMQ_A_RATIO",
                "FERRYMQ_TAGS"
            ]
        );
    }

    #[test]
    fn env_values_take_each_default_type() {
        let mut layers = Layers::new(&Root::default()).unwrap();
        let vars = [
            ("FERRYMQ_A_NAME", " spaced "),
            ("FERRYMQ_A_COUNT", "7"),
            ("FERRYMQ_A_ON", "TRUE"),
            ("FERRYMQ_A_RATIO", "0.25"),
            ("FERRYMQ_A_LIST", "[3, 4]"),
            ("FERRYMQ_TAGS", "{ k = \"v\" }"),
        ];
        layers.env(env(&vars)).unwrap();
        let root: Root = layers.finish().unwrap();
        let want = Section {
            name: " spaced ".into(),
            count: 7,
            on: true,
            ratio: 0.25,
            list: vec![3, 4],
        };
        assert_eq!(root.a, want);
        assert_eq!(root.tags.get("k").map(String::as_str), Some("v"));
        assert_eq!(
            layers.origin("a.count"),
            Origin::Env("FERRYMQ_A_COUNT".into())
        );
        assert_eq!(
            layers.origin("a.name"),
            Origin::Env("FERRYMQ_A_NAME".into())
        );
    }

    #[test]
    fn empty_default_tables_are_free_form_maps() {
        let mut layers = Layers::new(&Root::default()).unwrap();
        layers
            .toml("[tags]\nteam = \"core\"\n", &Origin::Default)
            .unwrap();
        layers
            .toml("[tags]\nenv = \"prod\"\n", &Origin::Flag("--x"))
            .unwrap();
        let root: Root = layers.finish().unwrap();
        assert_eq!(root.tags.len(), 2, "later layers add to a map");
    }

    #[test]
    fn set_checks_the_key_and_records_the_origin() {
        let mut layers = Layers::new(&Root::default()).unwrap();
        layers
            .set("a.count", Value::Integer(9), &Origin::Flag("--count"))
            .unwrap();
        assert_eq!(layers.origin("a.count"), Origin::Flag("--count"));
        assert_eq!(layers.origin("a.name"), Origin::Default);
        let err = layers
            .set("a.cnt", Value::Integer(9), &Origin::Flag("--cnt"))
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown config key `a.cnt`"),
            "{err:#}"
        );
        layers
            .set("a.count", Value::Integer(-1), &Origin::Flag("--count"))
            .unwrap();
        let err = layers.finish::<Root>().unwrap_err().to_string();
        assert!(err.contains("`a.count` (from flag --count)"), "{err}");
    }
}

mod load {
    use std::ffi::OsString;
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use crate::config::layers::Override;
    use ferrymq_core::FsyncMode;

    use crate::config::{Config, HttpConfig, StorageConfig};

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn flag(key: &'static str, flag: &'static str, value: &str) -> Override {
        Override {
            key,
            flag,
            value: toml::Value::String(value.to_owned()),
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn load_err(file: Option<&Path>, vars: &[(&str, &str)]) -> String {
        format!("{:#}", Config::load(file, env(vars), vec![]).unwrap_err())
    }

    #[test]
    fn nothing_given_is_the_defaults() {
        let loaded = Config::load(None, [], vec![]).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let f = file(
            "[amqp]\nlisten = \"10.0.0.1:1\"\nheartbeat = 30\n\
             [kafka]\nlisten = \"10.0.0.1:2\"\n[storage]\ndata_dir = \"/file\"\n",
        );
        let vars = [
            ("FERRYMQ_AMQP_LISTEN", "10.0.0.2:1"),
            ("FERRYMQ_STORAGE_DATA_DIR", "/env"),
            ("FERRYMQ_AMQP_CHANNEL_MAX", "9"),
            ("PATH", "/bin"),
        ];
        let flags = vec![flag("amqp.listen", "--amqp-listen", "10.0.0.3:1")];
        let c = Config::load(Some(f.path()), env(&vars), flags)
            .unwrap()
            .config;
        assert_eq!(c.amqp.listen.to_string(), "10.0.0.3:1"); // flag > env > file
        assert_eq!(c.storage.data_dir, PathBuf::from("/env")); // env > file
        assert_eq!(c.kafka.listen.to_string(), "10.0.0.1:2"); // file > default
        assert_eq!(c.amqp.heartbeat, 30); // file, sibling keys kept
        assert_eq!(c.amqp.channel_max, 9); // env parsed as an integer
        assert_eq!(c.http, HttpConfig::default()); // untouched section
        assert_eq!(c.amqp.frame_max, 131_072); // untouched key of a touched section
    }

    #[test]
    fn env_values_are_parsed_by_the_default_type() {
        let c = Config::load(
            None,
            env(&[
                ("FERRYMQ_STORAGE_FSYNC", "never"),
                ("FERRYMQ_KAFKA_MAX_REQUEST_BYTES", " 2048 "),
            ]),
            vec![],
        )
        .unwrap()
        .config;
        assert_eq!(c.storage.fsync, FsyncMode::Never);
        assert_eq!(c.kafka.max_request_bytes, 2048);
        let err = load_err(None, &[("FERRYMQ_AMQP_HEARTBEAT", "sixty")]);
        assert!(
            err.contains("FERRYMQ_AMQP_HEARTBEAT") && err.contains("integer"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_and_variables_are_errors_naming_them() {
        let f = file("[amqp]\nlisten = \"0.0.0.0:5672\"\nheartbeats = 5\n");
        let err = load_err(Some(f.path()), &[]);
        assert!(
            err.contains("`amqp.heartbeats`") && err.contains(&f.path().display().to_string()),
            "{err}"
        );
        let f = file("[rabbitmq]\nx = 1\n");
        assert!(load_err(Some(f.path()), &[]).contains("`rabbitmq`"));
        let f = file("amqp = 5\n");
        assert!(load_err(Some(f.path()), &[]).contains("`amqp` must be a table"));
        let f = file("[amqp.listen]\nport = 1\n");
        assert!(load_err(Some(f.path()), &[]).contains("`amqp.listen` must be a value"));
        let err = load_err(None, &[("FERRYMQ_AMQP_LISTN", "x")]);
        assert!(
            err.contains("unknown environment variable FERRYMQ_AMQP_LISTN"),
            "{err}"
        );
        let err = load_err(None, &[("FERRYMQ_LOG", "debug")]);
        assert!(err.contains("no key of [log]"), "{err}");
    }

    #[test]
    fn a_mistyped_variable_is_told_the_nearest_key() {
        let err = Config::load(None, env(&[("FERRYMQ_AMQP_HEARTBAET", "5")]), vec![])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did you mean FERRYMQ_AMQP_HEARTBEAT?"),
            "{err}"
        );
        let loaded = Config::load(None, env(&[("FERRYMQ_AMPQ_HEARTBEAT", "5")]), vec![]).unwrap();
        assert!(
            loaded.warnings[0].contains("did you mean FERRYMQ_AMQP_HEARTBEAT?"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn variables_outside_every_section_are_ignored_with_a_warning() {
        // --config's own variable is not a key, and says nothing.
        let loaded = Config::load(None, env(&[("FERRYMQ_CONFIG", "/x.toml")]), vec![]).unwrap();
        assert!(loaded.warnings.is_empty());
        // A variable of no section, such as a tool's.
        let vars = [
            ("FERRYMQ_BIN", "/x/ferrymq"),
            ("FERRYMQ_AMQP_HEARTBEAT", "5"),
        ];
        let loaded = Config::load(None, env(&vars), vec![]).unwrap();
        assert_eq!(loaded.config.amqp.heartbeat, 5);
        assert_eq!(loaded.warnings.len(), 1);
        assert!(
            loaded.warnings[0].contains("FERRYMQ_BIN"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn invalid_values_name_the_key_and_where_it_came_from() {
        let f = file("[amqp]\nlisten = \"localhost\"\n");
        let err = load_err(Some(f.path()), &[]);
        assert!(
            err.contains("`amqp.listen`") && err.contains("config file"),
            "{err}"
        );
        let f = file("[amqp]\nheartbeat = \"60\"\n");
        let err = load_err(Some(f.path()), &[]);
        assert!(
            err.contains("`amqp.heartbeat`") && err.contains("invalid type"),
            "{err}"
        );
        let err = load_err(None, &[("FERRYMQ_AMQP_CHANNEL_MAX", "70000")]);
        assert!(
            err.contains("`amqp.channel_max`") && err.contains("FERRYMQ_AMQP_CHANNEL_MAX"),
            "{err}"
        );
        let err = load_err(None, &[("FERRYMQ_STORAGE_FSYNC", "sometimes")]);
        assert!(
            err.contains("`storage.fsync`") && err.contains("always"),
            "{err}"
        );
        // Semantic checks after deserializing also say where the value came from.
        let err = load_err(None, &[("FERRYMQ_AMQP_FRAME_MAX", "100")]);
        assert!(
            err.contains("`amqp.frame_max`") && err.contains("FERRYMQ_AMQP_FRAME_MAX"),
            "{err}"
        );
        let f = file("not toml [");
        assert!(load_err(Some(f.path()), &[]).contains("TOML"));
        let missing = Path::new("/nonexistent/ferrymq.toml");
        assert!(load_err(Some(missing), &[]).contains("/nonexistent/ferrymq.toml"));
    }

    #[test]
    fn the_shipped_config_file_lists_every_key_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/ferrymq.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // Same tree, not just the same result: a key missing from the file fails here.
        let shipped: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(shipped, toml::Table::try_from(Config::default()).unwrap());
        assert_eq!(
            Config::load(Some(&path), [], vec![]).unwrap().config,
            Config::default()
        );
    }

    #[test]
    fn storage_has_every_key_of_the_core_storage_config() {
        let core = toml::Table::try_from(ferrymq_core::StorageConfig::default()).unwrap();
        let ours = toml::Table::try_from(StorageConfig::default()).unwrap();
        for (key, value) in &core {
            assert_eq!(
                ours.get(key),
                Some(value),
                "[storage] lacks core's `{key}` or its default"
            );
        }
        let storage = StorageConfig {
            fsync: FsyncMode::Never,
            segment_bytes: 4096,
            ..StorageConfig::default()
        };
        let broker = storage.broker_config();
        assert_eq!(broker.data_dir, storage.data_dir);
        let back = toml::Table::try_from(&broker.storage).unwrap();
        assert_eq!(back.get("fsync").and_then(|v| v.as_str()), Some("never"));
        assert_eq!(
            back.get("segment_bytes").and_then(toml::Value::as_integer),
            Some(4096)
        );
    }
}
