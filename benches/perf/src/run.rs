//! The measured window, shared by both protocols: warm-up, then a duration or a message count;
//! a progress line per interval; the broker's RSS sampled at every line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::report::{self, Percentiles, Rate, Report, RssFigures};
use crate::rss::{RssTracker, cpu_seconds};
use crate::stats::{Counts, Stats};

/// Knobs every scenario has.
#[derive(Args, Serialize, Clone, Debug)]
pub struct RunArgs {
    /// Name printed with the progress and summary lines.
    #[arg(long)]
    pub label: Option<String>,
    /// Payload bytes per message (the first 8 carry the send time; below 8, no latency).
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Publishing clients, each with its own connection.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consuming clients, each with its own connection (AMQP: per queue; Kafka: group members).
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Total publish rate in messages/s, shared by the producers; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds measured after the warm-up (ignored with --count).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before the window opens; not counted.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Publish this many messages in total instead of running for a duration; the window is
    /// from the start until every message is consumed (or published, without consumers).
    #[arg(long)]
    pub count: Option<u64>,
    /// Give up after this many seconds in all (the report then says `timed_out`).
    #[arg(long, default_value_t = 600.0)]
    pub timeout: f64,
    /// Sample this process's RSS (the broker's) at every progress line.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
    /// Also write the report as JSON to this file (`-`: stdout, after the summary).
    #[arg(long)]
    pub json: Option<String>,
    /// Tokio worker threads of this client.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

impl RunArgs {
    /// Messages producer `i` of `self.producers` publishes when the run has a total count.
    pub fn share(&self, total: u64, i: usize) -> u64 {
        let p = self.producers.max(1) as u64;
        total / p + u64::from((i as u64) < total % p)
    }

    /// Per-producer pace (time between publishes), if rate limited.
    pub fn pace(&self) -> Option<Duration> {
        (self.rate > 0.0).then(|| Duration::from_secs_f64(self.producers.max(1) as f64 / self.rate))
    }
}

/// When a window ends.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// Warm up, then measure for the duration.
    Elapsed {
        warmup: Duration,
        duration: Duration,
    },
    /// Until this many messages are published (confirmed).
    Published(u64),
    /// Until this many messages are consumed. `from_first`: the window opens at the first
    /// delivery (a drain: excludes connection set-up and consumer-group joins).
    Consumed { total: u64, from_first: bool },
}

pub struct Window {
    pub elapsed: Duration,
    pub counts: Counts,
    pub latency: Histogram<u64>,
    pub timed_out: bool,
    /// CPU time the broker (with --broker-pid) and this client used per second of window.
    pub broker_cpu_cores: Option<f64>,
    pub client_cpu_cores: Option<f64>,
}

impl Window {
    pub fn publish_rate(&self) -> Rate {
        Rate::new(
            self.counts.published,
            self.counts.published_bytes,
            self.elapsed,
        )
    }

    pub fn consume_rate(&self) -> Rate {
        Rate::new(
            self.counts.consumed,
            self.counts.consumed_bytes,
            self.elapsed,
        )
    }
}

/// The moment the load starts, taken just before the producers are started: a window that
/// counts from the start (a message count, or no warm-up) covers every message.
pub struct Armed {
    at: Instant,
    counts: Counts,
    cpu: (Option<f64>, Option<f64>),
    from_start: bool,
}

pub fn arm(args: &RunArgs, stats: &Stats, until: Until) -> Armed {
    let from_start = match until {
        Until::Elapsed { warmup, .. } => warmup.is_zero(),
        Until::Published(_) => true,
        Until::Consumed { from_first, .. } => !from_first,
    };
    // A drain records the latency of every delivery, the first ones included.
    if from_start
        || matches!(
            until,
            Until::Consumed {
                from_first: true,
                ..
            }
        )
    {
        stats.set_measuring(true);
    }
    Armed {
        at: Instant::now(),
        counts: stats.counts(),
        cpu: cpu_now(args),
        from_start,
    }
}

/// Runs the window while the clients (started after `arm`) do their work.
pub async fn measure(
    args: &RunArgs,
    label: &str,
    stats: &Stats,
    rss: &RssTracker,
    until: Until,
    armed: Armed,
) -> Window {
    let start = armed.at;
    let deadline = start + Duration::from_secs_f64(args.timeout.max(0.0));
    let interval = Duration::from_secs_f64(args.interval.max(0.05));
    let mut next_line = start + interval;
    let mut last_line = (start, armed.counts);
    // A drain counts from the first delivery; a warm-up from its end.
    let (mut opened, mut t0, mut c0, mut cpu0) = (armed.from_start, start, armed.counts, armed.cpu);
    if matches!(
        until,
        Until::Consumed {
            from_first: true,
            ..
        }
    ) {
        stats.set_measuring(true);
    }
    let open = |stats: &Stats, at: Instant| {
        stats.set_measuring(true);
        (true, at, stats.counts())
    };
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut timed_out = false;
    let end = loop {
        tick.tick().await;
        let now = Instant::now();
        if now >= next_line {
            let rss_now = rss.sample();
            let counts = stats.counts();
            if !args.quiet {
                let phase = if opened { "measure" } else { "warmup" };
                let line = report::progress_line(
                    label,
                    now - start,
                    counts.since(last_line.1),
                    now - last_line.0,
                    &stats.take_interval_latency(),
                    rss_now,
                    phase,
                );
                report::eprint_line(&line);
            }
            last_line = (now, counts);
            next_line += interval;
            if next_line < now {
                next_line = now + interval;
            }
        }
        let counts = stats.counts();
        match until {
            Until::Elapsed { warmup, duration } => {
                if !opened && now - start >= warmup {
                    (opened, t0, c0) = open(stats, now);
                    cpu0 = cpu_now(args);
                }
                if opened && now - t0 >= duration {
                    break now;
                }
            }
            Until::Published(total) => {
                if counts.published >= total {
                    break now;
                }
            }
            Until::Consumed { total, from_first } => {
                if from_first
                    && !opened
                    && let Some(first) = stats.first_consume()
                {
                    (opened, t0) = (true, first);
                    cpu0 = cpu_now(args);
                }
                if counts.consumed >= c0.consumed + total {
                    break now;
                }
            }
        }
        if now >= deadline {
            timed_out = true;
            break now;
        }
    };
    let counts = stats.counts().since(c0);
    let cpu1 = cpu_now(args);
    stats.set_measuring(false);
    rss.sample();
    if !opened {
        t0 = end;
    }
    let elapsed = end.saturating_duration_since(t0);
    let cores = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / elapsed.as_secs_f64().max(1e-9));
    Window {
        elapsed,
        counts,
        latency: stats.total_latency(),
        timed_out,
        broker_cpu_cores: cores(cpu0.0, cpu1.0),
        client_cpu_cores: cores(cpu0.1, cpu1.1),
    }
}

/// (broker, this client) CPU seconds so far.
fn cpu_now(args: &RunArgs) -> (Option<f64>, Option<f64>) {
    (
        args.broker_pid.and_then(|p| cpu_seconds(Some(p))),
        cpu_seconds(None),
    )
}

/// The report of one window.
pub fn report(
    label: String,
    protocol: &'static str,
    window: &Window,
    rss: &RssTracker,
    mut extra: serde_json::Map<String, serde_json::Value>,
    settings: serde_json::Value,
) -> Report {
    if window.timed_out {
        extra.insert("timed_out".into(), true.into());
    }
    Report {
        label,
        protocol,
        seconds: window.elapsed.as_secs_f64(),
        publish: window.publish_rate(),
        consume: window.consume_rate(),
        latency: Percentiles::of(&window.latency),
        broker_rss: rss.figures().map(RssFigures::new),
        errors: window.counts.errors,
        broker_cpu_cores: window.broker_cpu_cores,
        client_cpu_cores: window.client_cpu_cores,
        extra,
        settings,
    }
}

/// Until-condition of a plain run (no backlog phase) from the common knobs.
pub fn until_for(args: &RunArgs, consumed_per_message: u64) -> Until {
    match args.count {
        Some(n) if args.consumers > 0 && consumed_per_message > 0 => Until::Consumed {
            total: n * consumed_per_message,
            from_first: false,
        },
        Some(n) => Until::Published(n),
        None => Until::Elapsed {
            warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
            duration: Duration::from_secs_f64(args.duration.max(0.0)),
        },
    }
}

/// Shares one stop flag between async tasks (watch) and client threads (atomic).
#[derive(Clone)]
pub struct Stop {
    flag: Arc<std::sync::atomic::AtomicBool>,
    watch: tokio::sync::watch::Sender<bool>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            flag: Arc::default(),
            watch: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Stop {
    pub fn stop(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
        self.watch.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves once `stop` was called.
    pub async fn stopped(&self) {
        let mut rx = self.watch.subscribe();
        // Err only if the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|s| *s).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(extra: &[&str]) -> RunArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(extra);
        T::parse_from(v).run
    }

    #[test]
    fn count_is_shared_across_producers() {
        let a = args(&["--producers", "3"]);
        assert_eq!(
            (0..3).map(|i| a.share(10, i)).collect::<Vec<_>>(),
            [4, 3, 3]
        );
        assert_eq!((0..3).map(|i| a.share(10, i)).sum::<u64>(), 10);
    }

    #[test]
    fn rate_is_shared_across_producers() {
        let a = args(&["--producers", "2", "--rate", "5000"]);
        assert_eq!(a.pace(), Some(Duration::from_micros(400)));
        assert_eq!(args(&[]).pace(), None);
    }

    #[test]
    fn until_follows_count_and_consumers() {
        assert!(matches!(
            until_for(&args(&["--count", "5"]), 10),
            Until::Consumed {
                total: 50,
                from_first: false
            }
        ));
        assert!(matches!(
            until_for(&args(&["--count", "5", "--consumers", "0"]), 10),
            Until::Published(5)
        ));
        assert!(matches!(until_for(&args(&[]), 1), Until::Elapsed { .. }));
    }

    #[tokio::test]
    async fn a_duration_window_excludes_warmup() {
        let stats = Stats::default();
        let rss = RssTracker::new(None);
        let a = args(&["--warmup", "0.05", "--duration", "0.1", "--quiet"]);
        let stats = Arc::new(stats);
        let s2 = Arc::clone(&stats);
        let feeder = tokio::spawn(async move {
            loop {
                s2.published(1, 10);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let until = until_for(&a, 1);
        let armed = arm(&a, &stats, until);
        let w = measure(&a, "t", &stats, &rss, until, armed).await;
        feeder.abort();
        let secs = w.elapsed.as_secs_f64();
        assert!((0.1..0.2).contains(&secs), "window {secs}");
        assert!(
            w.counts.published < stats.counts().published,
            "warm-up excluded"
        );
        assert_eq!(w.counts.published_bytes, w.counts.published * 10);
    }

    #[tokio::test]
    async fn stop_wakes_waiters() {
        let stop = Stop::default();
        let s2 = stop.clone();
        let waiter = tokio::spawn(async move { s2.stopped().await });
        stop.stop();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("joined");
        assert!(stop.is_stopped());
    }
}
