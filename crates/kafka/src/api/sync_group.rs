//! SyncGroup (key 14, v0-5): the leader hands out assignments; everyone receives theirs.

use std::sync::Arc;

use ferrymq_core::group::{GroupError, SyncResponse};
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::{later, s};
use crate::Ctx;
use crate::error;
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: SyncGroupRequest,
    version: i16,
) -> Reply {
    let assignments = request
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let pending = ctx.groups.sync(
        &request.group_id,
        request.generation_id,
        &request.member_id,
        request.group_instance_id.as_deref(),
        request.protocol_type.as_deref(),
        request.protocol_name.as_deref(),
        assignments,
    );
    let shutdown = conn.shutdown.clone();
    later(async move {
        let stopped = || SyncResponse::error(GroupError::ShuttingDown);
        let r = tokio::select! {
            r = pending.resolve(stopped) => r,
            () = shutdown.cancelled() => stopped(),
        };
        let mut response = SyncGroupResponse::default()
            .with_error_code(r.error.as_ref().map_or(0, error::from_group))
            .with_assignment(r.assignment);
        if version >= 5 {
            response.protocol_type = r.protocol_type.map(s);
            response.protocol_name = r.protocol.map(s);
        }
        ResponseBody::SyncGroup(response)
    })
}
