//! JoinGroup (key 11, v0-9): enter a group's rebalance and wait for it to complete.
//!
//! The response waits until every member has rejoined or the rebalance timeout passes (the
//! coordinator's state machine decides, see `ferrymq_core::group`). From v4 a new member
//! without a member id first gets MEMBER_ID_REQUIRED with its id (KIP-394); static members
//! (`group.instance.id`, v5+) skip that and keep their assignment across restarts.

use std::sync::Arc;

use ferrymq_core::group::{GroupError, JoinRequest, JoinResponse};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::{later, s};
use crate::Ctx;
use crate::error;
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

fn encode(r: JoinResponse, version: i16) -> ResponseBody {
    let error_code = r.error.as_ref().map_or(0, error::from_group);
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(s(m.member_id))
                .with_group_instance_id(m.instance_id.map(s))
                .with_metadata(m.metadata)
        })
        .collect();
    let protocol_type = if version >= 7 {
        r.protocol_type.map(s)
    } else {
        None
    };
    let protocol_name = match (r.protocol, version >= 7) {
        (Some(p), _) => Some(s(p)),
        (None, true) => None,
        (None, false) => Some(s(String::new())),
    };
    ResponseBody::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(error_code)
            .with_generation_id(r.generation)
            .with_protocol_type(protocol_type)
            .with_protocol_name(protocol_name)
            .with_leader(s(r.leader))
            .with_member_id(s(r.member_id))
            .with_skip_assignment(version >= 9 && r.skip_assignment)
            .with_members(members),
    )
}

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: JoinGroupRequest,
    version: i16,
) -> Reply {
    let join = JoinRequest {
        group_id: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|i| i.to_string()),
        client_id: conn.client_id.as_deref().unwrap_or_default().to_owned(),
        client_host: format!("/{}", conn.peer.ip()),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let member_id = join.member_id.clone();
    let pending = ctx.groups.join(&join);
    let shutdown = conn.shutdown.clone();
    later(async move {
        let stopped = || JoinResponse::error(GroupError::ShuttingDown, member_id.clone());
        // A rebalance can take minutes; at shutdown the client is told to find the
        // coordinator again instead of the connection being held open.
        let response = tokio::select! {
            response = pending.resolve(stopped) => response,
            () = shutdown.cancelled() => stopped(),
        };
        encode(response, version)
    })
}
