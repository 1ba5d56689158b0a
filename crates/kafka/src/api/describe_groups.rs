//! DescribeGroups (key 15, v0-5): state, protocol and members (with their metadata and
//! assignment once the group is stable). Unknown groups are reported as `Dead`, as Kafka
//! does before v6.

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::s;
use crate::Ctx;
use crate::error::code;
use crate::message::ResponseBody;
use crate::session::Reply;

/// READ, DELETE, DESCRIBE: the group operations (KIP-430), all allowed without ACLs.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

pub(super) fn handle(ctx: &Arc<Ctx>, request: &DescribeGroupsRequest, _version: i16) -> Reply {
    let groups = request
        .groups
        .iter()
        .map(|id| {
            let d = ctx.groups.describe(id);
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(s(m.member_id))
                        .with_group_instance_id(m.instance_id.map(s))
                        .with_client_id(s(m.client_id))
                        .with_client_host(s(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            let mut group = DescribedGroup::default()
                .with_error_code(if id.is_empty() {
                    code::INVALID_GROUP_ID
                } else {
                    code::NONE
                })
                .with_group_id(id.clone())
                .with_group_state(s(d.state.name()))
                .with_protocol_type(s(d.protocol_type))
                .with_protocol_data(s(d.protocol))
                .with_members(members);
            if request.include_authorized_operations {
                group.authorized_operations = GROUP_OPERATIONS;
            }
            group
        })
        .collect();
    Reply::Now(ResponseBody::DescribeGroups(
        DescribeGroupsResponse::default().with_groups(groups),
    ))
}
