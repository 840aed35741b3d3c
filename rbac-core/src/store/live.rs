//! An engine kept current from a store, with health, staleness policy and decision audit.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::audit::{self, DecisionAuditMode, PendingDecision};
use super::sql::Revision;
use super::{Store, StoreError};
use crate::decision::{Cause, Decision, Explanation};
use crate::{Engine, Snapshot};

/// How a [`LiveEngine`] stays current and what it records.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// How often the policy version is read from the database: the safety net behind
    /// PostgreSQL's notifications, and the only mechanism on SQLite. Default 200 ms.
    pub poll_interval: Duration,
    /// Deny every check while the database is silent for longer than this: a refresh fails
    /// and its last answer is older, or a refresh's version read has waited this long (a
    /// database that hangs is denied when the limit runs out, not when the read gives up).
    /// The time between polls is not silence. `None` (the default) keeps serving the last
    /// good policy however long the outage lasts.
    pub deny_when_stale_for: Option<Duration>,
    /// Which decisions are recorded: denies always; allows not at all (the default), a sample,
    /// or all. Recorded decisions go to `tracing` (target `rbac::decision`).
    pub decision_audit: DecisionAuditMode,
    /// Also append recorded decisions to the hash-chained `rbac_decisions` table, through a
    /// bounded background writer. Default `false`.
    pub decision_table: bool,
    /// Capacity of the decision queue in front of the table writer. Default 10,000.
    pub decision_queue: usize,
    /// On PostgreSQL, also listen for change notifications (default `true`); without them,
    /// changes from other processes arrive with the next poll.
    pub listen_for_notifications: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            poll_interval: Duration::from_millis(200),
            deny_when_stale_for: None,
            decision_audit: DecisionAuditMode::DeniesOnly,
            decision_table: false,
            decision_queue: 10_000,
            listen_for_notifications: true,
        }
    }
}

/// What a live engine knows about its own freshness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The policy version being served.
    pub version: i64,
    /// How long since the database last answered (zero when it answers).
    pub stale_for: Duration,
    /// The last refresh error, while the outage lasts.
    pub last_error: Option<String>,
    /// Whether checks are being denied because of staleness.
    pub denying: bool,
    /// Decision records dropped because the queue was full, since start.
    pub dropped_decisions: u64,
}

pub(crate) struct Shared {
    engine: Engine,
    version: AtomicI64,
    /// The commit that made `version` (see [`Revision`]).
    commit: AtomicI64,
    install_lock: Mutex<()>,
    last_ok_ms: AtomicI64,
    last_error: Mutex<Option<String>>,
    denying: AtomicBool,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Installs `snapshot` if it is newer than what is served; an older one (a slow refresh
    /// racing a local change) is ignored.
    pub(crate) fn install(&self, snapshot: Arc<Snapshot>, revision: Revision) {
        // The lock guards no data, only the order of installs: a poisoned one is as good.
        let _guard = self
            .install_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let served = self.version.load(Ordering::Acquire);
        // The same version by another commit exists only after the database's version went
        // back and moved on again: what was just committed or read is the policy.
        let rewound =
            revision.version == served && revision.commit != self.commit.load(Ordering::Acquire);
        if revision.version > served || rewound {
            self.set(snapshot, revision);
        }
    }

    /// Installs `snapshot` although its version is older than the one served, if the engine
    /// still serves `expected`: the database's version went back (a restore, or a failover to
    /// a replica that had not seen the last changes), and what it holds now is the policy.
    /// Anything installed meanwhile (a change of this process, published) is newer: kept.
    fn install_rewound(&self, snapshot: Arc<Snapshot>, revision: Revision, expected: Revision) {
        let _guard = self
            .install_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let served = Revision {
            version: self.version.load(Ordering::Acquire),
            commit: self.commit.load(Ordering::Acquire),
        };
        if served == expected {
            self.set(snapshot, revision);
        }
    }

    fn set(&self, snapshot: Arc<Snapshot>, revision: Revision) {
        self.engine.install_shared(snapshot);
        self.commit.store(revision.commit, Ordering::Release);
        self.version.store(revision.version, Ordering::Release);
    }

    fn revision(&self) -> Revision {
        let _guard = self
            .install_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Revision {
            version: self.version.load(Ordering::Acquire),
            commit: self.commit.load(Ordering::Acquire),
        }
    }

    fn mark_ok(&self) {
        self.last_ok_ms.store(audit::now_ms(), Ordering::Relaxed);
        self.denying.store(false, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = None;
        }
    }

    fn stale_for(&self) -> Duration {
        let last = self.last_ok_ms.load(Ordering::Relaxed);
        Duration::from_millis(u64::try_from(audit::now_ms() - last).unwrap_or(0))
    }
}

/// An [`Engine`] built from a [`Store`] and kept current.
///
/// - A change committed through the `Store` this engine was started from (or a clone of it) is
///   served before [`Store::apply`] returns. Another `Store::connect` to the same database is
///   another handle: its changes arrive like those of other processes.
/// - Changes by other processes arrive through PostgreSQL `LISTEN/NOTIFY` within milliseconds,
///   and through a version poll every [`LiveOptions::poll_interval`] (the only path on SQLite).
/// - If the database goes away, the engine keeps serving the last good policy, reports the
///   outage in [`LiveEngine::health`] and through `tracing` warnings, and catches up by itself
///   when the database returns. That keeps an application answering during a database failover;
///   set [`LiveOptions::deny_when_stale_for`] to fail closed instead after a bound you choose.
///
/// Every denied check, and the allowed checks that [`LiveOptions::decision_audit`] selects, emit
/// a `tracing` event (target `rbac::decision`). With [`LiveOptions::decision_table`], they are
/// also queued to a background writer that appends them to the hash-chained `rbac_decisions`
/// table. A check never waits for
/// it: when the queue is full the record is dropped, counted in
/// [`Health::dropped_decisions`] and reported with a `tracing` warning. [`LiveEngine::shutdown`]
/// writes every queued record before it returns.
#[derive(Debug)]
pub struct LiveEngine {
    shared: Arc<Shared>,
    mode: DecisionAuditMode,
    decisions: Option<mpsc::Sender<PendingDecision>>,
    writer: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl LiveEngine {
    pub(crate) async fn start(
        store: Store,
        options: LiveOptions,
    ) -> Result<LiveEngine, StoreError> {
        let (policy, revision) = store.load_revision().await?;
        let shared = Arc::new(Shared {
            engine: Engine::new(&policy),
            version: AtomicI64::new(revision.version),
            commit: AtomicI64::new(revision.commit),
            install_lock: Mutex::new(()),
            last_ok_ms: AtomicI64::new(audit::now_ms()),
            last_error: Mutex::new(None),
            denying: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        store.attach(&shared);
        // A change committed between the load and the attach was published to no engine
        // here: read the version again now that changes reach this one.
        // Best effort: the policy just loaded is good, and the refresh loop catches up too.
        let timeouts = Timeouts::of(&options);
        let caught_up = async {
            let now = within("answer", timeouts.probe, store.revision()).await?;
            catch_up(&store, &shared, now, timeouts).await
        };
        if let Err(e) = caught_up.await {
            tracing::warn!(target: "rbac::store", error = %e, "cannot read the policy version again after loading it; the next refresh will");
        }
        let (stop, stop_rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let refresher = tokio::spawn(refresh_loop(
            store.clone(),
            shared.clone(),
            options.clone(),
            wake.clone(),
            stop_rx.clone(),
        ));
        #[cfg(feature = "postgres")]
        let listener = (store.backend() == super::Backend::Postgres
            && options.listen_for_notifications)
            .then(|| tokio::spawn(listen_loop(store.raw_url().to_owned(), wake, stop_rx)));
        #[cfg(not(feature = "postgres"))]
        let listener: Option<JoinHandle<()>> = {
            drop((wake, stop_rx));
            None
        };
        let tasks: Vec<JoinHandle<()>> = std::iter::once(refresher).chain(listener).collect();
        let (decisions, writer) = if options.decision_table {
            let (tx, rx) = mpsc::channel(options.decision_queue.max(1));
            (
                Some(tx),
                Some(tokio::spawn(write_loop(store, rx, shared.clone()))),
            )
        } else {
            (None, None)
        };
        Ok(LiveEngine {
            shared,
            mode: options.decision_audit,
            decisions,
            writer,
            stop,
            tasks,
        })
    }

    /// Whether `subject` may `permission` in `tenant`, against the current policy; denied while
    /// stale past the configured limit. Recorded per the audit settings.
    pub fn check(&self, subject: &str, tenant: &str, permission: &str) -> Decision {
        let version = self.shared.version.load(Ordering::Acquire);
        let decision = if self.shared.denying.load(Ordering::Relaxed) {
            Decision::new(Cause::Stale)
        } else {
            self.shared.engine.check(subject, tenant, permission)
        };
        self.record(subject, tenant, permission, decision, version);
        decision
    }

    /// Whether `subject` holds any permission of `module` in `tenant` (see
    /// [`crate::Snapshot::check_module`]); recorded like a check, as permission `module.*`.
    pub fn check_module(&self, subject: &str, tenant: &str, module: &str) -> Decision {
        let version = self.shared.version.load(Ordering::Acquire);
        let decision = if self.shared.denying.load(Ordering::Relaxed) {
            Decision::new(Cause::Stale)
        } else {
            self.shared.engine.check_module(subject, tenant, module)
        };
        self.record(subject, tenant, ModuleWildcard(module), decision, version);
        decision
    }

    /// The decision with its reason (not recorded in the audit trail).
    pub fn explain(&self, subject: &str, tenant: &str, permission: &str) -> Explanation {
        let mut explanation = self.shared.engine.explain(subject, tenant, permission);
        if self.shared.denying.load(Ordering::Relaxed) {
            explanation.decision = Decision::new(Cause::Stale);
        }
        explanation
    }

    /// Every permission `subject` holds in `tenant`, in name order; empty while the engine is
    /// denying because its policy is stale (see [`LiveOptions::deny_when_stale_for`]).
    pub fn permissions_of(&self, subject: &str, tenant: &str) -> Vec<String> {
        if self.is_denying() {
            return Vec::new();
        }
        self.shared.engine.permissions_of(subject, tenant)
    }

    /// The roles `subject` has in force in `tenant` (held and inherited, in name order); empty
    /// while the engine is denying because its policy is stale.
    pub fn roles_of(&self, subject: &str, tenant: &str) -> Vec<String> {
        if self.is_denying() {
            return Vec::new();
        }
        self.shared.engine.roles_of(subject, tenant)
    }

    /// Whether every check is currently denied because the policy is staler than allowed.
    pub fn is_denying(&self) -> bool {
        self.shared.denying.load(Ordering::Relaxed)
    }

    /// The engine itself, for the interned fast path. It bypasses the staleness limit and the
    /// decision audit.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// Freshness and audit-queue state.
    pub fn health(&self) -> Health {
        let stale_for = self.shared.stale_for();
        let last_error = self.shared.last_error.lock().ok().and_then(|e| e.clone());
        Health {
            version: self.shared.version.load(Ordering::Acquire),
            stale_for: if last_error.is_some() {
                stale_for
            } else {
                Duration::ZERO
            },
            last_error,
            denying: self.shared.denying.load(Ordering::Relaxed),
            dropped_decisions: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    fn record(
        &self,
        subject: &str,
        tenant: &str,
        permission: impl std::fmt::Display,
        decision: Decision,
        version: i64,
    ) {
        let allowed = decision.is_allowed();
        let wanted = !allowed
            || match self.mode {
                DecisionAuditMode::DeniesOnly => false,
                DecisionAuditMode::All => true,
                DecisionAuditMode::Sampled(rate) => fastrand::f64() < rate,
            };
        if !wanted {
            return;
        }
        let cause = decision.cause();
        let verdict = decision.verdict();
        tracing::info!(target: "rbac::decision", subject, tenant, %permission, %cause, version, verdict);
        let Some(queue) = &self.decisions else { return };
        let pending = PendingDecision {
            at_ms: audit::now_ms(),
            subject: subject.to_owned(),
            tenant: tenant.to_owned(),
            permission: permission.to_string(),
            allowed,
            cause: cause.as_str().to_owned(),
            version,
        };
        if queue.try_send(pending).is_err() {
            let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped == 1 || dropped.is_multiple_of(1000) {
                tracing::warn!(target: "rbac::audit", dropped, "decision audit queue full; records dropped");
            }
        }
    }

    /// Stops refreshing and writes every queued decision record before returning.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.decisions = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for LiveEngine {
    fn drop(&mut self) {
        // Without `shutdown`, the refresher stops; the writer still drains what is queued as
        // long as the runtime runs.
        let _ = self.stop.send(true);
    }
}

/// How long one refresh may wait on the database.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// For reading the version: small, so that an outage is seen soon.
    probe: Duration,
    /// For reading the whole policy, which may be large: a reload cut short by the probe's
    /// timeout would start again from scratch every time and never finish.
    load: Duration,
}

impl Timeouts {
    fn of(options: &LiveOptions) -> Timeouts {
        let poll = options.poll_interval.max(Duration::from_millis(10));
        Timeouts {
            probe: Duration::from_secs(2).max(poll.saturating_mul(2)),
            load: Duration::from_secs(60).max(poll.saturating_mul(10)),
        }
    }
}

async fn refresh_loop(
    store: Store,
    shared: Arc<Shared>,
    options: LiveOptions,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let poll = options.poll_interval.max(Duration::from_millis(10));
    let timeouts = Timeouts::of(&options);
    // When the database last answered, on the clock the deadline below is measured with.
    let mut last_ok = Instant::now();
    // Whether the last refresh failed.
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = wake.notified() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        // While the database does not answer the version read, the staleness limit still
        // runs out: checks are denied from `max` after the read began (the time between
        // polls, and a reload while the database sends the policy, are not silence).
        let probe = within("answer", timeouts.probe, store.revision());
        tokio::pin!(probe);
        // From the start of this read; or, while refreshes fail, from the last answer.
        let since = if failing { last_ok } else { Instant::now() };
        let deadline = options
            .deny_when_stale_for
            .and_then(|max| since.checked_add(max));
        let probed = loop {
            let denying = shared.denying.load(Ordering::Relaxed);
            tokio::select! {
                probed = &mut probe => break probed,
                () = sleep_until(deadline), if deadline.is_some() && !denying => {
                    shared.denying.store(true, Ordering::Relaxed);
                    let stale_ms = last_ok.elapsed().as_millis() as u64;
                    let silent = options.deny_when_stale_for.unwrap_or_default();
                    let error = format!("the policy database has not answered for {silent:?}");
                    tracing::warn!(target: "rbac::store", stale_ms, error = %error, "denying every check");
                    if let Ok(mut e) = shared.last_error.lock() {
                        *e = Some(error);
                    }
                }
                _ = stop.changed() => return,
            }
        };
        let outcome = match probed {
            Ok(now) => catch_up(&store, &shared, now, timeouts).await,
            Err(e) => Err(e),
        };
        let error = match outcome {
            Ok(()) => {
                last_ok = Instant::now();
                failing = false;
                shared.mark_ok();
                continue;
            }
            Err(e) => e.to_string(),
        };
        failing = true;
        let stale_for = last_ok.elapsed();
        let denying = options
            .deny_when_stale_for
            .is_some_and(|max| stale_for > max);
        shared.denying.store(denying, Ordering::Relaxed);
        tracing::warn!(target: "rbac::store", error = %error, stale_ms = stale_for.as_millis() as u64, denying,
            "cannot refresh the policy; serving the last good version");
        if let Ok(mut e) = shared.last_error.lock() {
            *e = Some(error);
        }
    }
}

/// Sleeps until `deadline` (forever without one).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why a refresh did not complete.
#[derive(Debug)]
enum RefreshError {
    Store(StoreError),
    TimedOut(&'static str, Duration),
}

impl std::fmt::Display for RefreshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RefreshError::Store(e) => e.fmt(f),
            RefreshError::TimedOut(what, after) => {
                write!(f, "the policy database did not {what} within {after:?}")
            }
        }
    }
}

/// `future`'s result, or [`RefreshError::TimedOut`] after `after`.
async fn within<T>(
    what: &'static str,
    after: Duration,
    future: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, RefreshError> {
    match tokio::time::timeout(after, future).await {
        Ok(result) => result.map_err(RefreshError::Store),
        Err(_) => Err(RefreshError::TimedOut(what, after)),
    }
}

/// Brings `shared` to the database's revision `now` (just read): nothing to do when it
/// serves that one, else a reload.
async fn catch_up(
    store: &Store,
    shared: &Shared,
    now: Revision,
    timeouts: Timeouts,
) -> Result<(), RefreshError> {
    let served = shared.revision();
    if now == served {
        return Ok(());
    }
    let (policy, loaded) = within("send the policy", timeouts.load, store.load_revision()).await?;
    let snapshot = Arc::new(Snapshot::compile(&policy));
    if loaded.version > served.version {
        shared.install(snapshot, loaded);
        tracing::info!(target: "rbac::store", version = loaded.version, "policy reloaded");
        return Ok(());
    }
    // Not newer than what is served: a change of this process committed after the load read
    // (then the database is newer again, and the next refresh loads it), or the database's
    // version went back (a restore, a failover), perhaps moving on since to the same number.
    // What is served is read before the database is asked again: a change this process
    // commits after that is newer than the database's answer, and must not be replaced by it
    // (`install_rewound` installs only if the engine still serves this).
    let served = shared.revision();
    let again = within("answer", timeouts.probe, store.revision()).await?;
    let rewound = again.version < served.version
        || (again.version == served.version && again.commit != served.commit);
    if rewound && again == loaded {
        tracing::warn!(target: "rbac::store", served = served.version, version = loaded.version,
            "the policy database's version went back (a restore or a failover); serving what it holds");
        shared.install_rewound(snapshot, loaded, served);
    }
    Ok(())
}

#[cfg(feature = "postgres")]
async fn listen_loop(url: String, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    use sqlx::postgres::PgListener;
    loop {
        let listener = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(super::NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            l = listener => l,
            _ = stop.changed() => return,
        };
        match &mut listener {
            Ok(listener) => loop {
                tokio::select! {
                    n = listener.recv() => match n {
                        Ok(_) => wake.notify_one(),
                        Err(e) => {
                            tracing::warn!(target: "rbac::store", error = %e, "policy notifications interrupted; reconnecting");
                            break;
                        }
                    },
                    _ = stop.changed() => return,
                }
            },
            Err(e) => {
                tracing::warn!(target: "rbac::store", error = %e, "cannot listen for policy notifications; retrying")
            }
        }
        // The version poll covers the gap; retry the listener without hammering the server.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
        wake.notify_one();
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<PendingDecision>, shared: Arc<Shared>) {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 500 {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        // Retry a failing write a few times (the database may be restarting), then give up on
        // this batch loudly rather than block the queue forever.
        let mut attempt = 0;
        loop {
            match audit::append_decisions(&store, &batch).await {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(target: "rbac::audit", error = %e, attempt, "cannot write decision records; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => {
                    // Counted with the records a full queue dropped: both are lost to the table.
                    let lost = batch.len() as u64;
                    shared.dropped.fetch_add(lost, Ordering::Relaxed);
                    tracing::error!(target: "rbac::audit", error = %e, lost, "decision records lost");
                    break;
                }
            }
        }
        batch.clear();
    }
}

/// `module.*`, formatted only when a decision is recorded.
struct ModuleWildcard<'a>(&'a str);

impl std::fmt::Display for ModuleWildcard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.*", self.0)
    }
}
