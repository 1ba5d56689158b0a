//! EndTxn (key 26, v0-3): commits or aborts the producer's transaction. Answered once the
//! decision is durable and every partition of the transaction has its marker.

use std::sync::Arc;

use ferrymq_auth::acl::{AclOperation, AclResource};
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::later;
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

fn response(error_code: i16) -> ResponseBody {
    ResponseBody::EndTxn(EndTxnResponse::default().with_error_code(error_code))
}

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: &EndTxnRequest,
    version: i16,
) -> Reply {
    let id = request.transactional_id.to_string();
    if !conn.may(ctx, AclOperation::Write, AclResource::TransactionalId, &id) {
        return Reply::Now(response(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED));
    }
    let (pid, epoch, commit) = (
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    let txns = Arc::clone(&ctx.txns);
    later(async move {
        match txns.end_txn(&id, pid, epoch, commit).await {
            Ok(()) => response(code::NONE),
            Err(e) => {
                tracing::debug!(transactional_id = %id, commit, "EndTxn refused: {e}");
                response(error::from_txn(&e, version >= 2))
            }
        }
    })
}
