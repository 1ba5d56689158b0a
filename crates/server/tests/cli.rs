//! The command line: --version, --print-config, layering and configuration errors.

mod common;

use common::{config_file, ferrymq, get, print_config, run};

#[test]
fn version_prints_the_crate_version() {
    let mut cmd = ferrymq();
    cmd.arg("--version");
    let (status, stdout, _) = run(cmd);
    assert!(status.success());
    assert_eq!(
        stdout.trim(),
        format!("ferrymq {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn print_config_without_input_is_the_documented_defaults() {
    let shipped: toml::Table =
        toml::from_str(include_str!("../../../config/ferrymq.toml")).unwrap();
    let printed = print_config(&mut ferrymq());
    assert_eq!(printed, shipped);
    assert_eq!(get(&printed, "amqp.listen").as_str(), Some("0.0.0.0:5672"));
    assert_eq!(get(&printed, "kafka.listen").as_str(), Some("0.0.0.0:9092"));
    assert_eq!(get(&printed, "http.listen").as_str(), Some("0.0.0.0:15672"));
    assert_eq!(get(&printed, "storage.data_dir").as_str(), Some("./data"));
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let file = config_file(
        "[amqp]\nlisten = \"10.0.0.1:5672\"\n[kafka]\nlisten = \"10.0.0.1:9092\"\n\
         [storage]\ndata_dir = \"/from-file\"\n[log]\nlevel = \"warn\"\n",
    );
    let mut cmd = ferrymq();
    cmd.arg("--config").arg(file.path());
    cmd.env("FERRYMQ_AMQP_LISTEN", "10.0.0.2:5672");
    cmd.env("FERRYMQ_STORAGE_DATA_DIR", "/from-env");
    cmd.env("FERRYMQ_KAFKA_ADVERTISED", "kafka.example:19092");
    cmd.args([
        "--amqp-listen",
        "10.0.0.3:5672",
        "--kafka-advertised",
        "flag.example",
    ]);
    let printed = print_config(&mut cmd);
    assert_eq!(get(&printed, "amqp.listen").as_str(), Some("10.0.0.3:5672")); // flag > env > file
    assert_eq!(
        get(&printed, "kafka.advertised").as_str(),
        Some("flag.example")
    ); // flag > env
    assert_eq!(
        get(&printed, "storage.data_dir").as_str(),
        Some("/from-env")
    ); // env > file
    assert_eq!(
        get(&printed, "kafka.listen").as_str(),
        Some("10.0.0.1:9092")
    ); // file > default
    assert_eq!(get(&printed, "log.level").as_str(), Some("warn")); // file > default
    assert_eq!(get(&printed, "http.listen").as_str(), Some("0.0.0.0:15672")); // default
}

#[test]
fn the_config_file_can_come_from_ferrymq_config() {
    let file = config_file("[http]\nmax_connections = 7\n");
    let mut cmd = ferrymq();
    cmd.env("FERRYMQ_CONFIG", file.path());
    assert_eq!(
        get(&print_config(&mut cmd), "http.max_connections").as_integer(),
        Some(7)
    );
}

#[test]
fn an_unknown_key_in_the_file_is_an_error_naming_it() {
    let file = config_file("[kafka]\nlisten = \"0.0.0.0:9092\"\nmax_request_size = 5\n");
    let mut cmd = ferrymq();
    cmd.arg("--config").arg(file.path()).arg("--print-config");
    let (status, stdout, stderr) = run(cmd);
    assert_eq!(status.code(), Some(2));
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("unknown config key `kafka.max_request_size`"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&file.path().display().to_string()),
        "{stderr}"
    );
}

#[test]
fn an_unknown_ferrymq_variable_is_an_error_naming_it() {
    let mut cmd = ferrymq();
    cmd.env("FERRYMQ_AMQP_LISTENER", "0.0.0.0:1")
        .arg("--print-config");
    let (status, _, stderr) = run(cmd);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("FERRYMQ_AMQP_LISTENER"), "{stderr}");
}

#[test]
fn a_ferrymq_variable_outside_every_section_only_warns() {
    let mut cmd = ferrymq();
    cmd.env("FERRYMQ_BIN", "/somewhere/ferrymq")
        .arg("--print-config");
    let (status, stdout, stderr) = run(cmd);
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("[amqp]"));
    assert!(
        stderr.contains("warning") && stderr.contains("FERRYMQ_BIN"),
        "{stderr}"
    );
}

#[test]
fn invalid_values_are_clear_errors() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case<'_>; 6] = [
        (
            &["--amqp-listen", "nowhere"],
            &[],
            &["--amqp-listen", "nowhere"],
        ),
        (&["--log-format", "xml"], &[], &["--log-format", "xml"]),
        (
            &["--log-level", "chatty"],
            &[],
            &["log.level", "--log-level"],
        ),
        (
            &["--kafka-advertised", "host:99999"],
            &[],
            &["kafka.advertised", "99999"],
        ),
        (
            &[],
            &[("FERRYMQ_AMQP_HEARTBEAT", "soon")],
            &["FERRYMQ_AMQP_HEARTBEAT", "integer"],
        ),
        (
            &[],
            &[("FERRYMQ_STORAGE_FSYNC", "sometimes")],
            &["storage.fsync", "sometimes"],
        ),
    ];
    for (args, vars, wanted) in cases {
        let mut cmd = ferrymq();
        cmd.args(args)
            .envs(vars.iter().copied())
            .arg("--print-config");
        let (status, stdout, stderr) = run(cmd);
        assert_eq!(status.code(), Some(2), "{args:?} {vars:?}: {stderr}");
        assert!(stdout.is_empty());
        for word in wanted {
            assert!(
                stderr.contains(word),
                "{args:?} {vars:?}: {stderr:?} lacks {word:?}"
            );
        }
    }
}
