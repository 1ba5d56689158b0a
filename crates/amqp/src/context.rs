//! What every AMQP connection shares: the broker, the configuration, the users, the
//! memory alarm, and connection ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrymq_core::Broker;
use ferrymq_core::auth::Users;
use tokio::sync::watch;

use crate::AmqpConfig;

/// How often queue memory is summed for the watermark.
const MEMORY_SAMPLE: Duration = Duration::from_millis(100);

/// Shared state of the AMQP frontend; one per server.
#[derive(Debug)]
pub struct AmqpContext {
    pub broker: Arc<Broker>,
    pub config: AmqpConfig,
    pub users: Users,
    /// `true` while the memory watermark is exceeded (publishers are blocked).
    alarm: watch::Receiver<bool>,
    next_connection: AtomicU64,
    watermark: u64,
}

impl AmqpContext {
    /// Builds the context and starts the memory monitor (requires a tokio runtime).
    pub fn new(broker: Arc<Broker>, config: AmqpConfig) -> Arc<Self> {
        let users = Users::new(&config.users, &config.loopback_users);
        let watermark = match config.memory_high_watermark {
            0 => default_watermark(),
            bytes => bytes,
        };
        let (alarm_tx, alarm) = watch::channel(false);
        let ctx = Arc::new(Self {
            broker,
            config,
            users,
            alarm,
            next_connection: AtomicU64::new(1),
            watermark,
        });
        tokio::spawn(monitor_memory(Arc::downgrade(&ctx), alarm_tx));
        ctx
    }

    pub(crate) fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn alarm(&self) -> watch::Receiver<bool> {
        self.alarm.clone()
    }

    /// The resolved memory high watermark in bytes.
    pub fn memory_watermark(&self) -> u64 {
        self.watermark
    }

    /// Bytes held by messages in every queue of every vhost.
    pub fn queue_memory(&self) -> u64 {
        self.broker
            .vhosts()
            .iter()
            .flat_map(|vhost| vhost.queue_list())
            .map(|queue| queue.memory())
            .sum()
    }
}

/// 40% of physical memory (RabbitMQ's default `vm_memory_high_watermark`), or 1 GiB when
/// it cannot be read.
fn default_watermark() -> u64 {
    let total_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        });
    total_kib.map_or(1 << 30, |kib| kib * 1024 / 10 * 4)
}

async fn monitor_memory(ctx: std::sync::Weak<AmqpContext>, alarm: watch::Sender<bool>) {
    let mut tick = tokio::time::interval(MEMORY_SAMPLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(ctx) = ctx.upgrade() else {
            return;
        };
        let used = ctx.queue_memory();
        let over = used > ctx.watermark;
        if *alarm.borrow() != over {
            if over {
                tracing::warn!(
                    used,
                    watermark = ctx.watermark,
                    "memory alarm set: blocking publishers"
                );
            } else {
                tracing::info!(used, watermark = ctx.watermark, "memory alarm cleared");
            }
            alarm.send_replace(over);
        }
    }
}
