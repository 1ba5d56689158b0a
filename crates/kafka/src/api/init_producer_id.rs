//! InitProducerId (key 22, v0-4): a producer id for an idempotent or transactional producer.
//!
//! Without a transactional id a fresh id is allocated (epoch 0). From v3 a producer may ask
//! to bump the epoch of the id it has (KIP-360, after an UNKNOWN_PRODUCER_ID or a sequence
//! error): it keeps its id with epoch + 1, or gets a fresh id once the epoch is exhausted.
//! With a transactional id the transaction coordinator answers: the id's producer id with a
//! new epoch, after aborting what an earlier instance left open (which fences it).

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{blocking, later};
use crate::Ctx;
use crate::error;
use crate::message::ResponseBody;
use crate::session::Reply;

fn failed(error_code: i16) -> ResponseBody {
    ResponseBody::InitProducerId(
        InitProducerIdResponse::default()
            .with_error_code(error_code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
}

pub(super) fn handle(ctx: &Arc<Ctx>, request: &InitProducerIdRequest, version: i16) -> Reply {
    if let Some(id) = request
        .transactional_id
        .as_ref()
        .filter(|id| !id.is_empty())
    {
        let (txns, id) = (Arc::clone(&ctx.txns), id.to_string());
        let timeout = request.transaction_timeout_ms;
        let expected = (version >= 3 && request.producer_id.0 >= 0)
            .then_some((request.producer_id.0, request.producer_epoch));
        return later(async move {
            match txns.init_producer_id(&id, timeout, expected).await {
                Ok((pid, epoch)) => ResponseBody::InitProducerId(
                    InitProducerIdResponse::default()
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch),
                ),
                Err(e) => {
                    tracing::debug!(transactional_id = %id, "InitProducerId refused: {e}");
                    failed(error::from_txn(&e, version >= 4))
                }
            }
        });
    }
    let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
    if pid >= 0 && (0..i16::MAX - 1).contains(&epoch) {
        let response = InitProducerIdResponse::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch + 1);
        return Reply::Now(ResponseBody::InitProducerId(response));
    }
    let ids = Arc::clone(&ctx.producer_ids);
    later(async move {
        let response = match blocking(move || ids.allocate()).await {
            Ok(id) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
            Err(e) => return failed(error::from_core(&e).0),
        };
        ResponseBody::InitProducerId(response)
    })
}
