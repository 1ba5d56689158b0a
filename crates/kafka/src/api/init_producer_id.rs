//! InitProducerId (key 22, v0-4): a producer id for an idempotent producer.
//!
//! Without a transactional id a fresh id is allocated (epoch 0). From v3 a producer may ask
//! to bump the epoch of the id it has (KIP-360, after an UNKNOWN_PRODUCER_ID or a sequence
//! error): it keeps its id with epoch + 1, or gets a fresh id once the epoch is exhausted.
//! Transactional ids are refused: ferrymq has no transactions.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{blocking, later};
use crate::Ctx;
use crate::error::{self, code};
use crate::message::ResponseBody;
use crate::session::Reply;

pub(super) fn handle(ctx: &Arc<Ctx>, request: &InitProducerIdRequest, _version: i16) -> Reply {
    if request.transactional_id.is_some() {
        let response = InitProducerIdResponse::default()
            .with_error_code(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        return Reply::Now(ResponseBody::InitProducerId(response));
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
            Err(e) => InitProducerIdResponse::default()
                .with_error_code(error::from_core(&e).0)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
        ResponseBody::InitProducerId(response)
    })
}
