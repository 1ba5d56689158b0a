//! The running broker: ready line, health check, data-directory lock, signals.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::{Broker, ferrymq, http_get, local_args, run};
use rustix::process::Signal;

/// "Within a few seconds" of the issue, with room for a slow CI machine.
const PROMPT_EXIT: Duration = Duration::from_secs(5);

fn start(dir: &std::path::Path, extra: &[&str]) -> Broker {
    let mut cmd = ferrymq();
    cmd.args(local_args(dir)).args(extra);
    Broker::start(cmd)
}

#[test]
fn ready_line_reports_real_ports_and_healthz_answers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path(), &[]);
    for addr in [broker.amqp, broker.kafka, broker.http] {
        assert_eq!(addr.ip().to_string(), "127.0.0.1");
        assert_ne!(addr.port(), 0, "the ready line must carry the bound port");
    }
    let ready: Vec<_> = broker
        .startup_log
        .iter()
        .filter(|l| l.contains("ferrymq ready"))
        .collect();
    assert_eq!(ready.len(), 1);
    let expected = format!(
        "ferrymq ready amqp={} kafka={} http={}",
        broker.amqp, broker.kafka, broker.http
    );
    assert!(ready[0].contains(&expected), "{}", ready[0]);
    println!("ready after {:?}", broker.startup_time);

    let response = http_get(broker.http, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\nok"), "{response}");
    let response = http_get(broker.http, "/does-not-exist");
    assert!(response.starts_with("HTTP/1.1 404 "), "{response}");

    // The protocol listeners accept TCP connections.
    TcpStream::connect(broker.amqp).unwrap();
    TcpStream::connect(broker.kafka).unwrap();
    assert!(dir.path().join("LOCK").exists());
}

#[test]
fn the_ready_line_is_logged_even_when_info_is_filtered_out_and_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(
        dir.path(),
        &["--log-level", "error", "--log-format", "json"],
    );
    assert_eq!(
        broker.startup_log.len(),
        1,
        "only the ready line passes the filter: {:?}",
        broker.startup_log
    );
    let line = &broker.startup_log[0];
    assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
    assert!(
        line.contains(&format!(
            "\"message\":\"ferrymq ready amqp={} kafka={} http={}\"",
            broker.amqp, broker.kafka, broker.http
        )),
        "{line}"
    );
}

#[test]
fn a_second_instance_on_the_same_data_dir_exits_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path(), &[]);
    let mut second = ferrymq();
    second.args(local_args(dir.path()));
    let (status, _, stderr) = run(second);
    assert!(!status.success(), "second instance must fail");
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains(&format!("pid {}", first.pid)), "{stderr}");
    assert!(stderr.contains("in use by another ferrymq"), "{stderr}");
    // The first is unaffected.
    assert!(http_get(first.http, "/healthz").starts_with("HTTP/1.1 200"));
}

#[test]
fn sigterm_and_sigint_exit_zero_promptly_and_release_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    for signal in [Signal::TERM, Signal::INT] {
        let mut broker = start(dir.path(), &[]);
        // An open idle connection must not hold up the shutdown.
        let _idle = TcpStream::connect(broker.http).unwrap();
        let (status, took, log) = broker.stop(signal, PROMPT_EXIT);
        assert_eq!(status.code(), Some(0), "{log:#?}");
        assert!(took < PROMPT_EXIT, "{took:?}");
        assert!(
            log.iter().any(|l| l.contains("ferrymq stopped")),
            "{log:#?}"
        );
        assert!(TcpStream::connect(broker.http).is_err(), "listener closed");
        // The lock went with the process: the next iteration starts on the same directory.
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ferrymq();
    cmd.args([
        "--amqp-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--kafka-listen",
        &addr,
    ]);
    cmd.arg("--data-dir").arg(dir.path());
    let (status, _, stderr) = run(cmd);
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains(&format!("cannot listen for kafka on {addr}")),
        "{stderr}"
    );
}
