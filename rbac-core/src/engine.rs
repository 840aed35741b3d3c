//! The engine: the current snapshot behind an atomic pointer.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::decision::{Decision, Explanation};
use crate::policy::Policy;
use crate::snapshot::Snapshot;

/// Answers `(subject, tenant, permission)` checks against the current snapshot of a policy.
///
/// Reads are lock-free: each check loads the current [`Snapshot`] through an atomic pointer.
/// [`Engine::replace`] compiles a new snapshot and swaps it in whole, so a check sees either the
/// old policy or the new one, never a mix. Share an engine between threads behind an `Arc` (or a
/// `static`); it is `Send + Sync`.
///
/// ```
/// use rbac_core::{Engine, Policy};
/// let policy = Policy::from_toml_str(r#"
///     [permissions.finance.invoices]
///     read = "Read invoices"
///     approve = "Approve invoices"
///     [roles.accountant]
///     grants = ["finance.*"]
///     denies = ["finance.invoices.approve"]
///     [tenants.acme]
///     [subjects.alice.tenants]
///     acme = ["accountant"]
/// "#)?;
/// let engine = Engine::new(&policy);
/// assert!(engine.check("alice", "acme", "finance.invoices.read").is_allowed());
/// assert!(!engine.check("alice", "acme", "finance.invoices.approve").is_allowed());
/// assert!(!engine.check("alice", "globex", "finance.invoices.read").is_allowed());
/// println!("{}", engine.explain("alice", "acme", "finance.invoices.approve"));
/// # Ok::<(), rbac_core::PolicyError>(())
/// ```
#[derive(Debug)]
pub struct Engine {
    current: ArcSwap<Snapshot>,
}

impl Engine {
    /// Compiles `policy` into the first snapshot.
    pub fn new(policy: &Policy) -> Engine {
        Engine::from_snapshot(Snapshot::compile(policy))
    }

    /// Starts from an already compiled snapshot.
    pub fn from_snapshot(snapshot: Snapshot) -> Engine {
        Engine {
            current: ArcSwap::from_pointee(snapshot),
        }
    }

    /// Whether `subject` may `permission` in `tenant` (`""` for the global scope).
    /// Unknown subjects, tenants and permissions are denied.
    #[inline]
    pub fn check(&self, subject: &str, tenant: &str, permission: &str) -> Decision {
        self.current.load().check(subject, tenant, permission)
    }

    /// The decision with the role chain and the rule that decided it.
    pub fn explain(&self, subject: &str, tenant: &str, permission: &str) -> Explanation {
        self.current.load().explain(subject, tenant, permission)
    }

    /// Every permission `subject` holds in `tenant`, in name order.
    pub fn permissions_of(&self, subject: &str, tenant: &str) -> Vec<String> {
        let snapshot = self.current.load();
        snapshot
            .permissions_of(subject, tenant)
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// The current snapshot, for the interned fast path or for many checks against one version.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Compiles `policy` and swaps it in atomically. Checks running meanwhile finish on the old
    /// snapshot; every check that starts afterwards sees the new one.
    pub fn replace(&self, policy: &Policy) {
        self.install(Snapshot::compile(policy));
    }

    /// Swaps in an already compiled snapshot.
    pub fn install(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// Swaps in a snapshot shared with other engines.
    pub fn install_shared(&self, snapshot: Arc<Snapshot>) {
        self.current.store(snapshot);
    }
}
