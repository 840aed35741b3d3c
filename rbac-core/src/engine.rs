//! The engine: the current snapshot behind an atomic pointer.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
///
/// Each thread remembers the snapshot it last checked against, tagged with the engine's version
/// counter, so a check in steady state costs one plain atomic read instead of a full memory
/// barrier. The cost: a thread keeps the last snapshot it used alive until its next check after
/// a swap (at most one old snapshot per thread).
#[derive(Debug)]
pub struct Engine {
    current: ArcSwap<Snapshot>,
    /// Bumped after every swap; a thread's remembered snapshot is current while it matches.
    version: AtomicU64,
    /// Tells engines apart in the per-thread memory.
    id: u64,
}

static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

/// The snapshot a thread last used, and the engine and version it came from.
struct Remembered {
    engine: u64,
    version: u64,
    snapshot: Arc<Snapshot>,
}

thread_local! {
    static REMEMBERED: RefCell<Option<Remembered>> = const { RefCell::new(None) };
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
            version: AtomicU64::new(0),
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether `subject` may `permission` in `tenant` (`""` for the global scope).
    /// Unknown subjects, tenants and permissions are denied.
    #[inline]
    pub fn check(&self, subject: &str, tenant: &str, permission: &str) -> Decision {
        self.with_current(|snapshot| snapshot.check(subject, tenant, permission))
    }

    /// [`Snapshot::check_batch`] on the current snapshot: every query of the batch is decided
    /// against the same snapshot, even if another is swapped in meanwhile.
    pub fn check_batch<S, T, P>(&self, queries: &[(S, T, P)]) -> Vec<Decision>
    where
        S: AsRef<str>,
        T: AsRef<str>,
        P: AsRef<str>,
    {
        self.with_current(|snapshot| snapshot.check_batch(queries))
    }

    /// Runs `f` on the current snapshot, through the thread's remembered one when it is current.
    ///
    /// Why this is exact: a swap stores the snapshot first and bumps `version` after it
    /// (release); a reader that sees version `v` (acquire) therefore loads a snapshot at least as
    /// new as the `v`-th, and remembers it under `v`. A check that starts after `install`
    /// returned reads the bumped version, misses, and loads the new snapshot.
    #[inline]
    fn with_current<R>(&self, f: impl Fn(&Snapshot) -> R) -> R {
        let version = self.version.load(Ordering::Acquire);
        // `f` runs inside the borrow: cloning the remembered `Arc` would write its shared
        // reference count, a cache line every checking thread would then fight over.
        let hit = REMEMBERED.try_with(|cell| {
            let slot = cell.try_borrow().ok()?;
            let remembered = slot.as_ref()?;
            (remembered.engine == self.id && remembered.version == version)
                .then(|| f(&remembered.snapshot))
        });
        if let Ok(Some(out)) = hit {
            return out;
        }
        let snapshot = self.current.load_full();
        let out = f(&snapshot);
        self.remember(version, snapshot);
        out
    }

    fn remember(&self, version: u64, snapshot: Arc<Snapshot>) {
        // Fails only while the thread is being torn down or re-entered; then nothing is kept.
        let _ = REMEMBERED.try_with(|cell| {
            if let Ok(mut slot) = cell.try_borrow_mut() {
                *slot = Some(Remembered {
                    engine: self.id,
                    version,
                    snapshot,
                });
            }
        });
    }

    /// The decision with the role chain and the rule that decided it.
    pub fn explain(&self, subject: &str, tenant: &str, permission: &str) -> Explanation {
        self.with_current(|snapshot| snapshot.explain(subject, tenant, permission))
    }

    /// Whether `subject` holds any permission of `module` in `tenant`; see
    /// [`Snapshot::check_module`]. Allocates nothing.
    pub fn check_module(&self, subject: &str, tenant: &str, module: &str) -> Decision {
        self.with_current(|snapshot| snapshot.check_module(subject, tenant, module))
    }

    /// Every permission `subject` holds in `tenant`, in name order.
    pub fn permissions_of(&self, subject: &str, tenant: &str) -> Vec<String> {
        self.with_current(|snapshot| {
            snapshot
                .permissions_of(subject, tenant)
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
    }

    /// The roles `subject` has in force in `tenant` (`""` for the global scope): held there or
    /// globally, and every role those inherit, in name order. Unknown names give an empty list.
    pub fn roles_of(&self, subject: &str, tenant: &str) -> Vec<String> {
        self.with_current(|snapshot| {
            snapshot
                .roles_of(subject, tenant)
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
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
        self.install_shared(Arc::new(snapshot));
    }

    /// Swaps in a snapshot shared with other engines.
    pub fn install_shared(&self, snapshot: Arc<Snapshot>) {
        self.current.store(snapshot);
        self.version.fetch_add(1, Ordering::Release);
    }
}
