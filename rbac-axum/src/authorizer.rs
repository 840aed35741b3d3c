//! The decision maker behind the layer, and how a [`Requirement`] is decided with it.

use std::sync::Arc;

use rbac_core::{Cause, Decision, Engine, Explanation};

use crate::registry::declared_permissions;
use crate::requirement::Requirement;

/// Anything that answers `(subject, tenant, permission)` checks the way [`rbac_core::Engine`]
/// does. Implemented for [`Engine`], `rbac_core::store::LiveEngine` (features `sqlite` or
/// `postgres`) and `Arc` of any implementor.
///
/// Role and module requirements are decided with [`Authorizer::permissions_of`] and
/// [`Authorizer::explain`]; every permission requirement goes through [`Authorizer::check`], so a
/// live engine's staleness limit and decision audit apply.
pub trait Authorizer: Send + Sync + 'static {
    /// Whether `subject` may `permission` in `tenant` (`""` is the global scope).
    fn check(&self, subject: &str, tenant: &str, permission: &str) -> Decision;

    /// The decision with the roles held and the rule that decided.
    fn explain(&self, subject: &str, tenant: &str, permission: &str) -> Explanation;

    /// Every permission `subject` holds in `tenant`, in name order.
    fn permissions_of(&self, subject: &str, tenant: &str) -> Vec<String>;

    /// Whether the policy declares `permission`.
    fn is_declared(&self, permission: &str) -> bool;

    /// Whether the policy defines the role `role` (global or in any tenant). The default
    /// cannot tell and says yes; every implementation in this crate answers.
    fn is_role(&self, role: &str) -> bool {
        let _ = role;
        true
    }

    /// Whether the policy declares any permission of `module`. The default cannot tell and
    /// says yes; every implementation in this crate answers.
    fn is_module(&self, module: &str) -> bool {
        let _ = module;
        true
    }

    /// Whether `subject` holds any permission of `module` in `tenant`.
    ///
    /// The default finds one in [`Authorizer::permissions_of`] and checks it (so that the
    /// check is audited); every implementation in this crate overrides it with a check that
    /// allocates nothing.
    fn check_module(&self, subject: &str, tenant: &str, module: &str) -> Decision {
        let held = self.permissions_of(subject, tenant);
        match held.iter().find(|p| in_module(p, module)) {
            Some(p) => self.check(subject, tenant, p),
            None => Decision::from_cause(Cause::NoGrant),
        }
    }

    /// The roles `subject` has in force in `tenant`, inherited ones included, or why there are
    /// none to consult: [`Cause::UnknownSubject`], [`Cause::UnknownTenant`], or
    /// [`Cause::Stale`] from a live engine that is denying.
    ///
    /// The default reads the held roles from an explanation, so inherited roles are missing;
    /// every implementation in this crate overrides it.
    fn roles_of(&self, subject: &str, tenant: &str) -> Result<Vec<String>, Cause> {
        held_roles_by_explanation(self, subject, tenant)
    }
}

impl Authorizer for Engine {
    fn check(&self, subject: &str, tenant: &str, permission: &str) -> Decision {
        Engine::check(self, subject, tenant, permission)
    }

    fn explain(&self, subject: &str, tenant: &str, permission: &str) -> Explanation {
        Engine::explain(self, subject, tenant, permission)
    }

    fn permissions_of(&self, subject: &str, tenant: &str) -> Vec<String> {
        Engine::permissions_of(self, subject, tenant)
    }

    fn is_declared(&self, permission: &str) -> bool {
        self.snapshot().permission_id(permission).is_some()
    }

    fn is_role(&self, role: &str) -> bool {
        self.snapshot().has_role(role)
    }

    fn is_module(&self, module: &str) -> bool {
        self.snapshot().has_module(module)
    }

    fn check_module(&self, subject: &str, tenant: &str, module: &str) -> Decision {
        Engine::check_module(self, subject, tenant, module)
    }

    fn roles_of(&self, subject: &str, tenant: &str) -> Result<Vec<String>, Cause> {
        let snapshot = self.snapshot();
        known(&snapshot, subject, tenant)?;
        Ok(snapshot
            .roles_of(subject, tenant)
            .into_iter()
            .map(str::to_owned)
            .collect())
    }
}

/// Unknown subjects and tenants, told apart for the verdict's cause.
fn known(snapshot: &rbac_core::Snapshot, subject: &str, tenant: &str) -> Result<(), Cause> {
    if snapshot.subject_id(subject).is_none() {
        return Err(Cause::UnknownSubject);
    }
    if snapshot.tenant_id(tenant).is_none() {
        return Err(Cause::UnknownTenant);
    }
    Ok(())
}

#[cfg(feature = "store")]
impl Authorizer for rbac_core::store::LiveEngine {
    fn check(&self, subject: &str, tenant: &str, permission: &str) -> Decision {
        rbac_core::store::LiveEngine::check(self, subject, tenant, permission)
    }

    fn explain(&self, subject: &str, tenant: &str, permission: &str) -> Explanation {
        rbac_core::store::LiveEngine::explain(self, subject, tenant, permission)
    }

    fn permissions_of(&self, subject: &str, tenant: &str) -> Vec<String> {
        rbac_core::store::LiveEngine::permissions_of(self, subject, tenant)
    }

    fn is_declared(&self, permission: &str) -> bool {
        self.engine().snapshot().permission_id(permission).is_some()
    }

    fn is_role(&self, role: &str) -> bool {
        self.engine().snapshot().has_role(role)
    }

    fn is_module(&self, module: &str) -> bool {
        self.engine().snapshot().has_module(module)
    }

    fn check_module(&self, subject: &str, tenant: &str, module: &str) -> Decision {
        rbac_core::store::LiveEngine::check_module(self, subject, tenant, module)
    }

    fn roles_of(&self, subject: &str, tenant: &str) -> Result<Vec<String>, Cause> {
        if self.is_denying() {
            return Err(Cause::Stale);
        }
        Authorizer::roles_of(self.engine(), subject, tenant)
    }
}

impl<A: Authorizer + ?Sized> Authorizer for Arc<A> {
    fn check(&self, subject: &str, tenant: &str, permission: &str) -> Decision {
        (**self).check(subject, tenant, permission)
    }

    fn explain(&self, subject: &str, tenant: &str, permission: &str) -> Explanation {
        (**self).explain(subject, tenant, permission)
    }

    fn permissions_of(&self, subject: &str, tenant: &str) -> Vec<String> {
        (**self).permissions_of(subject, tenant)
    }

    fn is_declared(&self, permission: &str) -> bool {
        (**self).is_declared(permission)
    }

    fn is_role(&self, role: &str) -> bool {
        (**self).is_role(role)
    }

    fn is_module(&self, module: &str) -> bool {
        (**self).is_module(module)
    }

    fn check_module(&self, subject: &str, tenant: &str, module: &str) -> Decision {
        (**self).check_module(subject, tenant, module)
    }

    fn roles_of(&self, subject: &str, tenant: &str) -> Result<Vec<String>, Cause> {
        (**self).roles_of(subject, tenant)
    }
}

/// The outcome of deciding a [`Requirement`]: allowed or not, and the engine's cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    allowed: bool,
    cause: Cause,
}

impl Verdict {
    fn of(decision: Decision) -> Verdict {
        Verdict {
            allowed: decision.is_allowed(),
            cause: decision.cause(),
        }
    }

    fn allow() -> Verdict {
        Verdict {
            allowed: true,
            cause: Cause::Granted,
        }
    }

    fn deny(cause: Cause) -> Verdict {
        Verdict {
            allowed: false,
            cause,
        }
    }

    /// Whether the request may go ahead.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Why. For `any(...)`, the cause of the first deny; for `all(...)`, of the first permission
    /// denied; for role and module requirements that nothing matched, [`Cause::NoGrant`].
    pub fn cause(&self) -> Cause {
        self.cause
    }
}

/// Decides `requirement` for `subject` in `tenant`. Anything that cannot be decided is a deny.
pub fn evaluate<A: Authorizer + ?Sized>(
    authorizer: &A,
    subject: &str,
    tenant: &str,
    requirement: &Requirement,
) -> Verdict {
    match *requirement {
        Requirement::Permission(p) => Verdict::of(authorizer.check(subject, tenant, p)),
        Requirement::Any(ps) => {
            let mut first_deny = None;
            for p in ps {
                let decision = authorizer.check(subject, tenant, p);
                if decision.is_allowed() {
                    return Verdict::allow();
                }
                first_deny.get_or_insert(decision.cause());
            }
            Verdict::deny(first_deny.unwrap_or(Cause::NoGrant))
        }
        Requirement::All(ps) => {
            if ps.is_empty() {
                return Verdict::deny(Cause::NoGrant);
            }
            for p in ps {
                let decision = authorizer.check(subject, tenant, p);
                if !decision.is_allowed() {
                    return Verdict::of(decision);
                }
            }
            Verdict::allow()
        }
        Requirement::Module(module) => {
            let decision = authorizer.check_module(subject, tenant, module);
            if decision.is_allowed() {
                Verdict::allow()
            } else {
                // As before: without a grant in the module, the verdict is "no grant", unless
                // the subject or tenant is unknown or the engine is stale.
                match decision.cause() {
                    cause @ (Cause::UnknownSubject | Cause::UnknownTenant | Cause::Stale) => {
                        Verdict::deny(cause)
                    }
                    _ => Verdict::deny(Cause::NoGrant),
                }
            }
        }
        Requirement::Role(role) => has_role(authorizer, subject, tenant, role),
    }
}

fn in_module(permission: &str, module: &str) -> bool {
    permission
        .strip_prefix(module)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// A role requirement holds when the subject has the role in force in the tenant, held or
/// inherited (an `admin` who inherits `auditor` passes `require_role("auditor")`).
fn has_role<A: Authorizer + ?Sized>(
    authorizer: &A,
    subject: &str,
    tenant: &str,
    role: &str,
) -> Verdict {
    match authorizer.roles_of(subject, tenant) {
        Err(cause) => Verdict::deny(cause),
        Ok(roles) if roles.iter().any(|r| r == role) => Verdict::allow(),
        Ok(roles) if roles.is_empty() => Verdict::deny(Cause::NoRoles),
        Ok(_) => Verdict::deny(Cause::NoGrant),
    }
}

/// The held roles (no inherited ones) as an explanation lists them: the fallback for
/// implementors of [`Authorizer`] that have no role query. The explanation needs a declared
/// permission; any one will do, the subject's own first, else one from `permissions!`.
fn held_roles_by_explanation<A: Authorizer + ?Sized>(
    authorizer: &A,
    subject: &str,
    tenant: &str,
) -> Result<Vec<String>, Cause> {
    let probe = authorizer
        .permissions_of(subject, tenant)
        .into_iter()
        .next()
        .or_else(|| {
            declared_permissions()
                .into_iter()
                .map(|p| p.as_str().to_owned())
                .find(|p| authorizer.is_declared(p))
        });
    let Some(probe) = probe else {
        return Err(Cause::NoGrant);
    };
    let explanation = authorizer.explain(subject, tenant, &probe);
    match explanation.decision.cause() {
        cause @ (Cause::Stale | Cause::UnknownSubject | Cause::UnknownTenant) => Err(cause),
        _ => Ok(explanation.held_roles),
    }
}

#[cfg(test)]
mod tests {
    use super::in_module;

    #[test]
    fn modules_match_whole_first_segments() {
        assert!(in_module("finance.accounts.read", "finance"));
        assert!(in_module("finance", "finance"));
        assert!(!in_module("financex.accounts.read", "finance"));
        assert!(!in_module("crm.finance.read", "finance"));
    }
}
