//! ListGroups (key 16, v0-4): every group the client may describe, optionally filtered by
//! state (v4+).

use ferrymq_auth::acl::AclOperation;
use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::s;
use crate::Ctx;
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: &ListGroupsRequest,
    _version: i16,
) -> Reply {
    let wanted = &request.states_filter;
    let groups = ctx
        .groups
        .list()
        .into_iter()
        .filter(|g| conn.may_group(ctx, AclOperation::Describe, &g.group_id))
        .filter(|g| {
            wanted.is_empty()
                || wanted
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(g.state.name()))
        })
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(s(g.group_id)))
                .with_protocol_type(s(g.protocol_type))
                .with_group_state(s(g.state.name()))
        })
        .collect();
    Reply::Now(ResponseBody::ListGroups(
        ListGroupsResponse::default().with_groups(groups),
    ))
}
