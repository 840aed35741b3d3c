//! Backup schedules and the scheduler, on a real SQLite file always and on a real PostgreSQL
//! server when `RBAC_TEST_POSTGRES_URL` is set at build time (`export RBAC_TEST_POSTGRES_URL=$(bash
//! .ci/postgres.sh)`); without it the PostgreSQL tests are reported as ignored, with the reason.
//! Time is a [`ManualClock`]: days of schedule run in milliseconds, and nothing depends on the
//! speed of the machine.

use crate::backup_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rbac_admin::backup::Scope;
use rbac_admin::backup::schedule::{
    Clock, CronSpec, JobFuture, JobKind, JobReport, ManualClock, NewSchedule, Schedule,
    ScheduleError, ScheduleStore, ScheduledJob, Scheduler, SchedulerOptions, SchedulerStats,
};

use rbac_test_support::TestDb;

rbac_test_support::on_both_databases_async!(
    file = "app.db", prefix = "rbac_sched_test";
    schedules_are_stored_listed_toggled_and_removed,
    bad_schedules_are_refused_with_a_clear_error,
    due_schedules_run_at_their_slots_and_catch_up_once,
    one_scope_never_runs_twice_at_once,
    two_scheduler_processes_run_each_slot_once,
    failures_are_recorded_and_the_schedule_goes_on,
    shutdown_waits_for_the_run_in_progress,
    a_local_time_schedule_runs_once_a_day_across_dst,
);

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn new(name: &str, cron: &str, kind: JobKind, scope: &str) -> NewSchedule {
    NewSchedule {
        name: name.into(),
        cron: cron.into(),
        time_zone: "UTC".into(),
        kind,
        scope: scope.parse().unwrap(),
        retention: None,
        created_by: "ops".into(),
    }
}

/// A job that records each run, tracks how many runs of each scope overlap, and can be slow
/// or fail on demand.
#[derive(Default)]
struct RecordingJob {
    runs: Mutex<Vec<(String, DateTime<Utc>)>>,
    in_flight: Mutex<HashMap<String, usize>>,
    max_overlap: AtomicUsize,
    delay: Duration,
    fail_names: Vec<String>,
    started: tokio::sync::Notify,
}

impl RecordingJob {
    fn slow(delay: Duration) -> RecordingJob {
        RecordingJob {
            delay,
            ..RecordingJob::default()
        }
    }

    fn runs(&self) -> Vec<(String, DateTime<Utc>)> {
        self.runs.lock().unwrap().clone()
    }
}

impl ScheduledJob for RecordingJob {
    fn run<'a>(&'a self, schedule: &'a Schedule, slot: DateTime<Utc>) -> JobFuture<'a> {
        Box::pin(async move {
            let scope = schedule.scope.to_string();
            {
                let mut in_flight = self.in_flight.lock().unwrap();
                let n = in_flight.entry(scope.clone()).or_default();
                *n += 1;
                self.max_overlap.fetch_max(*n, Ordering::SeqCst);
            }
            self.started.notify_waiters();
            tokio::time::sleep(self.delay).await;
            self.runs
                .lock()
                .unwrap()
                .push((schedule.name.clone(), slot));
            *self.in_flight.lock().unwrap().get_mut(&scope).unwrap() -= 1;
            if self.fail_names.contains(&schedule.name) {
                return Err(format!("disk full while backing up {scope}"));
            }
            Ok(JobReport {
                backup_id: Some(format!("{}-{}", schedule.name, slot.timestamp())),
                message: None,
            })
        })
    }
}

fn options(runner: &str) -> SchedulerOptions {
    SchedulerOptions {
        poll: Duration::from_secs(3600),
        lease_ttl: Duration::from_secs(60),
        runner: runner.into(),
    }
}

/// A scheduler (runner `a`) of `job` on `store`, on `clock`.
fn scheduler_a<J: ScheduledJob + 'static>(
    store: &ScheduleStore,
    job: Arc<J>,
    clock: &ManualClock,
) -> Scheduler {
    Scheduler::new(store.clone(), job, Arc::new(clock.clone()), options("a"))
}

/// A scheduler (runner `a`) working in a task until [`Running::stop`].
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<SchedulerStats>,
}

impl Running {
    fn start<J: ScheduledJob + 'static>(
        store: &ScheduleStore,
        job: Arc<J>,
        clock: &ManualClock,
    ) -> Running {
        let scheduler = scheduler_a(store, job, clock);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            scheduler
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        Running { stop, handle }
    }

    /// Asks the scheduler to stop and waits (at most 10 s) for it to finish.
    async fn stop(self) -> SchedulerStats {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .unwrap()
            .unwrap()
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn schedules_are_stored_listed_toggled_and_removed(db: TestDb) {
    let store = ScheduleStore::connect(&db.url).await.unwrap();
    let now = at(2026, 11, 23, 4, 10);
    let mut nightly = new("nightly-full", "0 2 * * *", JobKind::Full, "all");
    nightly.retention = Some("daily=7,weekly=4,monthly=12".parse().unwrap());
    let added = store.add(&nightly, now).await.unwrap();
    assert_eq!(added.name, "nightly-full");
    assert_eq!(added.time_zone, "UTC");
    assert!(added.active);
    assert_eq!(added.next_run, Some(at(2026, 11, 24, 2, 0)));
    assert_eq!(added.last_run, None);
    assert_eq!(added.created_by, "ops");
    assert_eq!(added.created_at, now);
    assert_eq!(
        added.retention.unwrap().to_string(),
        "daily=7,weekly=4,monthly=12"
    );

    let mut acme = new(
        "acme-5min",
        "*/5 * * * *",
        JobKind::Incremental,
        "tenant:acme",
    );
    acme.time_zone = "Europe/Berlin".into();
    store.add(&acme, now).await.unwrap();
    let names: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["acme-5min", "nightly-full"]);
    let got = store.get("acme-5min").await.unwrap();
    assert_eq!(got.scope, Scope::Tenant("acme".into()));
    assert_eq!(got.next_run, Some(at(2026, 11, 23, 4, 15)));
    assert_eq!(store.get(&got.id.to_string()).await.unwrap(), got);

    // A second store on the same database (another process) sees the same, and reconnecting
    // does not recreate or clear anything.
    let other = ScheduleStore::connect(&db.url).await.unwrap();
    assert_eq!(other.list().await.unwrap().len(), 2);

    let off = store.disable("acme-5min").await.unwrap();
    assert!(!off.active);
    assert_eq!(off.next_run, None);
    let on = store
        .enable("acme-5min", at(2026, 11, 23, 9, 1))
        .await
        .unwrap();
    assert!(on.active);
    assert_eq!(on.next_run, Some(at(2026, 11, 23, 9, 5)));

    let removed = store.remove("nightly-full").await.unwrap();
    assert_eq!(removed.name, "nightly-full");
    assert!(matches!(
        store.get("nightly-full").await,
        Err(ScheduleError::NotFound(_))
    ));
    assert!(matches!(
        store.remove("nightly-full").await,
        Err(ScheduleError::NotFound(_))
    ));
    assert!(matches!(
        store.enable("nope", now).await,
        Err(ScheduleError::NotFound(_))
    ));
    assert_eq!(other.list().await.unwrap().len(), 1);
}

async fn bad_schedules_are_refused_with_a_clear_error(db: TestDb) {
    let store = ScheduleStore::connect(&db.url).await.unwrap();
    let now = at(2026, 11, 23, 4, 10);
    let ok = new("ok", "0 2 * * *", JobKind::Full, "all");
    store.add(&ok, now).await.unwrap();
    let err = store.add(&ok, now).await.unwrap_err();
    assert!(matches!(err, ScheduleError::Duplicate(_)), "{err}");
    assert!(err.to_string().contains("already exists"));

    let err = store
        .add(&new("c", "61 * * * *", JobKind::Full, "all"), now)
        .await
        .unwrap_err();
    assert!(matches!(err, ScheduleError::InvalidCron { .. }), "{err}");
    assert!(err.to_string().contains("`61 * * * *`"), "{err}");
    let err = store
        .add(&new("c", "0 0 31 2 *", JobKind::Full, "all"), now)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("never matches"), "{err}");

    let mut tz = new("tz", "0 2 * * *", JobKind::Full, "all");
    tz.time_zone = "Mars/Olympus".into();
    let err = store.add(&tz, now).await.unwrap_err();
    assert!(matches!(err, ScheduleError::InvalidTimeZone(_)), "{err}");

    // All digits: a number names a schedule by its id (`schedule remove 2`).
    for bad in ["", "../x", "a b", &"x".repeat(65), "2", "0042"] {
        let err = store
            .add(&new(bad, "0 2 * * *", JobKind::Full, "all"), now)
            .await
            .unwrap_err();
        assert!(matches!(err, ScheduleError::InvalidName(_)), "{bad}: {err}");
    }
    let err = store
        .add(&new("p", "0 3 * * *", JobKind::Prune, "all"), now)
        .await
        .unwrap_err();
    assert!(matches!(err, ScheduleError::PruneWithoutRetention), "{err}");
    assert!("weekly".parse::<JobKind>().is_err());
    // Nothing was stored by the refused attempts.
    assert_eq!(store.list().await.unwrap().len(), 1);
}

async fn due_schedules_run_at_their_slots_and_catch_up_once(db: TestDb) {
    let store = ScheduleStore::connect(&db.url).await.unwrap();
    let clock = ManualClock::new(at(2026, 11, 23, 0, 30));
    store
        .add(
            &new("hourly", "0 * * * *", JobKind::Incremental, "all"),
            clock.now(),
        )
        .await
        .unwrap();
    let job = Arc::new(RecordingJob::default());
    let running = Running::start(&store, job.clone(), &clock);

    // Nothing is due before 01:00.
    clock.set(at(2026, 11, 23, 0, 59));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(job.runs().is_empty());
    clock.set(at(2026, 11, 23, 1, 0));
    wait_until("the 01:00 run", || job.runs().len() == 1).await;
    assert_eq!(job.runs()[0], ("hourly".to_owned(), at(2026, 11, 23, 1, 0)));

    // Down from 01:00 to 06:20: five slots missed, one run, then the rhythm resumes at 07:00.
    clock.set(at(2026, 11, 23, 6, 20));
    wait_until("the catch-up run", || job.runs().len() == 2).await;
    assert_eq!(
        job.runs()[1].1,
        at(2026, 11, 23, 2, 0),
        "the run is for the first missed slot"
    );
    wait_until("the schedule to move on", || true).await;
    let mut s = store.get("hourly").await.unwrap();
    for _ in 0..100 {
        if s.last_status.as_deref() == Some("success") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        s = store.get("hourly").await.unwrap();
    }
    assert_eq!(s.next_run, Some(at(2026, 11, 23, 7, 0)));
    assert_eq!(s.last_run, Some(at(2026, 11, 23, 2, 0)));
    assert_eq!(s.last_status.as_deref(), Some("success"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(job.runs().len(), 2, "no second catch-up run");
    clock.set(at(2026, 11, 23, 7, 0));
    wait_until("the 07:00 run", || job.runs().len() == 3).await;

    // A disabled schedule does not run.
    store.disable("hourly").await.unwrap();
    clock.set(at(2026, 11, 23, 12, 0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(job.runs().len(), 3);

    let stats = running.stop().await;
    assert_eq!((stats.runs, stats.failed), (3, 0));
    let runs = store.runs("hourly", 10).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter()
            .all(|r| r.status == "success" && r.runner == "a" && r.finished_at.is_some())
    );
    assert_eq!(
        runs[0].backup_id.as_deref(),
        Some(format!("hourly-{}", at(2026, 11, 23, 7, 0).timestamp()).as_str())
    );
}

async fn one_scope_never_runs_twice_at_once(db: TestDb) {
    let store = ScheduleStore::connect(&db.url).await.unwrap();
    let clock = ManualClock::new(at(2026, 11, 23, 1, 59));
    for (name, kind) in [("full", JobKind::Full), ("incr", JobKind::Incremental)] {
        store
            .add(&new(name, "0 2 * * *", kind, "tenant:acme"), clock.now())
            .await
            .unwrap();
    }
    store
        .add(
            &new("other", "0 2 * * *", JobKind::Full, "tenant:globex"),
            clock.now(),
        )
        .await
        .unwrap();
    let job = Arc::new(RecordingJob::slow(Duration::from_millis(300)));
    let running = Running::start(&store, job.clone(), &clock);
    clock.set(at(2026, 11, 23, 2, 0));
    // Both acme schedules run, one after the other (the second waits for the scope), while
    // globex runs alongside.
    wait_until("all three runs", || job.runs().len() == 3).await;
    assert_eq!(
        job.max_overlap.load(Ordering::SeqCst),
        1,
        "two runs of one scope overlapped"
    );
    let stats = running.stop().await;
    assert_eq!(stats.runs, 3);
}

async fn two_scheduler_processes_run_each_slot_once(db: TestDb) {
    let clock = ManualClock::new(at(2026, 11, 23, 0, 0));
    let setup = ScheduleStore::connect(&db.url).await.unwrap();
    setup
        .add(
            &new("a1", "*/10 * * * *", JobKind::Incremental, "tenant:a"),
            clock.now(),
        )
        .await
        .unwrap();
    setup
        .add(
            &new("a2", "*/15 * * * *", JobKind::Full, "tenant:a"),
            clock.now(),
        )
        .await
        .unwrap();
    setup
        .add(
            &new("b", "*/10 * * * *", JobKind::Full, "tenant:b"),
            clock.now(),
        )
        .await
        .unwrap();
    let job = Arc::new(RecordingJob::slow(Duration::from_millis(40)));
    // Two schedulers with their own connections, as two processes would have.
    let one = Scheduler::new(
        ScheduleStore::connect(&db.url).await.unwrap(),
        job.clone(),
        Arc::new(clock.clone()),
        options("host-1"),
    );
    let two = Scheduler::new(
        ScheduleStore::connect(&db.url).await.unwrap(),
        job.clone(),
        Arc::new(clock.clone()),
        options("host-2"),
    );
    let mut expected = 0;
    for minute in [10, 15, 20, 30, 40, 45] {
        clock.set(at(2026, 11, 23, 0, minute));
        // Both wake at once; repeat until nothing is due (a schedule whose scope was busy
        // runs on a later pass).
        for _ in 0..4 {
            let (x, y) = tokio::join!(one.run_due_once(), two.run_due_once());
            x.unwrap();
            y.unwrap();
        }
        expected += usize::from(minute % 10 == 0) * 2 + usize::from(minute % 15 == 0);
        assert_eq!(
            job.runs().len(),
            expected,
            "at minute {minute}: {:?}",
            job.runs()
        );
    }
    assert_eq!(
        job.max_overlap.load(Ordering::SeqCst),
        1,
        "two runs of one scope overlapped"
    );
    let mut slots = job.runs();
    slots.sort();
    let before = slots.len();
    slots.dedup();
    assert_eq!(slots.len(), before, "a slot ran twice");
    // Every run was recorded once, by whichever scheduler claimed it.
    let mut recorded = 0;
    for name in ["a1", "a2", "b"] {
        let runs = setup.runs(name, 100).await.unwrap();
        assert!(
            runs.iter()
                .all(|r| r.status == "success" && (r.runner == "host-1" || r.runner == "host-2"))
        );
        recorded += runs.len();
    }
    assert_eq!(recorded, expected);
}

async fn failures_are_recorded_and_the_schedule_goes_on(db: TestDb) {
    let store = ScheduleStore::connect(&db.url).await.unwrap();
    let clock = ManualClock::new(at(2026, 11, 23, 0, 0));
    store
        .add(
            &new("flaky", "0 * * * *", JobKind::Full, "all"),
            clock.now(),
        )
        .await
        .unwrap();
    let job = Arc::new(RecordingJob {
        fail_names: vec!["flaky".into()],
        ..RecordingJob::default()
    });
    let scheduler = scheduler_a(&store, job.clone(), &clock);
    clock.set(at(2026, 11, 23, 1, 0));
    let stats = scheduler.run_due_once().await.unwrap();
    assert_eq!((stats.runs, stats.failed), (1, 1));
    let s = store.get("flaky").await.unwrap();
    assert_eq!(s.last_status.as_deref(), Some("failed"));
    assert_eq!(
        s.last_error.as_deref(),
        Some("disk full while backing up all")
    );
    assert_eq!(s.next_run, Some(at(2026, 11, 23, 2, 0)));
    let runs = store.runs("flaky", 10).await.unwrap();
    assert_eq!(runs[0].status, "failed");
    assert_eq!(runs[0].backup_id, None);
    // The lease was released: the next slot runs.
    clock.set(at(2026, 11, 23, 2, 0));
    assert_eq!(scheduler.run_due_once().await.unwrap().runs, 1);
}

async fn shutdown_waits_for_the_run_in_progress(db: TestDb) {
    let store = ScheduleStore::connect(&db.url).await.unwrap();
    let clock = ManualClock::new(at(2026, 11, 23, 0, 0));
    store
        .add(&new("slow", "0 * * * *", JobKind::Full, "all"), clock.now())
        .await
        .unwrap();
    let job = Arc::new(RecordingJob::slow(Duration::from_millis(400)));
    let started = job.started.notified();
    let running = Running::start(&store, job.clone(), &clock);
    clock.set(at(2026, 11, 23, 1, 0));
    tokio::time::timeout(Duration::from_secs(10), started)
        .await
        .unwrap();
    let stats = running.stop().await;
    // The run finished before `run` returned, and was recorded as such.
    assert_eq!((stats.runs, stats.failed), (1, 0));
    assert_eq!(job.runs().len(), 1);
    let runs = store.runs("slow", 10).await.unwrap();
    assert_eq!(runs[0].status, "success");
}

async fn a_local_time_schedule_runs_once_a_day_across_dst(db: TestDb) {
    let store = ScheduleStore::connect(&db.url).await.unwrap();
    let clock = ManualClock::new(at(2026, 3, 27, 12, 0));
    let mut daily = new("berlin-0230", "30 2 * * *", JobKind::Full, "all");
    daily.time_zone = "Europe/Berlin".into();
    store.add(&daily, clock.now()).await.unwrap();
    let job = Arc::new(RecordingJob::default());
    let scheduler = scheduler_a(&store, job.clone(), &clock);
    // Walk the clock in 10-minute steps over the spring-forward and fall-back weekends.
    for (from, to) in [
        (at(2026, 3, 27, 12, 0), at(2026, 3, 31, 12, 0)),
        (at(2026, 10, 23, 12, 0), at(2026, 10, 27, 12, 0)),
    ] {
        let mut t = from;
        if store.get("berlin-0230").await.unwrap().next_run < Some(from) {
            store.disable("berlin-0230").await.unwrap();
            store.enable("berlin-0230", from).await.unwrap();
        }
        clock.set(t);
        while t < to {
            t += chrono::Duration::minutes(10);
            clock.set(t);
            scheduler.run_due_once().await.unwrap();
        }
    }
    let slots: Vec<DateTime<Utc>> = job.runs().into_iter().map(|(_, slot)| slot).collect();
    assert_eq!(
        slots,
        [
            at(2026, 3, 28, 1, 30), // 02:30 CET
            at(2026, 3, 29, 1, 0),  // 02:30 does not exist: 03:00 CEST, right after the gap
            at(2026, 3, 30, 0, 30), // 02:30 CEST
            at(2026, 3, 31, 0, 30),
            at(2026, 10, 24, 0, 30), // 02:30 CEST
            at(2026, 10, 25, 0, 30), // the first 02:30 (CEST) only, not the second (CET)
            at(2026, 10, 26, 1, 30), // 02:30 CET
            at(2026, 10, 27, 1, 30),
        ]
    );
}

/// A real SQLite application database (kept alive by the returned `Env`), its backup
/// service, the schedule store inside it, and the real backup job, acting under
/// [`backup_support::POLICY`].
async fn real_backups() -> (
    backup_support::Env,
    Arc<rbac_admin::backup::BackupService>,
    ScheduleStore,
    Arc<rbac_admin::backup::schedule::BackupJob>,
) {
    let env = backup_support::Env::new(20);
    let service = Arc::new(env.service());
    let authorizer: Arc<dyn rbac_admin::backup::Authorizer> = Arc::new(backup_support::engine());
    let url = format!("sqlite://{}", env.db.display());
    let store = ScheduleStore::connect(&url).await.unwrap();
    let job = Arc::new(rbac_admin::backup::schedule::BackupJob::new(
        service.clone(),
        authorizer,
    ));
    (env, service, store, job)
}

/// The real job on a real SQLite application database: scheduled backups through the backup
/// service, retention after each, and the permission check at each run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_make_real_backups_and_apply_retention() {
    let (_env, service, store, job) = real_backups().await;
    let clock = ManualClock::new(at(2026, 11, 23, 1, 0));
    let mut nightly = new("nightly", "0 2 * * *", JobKind::Full, "all");
    nightly.retention = Some("daily=2".parse().unwrap());
    store.add(&nightly, clock.now()).await.unwrap();
    let mut acme = new("acme", "0 2 * * *", JobKind::Full, "tenant:acme");
    acme.created_by = "alice".into();
    store.add(&acme, clock.now()).await.unwrap();
    let mut intruder = new("intruder", "0 2 * * *", JobKind::Full, "tenant:globex");
    intruder.created_by = "alice".into();
    store.add(&intruder, clock.now()).await.unwrap();

    let scheduler = scheduler_a(&store, job, &clock);
    for day in 23..=25 {
        clock.set(at(2026, 11, day, 2, 0));
        let stats = scheduler.run_due_once().await.unwrap();
        assert_eq!((stats.runs, stats.failed), (3, 1), "day {day}");
    }
    let backups = service.summaries().await.unwrap();
    let all: Vec<_> = backups.iter().filter(|b| b.scope == Scope::All).collect();
    let acme: Vec<_> = backups
        .iter()
        .filter(|b| b.scope == Scope::Tenant("acme".into()))
        .collect();
    // The backups were made just now (real time): `daily=2` keeps today's latest only.
    assert_eq!(all.len(), 1, "{backups:?}");
    assert_eq!(acme.len(), 3, "no retention on the acme schedule");
    assert!(
        backups
            .iter()
            .all(|b| b.scope != Scope::Tenant("globex".into()))
    );

    let runs = store.runs("nightly", 10).await.unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.status == "success"));
    assert_eq!(runs[0].backup_id.as_deref(), Some(all[0].id.as_str()));
    assert_eq!(
        runs[0].message.as_deref(),
        Some("retention daily=2: deleted 1 backup")
    );
    let denied = store.runs("intruder", 10).await.unwrap();
    assert!(denied.iter().all(|r| r.status == "failed"));
    let error = denied[0].error.as_deref().unwrap();
    assert!(
        error.contains("denied") && error.contains("system.backup.create"),
        "{error}"
    );
}

/// A schedule `minutely` of full backups of `all`, added now; and a clock at now. The
/// scheduler's clock is the real time here: leases expire in real time.
async fn minutely_backup_of_all(store: &ScheduleStore) -> (DateTime<Utc>, ManualClock) {
    let now = Utc::now();
    store
        .add(&new("minutely", "* * * * *", JobKind::Full, "all"), now)
        .await
        .unwrap();
    (now, ManualClock::new(now))
}

/// A lease left by a backup by hand whose process has ended on this machine (here: a child
/// that has exited, its lease written as `backup create` writes one) does not hold up the
/// scheduler until it expires; one of a live process does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backups_lease_is_taken_over_by_the_scheduler() {
    let (env, _service, store, _job) = real_backups().await;
    let identity = backup_support::process_identity();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let hold = |pid: u32| {
        let conn = rusqlite::Connection::open(&env.db).unwrap();
        conn.execute(
            "INSERT OR REPLACE INTO rbac_backup_leases (scope, owner, expires_at) VALUES ('all', ?1, ?2)",
            rusqlite::params![
                format!("{pid} {identity} 20261125T000000Z-00000000"),
                (Utc::now() + chrono::Duration::hours(24)).timestamp_millis()
            ],
        )
        .unwrap();
    };
    let (now, clock) = minutely_backup_of_all(&store).await;
    let job = Arc::new(RecordingJob::default());
    let scheduler = scheduler_a(&store, job.clone(), &clock);
    // A live holder (this process): the run waits.
    hold(std::process::id());
    clock.set(now + chrono::Duration::seconds(61));
    assert_eq!(scheduler.run_due_once().await.unwrap().runs, 0);
    // A dead one: taken over.
    hold(dead);
    assert_eq!(scheduler.run_due_once().await.unwrap().runs, 1);
    assert_eq!(job.runs().len(), 1);
}

/// A backup made by hand takes its scope's lease, the one a scheduler holds while it runs:
/// during a scheduled run of `all` it is refused (`Busy`, logged, nothing stored), a backup of
/// another scope goes ahead, and once the run is over it is made and holds nothing after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_by_hand_never_runs_beside_a_scheduled_one_of_its_scope() {
    use rbac_admin::backup::{BackupError, BackupKind, CreateRequest, LogQuery, NoProgress};

    let (env, service, store, _job) = real_backups().await;
    let (now, clock) = minutely_backup_of_all(&store).await;
    let job = Arc::new(RecordingJob::slow(Duration::from_millis(1500)));
    let running = Running::start(&store, job.clone(), &clock);
    clock.set(now + chrono::Duration::seconds(61));
    wait_until("the scheduled run of `all` to start", || {
        job.in_flight.lock().unwrap().get("all") == Some(&1)
    })
    .await;

    let engine = backup_support::engine();
    let ops = rbac_admin::backup::Actor::new("ops", &engine);
    let request = |scope: Scope| CreateRequest {
        kind: BackupKind::Full,
        scope,
    };
    let refused = rbac_admin::backup::create(&service, &request(Scope::All), &ops, &NoProgress)
        .await
        .expect_err("`all` is being backed up by the scheduler");
    assert!(
        matches!(&refused, BackupError::Busy(scope) if scope == "all"),
        "{refused}"
    );
    let acme = Scope::Tenant("acme".into());
    rbac_admin::backup::create(&service, &request(acme.clone()), &ops, &NoProgress)
        .await
        .expect("another scope is not held up");
    let made = service.summaries().await.unwrap();
    assert_eq!(
        made.iter().map(|b| &b.scope).collect::<Vec<_>>(),
        [&acme],
        "the refused backup left nothing"
    );
    let log = service.logs(&ops, &LogQuery::default()).await.unwrap();
    assert!(
        log.iter().any(|e| e.scope == "all"
            && e.error.as_deref() == Some("another backup of scope `all` is running")),
        "{log:?}"
    );

    wait_until("the scheduled run to end", || job.runs().len() == 1).await;
    assert_eq!(running.stop().await.runs, 1);
    let m = rbac_admin::backup::create(&service, &request(Scope::All), &ops, &NoProgress)
        .await
        .expect("the scope is free again");
    assert_eq!(m.scope, Scope::All);
    let held: i64 = rusqlite::Connection::open(&env.db)
        .unwrap()
        .query_row("SELECT count(*) FROM rbac_backup_leases", [], |r| r.get(0))
        .unwrap();
    assert_eq!(held, 0, "leases left behind");
}

/// The `backup schedule` and `backup scheduler` commands as library calls, against a real
/// policy database and application database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_commands_check_permissions_and_print() {
    use rbac_admin::backup::schedule_cli::{self, ScheduleCommand, SchedulerArgs};
    use rbac_admin::{Context, Exit, cli::Format};
    let env = backup_support::Env::new(5);
    let config = env.dir.path().join("backup.toml");
    std::fs::write(&config, env.config_text("")).unwrap();
    let (_, policy_url) = env.url("policy.db");
    let policy_store = rbac_core::store::Store::connect(&policy_url).await.unwrap();
    policy_store
        .import(
            &rbac_core::store::ChangeContext::new("setup"),
            &rbac_core::Policy::from_toml_str(backup_support::POLICY).unwrap(),
        )
        .await
        .unwrap();
    let ctx = |actor: &str, format: Format| Context {
        db_url: policy_url.clone(),
        actor: Some(actor.into()),
        comment: None,
        format,
        color: false,
        interactive: false,
        progress_bars: false,
    };
    let run = |actor: &'static str, format: Format, command: ScheduleCommand| {
        let ctx = ctx(actor, format);
        let config = config.clone();
        async move {
            let mut out = Vec::new();
            let result = schedule_cli::run(&ctx, &config, &command, &mut out).await;
            (result, String::from_utf8(out).unwrap())
        }
    };
    let add = |name: &str, scope: &str| ScheduleCommand::Add {
        name: name.into(),
        cron: "0 2 * * *".into(),
        time_zone: "Europe/Berlin".into(),
        kind: JobKind::Full,
        scope: scope.parse().unwrap(),
        retention: Some("daily=7".parse().unwrap()),
    };

    let (result, out) = run("ops", Format::Text, add("nightly", "all")).await;
    assert_eq!(result.unwrap(), Exit::Ok);
    assert!(
        out.starts_with("added schedule `nightly` (0 2 * * * full of all; next run "),
        "{out}"
    );
    // A tenant admin may schedule their tenant, not everything, and a reader nothing.
    let (result, _) = run("alice", Format::Text, add("acme", "tenant:acme")).await;
    assert!(result.is_err(), "alice holds no system.backup.schedule");
    let (result, _) = run("auditor", Format::Text, add("x", "all")).await;
    assert_eq!(result.unwrap_err().exit(), Exit::Denied);
    let (result, _) = run("ops", Format::Text, add("nightly", "all")).await;
    let err = result.unwrap_err();
    assert_eq!(err.exit(), Exit::Invalid);
    assert!(err.to_string().contains("already exists"), "{err}");

    let (result, out) = run("auditor", Format::Json, ScheduleCommand::List).await;
    assert_eq!(result.unwrap(), Exit::Ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["name"], "nightly");
    assert_eq!(list[0]["time_zone"], "Europe/Berlin");
    assert_eq!(list[0]["retention"]["daily"], 7);
    let (result, out) = run("ops", Format::Text, ScheduleCommand::List).await;
    assert_eq!(result.unwrap(), Exit::Ok);
    assert!(out.lines().next().unwrap().starts_with("ID"), "{out}");
    assert!(out.contains("nightly") && out.contains("daily=7"), "{out}");

    let (result, out) = run(
        "ops",
        Format::Text,
        ScheduleCommand::Disable {
            name: "nightly".into(),
        },
    )
    .await;
    assert_eq!(result.unwrap(), Exit::Ok);
    assert!(out.contains("not scheduled"), "{out}");
    let (result, _) = run(
        "auditor",
        Format::Text,
        ScheduleCommand::Enable {
            name: "nightly".into(),
        },
    )
    .await;
    assert_eq!(result.unwrap_err().exit(), Exit::Denied);
    let (result, _) = run(
        "ops",
        Format::Text,
        ScheduleCommand::Enable {
            name: "nightly".into(),
        },
    )
    .await;
    assert_eq!(result.unwrap(), Exit::Ok);

    // The scheduler, once: nothing is due yet.
    let mut out = Vec::new();
    let exit = schedule_cli::run_scheduler(
        &ctx("ops", Format::Text),
        &config,
        &SchedulerArgs {
            once: true,
            poll: 30,
        },
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(exit, Exit::Ok);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "scheduler stopped: 0 runs, 0 failed\n"
    );

    // Removing asks for confirmation; without a terminal, `--yes` is required.
    let (result, _) = run(
        "ops",
        Format::Text,
        ScheduleCommand::Remove {
            name: "nightly".into(),
            yes: false,
        },
    )
    .await;
    assert!(result.is_err());
    let (result, out) = run(
        "ops",
        Format::Text,
        ScheduleCommand::Remove {
            name: "nightly".into(),
            yes: true,
        },
    )
    .await;
    assert_eq!(result.unwrap(), Exit::Ok);
    assert!(out.starts_with("removed schedule `nightly`"), "{out}");
    let (result, _) = run(
        "ops",
        Format::Text,
        ScheduleCommand::Runs {
            name: "nightly".into(),
            limit: 5,
        },
    )
    .await;
    assert_eq!(result.unwrap_err().exit(), Exit::Invalid);
}

#[test]
fn cron_slots_follow_the_wall_clock_of_the_zone() {
    // New York: spring forward 2026-03-08 02:00 → 03:00; fall back 2026-11-01 02:00 → 01:00.
    let spec = CronSpec::parse("30 1 * * *", "America/New_York").unwrap();
    let mut t = at(2026, 10, 30, 12, 0);
    let mut slots = Vec::new();
    for _ in 0..4 {
        t = spec.next_after(t).unwrap();
        slots.push(t);
    }
    // 01:30 EDT on Oct 31 and Nov 1 (the first of the two 01:30s), then 01:30 EST.
    assert_eq!(
        slots,
        [
            at(2026, 10, 31, 5, 30),
            at(2026, 11, 1, 5, 30),
            at(2026, 11, 2, 6, 30),
            at(2026, 11, 3, 6, 30)
        ]
    );
    // From inside the repeated hour (after the first 01:30), the next run is the next day.
    assert_eq!(
        spec.next_after(at(2026, 11, 1, 5, 45)).unwrap(),
        at(2026, 11, 2, 6, 30)
    );
    assert_eq!(
        spec.next_after(at(2026, 11, 1, 6, 15)).unwrap(),
        at(2026, 11, 2, 6, 30)
    );

    // An hourly job is hourly in real time: the repeated hour has two runs, the skipped one none.
    let hourly = CronSpec::parse("0 * * * *", "America/New_York").unwrap();
    let mut t = at(2026, 11, 1, 4, 30);
    let mut slots = Vec::new();
    for _ in 0..3 {
        t = hourly.next_after(t).unwrap();
        slots.push(t);
    }
    assert_eq!(
        slots,
        [
            at(2026, 11, 1, 5, 0),
            at(2026, 11, 1, 6, 0),
            at(2026, 11, 1, 7, 0)
        ]
    );

    // UTC by default, and aliases work.
    let daily = CronSpec::parse("@daily", "UTC").unwrap();
    assert_eq!(
        daily.next_after(at(2026, 3, 29, 0, 0)).unwrap(),
        at(2026, 3, 30, 0, 0)
    );
}

#[test]
fn the_clock_can_be_injected() {
    let clock = ManualClock::new(at(2026, 1, 1, 0, 0));
    clock.advance(chrono::Duration::hours(5));
    assert_eq!(clock.now(), at(2026, 1, 1, 5, 0));
    clock.set(at(2025, 1, 1, 0, 0));
    assert_eq!(
        clock.now(),
        at(2026, 1, 1, 5, 0),
        "a manual clock never goes back"
    );
}

#[tokio::test]
async fn a_scheduled_incremental_that_cannot_follow_makes_a_full_backup() {
    use rbac_admin::backup::BackupKind;
    let (_env, service, store, job) = real_backups().await;
    let clock = ManualClock::new(at(2026, 11, 23, 0, 30));
    store
        .add(
            &new("hourly", "0 * * * *", JobKind::Incremental, "all"),
            clock.now(),
        )
        .await
        .unwrap();
    let scheduler = scheduler_a(&store, job, &clock);
    let run_at = |hour| {
        clock.set(at(2026, 11, 23, hour, 0));
        scheduler.run_due_once()
    };
    let kinds = || async {
        let summaries = service.summaries().await.unwrap();
        summaries.iter().map(|s| s.kind).collect::<Vec<_>>()
    };

    // No backup of the scope yet: the first run makes the full one, the next follow it.
    assert_eq!(run_at(1).await.unwrap().failed, 0);
    assert_eq!(run_at(2).await.unwrap().failed, 0);
    assert_eq!(kinds().await, [BackupKind::Full, BackupKind::Incremental]);
    // After a restore the chain cannot go on: the next run starts a new one.
    let engine = backup_support::engine();
    let first = service.summaries().await.unwrap()[0].id.clone();
    service
        .restore(
            &backup_support::restore_of(&first),
            &rbac_admin::backup::Actor::new("ops", &engine),
            &rbac_admin::backup::NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(run_at(3).await.unwrap().failed, 0);
    assert_eq!(
        kinds().await,
        [BackupKind::Full, BackupKind::Incremental, BackupKind::Full]
    );

    let runs = store.runs("hourly", 10).await.unwrap();
    assert!(runs.iter().all(|r| r.status == "success"), "{runs:?}");
    let notes: Vec<Option<&str>> = runs.iter().map(|r| r.message.as_deref()).collect();
    assert!(
        notes[0].is_some_and(|n| n.contains("restored since the parent backup")
            && n.ends_with("made a full backup instead")),
        "{notes:?}"
    );
    assert_eq!(notes[1], None);
    assert!(
        notes[2].is_some_and(|n| n.contains("needs an earlier backup of scope `all`")),
        "{notes:?}"
    );
}
