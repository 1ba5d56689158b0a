//! ferrymq-admin: the operator's view of a running broker, over HTTP.
//!
//! A RabbitMQ-compatible management API (`/api/...`, the JSON RabbitMQ's management plugin
//! returns, for the fields and verbs tools read and write), ferrymq's Kafka view
//! (`/api/kafka/...`), Prometheus metrics (`/metrics`) and a web dashboard (`/`). It reads
//! and commands `ferrymq-core` and `ferrymq-auth`; it holds no broker state of its own but
//! sampled rates.
//!
//! ```text
//! lib.rs        router: /, /app.js, /app.css, /metrics[/per-object], /api/... (fallback)
//! api/          routing on decoded path segments; one module per resource family
//! auth.rs       basic auth against the user store; RabbitMQ's tag rules
//! query.rs      page, page_size, name, use_regex, sort, sort_reverse, columns
//! rates.rs      counters sampled every 5 s -> *_details.rate
//! metrics.rs    Prometheus text exposition
//! json.rs       field tables and message properties <-> JSON
//! dashboard.rs  the compiled-in page
//! ```
//!
//! ```no_run
//! # async fn example(broker: std::sync::Arc<ferrymq_core::Broker>,
//! #                  users: std::sync::Arc<ferrymq_auth::UserStore>) {
//! use std::sync::Arc;
//! use ferrymq_admin::{AdminContext, router};
//! let ctx = Arc::new(AdminContext::new(broker, users, "ferrymq@localhost".into()));
//! ferrymq_admin::start(&ctx);
//! let app = router(ctx);
//! # let _ = app;
//! # }
//! ```
//!
//! # Invariants
//! - Reading takes no lock on the publish or fetch path: queue counters are atomics, depths
//!   come from each queue's own short lock, registries are read-mostly snapshots.
//! - Changes are journaled and synced (definitions) before the response, as AMQP's `*-ok`.

pub mod api;
pub mod auth;
mod context;
mod dashboard;
pub mod error;
pub mod json;
pub mod metrics;
pub mod process;
pub mod query;
pub mod rates;
mod render;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use auth::PeerAddr;
pub use context::{AdminContext, KafkaView, ListenerInfo, RABBITMQ_VERSION};

/// Starts the rate sampler (requires a tokio runtime).
pub fn start(ctx: &Arc<AdminContext>) {
    tokio::spawn(rates::run_sampler(Arc::downgrade(ctx)));
}

async fn prometheus(ctx: Arc<AdminContext>, per_object: bool) -> Response {
    // Walks every queue: off the runtime's workers.
    let text = tokio::task::spawn_blocking(move || metrics::render(&ctx, per_object))
        .await
        .unwrap_or_default();
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

async fn metrics_default(State(ctx): State<Arc<AdminContext>>) -> Response {
    let per_object = ctx.per_object_metrics;
    prometheus(ctx, per_object).await
}

async fn metrics_per_object(State(ctx): State<Arc<AdminContext>>) -> Response {
    prometheus(ctx, true).await
}

async fn healthz() -> &'static str {
    "ok"
}

/// Every route of the HTTP listener.
pub fn router(ctx: Arc<AdminContext>) -> Router {
    Router::new()
        .route("/", get(dashboard::index))
        .route("/app.js", get(dashboard::app_js))
        .route("/app.css", get(dashboard::app_css))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_default))
        .route("/metrics/per-object", get(metrics_per_object))
        .fallback(api::handle)
        .with_state(ctx)
}

/// Only the metrics routes (the separate `metrics` listener, RabbitMQ's :15692).
pub fn metrics_router(ctx: Arc<AdminContext>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_default))
        .route("/metrics/per-object", get(metrics_per_object))
        .with_state(ctx)
}
