//! AddOffsetsToTxn (key 25, v0-3): the group whose offsets the transaction will commit
//! (TxnOffsetCommit follows). Needs WRITE on the transactional id and READ on the group.

use std::sync::Arc;

use ferrymq_auth::acl::{AclOperation, AclResource};
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::later;
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

fn response(error_code: i16) -> ResponseBody {
    ResponseBody::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(error_code))
}

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: &AddOffsetsToTxnRequest,
    version: i16,
) -> Reply {
    let id = request.transactional_id.to_string();
    if !conn.may(ctx, AclOperation::Write, AclResource::TransactionalId, &id) {
        return Reply::Now(response(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED));
    }
    let group = request.group_id.to_string();
    if !conn.may_group(ctx, AclOperation::Read, &group) {
        return Reply::Now(response(code::GROUP_AUTHORIZATION_FAILED));
    }
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    let txns = Arc::clone(&ctx.txns);
    later(async move {
        match txns.add_offsets(&id, pid, epoch, &group).await {
            Ok(()) => response(code::NONE),
            Err(e) => response(error::from_txn(&e, version >= 2)),
        }
    })
}
