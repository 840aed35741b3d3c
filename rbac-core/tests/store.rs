//! The policy store, run against SQLite always and against a real PostgreSQL server when
//! `RBAC_TEST_POSTGRES_URL` is set at build time (`export RBAC_TEST_POSTGRES_URL=$(bash
//! .ci/postgres.sh)`). Without it the PostgreSQL tests are reported as ignored, with the reason.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly on a broken fixture"
)]

use std::time::{Duration, Instant};

use rbac_core::store::{
    AuditQuery, AuditRecord, Change, ChangeContext, DecisionAuditMode, LiveOptions, Store,
    StoreError,
};
use rbac_core::{Cause, Policy};

const ERP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/policies/erp.toml");

use rbac_test_support::TestDb;

rbac_test_support::on_both_databases_async!(
    file = "rbac.db", prefix = "rbac_test";
    toml_round_trip_is_exact_and_migrations_are_idempotent,
    rejected_changes_leave_nothing_behind,
    typed_changes_edit_every_part_of_the_policy,
    concurrent_processes_lose_no_update,
    live_engines_follow_changes_here_and_in_other_instances,
    audit_trail_is_queryable_exportable_and_tamper_evident,
    decisions_are_recorded_and_flushed_on_shutdown,
    a_full_decision_queue_drops_and_counts_but_never_blocks,
    every_past_version_is_rebuilt_exactly,
    a_rewound_version_is_served_as_the_database_holds_it,
    importing_the_same_policy_again_changes_nothing,
);

fn ctx(actor: &str) -> ChangeContext {
    ChangeContext::new(actor)
}

async fn seeded(db: &TestDb) -> (Store, Policy) {
    let store = Store::connect(&db.url).await.unwrap();
    let policy = Policy::from_toml_file(ERP).unwrap();
    store
        .import(&ctx("importer").comment("initial import"), &policy)
        .await
        .unwrap();
    (store, policy)
}

async fn toml_round_trip_is_exact_and_migrations_are_idempotent(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    assert_eq!(store.version().await.unwrap(), 0);
    assert_eq!(
        store.load().await.unwrap(),
        Policy::from_toml_str("").unwrap()
    );
    let policy = Policy::from_toml_file(ERP).unwrap();
    let applied = store.import(&ctx("importer"), &policy).await.unwrap();
    assert!(applied.changed);
    assert_eq!(applied.version, 1);
    assert_eq!(store.load().await.unwrap(), policy);
    assert_eq!(
        Policy::from_toml_str(&store.export_toml().await.unwrap()).unwrap(),
        policy
    );
    let again = store.import(&ctx("importer"), &policy).await.unwrap();
    assert!(!again.changed, "importing the same policy changes nothing");
    assert_eq!(again.version, 1);
    // Connecting again runs the migrations again: a no-op.
    let reopened = Store::connect(&db.url).await.unwrap();
    assert_eq!(reopened.load().await.unwrap(), policy);
    assert_eq!(
        reopened.audit(&AuditQuery::default()).await.unwrap().len(),
        1
    );
}

async fn state(store: &Store) -> (String, i64, Vec<AuditRecord>) {
    (
        store.export_toml().await.unwrap(),
        store.version().await.unwrap(),
        store.audit(&AuditQuery::default()).await.unwrap(),
    )
}

async fn rejected_changes_leave_nothing_behind(db: TestDb) {
    let (store, _) = seeded(&db).await;
    let before = state(&store).await;
    let bad = [
        vec![Change::Grant {
            tenant: None,
            role: "viewer".into(),
            pattern: "finance.invoice.read".into(),
        }],
        vec![
            Change::CreateRole {
                tenant: None,
                name: "a".into(),
                description: None,
            },
            Change::Inherit {
                tenant: None,
                role: "a".into(),
                parent: "viewer".into(),
            },
            Change::Inherit {
                tenant: None,
                role: "viewer".into(),
                parent: "a".into(),
            },
        ],
        vec![Change::DeleteRole {
            tenant: None,
            name: "viewer".into(),
        }],
        vec![Change::Assign {
            subject: "zed".into(),
            tenant: Some("initech".into()),
            role: "viewer".into(),
        }],
        vec![
            Change::Assign {
                subject: "zed".into(),
                tenant: None,
                role: "viewer".into(),
            },
            Change::Revoke {
                tenant: None,
                role: "viewer".into(),
                pattern: "not.granted".into(),
            },
        ],
        // A global role with rules in a tenant: deleting it would leave those rules as a
        // role of the tenant's own, without the global role's denies.
        vec![
            Change::CreateRole {
                tenant: None,
                name: "temp".into(),
                description: None,
            },
            Change::Deny {
                tenant: None,
                role: "temp".into(),
                pattern: "crm.leads.delete".into(),
            },
            Change::Grant {
                tenant: Some("acme".into()),
                role: "temp".into(),
                pattern: "crm.*".into(),
            },
            Change::DeleteRole {
                tenant: None,
                name: "temp".into(),
            },
        ],
        // A global role named like a tenant's own role would become a layer of it there.
        vec![Change::CreateRole {
            tenant: None,
            name: "auditor".into(),
            description: None,
        }],
    ];
    let mut messages = Vec::new();
    for changes in &bad {
        let err = store.apply(&ctx("mallory"), changes).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(_) | StoreError::Change(_)),
            "{err}"
        );
        messages.push(err.to_string());
    }
    assert!(
        messages[0].contains("did you mean `finance.invoices.read`"),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].contains("inheritance cycle a → viewer → a"),
        "{}",
        messages[1]
    );
    assert!(
        messages[2].contains("unknown role `viewer`"),
        "{}",
        messages[2]
    );
    assert!(
        messages[3].contains("unknown tenant `initech`"),
        "{}",
        messages[3]
    );
    assert!(
        messages[4].contains("grant `not.granted` of role `viewer` does not exist"),
        "{}",
        messages[4]
    );
    assert!(
        messages[5].contains("role `temp` has rules of its own in tenant(s) `acme`"),
        "{}",
        messages[5]
    );
    assert!(
        messages[6].contains("tenant(s) `globex` have a role `auditor` of their own"),
        "{}",
        messages[6]
    );
    assert_eq!(
        state(&store).await,
        before,
        "a rejected change wrote something"
    );
    assert!(store.verify_audit().await.unwrap().is_intact());
}

async fn typed_changes_edit_every_part_of_the_policy(db: TestDb) {
    let (store, _) = seeded(&db).await;
    let admin = ctx("admin");
    let changes = [
        Change::DeclarePermission {
            name: "hr.payroll.read".into(),
            description: "Read payroll".into(),
        },
        Change::CreateTenant {
            name: "initech".into(),
            description: Some("Initech".into()),
        },
        Change::CreateRole {
            tenant: None,
            name: "hr".into(),
            description: Some("HR staff".into()),
        },
        Change::Grant {
            tenant: None,
            role: "hr".into(),
            pattern: "hr.*".into(),
        },
        Change::CreateRole {
            tenant: Some("initech".into()),
            name: "payroll_clerk".into(),
            description: None,
        },
        Change::Inherit {
            tenant: Some("initech".into()),
            role: "payroll_clerk".into(),
            parent: "hr".into(),
        },
        Change::Deny {
            tenant: Some("acme".into()),
            role: "viewer".into(),
            pattern: "crm.contacts.read".into(),
        },
        Change::Assign {
            subject: "ivy".into(),
            tenant: Some("initech".into()),
            role: "payroll_clerk".into(),
        },
    ];
    let applied = store.apply(&admin, &changes).await.unwrap();
    assert_eq!(applied.version, 2, "a batch is one version");
    let engine = rbac_core::Engine::new(&store.load().await.unwrap());
    assert!(
        engine
            .check("ivy", "initech", "hr.payroll.read")
            .is_allowed()
    );
    assert!(!engine.check("ivy", "acme", "hr.payroll.read").is_allowed());
    assert_eq!(
        engine.check("carol", "acme", "crm.contacts.read").cause(),
        Cause::ExplicitDeny
    );
    assert!(
        engine
            .check("carol", "globex", "crm.contacts.read")
            .is_allowed()
    );
    // And undo it all, one change at a time.
    for change in [
        Change::Unassign {
            subject: "ivy".into(),
            tenant: Some("initech".into()),
            role: "payroll_clerk".into(),
        },
        Change::Undeny {
            tenant: Some("acme".into()),
            role: "viewer".into(),
            pattern: "crm.contacts.read".into(),
        },
        Change::Uninherit {
            tenant: Some("initech".into()),
            role: "payroll_clerk".into(),
            parent: "hr".into(),
        },
        Change::DeleteRole {
            tenant: Some("initech".into()),
            name: "payroll_clerk".into(),
        },
        Change::Revoke {
            tenant: None,
            role: "hr".into(),
            pattern: "hr.*".into(),
        },
        Change::DeleteRole {
            tenant: None,
            name: "hr".into(),
        },
        Change::DeleteTenant {
            name: "initech".into(),
        },
        Change::RemovePermission {
            name: "hr.payroll.read".into(),
        },
    ] {
        store.apply_one(&admin, change).await.unwrap();
    }
    let mut expected = Policy::from_toml_file(ERP).unwrap().into_document();
    // Undoing leaves an empty acme layer of `viewer` behind and ivy as a subject with no roles.
    expected.tenant_role_mut("acme", "viewer");
    expected.subjects.entry("ivy".into()).or_default();
    assert_eq!(store.load().await.unwrap().into_document(), expected);
    assert_eq!(store.version().await.unwrap(), 10);
}

/// The worker half of `concurrent_processes_lose_no_update`: when this test binary is run again
/// with `RBAC_STORE_WORKER=URL,NAME,COUNT`, this entry applies COUNT assignments, one
/// transaction each. In a normal run (the variable unset) it has nothing to do.
#[test]
fn worker_process_entry() {
    let Ok(spec) = std::env::var("RBAC_STORE_WORKER") else {
        return;
    };
    let mut parts = spec.splitn(3, ',');
    let (url, name, count) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let count: usize = count.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::connect(url).await.unwrap();
        for i in 0..count {
            let change = Change::Assign {
                subject: format!("{name}-{i}"),
                tenant: None,
                role: "viewer".into(),
            };
            store.apply_one(&ctx(name), change).await.unwrap();
        }
    });
}

async fn concurrent_processes_lose_no_update(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    store
        .apply(
            &ctx("setup"),
            &[
                Change::DeclarePermission {
                    name: "a.b".into(),
                    description: String::new(),
                },
                Change::CreateRole {
                    tenant: None,
                    name: "viewer".into(),
                    description: None,
                },
            ],
        )
        .await
        .unwrap();
    const EACH: usize = 25;
    let spawn = |name: &str| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "worker_process_entry", "--test-threads", "1"])
            .env("RBAC_STORE_WORKER", format!("{},{name},{EACH}", db.url))
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("wa"));
        let b = s.spawn(|| spawn("wb"));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "worker failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And two independent pools in this process at the same time.
    let other = Store::connect(&db.url).await.unwrap();
    let assign = |store: Store, prefix: &'static str| async move {
        for i in 0..EACH {
            let change = Change::Assign {
                subject: format!("{prefix}-{i}"),
                tenant: None,
                role: "viewer".into(),
            };
            store.apply_one(&ctx(prefix), change).await.unwrap();
        }
    };
    tokio::join!(assign(store.clone(), "pa"), assign(other, "pb"));
    let doc = store.load().await.unwrap().into_document();
    for prefix in ["wa", "wb", "pa", "pb"] {
        for i in 0..EACH {
            let subject = doc
                .subjects
                .get(&format!("{prefix}-{i}"))
                .expect("lost update");
            assert_eq!(subject.roles, ["viewer"]);
        }
    }
    assert_eq!(store.version().await.unwrap(), 1 + 4 * EACH as i64);
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.changes, 1 + 4 * EACH as i64);
}

async fn live_engines_follow_changes_here_and_in_other_instances(db: TestDb) {
    let (store, _) = seeded(&db).await;
    let options = LiveOptions {
        poll_interval: Duration::from_millis(100),
        ..LiveOptions::default()
    };
    let local = store.live_engine(options.clone()).await.unwrap();
    // Another instance: its own pool, its own engine, like a second application process.
    let remote_store = Store::connect(&db.url).await.unwrap();
    let remote = remote_store.live_engine(options).await.unwrap();
    let query = ("alice", "acme", "finance.invoices.approve");
    assert!(local.check(query.0, query.1, query.2).is_allowed());
    assert!(remote.check(query.0, query.1, query.2).is_allowed());
    let revoke = Change::Unassign {
        subject: "alice".into(),
        tenant: Some("acme".into()),
        role: "finance_manager".into(),
    };
    let applied = store.apply_one(&ctx("admin"), revoke).await.unwrap();
    // This process sees the change before `apply` returned.
    assert_eq!(
        local.check(query.0, query.1, query.2).cause(),
        Cause::NoRoles
    );
    assert_eq!(local.health().version, applied.version);
    let start = Instant::now();
    while remote.check(query.0, query.1, query.2).is_allowed() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "revocation never reached the other instance"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "revocation reached the other instance after {:?}",
        start.elapsed()
    );
    assert_eq!(remote.health().version, applied.version);
    assert_eq!(remote.health().last_error, None);
    local.shutdown().await;
    remote.shutdown().await;
}

async fn raw_pool(db: &TestDb) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&db.url).await.unwrap()
}

async fn audit_trail_is_queryable_exportable_and_tamper_evident(db: TestDb) {
    let (store, _) = seeded(&db).await;
    store
        .apply_one(
            &ctx("ann").comment("new hire"),
            Change::Assign {
                subject: "erin".into(),
                tenant: Some("acme".into()),
                role: "viewer".into(),
            },
        )
        .await
        .unwrap();
    store
        .apply_one(
            &ctx("bob"),
            Change::Grant {
                tenant: Some("globex".into()),
                role: "sales".into(),
                pattern: "crm.contacts.update".into(),
            },
        )
        .await
        .unwrap();
    store
        .apply_one(
            &ctx("ann"),
            Change::Unassign {
                subject: "carol".into(),
                tenant: Some("acme".into()),
                role: "sales".into(),
            },
        )
        .await
        .unwrap();
    let all = store.audit(&AuditQuery::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    let first = &all[1];
    assert_eq!(
        (first.actor.as_str(), first.action.as_str(), first.version),
        ("ann", "subject.assign", 2)
    );
    assert_eq!(first.comment.as_deref(), Some("new hire"));
    assert_eq!(
        first.detail["before"]["subjects"]["erin"],
        serde_json::Value::Null
    );
    assert_eq!(
        first.detail["after"]["subjects"]["erin"]["tenants"]["acme"][0],
        "viewer"
    );
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery::default();
        f(&mut q);
        q
    };
    let ids = |records: Vec<AuditRecord>| records.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .audit(&q(|q| q.actor = Some("ann".into())))
            .await
            .unwrap()),
        [2, 4]
    );
    assert_eq!(
        ids(store
            .audit(&q(|q| q.subject = Some("carol".into())))
            .await
            .unwrap()),
        [1, 4]
    );
    assert_eq!(
        ids(store
            .audit(&q(|q| q.tenant = Some("globex".into())))
            .await
            .unwrap()),
        [1, 3]
    );
    assert_eq!(
        ids(store
            .audit(&q(|q| q.permission = Some("crm.contacts.update".into())))
            .await
            .unwrap()),
        [1, 3]
    );
    let since = all[3].at_ms;
    let recent = store
        .audit(&AuditQuery {
            since_ms: Some(since),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(recent.iter().all(|r| r.at_ms >= since) && recent.iter().any(|r| r.id == 4));
    assert!(
        store
            .audit(&AuditQuery {
                until_ms: Some(all[0].at_ms),
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .is_empty()
    );

    let mut out = Vec::new();
    assert_eq!(
        store
            .export_audit_jsonl(&AuditQuery::default(), &mut out)
            .await
            .unwrap(),
        4
    );
    let lines: Vec<AuditRecord> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, all);

    assert!(store.verify_audit().await.unwrap().is_intact());
    let pool = raw_pool(&db).await;
    sqlx::query("UPDATE rbac_audit SET actor = 'someone-else' WHERE id = 3")
        .execute(&pool)
        .await
        .unwrap();
    let report = store.verify_audit().await.unwrap();
    assert_eq!(report.first_broken_change, Some(3), "{report:?}");
    sqlx::query("UPDATE rbac_audit SET actor = 'bob' WHERE id = 3")
        .execute(&pool)
        .await
        .unwrap();
    assert!(store.verify_audit().await.unwrap().is_intact());
    sqlx::query("DELETE FROM rbac_audit WHERE id = 2")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        store.verify_audit().await.unwrap().first_broken_change,
        Some(2)
    );
}

async fn decisions_are_recorded_and_flushed_on_shutdown(db: TestDb) {
    let (store, _) = seeded(&db).await;
    let options = LiveOptions {
        decision_audit: DecisionAuditMode::All,
        decision_table: true,
        ..LiveOptions::default()
    };
    let live = store.live_engine(options).await.unwrap();
    for i in 0..60 {
        let subject = if i % 3 == 0 { "mallory" } else { "bob" };
        live.check(subject, "acme", "finance.invoices.create");
    }
    live.shutdown().await;
    let all = store.decisions(&AuditQuery::default()).await.unwrap();
    assert_eq!(all.len(), 60, "every queued record is written by shutdown");
    let denied = store
        .decisions(&AuditQuery {
            subject: Some("mallory".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(denied.len(), 20);
    assert!(
        denied
            .iter()
            .all(|d| !d.allowed && d.cause == "unknown_subject" && d.version == 1)
    );

    let live = store
        .live_engine(LiveOptions {
            decision_audit: DecisionAuditMode::DeniesOnly,
            decision_table: true,
            ..LiveOptions::default()
        })
        .await
        .unwrap();
    for subject in ["bob", "bob", "nobody"] {
        live.check(subject, "acme", "finance.invoices.create");
    }
    live.shutdown().await;
    assert_eq!(
        store.decisions(&AuditQuery::default()).await.unwrap().len(),
        61
    );
    let report = store.verify_audit().await.unwrap();
    assert!(report.is_intact() && report.decisions == 61, "{report:?}");
    let pool = raw_pool(&db).await;
    sqlx::query("UPDATE rbac_decisions SET allowed = 1 WHERE id = 61")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        store.verify_audit().await.unwrap().first_broken_decision,
        Some(61)
    );
}

async fn a_full_decision_queue_drops_and_counts_but_never_blocks(db: TestDb) {
    let (store, _) = seeded(&db).await;
    let options = LiveOptions {
        decision_audit: DecisionAuditMode::All,
        decision_table: true,
        decision_queue: 1,
        ..LiveOptions::default()
    };
    let live = store.live_engine(options).await.unwrap();
    const CHECKS: usize = 5_000;
    for _ in 0..CHECKS {
        live.check("bob", "acme", "finance.invoices.create");
    }
    let dropped = live.health().dropped_decisions;
    assert!(
        dropped > 0,
        "a queue of one cannot have kept up with {CHECKS} checks"
    );
    live.shutdown().await;
    let written = store.decisions(&AuditQuery::default()).await.unwrap().len();
    assert_eq!(written as u64 + dropped, CHECKS as u64);
}

#[tokio::test]
async fn connection_failures_are_clear_errors() {
    let err = Store::connect("mysql://localhost/x").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported database URL `mysql://localhost/x`: use `sqlite://FILE` or `postgres://USER@HOST/DB`"
    );
    let options = rbac_core::store::StoreOptions {
        acquire_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let err = Store::connect_with("postgres://app:secret@127.0.0.1:1/rbac", options)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(
            "cannot connect to the policy database `postgres://app:***@127.0.0.1:1/rbac`: "
        ),
        "{message}"
    );
    assert!(!message.contains("secret"));
    let err = Store::connect("sqlite:///nonexistent-dir/x/rbac.db")
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "cannot connect to the policy database `sqlite:///nonexistent-dir/x/rbac.db`"
        ),
        "{err}"
    );
}

/// A loopback TCP proxy in front of the PostgreSQL server that the test can cut and restore,
/// to take the database away from a running engine.
mod outage {
    use std::net::SocketAddr;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    pub(super) struct Proxy {
        pub(super) addr: SocketAddr,
        target: String,
        task: Option<JoinHandle<()>>,
    }

    impl Proxy {
        pub(super) async fn start(target: String) -> Proxy {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut proxy = Proxy {
                addr,
                target,
                task: None,
            };
            proxy.serve(listener);
            proxy
        }

        fn serve(&mut self, listener: TcpListener) {
            let target = self.target.clone();
            self.task = Some(tokio::spawn(async move {
                let mut links: Vec<JoinHandle<()>> = Vec::new();
                // Dropping this task (abort) drops the listener; the guard aborts every link.
                struct Links<'a>(&'a mut Vec<JoinHandle<()>>);
                impl Drop for Links<'_> {
                    fn drop(&mut self) {
                        for link in self.0.iter() {
                            link.abort();
                        }
                    }
                }
                let guard = Links(&mut links);
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let target = target.clone();
                    guard.0.push(tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    }));
                }
            }));
        }

        pub(super) fn cut(&mut self) {
            if let Some(task) = self.task.take() {
                task.abort();
            }
        }

        pub(super) async fn restore(&mut self) {
            let listener = TcpListener::bind(self.addr).await.unwrap();
            self.serve(listener);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_outage_serves_last_good_policy_then_fails_closed_then_recovers() {
    let db = TestDb::postgres("rbac_test").await;
    seeded(&db).await;
    let rest = db.url.split_once('@').unwrap().1;
    let (host_port, db_name) = rest.split_once('/').unwrap();
    let mut proxy = outage::Proxy::start(host_port.to_owned()).await;
    let user = db
        .url
        .split_once("://")
        .unwrap()
        .1
        .split_once('@')
        .unwrap()
        .0;
    let via_proxy = format!("postgres://{user}@{}/{db_name}", proxy.addr);
    let store = Store::connect_with(
        &via_proxy,
        rbac_core::store::StoreOptions {
            acquire_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let live = store
        .live_engine(LiveOptions {
            poll_interval: Duration::from_millis(50),
            deny_when_stale_for: Some(Duration::from_millis(1500)),
            ..LiveOptions::default()
        })
        .await
        .unwrap();
    let query = ("alice", "acme", "finance.invoices.approve");
    assert!(live.check(query.0, query.1, query.2).is_allowed());

    proxy.cut();
    let start = Instant::now();
    while live.health().last_error.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the outage was never noticed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let health = live.health();
    assert!(
        !health.denying && health.stale_for < Duration::from_millis(1500),
        "{health:?}"
    );
    assert!(
        live.check(query.0, query.1, query.2).is_allowed(),
        "serves the last good policy"
    );
    while live.check(query.0, query.1, query.2).cause() != Cause::Stale {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never failed closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(live.health().denying);

    proxy.restore().await;
    let start = Instant::now();
    while !live.check(query.0, query.1, query.2).is_allowed() {
        assert!(start.elapsed() < Duration::from_secs(15), "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = live.health();
    assert!(health.last_error.is_none() && !health.denying, "{health:?}");
    live.shutdown().await;
}

async fn every_past_version_is_rebuilt_exactly(db: TestDb) {
    let mut versions = vec![Policy::from_toml_str("").unwrap()];
    let (store, _) = seeded(&db).await;
    versions.push(store.load().await.unwrap());
    let steps: Vec<Vec<Change>> = vec![
        vec![Change::Grant {
            tenant: None,
            role: "viewer".into(),
            pattern: "crm.*".into(),
        }],
        vec![
            Change::CreateTenant {
                name: "initech".into(),
                description: Some("Initech".into()),
            },
            Change::CreateRole {
                tenant: Some("initech".into()),
                name: "clerk".into(),
                description: None,
            },
            Change::Grant {
                tenant: Some("initech".into()),
                role: "clerk".into(),
                pattern: "finance.invoices.read".into(),
            },
            Change::Assign {
                subject: "zoe".into(),
                tenant: Some("initech".into()),
                role: "clerk".into(),
            },
        ],
        vec![Change::Deny {
            tenant: Some("globex".into()),
            role: "sales".into(),
            pattern: "crm.leads.delete".into(),
        }],
        vec![Change::DeleteTenant {
            name: "initech".into(),
        }],
        vec![
            Change::Unassign {
                subject: "bob".into(),
                tenant: Some("globex".into()),
                role: "auditor".into(),
            },
            Change::DeleteRole {
                tenant: Some("globex".into()),
                name: "auditor".into(),
            },
        ],
    ];
    for step in steps {
        store.apply(&ctx("editor"), &step).await.unwrap();
        versions.push(store.load().await.unwrap());
    }
    // A replacement with many subjects: the audit record only lists who changed, the history
    // keeps everything.
    let mut big = store.load().await.unwrap().document().clone();
    for i in 0..700 {
        big.subjects.insert(
            format!("user{i}"),
            rbac_core::SubjectDef {
                roles: vec!["viewer".into()],
                ..Default::default()
            },
        );
    }
    let big = Policy::from_document(big).unwrap();
    store.import(&ctx("importer"), &big).await.unwrap();
    versions.push(store.load().await.unwrap());
    store
        .apply_one(
            &ctx("editor"),
            Change::Unassign {
                subject: "user3".into(),
                tenant: None,
                role: "viewer".into(),
            },
        )
        .await
        .unwrap();
    versions.push(store.load().await.unwrap());

    let current = store.version().await.unwrap();
    assert_eq!(current as usize, versions.len() - 1);
    for (version, expected) in versions.iter().enumerate() {
        let rebuilt = store.policy_at(version as i64).await.unwrap();
        assert_eq!(&rebuilt, expected, "version {version}");
    }
    for bad in [-1, current + 1] {
        match store.policy_at(bad).await {
            Err(StoreError::VersionUnavailable {
                version,
                earliest: 0,
                current: c,
            }) => assert_eq!((version, c), (bad, current)),
            other => panic!("version {bad}: {other:?}"),
        }
    }
    // A store whose history started later (it was migrated with versions already committed)
    // refuses the versions it cannot rebuild, and a gap in the history is corruption.
    let pool = raw_pool(&db).await;
    sqlx::query("UPDATE rbac_meta SET value = 3 WHERE key = 'history_since'")
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(
        store.policy_at(2).await,
        Err(StoreError::VersionUnavailable { earliest: 3, .. })
    ));
    assert_eq!(store.policy_at(3).await.unwrap(), versions[3]);
    sqlx::query("DELETE FROM rbac_policy_history WHERE version = 5")
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(
        store.policy_at(3).await,
        Err(StoreError::Corrupt(_))
    ));
    assert_eq!(store.policy_at(5).await.unwrap(), versions[5]);
}

/// A reload reads one committed state, never a mix of two. Here a commit lands while a
/// reload is between its reads (it waits on a lock the committing transaction holds): the
/// commit revokes `clerk`'s grant and gives `clerk` to bob. A reload that read the grant
/// before the commit and the assignment after it would let bob read invoices at a version
/// where he never could.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn a_postgres_reload_never_mixes_two_versions() {
    use sqlx::Executor as _;

    let db = TestDb::postgres("rbac_test").await;
    let store = Store::connect(&db.url).await.unwrap();
    let policy = Policy::from_toml_str(
        r#"
        [permissions.finance.invoices]
        read = "Read invoices"
        [roles.clerk]
        grants = ["finance.invoices.read"]
        [tenants.acme]
        [subjects.alice.tenants]
        acme = ["clerk"]
        [subjects.bob]
        "#,
    )
    .unwrap();
    store.import(&ctx("importer"), &policy).await.unwrap();
    let before = store.version().await.unwrap();

    let pool = raw_pool(&db).await;
    let mut writer = pool.begin().await.unwrap();
    // Role rules are read before assignments: the reload gets past them, then waits.
    writer
        .execute("LOCK TABLE rbac_assignments IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let reload = tokio::spawn({
        let store = store.clone();
        async move { store.load_versioned().await }
    });
    let waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted \
                   AND relation = 'rbac_assignments'::regclass";
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let row = sqlx::query_scalar::<_, i64>(waiting)
            .fetch_one(&pool)
            .await
            .unwrap();
        if row > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reload never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writer
        .execute("DELETE FROM rbac_role_rules WHERE role = 'clerk'")
        .await
        .unwrap();
    writer
        .execute(
            "INSERT INTO rbac_assignments (subject, tenant, position, role) \
             VALUES ('bob', 'acme', 0, 'clerk')",
        )
        .await
        .unwrap();
    writer
        .execute("UPDATE rbac_meta SET value = value + 1 WHERE key = 'policy_version'")
        .await
        .unwrap();
    writer.commit().await.unwrap();

    let (loaded, version) = reload.await.unwrap().unwrap();
    let engine = rbac_core::Engine::new(&loaded);
    let bob = engine.check("bob", "acme", "finance.invoices.read");
    let alice = engine.check("alice", "acme", "finance.invoices.read");
    // The state before the commit, whole: alice reads, bob holds nothing.
    assert_eq!(version, before);
    assert!(!bob.is_allowed(), "{bob:?}");
    assert!(alice.is_allowed(), "{alice:?}");
    let (after, _) = store.load_versioned().await.unwrap();
    let engine = rbac_core::Engine::new(&after);
    assert!(
        !engine
            .check("alice", "acme", "finance.invoices.read")
            .is_allowed()
    );
    assert!(
        !engine
            .check("bob", "acme", "finance.invoices.read")
            .is_allowed()
    );
}

/// The database's version went back (a backup restored, a failover to a replica that had not
/// seen the last change): live engines serve what the database holds, not the newer policy
/// they had, which a later change would otherwise have to overtake first.
async fn a_rewound_version_is_served_as_the_database_holds_it(db: TestDb) {
    use sqlx::Executor as _;

    let (store, _) = seeded(&db).await;
    let live = store
        .live_engine(LiveOptions {
            poll_interval: Duration::from_millis(20),
            ..LiveOptions::default()
        })
        .await
        .unwrap();
    let query = ("alice", "acme", "finance.invoices.approve");
    assert!(live.check(query.0, query.1, query.2).is_allowed());
    let served = live.health().version;

    // What a restore of an older backup does: older rows, older version.
    let pool = raw_pool(&db).await;
    let mut restore = pool.begin().await.unwrap();
    restore
        .execute("DELETE FROM rbac_assignments WHERE subject = 'alice'")
        .await
        .unwrap();
    restore
        .execute("UPDATE rbac_meta SET value = value - 1 WHERE key = 'policy_version'")
        .await
        .unwrap();
    restore
        .execute(
            "DELETE FROM rbac_policy_history WHERE version > \
             (SELECT value FROM rbac_meta WHERE key = 'policy_version')",
        )
        .await
        .unwrap();
    restore.commit().await.unwrap();

    let start = Instant::now();
    while live.check(query.0, query.1, query.2).is_allowed() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still serving version {served} after the database went back to {}",
            served - 1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(live.health().version, served - 1);

    // Back at the same number with other content (a failover to a replica that missed two
    // changes, then two others): another commit, so served as the database holds it.
    let pool = raw_pool(&db).await;
    store
        .apply_one(
            &ctx("ann"),
            Change::Assign {
                subject: "alice".into(),
                tenant: Some("acme".into()),
                role: "finance_manager".into(),
            },
        )
        .await
        .unwrap();
    assert!(live.check(query.0, query.1, query.2).is_allowed());
    let mut failover = pool.begin().await.unwrap();
    failover
        .execute("DELETE FROM rbac_assignments WHERE subject = 'alice'")
        .await
        .unwrap();
    failover
        .execute("UPDATE rbac_meta SET value = value + 7 WHERE key = 'policy_commit'")
        .await
        .unwrap();
    failover.commit().await.unwrap();
    let start = Instant::now();
    while live.check(query.0, query.1, query.2).is_allowed() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still serving the other history's version {}",
            live.health().version
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    live.shutdown().await;
}

/// The staleness limit runs while a refresh waits on the database, not only once it gives
/// up: here the version read waits on a lock held past the limit (the read's own timeout is
/// 4 s), and checks are denied before that read has failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn the_staleness_limit_runs_while_a_refresh_waits() {
    use sqlx::Executor as _;

    let db = TestDb::postgres("rbac_test").await;
    let (store, _) = seeded(&db).await;
    // Polls 2 s apart: a healthy engine between polls is not stale, and the version read
    // waits up to 4 s before it gives up.
    let live = store
        .live_engine(LiveOptions {
            poll_interval: Duration::from_secs(2),
            deny_when_stale_for: Some(Duration::from_millis(300)),
            listen_for_notifications: false,
            ..LiveOptions::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        live.check("alice", "acme", "finance.invoices.approve")
            .is_allowed(),
        "a healthy engine between polls is not denied: {:?}",
        live.health()
    );
    let query = ("alice", "acme", "finance.invoices.approve");
    assert!(live.check(query.0, query.1, query.2).is_allowed());

    let pool = raw_pool(&db).await;
    let mut hold = pool.begin().await.unwrap();
    hold.execute("LOCK TABLE rbac_meta IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let start = Instant::now();
    while live.check(query.0, query.1, query.2).cause() != Cause::Stale {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never failed closed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Denied while the version read still waits (its own timeout is 4 s), not when it fails.
    let health = live.health();
    assert!(
        health.denying
            && health
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("has not answered for")),
        "denied only once the refresh failed: {health:?}"
    );
    hold.rollback().await.unwrap();
    let start = Instant::now();
    while !live.check(query.0, query.1, query.2).is_allowed() {
        assert!(start.elapsed() < Duration::from_secs(15), "never recovered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    live.shutdown().await;
}

/// A policy imported twice is one change: an empty role list in a tenant (which the store
/// keeps as no assignment) reads back equal, as does the same policy built in code.
async fn importing_the_same_policy_again_changes_nothing(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    let toml = r#"
        [permissions.finance.invoices]
        read = "Read invoices"
        [roles.clerk]
        grants = ["finance.invoices.read"]
        [tenants.acme]
        [tenants.globex]
        [subjects.bob.tenants]
        acme = []
        globex = ["clerk"]
        [subjects.carol.tenants]
        acme = []
    "#;
    let policy = Policy::from_toml_str(toml).unwrap();
    let first = store.import(&ctx("importer"), &policy).await.unwrap();
    assert!(first.changed);
    let again = store.import(&ctx("importer"), &policy).await.unwrap();
    assert!(!again.changed, "{again:?}");
    assert_eq!(again.version, first.version);
    let changes = Change::ReplaceAll(Box::new(policy.document().clone()));
    let replaced = store.apply_one(&ctx("importer"), changes).await.unwrap();
    assert!(!replaced.changed, "{replaced:?}");
    assert_eq!(store.load().await.unwrap().document(), policy.document());
    // Still validated: an empty list under a tenant that does not exist is an error.
    let err = Policy::from_toml_str("[subjects.bob.tenants]\nghost = []\n").unwrap_err();
    assert!(err.to_string().contains("ghost"), "{err}");
}
