//! DeleteGroups (key 42, v0-2): remove empty groups and their committed offsets.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::later;
use crate::Ctx;
use crate::error;
use crate::message::ResponseBody;
use crate::session::Reply;

pub(super) fn handle(ctx: &Arc<Ctx>, request: DeleteGroupsRequest, _version: i16) -> Reply {
    let mut results = Vec::with_capacity(request.groups_names.len());
    let mut end = None;
    for group in request.groups_names {
        let outcome = ctx.groups.delete_group(&group);
        let code = match outcome {
            Ok(e) => {
                end = Some(e);
                0
            }
            Err(e) => error::from_group(&e),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(code),
        );
    }
    let ctx = Arc::clone(ctx);
    later(async move {
        if let Some(end) = end
            && let Err(e) = ctx.groups.wait_durable(end).await
        {
            tracing::error!("group deletion not durable: {e}");
        }
        ResponseBody::DeleteGroups(DeleteGroupsResponse::default().with_results(results))
    })
}
