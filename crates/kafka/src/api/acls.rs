//! CreateAcls (key 30), DescribeAcls (key 29) and DeleteAcls (key 31), v1-3: Kafka's ACLs,
//! kept in the broker's user store (journaled with the definitions), as `kafka-acls` and
//! admin clients manage them. Creating and deleting needs ALTER on the cluster, describing
//! DESCRIBE on it.

use std::sync::Arc;

use ferrymq_auth::acl::{
    AclBinding, AclFilter, AclOperation, AclPattern, AclPermission, AclResource, PatternFilter,
};
use ferrymq_core::store::Pending;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{later, s};
use crate::Ctx;
use crate::error::code;
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

const ANY: i8 = 1;

fn invalid(what: &str, value: i8) -> (i16, String) {
    (code::INVALID_REQUEST, format!("Unknown {what} {value}"))
}

/// The filter a DescribeAcls request or a DeleteAcls filter describes (both have the same
/// seven fields).
macro_rules! filter_of {
    ($f:expr) => {
        filter(
            $f.resource_type_filter,
            $f.resource_name_filter.as_ref(),
            $f.pattern_type_filter,
            $f.principal_filter.as_ref(),
            $f.host_filter.as_ref(),
            $f.operation,
            $f.permission_type,
        )
    };
}

fn filter(
    resource: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, (i16, String)> {
    Ok(AclFilter {
        resource: match resource {
            ANY => None,
            r => Some(AclResource::from_code(r).ok_or_else(|| invalid("resource type", r))?),
        },
        name: name.map(ToString::to_string),
        pattern: PatternFilter::from_code(pattern)
            .ok_or_else(|| invalid("pattern type", pattern))?,
        principal: principal.map(ToString::to_string),
        host: host.map(ToString::to_string),
        operation: match operation {
            ANY => None,
            o => Some(AclOperation::from_code(o).ok_or_else(|| invalid("operation", o))?),
        },
        permission: match permission {
            ANY => None,
            p => Some(AclPermission::from_code(p).ok_or_else(|| invalid("permission type", p))?),
        },
    })
}

async fn durable(waits: Vec<Pending>) -> Result<(), (i16, String)> {
    for pending in waits {
        pending
            .durable()
            .await
            .map_err(|e| (code::UNKNOWN_SERVER_ERROR, e.to_string()))?;
    }
    Ok(())
}

pub(super) fn create(ctx: &Arc<Ctx>, conn: &ConnState, request: CreateAclsRequest) -> Reply {
    let allowed = conn.may_cluster(ctx, AclOperation::Alter);
    let mut outcomes = Vec::with_capacity(request.creations.len());
    let mut waits = Vec::new();
    for c in request.creations {
        let outcome = (|| {
            if !allowed {
                return Err((
                    code::CLUSTER_AUTHORIZATION_FAILED,
                    "Cluster authorization failed.".to_owned(),
                ));
            }
            let acl = AclBinding {
                resource: AclResource::from_code(c.resource_type)
                    .ok_or_else(|| invalid("resource type", c.resource_type))?,
                name: c.resource_name.to_string(),
                pattern: AclPattern::from_code(c.resource_pattern_type)
                    .ok_or_else(|| invalid("pattern type", c.resource_pattern_type))?,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: AclOperation::from_code(c.operation)
                    .ok_or_else(|| invalid("operation", c.operation))?,
                permission: AclPermission::from_code(c.permission_type)
                    .ok_or_else(|| invalid("permission type", c.permission_type))?,
            };
            if let Some(reason) = acl.invalid() {
                return Err((code::INVALID_REQUEST, reason));
            }
            ctx.users
                .create_acl(acl)
                .map_err(|e| (code::UNKNOWN_SERVER_ERROR, e.to_string()))
        })();
        outcomes.push(match outcome {
            Ok(pending) => {
                waits.extend(pending);
                None
            }
            Err(e) => Some(e),
        });
    }
    later(async move {
        let synced = durable(waits).await.err();
        let results = outcomes
            .into_iter()
            .map(|outcome| match outcome.or_else(|| synced.clone()) {
                None => AclCreationResult::default(),
                Some((c, m)) => AclCreationResult::default()
                    .with_error_code(c)
                    .with_error_message(Some(s(m))),
            })
            .collect();
        ResponseBody::CreateAcls(CreateAclsResponse::default().with_results(results))
    })
}

pub(super) fn describe(ctx: &Arc<Ctx>, conn: &ConnState, request: &DescribeAclsRequest) -> Reply {
    let refuse = |c, m: String| {
        Reply::Now(ResponseBody::DescribeAcls(
            DescribeAclsResponse::default()
                .with_error_code(c)
                .with_error_message(Some(s(m))),
        ))
    };
    if !conn.may_cluster(ctx, AclOperation::Describe) {
        return refuse(
            code::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.".into(),
        );
    }
    let wanted = match filter_of!(request) {
        Ok(f) => f,
        Err((c, m)) => return refuse(c, m),
    };
    // Grouped by resource, as Kafka answers.
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    let mut acls: Vec<AclBinding> = ctx
        .users
        .acls()
        .into_iter()
        .filter(|a| wanted.matches(a))
        .collect();
    acls.sort();
    for acl in acls {
        let description = AclDescription::default()
            .with_principal(s(acl.principal))
            .with_host(s(acl.host))
            .with_operation(acl.operation.code())
            .with_permission_type(acl.permission.code());
        match resources.last_mut() {
            Some(r)
                if r.resource_type == acl.resource.code()
                    && r.pattern_type == acl.pattern.code()
                    && r.resource_name.as_str() == acl.name =>
            {
                r.acls.push(description);
            }
            _ => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource.code())
                    .with_resource_name(s(acl.name))
                    .with_pattern_type(acl.pattern.code())
                    .with_acls(vec![description]),
            ),
        }
    }
    Reply::Now(ResponseBody::DescribeAcls(
        DescribeAclsResponse::default().with_resources(resources),
    ))
}

fn delete_one(
    ctx: &Ctx,
    allowed: bool,
    f: &DeleteAclsFilter,
) -> Result<(Vec<AclBinding>, Option<Pending>), (i16, String)> {
    if !allowed {
        return Err((
            code::CLUSTER_AUTHORIZATION_FAILED,
            "Cluster authorization failed.".to_owned(),
        ));
    }
    let wanted = filter_of!(f)?;
    ctx.users
        .delete_acls(&wanted)
        .map_err(|e| (code::UNKNOWN_SERVER_ERROR, e.to_string()))
}

pub(super) fn delete(ctx: &Arc<Ctx>, conn: &ConnState, request: &DeleteAclsRequest) -> Reply {
    let allowed = conn.may_cluster(ctx, AclOperation::Alter);
    let mut results = Vec::with_capacity(request.filters.len());
    let mut waits = Vec::new();
    for f in &request.filters {
        results.push(match delete_one(ctx, allowed, f) {
            Ok((gone, pending)) => {
                waits.extend(pending);
                let matching = gone
                    .into_iter()
                    .map(|acl| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(acl.resource.code())
                            .with_resource_name(s(acl.name))
                            .with_pattern_type(acl.pattern.code())
                            .with_principal(s(acl.principal))
                            .with_host(s(acl.host))
                            .with_operation(acl.operation.code())
                            .with_permission_type(acl.permission.code())
                    })
                    .collect();
                DeleteAclsFilterResult::default().with_matching_acls(matching)
            }
            Err((c, m)) => DeleteAclsFilterResult::default()
                .with_error_code(c)
                .with_error_message(Some(s(m))),
        });
    }
    later(async move {
        if let Err((c, m)) = durable(waits).await {
            for r in &mut results {
                r.error_code = c;
                r.error_message = Some(s(m.clone()));
            }
        }
        ResponseBody::DeleteAcls(DeleteAclsResponse::default().with_filter_results(results))
    })
}
