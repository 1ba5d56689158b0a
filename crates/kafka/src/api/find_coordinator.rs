//! FindCoordinator (key 10, v0-4): this node coordinates every group (key type 0) and every
//! transactional id (key type 1).

use ferrymq_auth::acl::{AclOperation, AclResource};
use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::s;
use crate::Ctx;
use crate::error::code;
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

fn answer(ctx: &Ctx, conn: &ConnState, key: &StrBytes, key_type: i8) -> (i16, Option<String>) {
    if key_type == KEY_TRANSACTION {
        if key.is_empty() {
            return (
                code::INVALID_REQUEST,
                Some("transactional id must not be empty".into()),
            );
        }
        if !conn.may(
            ctx,
            AclOperation::Describe,
            AclResource::TransactionalId,
            key,
        ) {
            return (
                code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                Some("Transactional Id authorization failed.".into()),
            );
        }
        return (code::NONE, None);
    }
    if key_type != KEY_GROUP {
        return (
            code::INVALID_REQUEST,
            Some(format!("unknown key type {key_type}")),
        );
    }
    if key.is_empty() {
        return (
            code::INVALID_GROUP_ID,
            Some("group id must not be empty".into()),
        );
    }
    if !conn.may_group(ctx, AclOperation::Describe, key) {
        return (
            code::GROUP_AUTHORIZATION_FAILED,
            Some("Group authorization failed.".into()),
        );
    }
    (code::NONE, None)
}

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: &FindCoordinatorRequest,
    version: i16,
) -> Reply {
    let node = BrokerId(ctx.config.node_id);
    let host = s(conn.listener.advertised_host.clone());
    let port = conn.listener.advertised_port;
    let response = if version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (c, message) = answer(ctx, conn, key, request.key_type);
                let found = c == code::NONE;
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(if found { node } else { BrokerId(-1) })
                    .with_host(if found {
                        host.clone()
                    } else {
                        StrBytes::default()
                    })
                    .with_port(if found { port } else { -1 })
                    .with_error_code(c)
                    .with_error_message(message.map(s))
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let (c, message) = answer(ctx, conn, &request.key, request.key_type);
        let found = c == code::NONE;
        FindCoordinatorResponse::default()
            .with_error_code(c)
            .with_error_message(message.map(s))
            .with_node_id(if found { node } else { BrokerId(-1) })
            .with_host(if found { host } else { StrBytes::default() })
            .with_port(if found { port } else { -1 })
    };
    Reply::Now(ResponseBody::FindCoordinator(response))
}
