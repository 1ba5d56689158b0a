//! Runs the real `ferrymq` binary for black-box tests: ports 0, a temporary data directory,
//! the ready line parsed from stderr with a bounded wait.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support code: any failure here should fail the test"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// Generous for a loaded CI machine; a healthy start takes milliseconds.
pub const STARTUP: Duration = Duration::from_secs(20);

/// `ferrymq` with no inherited `FERRYMQ_*` variables (they would change what is tested).
pub fn ferrymq() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrymq"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FERRYMQ_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Arguments binding every listener to a free loopback port and using `dir` for data.
pub fn local_args(dir: &Path) -> Vec<String> {
    let mut args: Vec<String> = ["--amqp-listen", "--kafka-listen", "--http-listen"]
        .iter()
        .flat_map(|flag| [flag.to_string(), "127.0.0.1:0".to_string()])
        .collect();
    args.extend(["--data-dir".to_string(), dir.display().to_string()]);
    args
}

/// A running broker.
pub struct Broker {
    pub pid: u32,
    pub amqp: SocketAddr,
    pub kafka: SocketAddr,
    pub http: SocketAddr,
    /// Every stderr line read so far, up to and including the ready line.
    pub startup_log: Vec<String>,
    pub startup_time: Duration,
    lines: Receiver<String>,
    exit: Receiver<ExitStatus>,
    exited: bool,
}

impl Broker {
    /// Starts `cmd` (already given its arguments) and waits for the ready line.
    pub fn start(mut cmd: Command) -> Broker {
        let started = Instant::now();
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let lines = forward_lines(child.stderr.take().unwrap());
        let exit = wait_in_background(child);
        let mut startup_log = Vec::new();
        let deadline = started + STARTUP;
        let ready = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    startup_log.push(line.clone());
                    if let Some(at) = line.find("ferrymq ready ") {
                        break line[at..].to_owned();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no ready line within {STARTUP:?}: {startup_log:#?}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("ferrymq exited before ready: {startup_log:#?}")
                }
            }
        };
        let startup_time = started.elapsed();
        let addr = |name: &str| -> SocketAddr {
            let prefix = format!("{name}=");
            // The address ends where its characters do (in JSON a quote follows the last one).
            let word = ready
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&prefix));
            let addr = word.map(|w| {
                w.split(|c: char| !(c.is_ascii_hexdigit() || ".:[]".contains(c)))
                    .next()
            });
            addr.flatten()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {name}= address in {ready:?}"))
        };
        Broker {
            pid,
            amqp: addr("amqp"),
            kafka: addr("kafka"),
            http: addr("http"),
            startup_log,
            startup_time,
            lines,
            exit,
            exited: false,
        }
    }

    /// Sends `signal` and waits at most `within` for the exit; returns the status, the time it
    /// took and the log lines after the ready line.
    pub fn stop(
        &mut self,
        signal: rustix::process::Signal,
        within: Duration,
    ) -> (ExitStatus, Duration, Vec<String>) {
        let sent = Instant::now();
        send(self.pid, signal);
        let status = self
            .exit
            .recv_timeout(within)
            .unwrap_or_else(|_| panic!("no exit within {within:?}"));
        self.exited = true;
        let took = sent.elapsed();
        // stderr closes with the process; collect what the reader thread has yet to pass on.
        let mut log = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(within) {
            log.push(line);
        }
        (status, took, log)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if !self.exited && self.exit.try_recv().is_err() {
            send(self.pid, rustix::process::Signal::KILL);
        }
    }
}

fn send(pid: u32, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

fn forward_lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_in_background(mut child: Child) -> Receiver<ExitStatus> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = tx.send(status);
        }
    });
    rx
}

/// One HTTP/1.1 request over a raw socket; the whole response as text.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Runs `cmd` to completion with a bounded wait; (status, stdout, stderr).
pub fn run(mut cmd: Command) -> (ExitStatus, String, String) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(STARTUP)
        .expect("ferrymq did not exit in time")
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (output.status, text(output.stdout), text(output.stderr))
}

/// `--print-config` appended to `cmd`, run, and its output parsed.
pub fn print_config(cmd: &mut Command) -> toml::Table {
    cmd.arg("--print-config");
    let (status, stdout, stderr) = run(std::mem::replace(cmd, ferrymq()));
    assert!(status.success(), "{stderr}");
    toml::from_str(&stdout).unwrap()
}

/// A `section.key` of a printed config.
pub fn get<'a>(table: &'a toml::Table, path: &str) -> &'a toml::Value {
    let (section, key) = path.split_once('.').unwrap();
    &table[section][key]
}

/// A temporary TOML file holding `text`.
pub fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}
