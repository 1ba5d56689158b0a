//! Message rates: counters sampled every few seconds, a rate from the last two samples.
//!
//! The sampler reads each queue's atomic counters (no queue lock), each stream's end offsets
//! and each connection's traffic counters, and keeps the previous and the latest sample per
//! object. `*_details.rate` is `(latest - previous) / seconds between them`, as RabbitMQ's
//! `rate` for its default sampling.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use ferrymq_core::Broker;
use ferrymq_core::queue::QueueCounts;

/// How often counters are sampled (RabbitMQ's `collect_statistics_interval` default).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// What is sampled for one object; numbers only ever grow, except depths.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub counts: QueueCounts,
    /// Queue depth (ready + unacked): its rate can be negative.
    pub messages: f64,
    pub ready: f64,
    pub unacked: f64,
    pub recv_oct: f64,
    pub send_oct: f64,
}

/// Rates per second between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateSet {
    pub publish: f64,
    pub deliver: f64,
    pub deliver_no_ack: f64,
    pub get: f64,
    pub get_no_ack: f64,
    pub get_empty: f64,
    pub deliver_get: f64,
    pub redeliver: f64,
    pub ack: f64,
    pub messages: f64,
    pub ready: f64,
    pub unacked: f64,
    pub recv_oct: f64,
    pub send_oct: f64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    previous: Option<(Instant, Sample)>,
    latest: (Instant, Sample),
}

impl Window {
    fn rates(&self) -> RateSet {
        let Some((t0, a)) = self.previous else {
            return RateSet::default();
        };
        let (t1, b) = self.latest;
        let secs = t1.duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            return RateSet::default();
        }
        let d = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
        let f = |x: f64, y: f64| (y - x) / secs;
        let (ca, cb) = (a.counts, b.counts);
        RateSet {
            publish: d(ca.publish, cb.publish),
            deliver: d(ca.deliver, cb.deliver),
            deliver_no_ack: d(ca.deliver_no_ack, cb.deliver_no_ack),
            get: d(ca.get, cb.get),
            get_no_ack: d(ca.get_no_ack, cb.get_no_ack),
            get_empty: d(ca.get_empty, cb.get_empty),
            deliver_get: d(ca.deliver_get(), cb.deliver_get()),
            redeliver: d(ca.redeliver, cb.redeliver),
            ack: d(ca.ack, cb.ack),
            messages: f(a.messages, b.messages),
            ready: f(a.ready, b.ready),
            unacked: f(a.unacked, b.unacked),
            recv_oct: f(a.recv_oct, b.recv_oct),
            send_oct: f(a.send_oct, b.send_oct),
        }
    }
}

/// What an object's rates are keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Overall,
    Vhost(String),
    Queue { vhost: String, name: String },
    Connection(u64),
}

/// The latest rates of every sampled object.
#[derive(Debug, Default)]
pub struct Rates {
    windows: RwLock<HashMap<Key, Window>>,
}

impl Rates {
    /// The rates of `key`; zero until it has been sampled twice.
    pub fn get(&self, key: &Key) -> RateSet {
        self.windows
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .map(Window::rates)
            .unwrap_or_default()
    }

    /// Records a new sample of every object; objects that were not sampled are forgotten.
    pub fn record(&self, now: Instant, samples: HashMap<Key, Sample>) {
        let mut windows = self.windows.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = HashMap::with_capacity(samples.len());
        for (key, sample) in samples {
            let previous = windows.remove(&key).map(|w| w.latest);
            next.insert(
                key,
                Window {
                    previous,
                    latest: (now, sample),
                },
            );
        }
        *windows = next;
    }
}

/// One sample of everything the broker counts.
pub fn sample(broker: &Broker) -> HashMap<Key, Sample> {
    let mut samples = HashMap::new();
    let mut overall = Sample::default();
    for vhost in broker.vhosts() {
        let mut total = Sample::default();
        for queue in vhost.queue_list() {
            let overview = queue.overview();
            let s = Sample {
                counts: queue.stats().snapshot(),
                messages: (overview.ready + overview.unacked) as f64,
                ready: overview.ready as f64,
                unacked: overview.unacked as f64,
                ..Sample::default()
            };
            add(&mut total, &s);
            samples.insert(
                Key::Queue {
                    vhost: vhost.name().to_owned(),
                    name: queue.name().to_owned(),
                },
                s,
            );
        }
        for stream in vhost.streams().list() {
            let published = stream.appended();
            let s = Sample {
                counts: QueueCounts {
                    publish: published,
                    ..QueueCounts::default()
                },
                messages: stream.message_count() as f64,
                ready: stream.message_count() as f64,
                ..Sample::default()
            };
            add(&mut total, &s);
            samples.insert(
                Key::Queue {
                    vhost: vhost.name().to_owned(),
                    name: stream.name().to_owned(),
                },
                s,
            );
        }
        add(&mut overall, &total);
        samples.insert(Key::Vhost(vhost.name().to_owned()), total);
    }
    for connection in broker.connections().list() {
        let c = &connection.counters;
        let s = Sample {
            recv_oct: c.recv_oct.load(std::sync::atomic::Ordering::Relaxed) as f64,
            send_oct: c.send_oct.load(std::sync::atomic::Ordering::Relaxed) as f64,
            ..Sample::default()
        };
        samples.insert(Key::Connection(connection.id()), s);
    }
    samples.insert(Key::Overall, overall);
    samples
}

fn add(total: &mut Sample, s: &Sample) {
    total.counts.add(&s.counts);
    total.messages += s.messages;
    total.ready += s.ready;
    total.unacked += s.unacked;
}

/// Samples every [`SAMPLE_EVERY`] until the context is gone.
pub async fn run_sampler(ctx: Weak<crate::AdminContext>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(ctx) = ctx.upgrade() else {
            return;
        };
        let broker = Arc::clone(&ctx.broker);
        // Walks every queue: off the runtime's workers.
        let Ok(samples) = tokio::task::spawn_blocking(move || sample(&broker)).await else {
            return;
        };
        ctx.rates.record(Instant::now(), samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_needs_two_samples_and_depth_may_fall() {
        let rates = Rates::default();
        let t0 = Instant::now();
        let key = Key::Overall;
        let sample = |publish, messages| Sample {
            counts: QueueCounts {
                publish,
                ..QueueCounts::default()
            },
            messages,
            ..Sample::default()
        };
        rates.record(t0, HashMap::from([(key.clone(), sample(10, 100.0))]));
        assert_eq!(rates.get(&key), RateSet::default());
        rates.record(
            t0 + Duration::from_secs(5),
            HashMap::from([(key.clone(), sample(60, 50.0))]),
        );
        let r = rates.get(&key);
        assert!((r.publish - 10.0).abs() < 1e-9);
        assert!((r.messages + 10.0).abs() < 1e-9);
        rates.record(t0 + Duration::from_secs(10), HashMap::new());
        assert_eq!(rates.get(&key), RateSet::default());
    }
}
