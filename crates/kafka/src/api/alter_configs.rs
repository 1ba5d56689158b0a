//! AlterConfigs (key 33, v0-2) and IncrementalAlterConfigs (key 44, v0-1) on topics.
//!
//! AlterConfigs replaces a topic's whole set of overrides (configs not listed go back to
//! their defaults); IncrementalAlterConfigs applies SET (0), DELETE (1), APPEND (2) and
//! SUBTRACT (3) to the named configs only. Both validate everything before changing
//! anything and honour `validate_only`. Broker configs are static in ferrymq (file, flags,
//! environment): altering them is refused with INVALID_REQUEST.

use std::sync::Arc;

use ferrymq_core::stream::StreamConfig;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{blocking, later, s};
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::Reply;
use crate::{Ctx, topic_config};

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Applies `change` to the topic's config and stores it; the error code and message.
async fn alter(
    ctx: &Arc<Ctx>,
    resource_type: i8,
    name: &StrBytes,
    validate_only: bool,
    change: impl FnOnce(&mut StreamConfig) -> Result<(), String>,
) -> Result<(), (i16, String)> {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return Err((
                code::INVALID_REQUEST,
                "broker configs are static in ferrymq: set them in ferrymq.toml".into(),
            ));
        }
        other => {
            return Err((
                code::INVALID_REQUEST,
                format!("unsupported resource type {other}"),
            ));
        }
    }
    let stream = ctx.streams.get(name).ok_or_else(|| {
        (
            code::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Topic '{}' does not exist", &**name),
        )
    })?;
    let mut config = StreamConfig::clone(&stream.config());
    change(&mut config).map_err(|m| (code::INVALID_CONFIG, m))?;
    if validate_only {
        return Ok(());
    }
    let streams = Arc::clone(&ctx.streams);
    blocking(move || streams.set_config(&stream, config))
        .await
        .map_err(|e| error::from_core(&e))
}

pub(super) fn handle_legacy(ctx: &Arc<Ctx>, request: AlterConfigsRequest, _version: i16) -> Reply {
    let ctx = Arc::clone(ctx);
    later(async move {
        let mut responses = Vec::with_capacity(request.resources.len());
        for resource in request.resources {
            let configs = resource.configs;
            let result = alter(
                &ctx,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |c| {
                    let mut fresh = StreamConfig::default();
                    for entry in &configs {
                        topic_config::apply(&mut fresh, &entry.name, entry.value.as_deref())?;
                    }
                    // Not a topic config: how the stream was declared as an AMQP queue.
                    fresh.queue_arguments = std::mem::take(&mut c.queue_arguments);
                    *c = fresh;
                    Ok(())
                },
            )
            .await;
            let (error_code, message) = result.err().unzip();
            responses.push(
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name)
                    .with_error_code(error_code.unwrap_or(code::NONE))
                    .with_error_message(message.map(s)),
            );
        }
        ResponseBody::AlterConfigs(AlterConfigsResponse::default().with_responses(responses))
    })
}

fn list_items(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) fn handle_incremental(
    ctx: &Arc<Ctx>,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> Reply {
    let ctx = Arc::clone(ctx);
    later(async move {
        let mut responses = Vec::with_capacity(request.resources.len());
        for resource in request.resources {
            let configs = resource.configs;
            let result = alter(
                &ctx,
                resource.resource_type,
                &resource.resource_name,
                request.validate_only,
                |c| {
                    for entry in &configs {
                        let def = topic_config::lookup(&entry.name).ok_or_else(|| {
                            format!("Unknown topic config name: {}", &*entry.name)
                        })?;
                        let current = topic_config::explicit(def, c);
                        let value = match entry.config_operation {
                            SET => entry.value.as_deref().map(str::to_owned),
                            DELETE => None,
                            APPEND | SUBTRACT if def.kind != topic_config::ConfigType::List => {
                                return Err(format!("{} is not a list config", def.name));
                            }
                            APPEND => {
                                let mut items = list_items(current.as_deref());
                                items.extend(
                                    list_items(entry.value.as_deref())
                                        .into_iter()
                                        .filter(|v| !items.contains(v))
                                        .collect::<Vec<_>>(),
                                );
                                Some(items.join(","))
                            }
                            SUBTRACT => {
                                let remove = list_items(entry.value.as_deref());
                                Some(
                                    list_items(current.as_deref())
                                        .into_iter()
                                        .filter(|v| !remove.contains(v))
                                        .collect::<Vec<_>>()
                                        .join(","),
                                )
                            }
                            other => return Err(format!("unknown config operation {other}")),
                        };
                        topic_config::apply(c, &entry.name, value.as_deref())?;
                    }
                    Ok(())
                },
            )
            .await;
            let (error_code, message) = result.err().unzip();
            responses.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name)
                    .with_error_code(error_code.unwrap_or(code::NONE))
                    .with_error_message(message.map(s)),
            );
        }
        ResponseBody::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(responses),
        )
    })
}
