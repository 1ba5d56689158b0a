//! Kafka's ACLs: rules of the form "principal P from host H is ALLOWed/DENYed operation O on
//! resource R", as `kafka-acls` and admin clients create them (CreateAcls, DescribeAcls,
//! DeleteAcls), and how a request is decided against them (Kafka's StandardAuthorizer).
//!
//! ```text
//! resource   TOPIC, GROUP, CLUSTER ("kafka-cluster"), TRANSACTIONAL_ID; a LITERAL name
//!            (or "*", every resource of the type) or a PREFIXED one
//! decision   a matching DENY wins; else a matching ALLOW (READ, WRITE, DELETE and ALTER
//!            imply DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS; ALL is every
//!            operation); else refused if any ACL names the resource; else the fallback
//! ```
//! The fallback when no ACL names a resource is the store's (see
//! [`crate::UserStore::authorize_kafka`]): a user's vhost permissions for topics, and
//! `allow.everyone.if.no.acl.found` for the rest.
//!
//! The numbers are Kafka's wire codes.

use serde::{Deserialize, Serialize};

/// A fieldless enum whose discriminants are Kafka's wire codes, with `from_code` and `code`.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($variant = $code),+
        }

        impl $name {
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $($code => Some(Self::$variant),)+
                    _ => None,
                }
            }

            pub fn code(self) -> i8 {
                self as i8
            }
        }
    };
}

wire_enum! {
    /// What an ACL protects.
    AclResource { Topic = 2, Group = 3, Cluster = 4, TransactionalId = 5 }
}

wire_enum! {
    /// How an ACL's resource name is matched.
    AclPattern { Literal = 3, Prefixed = 4 }
}

wire_enum! {
    /// Kafka's operations.
    AclOperation {
        All = 2,
        Read = 3,
        Write = 4,
        Create = 5,
        Delete = 6,
        Alter = 7,
        Describe = 8,
        ClusterAction = 9,
        DescribeConfigs = 10,
        AlterConfigs = 11,
        IdempotentWrite = 12,
    }
}

impl AclOperation {
    /// Whether an ALLOW of `self` allows `wanted`.
    fn allows(self, wanted: AclOperation) -> bool {
        use AclOperation::*;
        self == All
            || self == wanted
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }
}

wire_enum! {
    /// ALLOW or DENY.
    AclPermission { Deny = 2, Allow = 3 }
}

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource: AclResource,
    pub name: String,
    pub pattern: AclPattern,
    /// `User:alice`, or `User:*` for every principal.
    pub principal: String,
    /// A client address, or `*`.
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

impl AclBinding {
    /// Whether it names resource `name` of `resource`.
    pub fn covers(&self, resource: AclResource, name: &str) -> bool {
        self.resource == resource
            && match self.pattern {
                AclPattern::Literal => self.name == name || self.name == "*",
                AclPattern::Prefixed => name.starts_with(&self.name),
            }
    }

    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == "User:*")
            && (self.host == host || self.host == "*")
    }

    /// What CreateAcls refuses (with INVALID_REQUEST), or None.
    pub fn invalid(&self) -> Option<String> {
        let Some((kind, name)) = self.principal.split_once(':') else {
            return Some(format!(
                "Could not parse principal from `{}`",
                self.principal
            ));
        };
        if kind.is_empty() || name.is_empty() {
            return Some(format!(
                "Could not parse principal from `{}`",
                self.principal
            ));
        }
        if self.name.is_empty() {
            return Some("Resource name must not be empty".to_owned());
        }
        if self.resource == AclResource::Cluster && self.name != CLUSTER_NAME {
            return Some(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            ));
        }
        if self.pattern == AclPattern::Prefixed && self.name == "*" {
            return Some("A PREFIXED pattern cannot be `*`".to_owned());
        }
        None
    }
}

/// A DescribeAcls or DeleteAcls filter: `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource: Option<AclResource>,
    pub name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<AclPermission>,
}

/// How a filter matches names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type, the name compared as it is.
    #[default]
    Any,
    /// The ACLs that would apply to the name: literal, `*`, and prefixes of it.
    Match,
    Exactly(AclPattern),
}

impl PatternFilter {
    /// From the wire: ANY = 1, MATCH = 2, LITERAL = 3, PREFIXED = 4.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(Self::Any),
            2 => Some(Self::Match),
            other => AclPattern::from_code(other).map(Self::Exactly),
        }
    }
}

impl AclFilter {
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let name = match (&self.name, self.pattern) {
            (None, PatternFilter::Match | PatternFilter::Any) => true,
            (None, PatternFilter::Exactly(p)) => acl.pattern == p,
            (Some(n), PatternFilter::Any) => &acl.name == n,
            (Some(n), PatternFilter::Exactly(p)) => acl.pattern == p && &acl.name == n,
            (Some(n), PatternFilter::Match) => match acl.pattern {
                AclPattern::Literal => &acl.name == n || acl.name == "*",
                AclPattern::Prefixed => n.starts_with(&acl.name),
            },
        };
        name && self.resource.is_none_or(|r| r == acl.resource)
            && self.principal.as_ref().is_none_or(|p| p == &acl.principal)
            && self.host.as_ref().is_none_or(|h| h == &acl.host)
            && self.operation.is_none_or(|o| o == acl.operation)
            && self.permission.is_none_or(|p| p == acl.permission)
    }
}

/// What the ACLs say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclDecision {
    Allowed,
    Denied,
    /// No ACL names the resource: the caller's fallback decides.
    NoAcl,
}

/// Decides `operation` on `resource`/`name` for `principal` (`User:alice`) from `host`.
pub fn decide(
    acls: &[AclBinding],
    principal: &str,
    host: &str,
    operation: AclOperation,
    resource: AclResource,
    name: &str,
) -> AclDecision {
    let mut named = false;
    let mut allowed = false;
    for acl in acls.iter().filter(|a| a.covers(resource, name)) {
        named = true;
        if !acl.applies_to(principal, host) {
            continue;
        }
        match acl.permission {
            AclPermission::Deny
                if acl.operation == AclOperation::All || acl.operation == operation =>
            {
                return AclDecision::Denied;
            }
            AclPermission::Allow if acl.operation.allows(operation) => allowed = true,
            _ => {}
        }
    }
    match (allowed, named) {
        (true, _) => AclDecision::Allowed,
        (false, true) => AclDecision::Denied,
        (false, false) => AclDecision::NoAcl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AclOperation::*;

    fn acl(
        name: &str,
        pattern: AclPattern,
        principal: &str,
        op: AclOperation,
        perm: AclPermission,
    ) -> AclBinding {
        AclBinding {
            resource: AclResource::Topic,
            name: name.to_owned(),
            pattern,
            principal: principal.to_owned(),
            host: "*".to_owned(),
            operation: op,
            permission: perm,
        }
    }

    #[test]
    fn deny_wins_allow_implies_describe_and_named_resources_refuse_others() {
        let acls = vec![
            acl(
                "orders",
                AclPattern::Literal,
                "User:alice",
                Read,
                AclPermission::Allow,
            ),
            acl(
                "ord",
                AclPattern::Prefixed,
                "User:*",
                Write,
                AclPermission::Allow,
            ),
            acl(
                "orders",
                AclPattern::Literal,
                "User:mallory",
                All,
                AclPermission::Deny,
            ),
        ];
        let d = |p, op, name| decide(&acls, p, "10.0.0.1", op, AclResource::Topic, name);
        assert_eq!(d("User:alice", Read, "orders"), AclDecision::Allowed);
        assert_eq!(d("User:alice", Describe, "orders"), AclDecision::Allowed);
        assert_eq!(d("User:alice", Delete, "orders"), AclDecision::Denied);
        assert_eq!(d("User:bob", Write, "ordinary"), AclDecision::Allowed);
        assert_eq!(d("User:bob", Read, "ordinary"), AclDecision::Denied);
        assert_eq!(d("User:mallory", Write, "orders"), AclDecision::Denied);
        assert_eq!(d("User:bob", Read, "payments"), AclDecision::NoAcl);
        let hosts = vec![AclBinding {
            host: "10.0.0.2".into(),
            ..acl(
                "t",
                AclPattern::Literal,
                "User:alice",
                Read,
                AclPermission::Allow,
            )
        }];
        assert_eq!(
            decide(
                &hosts,
                "User:alice",
                "10.0.0.1",
                Read,
                AclResource::Topic,
                "t"
            ),
            AclDecision::Denied
        );
        assert_eq!(
            decide(
                &hosts,
                "User:alice",
                "10.0.0.2",
                Read,
                AclResource::Topic,
                "t"
            ),
            AclDecision::Allowed
        );
    }

    #[test]
    fn filters_match_as_kafka_describes() {
        let literal = acl(
            "orders",
            AclPattern::Literal,
            "User:alice",
            Read,
            AclPermission::Allow,
        );
        let prefixed = acl(
            "ord",
            AclPattern::Prefixed,
            "User:alice",
            Read,
            AclPermission::Allow,
        );
        let wildcard = acl(
            "*",
            AclPattern::Literal,
            "User:alice",
            Read,
            AclPermission::Allow,
        );
        let filter = |name: &str, pattern| AclFilter {
            name: Some(name.into()),
            pattern,
            ..AclFilter::default()
        };
        let matched = |f: &AclFilter| {
            [&literal, &prefixed, &wildcard]
                .iter()
                .filter(|a| f.matches(a))
                .count()
        };
        assert_eq!(matched(&filter("orders", PatternFilter::Match)), 3);
        assert_eq!(matched(&filter("orders", PatternFilter::Any)), 1);
        assert_eq!(
            matched(&filter("ord", PatternFilter::Exactly(AclPattern::Prefixed))),
            1
        );
        assert_eq!(matched(&AclFilter::default()), 3);
        assert_eq!(
            matched(&AclFilter {
                operation: Some(Write),
                ..AclFilter::default()
            }),
            0
        );
    }

    #[test]
    fn invalid_bindings_are_named() {
        let mut a = acl(
            "t",
            AclPattern::Literal,
            "alice",
            Read,
            AclPermission::Allow,
        );
        assert!(a.invalid().is_some());
        a.principal = "User:alice".into();
        assert!(a.invalid().is_none());
        a.resource = AclResource::Cluster;
        assert!(a.invalid().is_some());
        a.name = CLUSTER_NAME.into();
        assert!(a.invalid().is_none());
    }
}
