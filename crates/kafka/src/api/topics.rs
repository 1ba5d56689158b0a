//! Topic helpers shared by the handlers: Kafka's naming rules, auto-creation, leader epochs.

use std::sync::Arc;

use ferrymq_core::Error;
use ferrymq_core::stream::{Stream, StreamConfig};

use super::blocking;
use crate::Ctx;
use crate::error::code;

/// Kafka's topic name rules: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`, and no collision
/// with an existing topic that differs only in `.` versus `_` (INVALID_TOPIC_EXCEPTION); and
/// ferrymq's: no classic queue of that name in the vhost, since queues and streams share one
/// namespace (TOPIC_ALREADY_EXISTS).
pub(crate) fn validate_topic_name(ctx: &Ctx, name: &str) -> Result<(), (i16, String)> {
    let invalid = |m: String| Err((code::INVALID_TOPIC_EXCEPTION, m));
    if name.is_empty() || name == "." || name == ".." {
        return invalid(format!("Topic name \"{name}\" is illegal"));
    }
    if name.len() > 249 {
        return invalid(format!("Topic name is longer than 249 characters: {name}"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    if ctx.vhost.lookup_queue(name).is_some() {
        return Err((
            code::TOPIC_ALREADY_EXISTS,
            format!(
                "a queue named '{name}' exists in vhost '{}' (topics and queues share one namespace)",
                ctx.vhost.name()
            ),
        ));
    }
    let folded = name.replace('.', "_");
    if let Some(other) = ctx
        .streams
        .list()
        .into_iter()
        .find(|s| s.name() != name && s.name().replace('.', "_") == folded)
    {
        return invalid(format!(
            "Topic '{name}' collides with existing topic: {}",
            other.name()
        ));
    }
    Ok(())
}

/// The topic, created with the defaults if it is unknown and auto-creation is on.
/// `Ok(None)`: unknown and not created.
pub(crate) async fn get_or_create(
    ctx: &Arc<Ctx>,
    name: &str,
    allow: bool,
) -> Result<Option<Arc<Stream>>, (i16, String)> {
    if let Some(stream) = ctx.streams.get(name) {
        return Ok(Some(stream));
    }
    if !(allow && ctx.config.auto_create_topics_enable) {
        return Ok(None);
    }
    validate_topic_name(ctx, name)?;
    let streams = Arc::clone(&ctx.streams);
    let partitions = ctx.config.num_partitions.max(1);
    let owned = name.to_owned();
    let created =
        blocking(
            move || match streams.create(&owned, partitions, StreamConfig::default()) {
                Err(Error::StreamExists { .. }) => {
                    streams.get(&owned).ok_or(Error::StreamNotFound {
                        stream: owned.clone(),
                    })
                }
                other => other,
            },
        )
        .await;
    match created {
        Ok(stream) => {
            tracing::info!(topic = name, partitions, "topic auto-created");
            Ok(Some(stream))
        }
        Err(e) => Err(crate::error::from_core(&e)),
    }
}

/// The error for a request carrying `current_leader_epoch` (the leader epoch is always 0:
/// one node, never re-elected). -1 means "not checked".
pub(crate) fn leader_epoch_error(current_leader_epoch: i32) -> Option<i16> {
    (current_leader_epoch > 0).then_some(code::UNKNOWN_LEADER_EPOCH)
}
