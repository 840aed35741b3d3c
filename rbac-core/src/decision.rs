//! Decisions as values, and explanations a person can read.

use std::fmt;

/// The verdict of one check: allowed or denied, and the category of the reason.
///
/// A `Decision` is cheap (it is `Copy`) so that checks stay allocation-free; the role chain and
/// the rule behind it come from [`crate::Engine::explain`], which always agrees with
/// [`crate::Engine::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    cause: Cause,
}

/// Why a check came out the way it did. Everything but [`Cause::Granted`] is a deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cause {
    /// A role the subject holds in that scope grants the permission, and none denies it.
    Granted,
    /// A role the subject holds (or one it inherits) denies the permission: deny wins.
    ExplicitDeny,
    /// The subject holds roles in that scope, but none grants the permission.
    NoGrant,
    /// The subject holds no role in that tenant (nor any global role).
    NoRoles,
    /// The subject is not in the policy.
    UnknownSubject,
    /// The tenant is not in the policy.
    UnknownTenant,
    /// The permission is not in the registry.
    UnknownPermission,
    /// Interned ids from another snapshot were used; see [`crate::Snapshot::is_allowed`].
    StaleIds,
    /// The policy could not be refreshed from its database for longer than the configured
    /// limit, and the engine fails closed.
    Stale,
}

impl Cause {
    /// A stable name for logs and audit records (`granted`, `explicit_deny`, `no_grant`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Cause::Granted => "granted",
            Cause::ExplicitDeny => "explicit_deny",
            Cause::NoGrant => "no_grant",
            Cause::NoRoles => "no_roles",
            Cause::UnknownSubject => "unknown_subject",
            Cause::UnknownTenant => "unknown_tenant",
            Cause::UnknownPermission => "unknown_permission",
            Cause::StaleIds => "stale_ids",
            Cause::Stale => "stale",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Decision {
    pub(crate) const fn new(cause: Cause) -> Decision {
        Decision { cause }
    }

    /// The decision a cause stands for (allowed only for [`Cause::Granted`]): for other
    /// decision sources, such as an `rbac_axum::Authorizer` that is not an [`crate::Engine`].
    ///
    /// ```
    /// use rbac_core::{Cause, Decision};
    /// assert!(!Decision::from_cause(Cause::NoGrant).is_allowed());
    /// assert!(Decision::from_cause(Cause::Granted).is_allowed());
    /// ```
    pub const fn from_cause(cause: Cause) -> Decision {
        Decision { cause }
    }

    /// Whether the action may go ahead.
    #[inline]
    pub fn is_allowed(&self) -> bool {
        matches!(self.cause, Cause::Granted)
    }

    /// Why.
    pub fn cause(&self) -> Cause {
        self.cause
    }

    /// `"allow"` or `"deny"`: the word `Display` prints.
    ///
    /// ```
    /// use rbac_core::{Cause, Decision};
    /// assert_eq!(Decision::from_cause(Cause::Granted).verdict(), "allow");
    /// assert_eq!(Decision::from_cause(Cause::NoGrant).verdict(), "deny");
    /// ```
    pub fn verdict(&self) -> &'static str {
        if self.is_allowed() { "allow" } else { "deny" }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.verdict())
    }
}

/// Whether a rule allows or refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// A grant.
    Grant,
    /// A deny.
    Deny,
}

/// The rule that decided: which role holds it, what it matches, and where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Grant or deny.
    pub effect: Effect,
    /// The role whose rule it is.
    pub role: String,
    /// The permission or wildcard as written (`finance.*`).
    pub pattern: String,
    /// The tenant the rule is scoped to, or `None` for a global rule.
    pub tenant: Option<String>,
}

/// A decision with its full reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The verdict; equal to what [`crate::Engine::check`] returns for the same query.
    pub decision: Decision,
    /// The subject asked about.
    pub subject: String,
    /// The tenant asked about; empty for the global scope.
    pub tenant: String,
    /// The permission asked about.
    pub permission: String,
    /// The roles the subject holds in that scope.
    pub held_roles: Vec<String>,
    /// From a held role down the inheritance to the role with the deciding rule (one element when
    /// the held role itself has it). Empty when no rule decided.
    pub chain: Vec<String>,
    /// The deciding rule, if one did.
    pub rule: Option<Rule>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scope = if self.tenant.is_empty() {
            "globally".to_owned()
        } else {
            format!("in tenant `{}`", self.tenant)
        };
        let (subject, permission) = (&self.subject, &self.permission);
        write!(
            f,
            "{}: `{subject}` {scope}, `{permission}`: ",
            self.decision
        )?;
        match (self.decision.cause(), &self.rule) {
            (Cause::Granted | Cause::ExplicitDeny, Some(rule)) => {
                let verb = if rule.effect == Effect::Grant {
                    "grants"
                } else {
                    "denies"
                };
                let chain = self
                    .chain
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>();
                write!(f, "role {}", chain.join(" inherits "))?;
                if self.chain.len() > 1 {
                    f.write_str(", which")?;
                }
                write!(f, " {verb} `{}`", rule.pattern)?;
                match &rule.tenant {
                    Some(t) => write!(f, " (rule scoped to tenant `{t}`)"),
                    None => f.write_str(" (global rule)"),
                }?;
                if rule.effect == Effect::Deny {
                    f.write_str("; a deny wins over every grant")?;
                }
                Ok(())
            }
            (Cause::NoGrant, _) => {
                let held = self.held_roles.join(", ");
                write!(
                    f,
                    "no grant: none of the roles held ({held}) nor any they inherit grants it"
                )
            }
            (Cause::NoRoles, _) => write!(f, "no grant: the subject holds no role {scope}"),
            (Cause::UnknownSubject, _) => write!(f, "unknown subject `{subject}`"),
            (Cause::UnknownTenant, _) => write!(f, "unknown tenant `{}`", self.tenant),
            (Cause::UnknownPermission, _) => write!(f, "unknown permission `{permission}`"),
            (Cause::Stale, _) => f.write_str(
                "the policy is stale (its database is unreachable) and the engine fails closed",
            ),
            (cause, _) => write!(f, "{cause:?}"),
        }
    }
}
