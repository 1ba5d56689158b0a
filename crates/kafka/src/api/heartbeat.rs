//! Heartbeat (key 12, v0-4): keeps a member's session alive; REBALANCE_IN_PROGRESS tells it
//! to rejoin.

use std::sync::Arc;

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::Ctx;
use crate::error;
use crate::message::ResponseBody;
use crate::session::Reply;

pub(super) fn handle(ctx: &Arc<Ctx>, request: &HeartbeatRequest, _version: i16) -> Reply {
    let result = ctx.groups.heartbeat(
        &request.group_id,
        request.generation_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
    );
    let code = result.err().as_ref().map_or(0, error::from_group);
    Reply::Now(ResponseBody::Heartbeat(
        HeartbeatResponse::default().with_error_code(code),
    ))
}
