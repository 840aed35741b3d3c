//! Permission checks: every operation names the acting subject and a decision source, and
//! requires its own permission (see [`Operation::permission`]). A grant in the global scope
//! covers every backup; a grant held only in tenant `T` covers exactly the scope `tenant:T`.
//! Anything else (unknown subject, no grant, a tenant admin asking for `all` or another
//! tenant) is denied, and the denial is logged.

use rbac_core::{Engine, Snapshot};

use super::model::{BackupError, Operation, Scope};

/// A source of allow/deny decisions: an [`Engine`], a [`Snapshot`], a live engine, or any
/// policy decision point of your own. Unknown names must be denied.
pub trait Authorizer: Send + Sync {
    /// Whether `subject` holds `permission` in `tenant` (`""`: the global scope).
    fn allows(&self, subject: &str, tenant: &str, permission: &str) -> bool;

    /// The tenants where `subject` holds roles of its own: where a tenant-only reader's
    /// backups and log rows can be. The default knows none (such a reader is then denied a
    /// listing, as before); every implementation in this crate answers.
    fn tenants_of(&self, subject: &str) -> Vec<String> {
        let _ = subject;
        Vec::new()
    }
}

impl Authorizer for Engine {
    fn allows(&self, subject: &str, tenant: &str, permission: &str) -> bool {
        self.check(subject, tenant, permission).is_allowed()
    }

    fn tenants_of(&self, subject: &str) -> Vec<String> {
        Authorizer::tenants_of(&*self.snapshot(), subject)
    }
}

impl Authorizer for Snapshot {
    fn allows(&self, subject: &str, tenant: &str, permission: &str) -> bool {
        self.check(subject, tenant, permission).is_allowed()
    }

    fn tenants_of(&self, subject: &str) -> Vec<String> {
        Snapshot::tenants_of(self, subject)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}

impl Authorizer for rbac_core::store::LiveEngine {
    fn allows(&self, subject: &str, tenant: &str, permission: &str) -> bool {
        self.check(subject, tenant, permission).is_allowed()
    }

    fn tenants_of(&self, subject: &str) -> Vec<String> {
        // A stale engine that denies checks lists nothing either.
        if self.is_denying() {
            return Vec::new();
        }
        Authorizer::tenants_of(&*self.engine().snapshot(), subject)
    }
}

/// Who performs an operation, and what decides whether they may.
#[derive(Clone, Copy)]
pub struct Actor<'a> {
    /// The acting subject (recorded in manifests and the log).
    pub subject: &'a str,
    /// The decision source.
    pub authorizer: &'a dyn Authorizer,
}

impl std::fmt::Debug for Actor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("subject", &self.subject)
            .finish()
    }
}

impl<'a> Actor<'a> {
    /// An actor deciding with `authorizer`.
    pub fn new(subject: &'a str, authorizer: &'a dyn Authorizer) -> Actor<'a> {
        Actor {
            subject,
            authorizer,
        }
    }

    /// Whether the actor may perform `op` on `scope`.
    pub fn may(&self, op: Operation, scope: &Scope) -> bool {
        let permission = op.permission();
        if self.subject.is_empty() {
            return false;
        }
        if self.authorizer.allows(self.subject, "", permission) {
            return true;
        }
        match scope {
            Scope::Tenant(t) => {
                !t.is_empty() && self.authorizer.allows(self.subject, t, permission)
            }
            Scope::All | Scope::Modules(_) => false,
        }
    }

    /// The tenants in which the actor may `op` (when it may not in every one): the scopes
    /// `tenant:T` it can see.
    pub fn tenants_for(&self, op: Operation) -> Vec<String> {
        if self.subject.is_empty() {
            return Vec::new();
        }
        self.authorizer
            .tenants_of(self.subject)
            .into_iter()
            .filter(|t| self.may(op, &Scope::Tenant(t.clone())))
            .collect()
    }

    /// `Ok` when allowed; otherwise a [`BackupError::Denied`], also reported to tracing (target
    /// `rbac::backup::denied`, which the CLI leaves out since its error line says the same).
    pub fn require(&self, op: Operation, scope: &Scope) -> Result<(), BackupError> {
        if self.may(op, scope) {
            return Ok(());
        }
        tracing::warn!(
            target: "rbac::backup::denied",
            actor = self.subject,
            permission = op.permission(),
            scope = %scope,
            "backup operation denied"
        );
        Err(BackupError::Denied {
            actor: self.subject.to_owned(),
            permission: op.permission(),
            scope: scope.to_string(),
        })
    }
}
