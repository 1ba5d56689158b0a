//! The broker's lifetime: lock the data directory, bind every listener, plug each frontend into
//! its accept loop, log the ready line, then on SIGINT/SIGTERM shut down in order.
//!
//! ```text
//! lock data_dir -> bind amqp, kafka, http -> open state, users -> load_definitions
//!   -> spawn accept loops -> "ferrymq ready ..."
//!   -> signal -> cancel token (stop accepting, connections close politely)
//!   -> wait for connections (server.shutdown_timeout_ms) -> flush + fsync storage -> unlock
//! ```
//!
//! Frontends plug in at one place, [`run`]'s "Frontends" block: each listener gets a handler
//! `Fn(TcpStream, SocketAddr, CancellationToken) -> impl Future<Output = ()>`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use ferrymq_admin::{AdminContext, KafkaView, ListenerInfo};
use ferrymq_auth::UserStore;
use ferrymq_core::Broker;
use tracing::{info, warn};

use crate::advertised;
use crate::config::Config;
use crate::http;
use crate::listener::Listener;
use crate::lock::DataDirLock;
use crate::logging::READY_TARGET;
use crate::secure;
use crate::shutdown::{self, Shutdown, Signals};

/// Runs the broker until a shutdown signal, then shuts down gracefully.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let lock = DataDirLock::acquire(&config.storage.data_dir)?;
    let data_dir = std::path::absolute(&config.storage.data_dir)
        .unwrap_or_else(|_| config.storage.data_dir.clone());
    info!(data_dir = %data_dir.display(), lock = %lock.path().display(), "data directory locked");

    // Before the ready line: a signal sent as soon as it appears must be handled.
    let mut signals = Signals::install()?;

    // Certificates first: a TLS listener without usable ones refuses to start.
    let tls = secure::acceptor(&config)?;
    // AMQP listeners accept every client: `amqp.max_connections` is enforced at
    // connection.open with RabbitMQ's 530, so a client over it learns why instead of waiting.
    let amqp = Listener::bind("amqp", config.amqp.listen, usize::MAX).await?;
    let amqps = match &tls {
        Some(_) if config.amqp.tls_enabled => {
            Some(Listener::bind("amqps", config.amqp.tls_listen, usize::MAX).await?)
        }
        _ => None,
    };
    let kafka_specs = ferrymq_kafka::listeners::specs(&config.kafka)
        .map_err(|reason| anyhow!("invalid kafka listeners: {reason}"))?;
    let mut kafka_listeners = Vec::new();
    for spec in kafka_specs {
        let bound = Listener::bind("kafka", spec.bind, config.kafka.max_connections)
            .await?
            .with_max_per_ip(config.kafka.max_connections_per_ip);
        let advertised =
            advertised::resolve(&spec.advertised, bound.local_addr()).map_err(|reason| {
                anyhow!(
                    "invalid advertised address of Kafka listener {}: {reason}",
                    spec.name
                )
            })?;
        info!(
            listener = %spec.name,
            security = %spec.security,
            "kafka listener on {} tells clients to connect to {advertised}",
            bound.local_addr()
        );
        let listener = ferrymq_kafka::KafkaListener {
            name: spec.name,
            security: spec.security,
            advertised_host: advertised.host,
            advertised_port: i32::from(advertised.port),
        };
        kafka_listeners.push((bound, Arc::new(listener)));
    }
    let Some((first_kafka, first_listener)) = kafka_listeners.first() else {
        anyhow::bail!("no Kafka listener configured");
    };
    let kafka_addr = first_kafka.local_addr();
    let kafka_advertised = (
        first_listener.advertised_host.clone(),
        u16::try_from(first_listener.advertised_port).unwrap_or(0),
    );
    let http = Listener::bind("http", config.http.listen, config.http.max_connections).await?;
    let https = match &tls {
        Some(_) if config.http.tls_enabled => Some(
            Listener::bind("https", config.http.tls_listen, config.http.max_connections).await?,
        ),
        _ => None,
    };
    let metrics = if config.metrics.enabled {
        Some(
            Listener::bind(
                "metrics",
                config.metrics.listen,
                config.metrics.max_connections,
            )
            .await?,
        )
    } else {
        None
    };
    let addrs = (amqp.local_addr(), kafka_addr, http.local_addr());

    // Storage and state, after the lock and before any listener accepts. Opening may recover
    // logs from disk: blocking work, kept off the runtime's workers.
    let broker_config = config.broker_config();
    let broker = tokio::task::spawn_blocking(move || Broker::open(broker_config))
        .await
        .context("opening the broker")?
        .with_context(|| format!("cannot open the broker's state in {}", data_dir.display()))?;

    // One user store for every protocol, in the definitions journal; the config seeds it.
    let users = {
        let (definitions, config) = (Arc::clone(broker.definitions()), config.clone());
        let vhosts: Vec<String> = broker
            .vhosts()
            .iter()
            .map(|v| v.name().to_owned())
            .collect();
        tokio::task::spawn_blocking(move || {
            UserStore::open(
                &definitions,
                &config.amqp.users,
                &config.amqp.loopback_users,
                &vhosts,
            )
        })
        .await
        .context("opening the user store")?
        .context("cannot open the user store")?
    };
    let users = Arc::new(users);
    let exposed = std::iter::once(addrs.0)
        .chain(kafka_listeners.iter().map(|(l, _)| l.local_addr()))
        .chain([addrs.2])
        .find(|a| !a.ip().is_loopback());
    let only_loopback_users = users
        .users()
        .iter()
        .all(|u| users.is_loopback_only(&u.name));
    if let Some(addr) = exposed
        && only_loopback_users
    {
        warn!(
            %addr,
            "listening beyond loopback, but every user may log in from loopback only (the default guest): \
             add a user (`ferrymq user add`, the management API, or FERRYMQ_DEFAULT_USER and FERRYMQ_DEFAULT_PASS on a new data directory)"
        );
    }

    // The Kafka frontend's shared state (topic defaults, group coordinator, cluster id).
    let kafka_ctx = {
        let (broker, config, users) = (
            Arc::clone(&broker),
            config.kafka.clone(),
            Arc::clone(&users),
        );
        let (host, port) = kafka_advertised;
        tokio::task::spawn_blocking(move || {
            ferrymq_kafka::Ctx::with_users(broker, config, host, port, users)
        })
        .await
        .context("starting the Kafka frontend")?
        .context("cannot start the Kafka frontend")?
    };

    // Retention for every vhost's streams (on Kafka's schedule: stream queues outside the
    // Kafka vhost are the same logs) and the topic -> exchange fan-out.
    let retention_every =
        Duration::from_millis(config.kafka.log_retention_check_interval_ms.max(100));
    broker.start_background(retention_every);

    let shutdown = Shutdown::default();
    let limits =
        crate::resources::Limits::resolve(&config.resources).map_err(anyhow::Error::msg)?;
    info!(
        memory_high_watermark = limits.memory_high_watermark,
        disk_free_limit = limits.disk_free_limit,
        "resource limits"
    );
    crate::resources::sample(&broker, limits);
    tokio::spawn(crate::resources::monitor(
        Arc::clone(&broker),
        limits,
        Duration::from_millis(config.resources.check_interval_ms),
        shutdown.abort.clone(),
    ));
    // Frontends: one handler per listener.
    // Accept loops are tracked too: the tracker cannot empty while one may still spawn.
    let tracker = shutdown.tracker.clone();
    let amqp_ctx = ferrymq_amqp::AmqpContext::with_users(
        Arc::clone(&broker),
        config.amqp.clone(),
        Arc::clone(&users),
    );
    let mut listening = vec![
        ListenerInfo::new("amqp", addrs.0),
        ListenerInfo::new("http", addrs.2),
    ];
    listening.extend(
        kafka_listeners
            .iter()
            .map(|(bound, _)| ListenerInfo::new("kafka", bound.local_addr())),
    );
    listening.extend(
        metrics
            .iter()
            .map(|m| ListenerInfo::new("prometheus", m.local_addr())),
    );
    listening.extend(
        amqps
            .iter()
            .map(|l| ListenerInfo::new("amqp/ssl", l.local_addr())),
    );
    listening.extend(
        https
            .iter()
            .map(|l| ListenerInfo::new("https", l.local_addr())),
    );
    let tls_addrs: String = [("amqps", &amqps), ("https", &https)]
        .iter()
        .filter_map(|(name, l)| l.as_ref().map(|l| format!(" {name}={}", l.local_addr())))
        .collect();
    let admin = admin_context(&config, &broker, &users, &kafka_ctx, listening);
    let admin = Arc::new(admin);
    ferrymq_admin::start(&admin);
    if !config.server.load_definitions.as_os_str().is_empty() {
        load_definitions(&admin, &config.server.load_definitions).await?;
    }
    if let (Some(listener), Some(tls)) = (amqps, &tls) {
        let (ctx, tls) = (Arc::clone(&amqp_ctx), Arc::clone(tls));
        let handler = move |s, p, t| {
            let (ctx, tls) = (Arc::clone(&ctx), Arc::clone(&tls));
            async move {
                if let Some((stream, transport)) = secure::handshake(&tls, s, p, "amqps").await {
                    ferrymq_amqp::serve_stream(stream, transport, ctx, t).await;
                }
            }
        };
        tracker.spawn(listener.serve(handler, shutdown.clone()));
    }
    let amqp_handler =
        move |s, p, t| ferrymq_amqp::serve_connection(s, p, Arc::clone(&amqp_ctx), t);
    tracker.spawn(amqp.serve(amqp_handler, shutdown.clone()));
    for (bound, listener) in kafka_listeners {
        let ctx = Arc::clone(&kafka_ctx);
        if listener.security.uses_tls() {
            let Some(tls) = tls.clone() else {
                anyhow::bail!(
                    "Kafka listener {} needs the certificates of [tls]",
                    listener.name
                );
            };
            let handler = move |s, p, t| {
                let (ctx, tls, listener) =
                    (Arc::clone(&ctx), Arc::clone(&tls), Arc::clone(&listener));
                async move {
                    if let Some((stream, transport)) =
                        secure::handshake(&tls, s, p, &listener.name).await
                    {
                        ferrymq_kafka::serve_stream(stream, transport, ctx, listener, t).await;
                    }
                }
            };
            tracker.spawn(bound.serve(handler, shutdown.clone()));
        } else {
            let handler = move |s, p, t| {
                ferrymq_kafka::serve_listener(s, p, Arc::clone(&ctx), Arc::clone(&listener), t)
            };
            tracker.spawn(bound.serve(handler, shutdown.clone()));
        }
    }
    let router = ferrymq_admin::router(Arc::clone(&admin));
    if let (Some(listener), Some(tls)) = (https, &tls) {
        let (router, tls) = (router.clone(), Arc::clone(tls));
        let handler = move |s, p, t| {
            let (router, tls) = (router.clone(), Arc::clone(&tls));
            async move {
                if let Some((stream, _)) = secure::handshake(&tls, s, p, "https").await {
                    http::serve_connection(router, stream, p, t).await;
                }
            }
        };
        tracker.spawn(listener.serve(handler, shutdown.clone()));
    }
    let http_handler = move |s, p, t| http::serve_connection(router.clone(), s, p, t);
    tracker.spawn(http.serve(http_handler, shutdown.clone()));
    let metrics_addr = match metrics {
        Some(listener) => {
            let addr = listener.local_addr();
            let router = ferrymq_admin::metrics_router(Arc::clone(&admin));
            let handler = move |s, p, t| http::serve_connection(router.clone(), s, p, t);
            tracker.spawn(listener.serve(handler, shutdown.clone()));
            format!(" metrics={addr}")
        }
        None => String::new(),
    };

    info!(
        target: READY_TARGET,
        "ferrymq ready amqp={} kafka={} http={}{metrics_addr}{tls_addrs}", addrs.0, addrs.1, addrs.2
    );

    let signal = signals.recv().await;
    info!(signal, "shutting down: no longer accepting connections");
    let timeout = Duration::from_millis(config.server.shutdown_timeout_ms);
    shutdown::drain(&shutdown, timeout, signals.recv()).await;

    // No connection appends any more: flush and fsync every log before unlocking the data dir.
    // A failed flush means acknowledged data may not be on disk: exit non-zero.
    tokio::task::spawn_blocking(move || kafka_ctx.shutdown())
        .await
        .context("stopping the Kafka frontend")?
        .context("flushing consumer-group offsets at shutdown")?;
    broker
        .shutdown()
        .await
        .context("flushing storage at shutdown")?;
    drop(admin);
    drop(broker);
    drop(lock);
    info!("ferrymq stopped");
    Ok(())
}

/// What the management API knows about this node.
fn admin_context(
    config: &Config,
    broker: &Arc<Broker>,
    users: &Arc<UserStore>,
    kafka: &Arc<ferrymq_kafka::Ctx>,
    listeners: Vec<ListenerInfo>,
) -> AdminContext {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let mut ctx = AdminContext::new(
        Arc::clone(broker),
        Arc::clone(users),
        format!("ferrymq@{host}"),
    )
    .with_listeners(listeners)
    .with_kafka(KafkaView {
        groups: Arc::clone(kafka.groups()),
        requests: Arc::clone(kafka.metrics()),
        configs: ferrymq_kafka::topic_config::effective,
    });
    ctx.per_object_metrics = config.http.per_object_metrics;
    ctx.consumer_timeout_ms = config.amqp.consumer_timeout;
    ctx
}

/// Imports `path` (RabbitMQ's definitions format) before any listener accepts.
async fn load_definitions(admin: &Arc<AdminContext>, path: &std::path::Path) -> anyhow::Result<()> {
    let text = tokio::fs::read(path)
        .await
        .with_context(|| format!("cannot read server.load_definitions {}", path.display()))?;
    let serde_json::Value::Object(defs) = serde_json::from_slice(&text)
        .with_context(|| format!("server.load_definitions {} is not JSON", path.display()))?
    else {
        anyhow::bail!(
            "server.load_definitions {} is not a JSON object",
            path.display()
        );
    };
    ferrymq_admin::api::definitions::import(admin, &defs, None)
        .await
        .map_err(|e| anyhow!("importing {}: {}", path.display(), e.reason))?;
    info!(file = %path.display(), "definitions loaded");
    Ok(())
}
