//! DescribeCluster (key 60, v0-1): this node, the cluster id, and itself as controller.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::metadata::ALL_CLUSTER_OPERATIONS;
use super::s;
use crate::Ctx;
use crate::error::code;
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

/// DescribeCluster `endpoint_type` 1: broker endpoints (2, controllers, is not served).
const ENDPOINT_BROKERS: i8 = 1;

pub(super) fn handle(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: &DescribeClusterRequest,
    version: i16,
) -> Reply {
    let node = BrokerId(ctx.config.node_id);
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(s(ctx.cluster_id.clone()))
        .with_controller_id(node)
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(node)
                .with_host(s(conn.listener.advertised_host.clone()))
                .with_port(conn.listener.advertised_port),
        ]);
    if version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        response = response
            .with_error_code(code::MISMATCHED_ENDPOINT_TYPE)
            .with_error_message(Some(s("only broker endpoints are described")));
    }
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = ALL_CLUSTER_OPERATIONS;
    }
    Reply::Now(ResponseBody::DescribeCluster(response))
}
