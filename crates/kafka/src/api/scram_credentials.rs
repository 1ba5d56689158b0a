//! DescribeUserScramCredentials (key 50) and AlterUserScramCredentials (key 51): SCRAM
//! credentials of the broker's users, as `kafka-configs --alter --add-config
//! 'SCRAM-SHA-256=[password=...]'` and admin clients manage them.
//!
//! The client sends the salted password (never the password); the broker keeps StoredKey and
//! ServerKey. On a SASL listener only administrators may call these; on a listener without
//! authentication anyone may, as on a Kafka broker without an authorizer. A user the
//! credential names is created if missing (without a password, tags or permissions).

use std::collections::HashSet;
use std::sync::Arc;

use ferrymq_auth::scram::{DEFAULT_ITERATIONS, MAX_ITERATIONS, Mechanism, ScramCredential};
use ferrymq_core::store::Pending;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::s;
use crate::Ctx;
use crate::error::code;
use crate::message::ResponseBody;
use crate::session::{ConnState, Reply};

/// Whether the connection may manage credentials.
fn may_manage(ctx: &Ctx, conn: &ConnState) -> bool {
    if !conn.listener.security.uses_sasl() {
        return true;
    }
    conn.sasl
        .principal
        .as_deref()
        .and_then(|name| ctx.users.user(name))
        .is_some_and(|u| u.tags.is_administrator())
}

fn infos(ctx: &Ctx, user: &str) -> Vec<CredentialInfo> {
    Mechanism::ALL
        .into_iter()
        .filter_map(|m| {
            ctx.users.scram_credential(user, m).map(|c| {
                CredentialInfo::default()
                    .with_mechanism(m.kafka_type())
                    .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
            })
        })
        .collect()
}

pub(super) fn describe(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: &DescribeUserScramCredentialsRequest,
) -> Reply {
    let response = DescribeUserScramCredentialsResponse::default();
    if !may_manage(ctx, conn) {
        return Reply::Now(ResponseBody::DescribeUserScramCredentials(
            response.with_error_code(code::CLUSTER_AUTHORIZATION_FAILED),
        ));
    }
    let result = |user: &str| DescribeUserScramCredentialsResult::default().with_user(s(user));
    let results = match &request.users {
        None => ctx
            .users
            .users()
            .iter()
            .filter(|u| !u.scram.is_empty())
            .map(|u| result(&u.name).with_credential_infos(infos(ctx, &u.name)))
            .collect(),
        Some(users) => {
            let mut seen = HashSet::new();
            let duplicates: HashSet<&str> = users
                .iter()
                .map(|u| u.name.as_str())
                .filter(|n| !seen.insert(*n))
                .collect();
            users
                .iter()
                .map(|u| {
                    let name = u.name.as_str();
                    let found = infos(ctx, name);
                    if duplicates.contains(name) {
                        result(name)
                            .with_error_code(code::DUPLICATE_RESOURCE)
                            .with_error_message(Some(s(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {name}"))))
                    } else if found.is_empty() {
                        result(name)
                            .with_error_code(code::RESOURCE_NOT_FOUND)
                            .with_error_message(Some(s(format!("Attempt to describe a user credential that does not exist: {name}"))))
                    } else {
                        result(name).with_credential_infos(found)
                    }
                })
                .collect()
        }
    };
    Reply::Now(ResponseBody::DescribeUserScramCredentials(
        response.with_results(results),
    ))
}

pub(super) fn alter(
    ctx: &Arc<Ctx>,
    conn: &ConnState,
    request: &AlterUserScramCredentialsRequest,
) -> Reply {
    let allowed = may_manage(ctx, conn);
    let mut names: Vec<&str> = request.deletions.iter().map(|d| d.name.as_str()).collect();
    names.extend(request.upsertions.iter().map(|u| u.name.as_str()));
    let mut seen = HashSet::new();
    let duplicated: HashSet<&str> = names.iter().copied().filter(|n| !seen.insert(*n)).collect();
    let mut results = Vec::new();
    let mut waits: Vec<Pending> = Vec::new();
    let mut record = |name: &str, outcome: Result<Option<Pending>, (i16, String)>| {
        let r = AlterUserScramCredentialsResult::default().with_user(s(name));
        results.push(match outcome {
            Ok(pending) => {
                waits.extend(pending);
                r
            }
            Err((error, message)) => r
                .with_error_code(error)
                .with_error_message(Some(s(message))),
        });
    };
    let check = |name: &str, mechanism: i8| -> Result<Mechanism, (i16, String)> {
        if !allowed {
            return Err((
                code::CLUSTER_AUTHORIZATION_FAILED,
                "Cluster authorization failed.".into(),
            ));
        }
        if name.is_empty() {
            return Err((
                code::UNACCEPTABLE_CREDENTIAL,
                "Username must not be empty".into(),
            ));
        }
        if duplicated.contains(name) {
            return Err((
                code::DUPLICATE_RESOURCE,
                format!("A user credential cannot be altered twice in the same request: {name}"),
            ));
        }
        Mechanism::from_kafka_type(mechanism).ok_or_else(|| {
            (
                code::UNSUPPORTED_SASL_MECHANISM,
                format!("Unknown SCRAM mechanism {mechanism}"),
            )
        })
    };
    for d in &request.deletions {
        let name = d.name.as_str();
        let outcome = check(name, d.mechanism).and_then(|m| {
            ctx.users.set_scram(name, m, None).map_err(|_| {
                (
                    code::RESOURCE_NOT_FOUND,
                    format!("Attempt to delete a user credential that does not exist: {name}"),
                )
            })
        });
        record(name, outcome);
    }
    for u in &request.upsertions {
        let name = u.name.as_str();
        let outcome = check(name, u.mechanism).and_then(|m| {
            let iterations = u32::try_from(u.iterations).unwrap_or(0);
            if !(DEFAULT_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                return Err((
                    code::UNACCEPTABLE_CREDENTIAL,
                    format!(
                        "Iterations {} not in the range [{DEFAULT_ITERATIONS}, {MAX_ITERATIONS}]",
                        u.iterations
                    ),
                ));
            }
            if u.salted_password.is_empty() || u.salt.is_empty() {
                return Err((
                    code::UNACCEPTABLE_CREDENTIAL,
                    "salt and salted password must not be empty".into(),
                ));
            }
            let credential =
                ScramCredential::from_salted(m, u.salt.to_vec(), iterations, &u.salted_password);
            ctx.users
                .set_scram(name, m, Some(credential))
                .map_err(|e| (code::UNACCEPTABLE_CREDENTIAL, e.to_string()))
        });
        record(name, outcome);
    }
    let mut response = AlterUserScramCredentialsResponse::default().with_results(results);
    Reply::Later(Box::pin(async move {
        // Answered once the credentials are on disk, as every definition change.
        for wait in waits {
            if let Err(e) = wait.durable().await {
                tracing::error!("SCRAM credentials could not be stored: {e}");
                for r in &mut response.results {
                    r.error_code = code::UNKNOWN_SERVER_ERROR;
                    r.error_message = Some(s("the credentials could not be stored"));
                }
            }
        }
        ResponseBody::AlterUserScramCredentials(response)
    }))
}
