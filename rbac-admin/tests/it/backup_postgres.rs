//! Backup and restore on a real PostgreSQL server (a fresh database per test). Enabled when
//! `RBAC_TEST_POSTGRES_URL` is set at build time; otherwise reported as ignored.

use crate::backup_support;

use rbac_admin::backup::{
    Actor, BackupConfig, BackupError, BackupKind, BackupService, CreateRequest, LogQuery,
    NoProgress, RestoreRequest, Scope, Selector, Status,
};
use sqlx::{Connection, PgConnection};

const SCHEMA: &str = "
CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE users (id BIGSERIAL PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    email TEXT NOT NULL, password_hash TEXT);
CREATE TABLE accounts (tenant_id TEXT NOT NULL REFERENCES tenants(id), code TEXT NOT NULL,
                       balance NUMERIC(12,2) NOT NULL, PRIMARY KEY (tenant_id, code));
CREATE TABLE invoices (id BIGINT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                       amount DOUBLE PRECISION, note TEXT, attachment BYTEA, big BIGINT,
                       issued TIMESTAMPTZ, meta JSONB, paid BOOLEAN);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
";

struct Pg {
    url: String,
    dir: tempfile::TempDir,
}

async fn fresh() -> Pg {
    let admin = std::env::var("RBAC_TEST_POSTGRES_URL")
        .expect("RBAC_TEST_POSTGRES_URL is set at build time but not at run time");
    let name = format!("rbac_backup_test_{}", fastrand::u64(..));
    let mut conn = PgConnection::connect(&admin).await.expect("test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let mut db = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(SCHEMA))
        .execute(&mut db)
        .await
        .unwrap();
    let mut fill =
        String::from("INSERT INTO tenants VALUES ('acme', 'Acme'), ('globex', 'Globex');");
    for t in ["acme", "globex"] {
        for u in 0..3 {
            fill.push_str(&format!(
                "INSERT INTO users (tenant_id, email, password_hash) VALUES ('{t}', 'u{u}@{t}', 'secret-{t}-{u}');"
            ));
        }
        for code in ["1000", "2000", "3000"] {
            fill.push_str(&format!(
                "INSERT INTO accounts VALUES ('{t}', '{code}', 1000.25);"
            ));
        }
    }
    fill.push_str(
        "INSERT INTO invoices SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, \
         i * 1.1 + 0.1, CASE WHEN i % 7 = 0 THEN NULL ELSE 'invoice ' || i || ' ✓' END, \
         CASE WHEN i % 5 = 0 THEN '\\x00ff10'::bytea END, 9223372036854775807 - i, \
         timestamptz '2026-01-01 00:00:00.123456+00' + i * interval '1 minute', \
         jsonb_build_object('n', i), i % 3 = 0 FROM generate_series(1, 500) i;
         INSERT INTO settings VALUES ('currency', 'EUR'), ('none', NULL);",
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(fill))
        .execute(&mut db)
        .await
        .unwrap();
    Pg {
        url,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Pg {
    fn service(&self) -> BackupService {
        let text = format!(
            "database = \"{}\"\nstorage = \"{}\"\n{}",
            self.url,
            self.dir.path().join("backups").display(),
            backup_support::CONFIG_EXTRA
        );
        BackupService::open(BackupConfig::from_toml_str(&text).unwrap()).unwrap()
    }

    async fn exec(&self, sql: &str) {
        let mut db = PgConnection::connect(&self.url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut db)
            .await
            .unwrap();
    }

    /// Every table's rows as text, ordered, for comparisons.
    async fn dump(&self) -> Vec<(String, Vec<String>)> {
        let mut db = PgConnection::connect(&self.url).await.unwrap();
        let mut out = Vec::new();
        for t in ["accounts", "invoices", "settings", "tenants", "users"] {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT t::text FROM \"{t}\" t ORDER BY 1"
            )))
            .fetch_all(&mut db)
            .await
            .unwrap();
            out.push((t.to_owned(), rows));
        }
        out
    }
}

fn full(scope: Scope) -> CreateRequest {
    CreateRequest {
        kind: BackupKind::Full,
        scope,
    }
}

fn restore(id: &rbac_admin::backup::BackupId) -> RestoreRequest {
    RestoreRequest {
        from: Selector::Id(id.clone()),
        tables: vec![],
        modules: vec![],
        tenant: None,
        to: None,
        dry_run: false,
    }
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_full_backup_dry_run_and_restore_round_trip() {
    let pg = fresh().await;
    let engine = backup_support::engine();
    let ops = Actor::new("ops", &engine);
    let service = pg.service();
    let before = pg.dump().await;
    let m = service
        .create(&full(Scope::All), &ops, &NoProgress)
        .await
        .unwrap();
    assert_eq!(m.backend, "postgres");
    assert_eq!(
        m.tables.iter().find(|t| t.name == "invoices").unwrap().rows,
        500
    );
    assert_eq!(
        m.tables
            .iter()
            .find(|t| t.name == "users")
            .unwrap()
            .omitted_columns,
        ["password_hash"]
    );
    service
        .verify(&ops, &m.id, true, &NoProgress)
        .await
        .unwrap();

    pg.exec(
        "DELETE FROM invoices WHERE id <= 10; UPDATE accounts SET balance = 0 WHERE code = '1000';
             UPDATE users SET email = 'x'; INSERT INTO settings VALUES ('extra', '1');",
    )
    .await;
    let damaged = pg.dump().await;
    let report = service
        .restore(
            &RestoreRequest {
                dry_run: true,
                ..restore(&m.id)
            },
            &ops,
            &NoProgress,
        )
        .await
        .unwrap();
    let get = |n: &str| report.tables.iter().find(|t| t.table == n).unwrap().clone();
    assert_eq!(get("invoices").insert, 10);
    assert_eq!(get("invoices").unchanged, 490);
    assert_eq!(get("accounts").replace, 2);
    assert_eq!(get("settings").delete, 1);
    assert_eq!(get("users").replace, 6);
    assert_eq!(pg.dump().await, damaged, "a dry run changes nothing");

    service
        .restore(&restore(&m.id), &ops, &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        pg.dump().await,
        before,
        "every value back, secrets kept in place"
    );

    let log = service
        .logs(
            &ops,
            &LogQuery {
                status: Some(Status::Success),
                ..LogQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(
        log.iter().any(|e| e.operation == "create") && log.iter().any(|e| e.operation == "restore")
    );
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_tenant_restore_never_touches_other_tenants_and_failures_change_nothing() {
    let pg = fresh().await;
    let engine = backup_support::engine();
    let alice = Actor::new("alice", &engine);
    let ops = Actor::new("ops", &engine);
    let service = pg.service();
    assert!(
        service
            .create(&full(Scope::All), &alice, &NoProgress)
            .await
            .unwrap_err()
            .is_denied()
    );
    let m = service
        .create(&full(Scope::Tenant("acme".into())), &alice, &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        m.tables.iter().find(|t| t.name == "invoices").unwrap().rows,
        250
    );
    pg.exec("UPDATE invoices SET note = 'changed'; UPDATE accounts SET balance = 1;")
        .await;
    service
        .restore(&restore(&m.id), &alice, &NoProgress)
        .await
        .unwrap();
    let mut db = PgConnection::connect(&pg.url).await.unwrap();
    let changed: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tenant_id, count(*) FROM invoices WHERE note = 'changed' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(
        changed,
        vec![("globex".to_owned(), 250)],
        "only acme restored"
    );

    // A restore that fails on a constraint leaves everything as it was.
    pg.exec("UPDATE accounts SET balance = 1 + ascii(code);")
        .await;
    let before = pg.dump().await;
    let all = service
        .create(&full(Scope::All), &ops, &NoProgress)
        .await
        .unwrap();
    pg.exec(
        "UPDATE accounts SET balance = ascii(code) * 100 + ascii(tenant_id);
             CREATE UNIQUE INDEX one_balance ON accounts (balance);",
    )
    .await;
    let damaged = pg.dump().await;
    let err = service
        .restore(&restore(&all.id), &ops, &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(pg.dump().await, damaged);
    assert_ne!(damaged, before);

    // A flipped byte: verify names the chunk, restore refuses.
    let chunk = pg
        .dir
        .path()
        .join("backups")
        .join(all.id.as_str())
        .join(&all.chunks[0].name);
    let mut data = std::fs::read(&chunk).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 1;
    std::fs::write(&chunk, data).unwrap();
    let err = service
        .verify(&ops, &all.id, false, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::CorruptChunk { .. }), "{err}");
    assert!(
        service
            .restore(&restore(&all.id), &ops, &NoProgress)
            .await
            .is_err()
    );
    assert_eq!(pg.dump().await, damaged);
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_incremental_chains_restore_exactly() {
    let pg = fresh().await;
    let engine = backup_support::engine();
    let ops = Actor::new("ops", &engine);
    let service = pg.service();
    let f = service
        .create(&full(Scope::All), &ops, &NoProgress)
        .await
        .unwrap();
    pg.exec(
        "UPDATE invoices SET amount = -1 WHERE id = 3; DELETE FROM invoices WHERE id = 4;
             INSERT INTO invoices (id, tenant_id, amount) VALUES (1000, 'acme', 42.5);
             UPDATE accounts SET code = '9999' WHERE tenant_id = 'acme' AND code = '1000';",
    )
    .await;
    let inc = CreateRequest {
        kind: BackupKind::Incremental,
        scope: Scope::All,
    };
    let i1 = service.create(&inc, &ops, &NoProgress).await.unwrap();
    assert_eq!(i1.parent.as_ref(), Some(&f.id));
    let inv = i1.tables.iter().find(|t| t.name == "invoices").unwrap();
    assert_eq!((inv.rows, inv.deleted), (2, 1));
    let acc = i1.tables.iter().find(|t| t.name == "accounts").unwrap();
    assert_eq!((acc.rows, acc.deleted), (1, 1));
    let snapshot1 = pg.dump().await;
    pg.exec("DELETE FROM invoices WHERE tenant_id = 'globex'; UPDATE users SET email = 'new' WHERE id = 1;").await;
    let i2 = service.create(&inc, &ops, &NoProgress).await.unwrap();
    assert_eq!(
        i2.tables
            .iter()
            .find(|t| t.name == "invoices")
            .unwrap()
            .deleted,
        250
    );
    let snapshot2 = pg.dump().await;

    pg.exec("DELETE FROM invoices; UPDATE accounts SET balance = 0;")
        .await;
    let report = service
        .restore(&restore(&i1.id), &ops, &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.chain, vec![f.id.clone(), i1.id.clone()]);
    assert_eq!(pg.dump().await, snapshot1);
    service
        .restore(&restore(&i2.id), &ops, &NoProgress)
        .await
        .unwrap();
    assert_eq!(pg.dump().await, snapshot2);
    // Restored rows bypass the triggers: the next incremental asks for a full backup.
    let err = service.create(&inc, &ops, &NoProgress).await.unwrap_err();
    assert!(err.to_string().contains("make a full backup"), "{err}");
    service
        .create(&full(Scope::All), &ops, &NoProgress)
        .await
        .unwrap();
    service.create(&inc, &ops, &NoProgress).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_writes_during_a_backup_do_not_break_its_snapshot() {
    let pg = fresh().await;
    pg.exec(
        "INSERT INTO settings VALUES ('count', '0');
             INSERT INTO invoices (id, tenant_id, amount, note)
               SELECT 1000 + i, 'acme', i, repeat('x', 200) FROM generate_series(1, 60000) i;",
    )
    .await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let url = pg.url.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut db = PgConnection::connect(&url).await.unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sqlx::raw_sql(
                    "BEGIN;
                     UPDATE accounts SET balance = balance - 7 WHERE tenant_id = 'acme' AND code = '1000';
                     UPDATE accounts SET balance = balance + 7 WHERE tenant_id = 'globex' AND code = '3000';
                     INSERT INTO invoices (id, tenant_id, amount) SELECT max(id) + 1, 'acme', 1 FROM invoices;
                     UPDATE settings SET value = (value::int + 1)::text WHERE key = 'count';
                     COMMIT;",
                )
                .execute(&mut db)
                .await
                .unwrap();
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let engine = backup_support::engine();
    let ops = Actor::new("ops", &engine);
    let service = pg.service();
    let m = service
        .create(&full(Scope::All), &ops, &NoProgress)
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.await.unwrap();
    service
        .restore(&restore(&m.id), &ops, &NoProgress)
        .await
        .unwrap();
    let mut db = PgConnection::connect(&pg.url).await.unwrap();
    let sum: String = sqlx::query_scalar("SELECT sum(balance)::text FROM accounts")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(sum, "6001.50");
    let count: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'count'")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let invoices: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(
        invoices,
        60_500 + count.parse::<i64>().unwrap(),
        "invoices and the counter come from one snapshot"
    );
    assert!(
        count.parse::<u64>().unwrap() < writes,
        "writes went on after the snapshot was taken"
    );
}
