//! LeaveGroup (key 13): one member (v0-2) or a batch of members by id or instance id (v3+).

use std::sync::Arc;

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::Ctx;
use crate::error;
use crate::message::ResponseBody;
use crate::session::Reply;

pub(super) fn handle(ctx: &Arc<Ctx>, request: &LeaveGroupRequest, version: i16) -> Reply {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let response = match ctx.groups.leave(&request.group_id, &members) {
        Err(e) => LeaveGroupResponse::default().with_error_code(error::from_group(&e)),
        Ok(results) if version >= 3 => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(results)
                .map(|((id, instance), r)| {
                    MemberResponse::default()
                        .with_member_id(id.into())
                        .with_group_instance_id(instance.map(Into::into))
                        .with_error_code(r.err().as_ref().map_or(0, error::from_group))
                })
                .collect(),
        ),
        Ok(results) => LeaveGroupResponse::default().with_error_code(
            results
                .into_iter()
                .find_map(Result::err)
                .as_ref()
                .map_or(0, error::from_group),
        ),
    };
    Reply::Now(ResponseBody::LeaveGroup(response))
}
