//! DeleteTopics (key 20, v1-6): by name, or (v6) by topic id. The topic's data and its
//! committed group offsets go with it.

use ferrymq_auth::acl::AclOperation;
use std::sync::Arc;

use ferrymq_core::stream::StreamId;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::{blocking, later, s};
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: DeleteTopicsRequest,
    version: i16,
) -> Reply {
    let ctx = Arc::clone(ctx);
    let wanted: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    // Names the client may not delete (looked up now: the check needs the connection).
    let denied: Vec<bool> = wanted
        .iter()
        .map(|(name, id)| {
            let name = match (name, id.is_nil()) {
                (_, false) => ctx
                    .streams
                    .get_by_id(StreamId(*id.as_bytes()))
                    .map(|s| s.name().to_owned()),
                (Some(name), true) => Some(name.to_string()),
                (None, true) => None,
            };
            name.is_some_and(|n| !conn.may_topic(&ctx, AclOperation::Delete, &n))
        })
        .collect();
    later(async move {
        let mut responses = Vec::with_capacity(wanted.len());
        for ((name, id), denied) in wanted.into_iter().zip(denied) {
            let stream = match (&name, id.is_nil()) {
                (_, false) => ctx.streams.get_by_id(StreamId(*id.as_bytes())),
                (Some(name), true) => ctx.streams.get(name),
                (None, true) => None,
            };
            let base = DeletableTopicResult::default()
                .with_name(name.clone())
                .with_topic_id(id);
            if denied {
                responses.push(base.with_error_code(code::TOPIC_AUTHORIZATION_FAILED));
                continue;
            }
            let Some(stream) = stream else {
                let c = if id.is_nil() {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    code::UNKNOWN_TOPIC_ID
                };
                responses.push(base.with_error_code(c));
                continue;
            };
            let streams = Arc::clone(&ctx.streams);
            let topic = stream.name().to_owned();
            let deleting = topic.clone();
            match blocking(move || streams.delete(&deleting)).await {
                Ok(()) => {
                    ctx.groups.remove_topic(&topic);
                    // Exchanges bound to it as a stream queue lose those bindings.
                    ctx.vhost.remove_stream_bindings(&stream);
                    responses.push(
                        base.with_name(Some(TopicName(s(topic))))
                            .with_topic_id(uuid::Uuid::from_bytes(stream.id().0)),
                    );
                }
                Err(e) => {
                    let (c, m) = error::from_core(&e);
                    responses.push(base.with_error_code(c).with_error_message(Some(s(m))));
                }
            }
        }
        ResponseBody::DeleteTopics(DeleteTopicsResponse::default().with_responses(responses))
    })
}
