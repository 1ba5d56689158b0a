//! What a run prints: the progress line (stderr), the summary line (stdout) and the JSON.
//!
//! MB are 10^6 bytes of message payload (AMQP body, Kafka value); protocol framing is not
//! counted. Latency is shown in milliseconds.

use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::Counts;

#[derive(Serialize, Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub messages: u64,
    pub msgs_per_sec: f64,
    pub mb_per_sec: f64,
}

impl Rate {
    pub fn new(messages: u64, bytes: u64, elapsed: Duration) -> Rate {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Rate {
            messages,
            msgs_per_sec: messages as f64 / secs,
            mb_per_sec: bytes as f64 / secs / 1e6,
        }
    }
}

#[derive(Serialize, Clone, Copy, Debug)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    /// From a histogram of microseconds; None if it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        })
    }
}

#[derive(Serialize, Clone, Copy, Debug)]
pub struct RssFigures {
    pub start_mib: f64,
    pub max_mib: f64,
    pub end_mib: f64,
    /// Largest anonymous RSS (heap), without mapped file pages.
    pub anon_max_mib: f64,
}

impl RssFigures {
    pub fn new((first, max, last, anon_max): (u64, u64, u64, u64)) -> RssFigures {
        RssFigures {
            start_mib: mib(first),
            max_mib: mib(max),
            end_mib: mib(last),
            anon_max_mib: mib(anon_max),
        }
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The result of one measured run.
#[derive(Serialize, Debug)]
pub struct Report {
    pub label: String,
    pub protocol: &'static str,
    /// Length of the measured window.
    pub seconds: f64,
    pub publish: Rate,
    pub consume: Rate,
    pub latency: Option<Percentiles>,
    pub broker_rss: Option<RssFigures>,
    pub errors: u64,
    /// CPU the broker used during the window, in cores (CPU seconds per second).
    pub broker_cpu_cores: Option<f64>,
    /// CPU this client process used during the window, in cores.
    pub client_cpu_cores: Option<f64>,
    /// Scenario-specific figures (e.g. the backlog fill rate).
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// The settings the run used.
    pub settings: serde_json::Value,
}

impl Report {
    pub fn summary(&self) -> String {
        let mut s = format!("{}: {:.2} s", self.label, self.seconds);
        if self.publish.messages > 0 {
            s += &format!(
                " | pub {:.0} msg/s {:.1} MB/s",
                self.publish.msgs_per_sec, self.publish.mb_per_sec
            );
        }
        if self.consume.messages > 0 {
            s += &format!(
                " | cons {:.0} msg/s {:.1} MB/s",
                self.consume.msgs_per_sec, self.consume.mb_per_sec
            );
        }
        if let Some(l) = &self.latency {
            s += &format!(
                " | latency ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
                l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
            );
        }
        if let Some(r) = &self.broker_rss {
            s += &format!(
                " | broker rss {:.1} MiB (max {:.1}, anon max {:.1})",
                r.end_mib, r.max_mib, r.anon_max_mib
            );
        }
        if let Some(c) = self.broker_cpu_cores {
            s += &format!(" | broker cpu {c:.2}");
        }
        if let Some(c) = self.client_cpu_cores {
            s += &format!(" | client cpu {c:.2}");
        }
        for (k, v) in &self.extra {
            s += &format!(" | {k} {v}");
        }
        s += &format!(" | errors {}", self.errors);
        s
    }
}

/// What the binary prints at the end.
pub struct Output {
    pub summary: String,
    pub json: serde_json::Value,
    pub json_path: Option<String>,
}

impl Output {
    pub fn from_report(report: &Report, json_path: Option<String>) -> anyhow::Result<Output> {
        Ok(Output {
            summary: report.summary(),
            json: serde_json::to_value(report)?,
            json_path,
        })
    }

    pub fn emit(&self) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", self.summary)?;
        match self.json_path.as_deref() {
            None => {}
            Some("-") => writeln!(out, "{}", serde_json::to_string_pretty(&self.json)?)?,
            Some(path) => std::fs::write(path, serde_json::to_string_pretty(&self.json)? + "\n")?,
        }
        Ok(())
    }
}

/// One progress line: rates over the last interval.
pub fn progress_line(
    label: &str,
    at: Duration,
    delta: Counts,
    interval: Duration,
    latency: &Histogram<u64>,
    rss: Option<u64>,
    phase: &str,
) -> String {
    let secs = interval.as_secs_f64().max(1e-9);
    let mut s = format!(
        "[{label}] {:6.1}s {phase:<7} pub {:>9.0} msg/s cons {:>9.0} msg/s",
        at.as_secs_f64(),
        delta.published as f64 / secs,
        delta.consumed as f64 / secs,
    );
    if let Some(p) = Percentiles::of(latency) {
        s += &format!(" | p50 {:.3} p99 {:.3} ms", p.p50_ms, p.p99_ms);
    }
    if let Some(r) = rss {
        s += &format!(" | rss {:.1} MiB", mib(r));
    }
    if delta.errors > 0 {
        s += &format!(" | errors {}", delta.errors);
    }
    s
}

pub fn eprint_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second() {
        let r = Rate::new(1000, 2_000_000, Duration::from_millis(500));
        assert!((r.msgs_per_sec - 2000.0).abs() < 1e-6);
        assert!((r.mb_per_sec - 4.0).abs() < 1e-9);
    }

    #[test]
    fn percentiles_in_ms() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        for us in 1..=1000u64 {
            h.record(us).expect("record");
        }
        let p = Percentiles::of(&h).expect("non-empty");
        assert_eq!(p.count, 1000);
        assert!((p.p50_ms - 0.5).abs() < 0.001, "{p:?}");
        assert!((p.p99_ms - 0.99).abs() < 0.001, "{p:?}");
        assert!((p.max_ms - 1.0).abs() < 0.001, "{p:?}");
        assert!(Percentiles::of(&Histogram::<u64>::new(3).expect("h")).is_none());
    }

    #[test]
    fn summary_names_what_was_measured() {
        let r = Report {
            label: "A1".into(),
            protocol: "amqp",
            seconds: 10.0,
            publish: Rate::new(100, 1600, Duration::from_secs(10)),
            consume: Rate::new(0, 0, Duration::from_secs(10)),
            latency: None,
            broker_rss: Some(RssFigures::new((1 << 20, 3 << 20, 2 << 20, 1 << 20))),
            errors: 0,
            broker_cpu_cores: None,
            client_cpu_cores: Some(0.5),
            extra: serde_json::Map::new(),
            settings: serde_json::Value::Null,
        };
        let s = r.summary();
        assert!(s.starts_with("A1: 10.00 s | pub 10 msg/s"), "{s}");
        assert!(!s.contains("cons"), "{s}");
        assert!(
            s.contains("broker rss 2.0 MiB (max 3.0, anon max 1.0)"),
            "{s}"
        );
        assert!(
            s.contains("client cpu 0.50") && !s.contains("broker cpu"),
            "{s}"
        );
    }
}
