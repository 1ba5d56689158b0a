//! What every AMQP connection shares: the broker, the configuration, the users, the
//! memory alarm, and connection ids.

use std::sync::Arc;
use std::time::Duration;

use ferrymq_auth::UserStore;
use ferrymq_core::Broker;
use tokio::sync::watch;

use crate::AmqpConfig;

/// How often queue memory is summed for the watermark.
const MEMORY_SAMPLE: Duration = Duration::from_millis(100);

/// Shared state of the AMQP frontend; one per server.
#[derive(Debug)]
pub struct AmqpContext {
    pub broker: Arc<Broker>,
    pub config: AmqpConfig,
    /// The broker's users and permissions (shared with the other frontends).
    pub users: Arc<UserStore>,
    /// `true` while the memory watermark is exceeded (publishers are blocked).
    alarm: watch::Receiver<bool>,
    watermark: u64,
}

impl AmqpContext {
    /// Builds the context with the config's users kept in memory (tests, embedding) and
    /// starts the memory monitor (requires a tokio runtime).
    ///
    /// # Panics
    /// If a configured user cannot be hashed (no random source).
    pub fn new(broker: Arc<Broker>, config: AmqpConfig) -> Arc<Self> {
        #[expect(
            clippy::expect_used,
            reason = "config users come from code or a validated file"
        )]
        let users =
            UserStore::in_memory(&config.users, &config.loopback_users).expect("configured users");
        Self::with_users(broker, config, Arc::new(users))
    }

    /// Builds the context over the broker's user store and starts the memory monitor.
    pub fn with_users(broker: Arc<Broker>, config: AmqpConfig, users: Arc<UserStore>) -> Arc<Self> {
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
            watermark,
        });
        tokio::spawn(monitor_memory(Arc::downgrade(&ctx), alarm_tx));
        ctx
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
        ctx.broker
            .alarms()
            .set(ferrymq_core::alarms::Resource::Memory, over);
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
