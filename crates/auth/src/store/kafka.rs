//! Kafka's side of the user store: ACLs (journaled as `Kind::Acl`) and the authorization
//! of a Kafka principal, by ACL first and by vhost permissions where no ACL names the resource.

use ferrymq_core::store::{Kind, Pending};

use super::UserStore;
use crate::Error;
use crate::acl::{self, AclBinding, AclDecision, AclFilter, AclOperation, AclResource};

fn acl_key(acl: &AclBinding) -> String {
    format!(
        "{}\0{}\0{}\0{}\0{}\0{}\0{}",
        acl.resource.code(),
        acl.pattern.code(),
        acl.name,
        acl.principal,
        acl.host,
        acl.operation.code(),
        acl.permission.code()
    )
}

/// Who asks, for [`UserStore::authorize_kafka`].
#[derive(Debug, Clone, Copy)]
pub struct KafkaPrincipal<'a> {
    /// The SASL user, a client certificate's subject, or `ANONYMOUS`.
    pub name: &'a str,
    /// The client's address, as ACL hosts name it.
    pub host: &'a str,
    /// The Kafka vhost (whose permissions apply where no ACL does).
    pub vhost: &'a str,
    /// Listed in `kafka.super_users`.
    pub super_user: bool,
    pub allow_everyone_if_no_acl_found: bool,
}

impl UserStore {
    /// Every Kafka ACL.
    pub fn acls(&self) -> Vec<AclBinding> {
        self.read().acls.clone()
    }

    /// Adds an ACL (an existing equal one is kept: `Ok(None)`).
    pub fn create_acl(&self, acl: AclBinding) -> Result<Option<Pending>, Error> {
        let mut state = self.write();
        if state.acls.contains(&acl) {
            return Ok(None);
        }
        let pending = match &self.definitions {
            Some(definitions) => Some(definitions.put_json(Kind::Acl, &acl_key(&acl), &acl)?),
            None => None,
        };
        state.acls.push(acl);
        Ok(pending)
    }

    /// Removes the ACLs `filter` matches; returns them.
    pub fn delete_acls(
        &self,
        filter: &AclFilter,
    ) -> Result<(Vec<AclBinding>, Option<Pending>), Error> {
        let mut state = self.write();
        let (gone, kept): (Vec<_>, Vec<_>) =
            state.acls.drain(..).partition(|acl| filter.matches(acl));
        state.acls = kept;
        let mut pending = None;
        if let Some(definitions) = &self.definitions {
            for acl in &gone {
                pending = definitions.remove(Kind::Acl, &acl_key(acl))?.or(pending);
            }
        }
        Ok((gone, pending))
    }

    /// May `who` do `operation` to Kafka resource `name`? Super users may do anything; then
    /// the ACLs decide; where no ACL names the resource, a user's permissions on the Kafka
    /// vhost decide for topics (a topic is a stream queue there: read for READ, write for
    /// WRITE, configure for CREATE, DELETE and ALTER, any for DESCRIBE) and any permission
    /// on that vhost for groups and transactional ids; principals that are no user get
    /// `allow_everyone_if_no_acl_found`.
    pub fn authorize_kafka(
        &self,
        who: &KafkaPrincipal<'_>,
        operation: AclOperation,
        resource: AclResource,
        name: &str,
    ) -> bool {
        let user = self.user(who.name);
        if who.super_user || user.as_ref().is_some_and(|u| u.tags.is_administrator()) {
            return true;
        }
        let principal = format!("User:{}", who.name);
        let decision = acl::decide(
            &self.read().acls,
            &principal,
            who.host,
            operation,
            resource,
            name,
        );
        match decision {
            AclDecision::Allowed => return true,
            AclDecision::Denied => return false,
            AclDecision::NoAcl => {}
        }
        let Some(user) = user else {
            return who.allow_everyone_if_no_acl_found;
        };
        let Some(permission) = self.permission(who.vhost, &user.name) else {
            return false;
        };
        use AclOperation::*;
        match (resource, operation) {
            (AclResource::Topic, Read) => permission.can_read(name),
            (AclResource::Topic, Write) => permission.can_write(name),
            (AclResource::Topic, Create | Delete | Alter | AlterConfigs) => {
                permission.can_configure(name)
            }
            (AclResource::Topic, Describe | DescribeConfigs) => {
                permission.can_read(name)
                    || permission.can_write(name)
                    || permission.can_configure(name)
            }
            (AclResource::Topic, All) => {
                permission.can_read(name)
                    && permission.can_write(name)
                    && permission.can_configure(name)
            }
            (AclResource::Group | AclResource::TransactionalId, _) => true,
            // Topic creation is then checked on the topic; the cluster's own settings and ACLs
            // are for administrators.
            (AclResource::Cluster, IdempotentWrite | Describe) => true,
            _ => false,
        }
    }
}
