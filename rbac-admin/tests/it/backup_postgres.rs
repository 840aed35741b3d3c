//! Backup and restore on a real PostgreSQL server (a fresh database per test). Enabled when
//! `RBAC_TEST_POSTGRES_URL` is set at build time; otherwise reported as ignored.

use crate::backup_support;
use backup_support::restore_of;

use rbac_admin::backup::{
    Actor, BackupConfig, BackupError, BackupKind, BackupService, CreateRequest, FailPoint,
    LogQuery, NoProgress, RestoreRequest, Scope, Status,
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

    /// The service, stopped or steered at `point`.
    fn failing(&self, point: FailPoint) -> BackupService {
        let mut service = self.service();
        service.set_fail_point(Some(point));
        service
    }

    fn ops(&self) -> backup_support::Ops {
        backup_support::Ops::new(self.service())
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

/// A full backup of everything, by `who`.
async fn full_backup(service: &BackupService, who: &Actor<'_>) -> rbac_admin::backup::Manifest {
    service
        .create(&full(Scope::All), who, &NoProgress)
        .await
        .unwrap()
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_full_backup_dry_run_and_restore_round_trip() {
    let pg = fresh().await;
    let ops = pg.ops();
    let before = pg.dump().await;
    let m = ops.full().await;
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
    ops.verify(&m.id, true).await;

    pg.exec(
        "DELETE FROM invoices WHERE id <= 10; UPDATE accounts SET balance = 0 WHERE code = '1000';
             UPDATE users SET email = 'x'; INSERT INTO settings VALUES ('extra', '1');",
    )
    .await;
    let damaged = pg.dump().await;
    let report = ops
        .restore(&RestoreRequest {
            dry_run: true,
            ..restore_of(&m.id)
        })
        .await;
    let get = |n: &str| report.tables.iter().find(|t| t.table == n).unwrap().clone();
    assert_eq!(get("invoices").insert, 10);
    assert_eq!(get("invoices").unchanged, 490);
    assert_eq!(get("accounts").replace, 2);
    assert_eq!(get("settings").delete, 1);
    assert_eq!(get("users").replace, 6);
    assert_eq!(pg.dump().await, damaged, "a dry run changes nothing");

    ops.restore(&restore_of(&m.id)).await;
    assert_eq!(
        pg.dump().await,
        before,
        "every value back, secrets kept in place"
    );

    let log = ops
        .service
        .logs(
            &ops.actor(),
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
        .restore(&restore_of(&m.id), &alice, &NoProgress)
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
    let all = full_backup(&service, &ops).await;
    pg.exec(
        "UPDATE accounts SET balance = ascii(code) * 100 + ascii(tenant_id);
             CREATE UNIQUE INDEX one_balance ON accounts (balance);",
    )
    .await;
    let damaged = pg.dump().await;
    let err = service
        .restore(&restore_of(&all.id), &ops, &NoProgress)
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
            .restore(&restore_of(&all.id), &ops, &NoProgress)
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
    let ops = pg.ops();
    let f = ops.full().await;
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
    let i1 = ops.create(&inc).await;
    assert_eq!(i1.parent.as_ref(), Some(&f.id));
    let inv = i1.tables.iter().find(|t| t.name == "invoices").unwrap();
    assert_eq!((inv.rows, inv.deleted), (2, 1));
    let acc = i1.tables.iter().find(|t| t.name == "accounts").unwrap();
    assert_eq!((acc.rows, acc.deleted), (1, 1));
    let snapshot1 = pg.dump().await;
    pg.exec("DELETE FROM invoices WHERE tenant_id = 'globex'; UPDATE users SET email = 'new' WHERE id = 1;").await;
    let i2 = ops.create(&inc).await;
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
    let report = ops.restore(&restore_of(&i1.id)).await;
    assert_eq!(report.chain, vec![f.id.clone(), i1.id.clone()]);
    assert_eq!(pg.dump().await, snapshot1);
    ops.restore(&restore_of(&i2.id)).await;
    assert_eq!(pg.dump().await, snapshot2);
    // Restored rows bypass the triggers: the next incremental asks for a full backup.
    let err = ops.refused(&inc).await;
    assert!(err.to_string().contains("make a full backup"), "{err}");
    ops.full().await;
    ops.create(&inc).await;
}

/// A row that takes the unique value of a row deleted in the same incremental, whose key
/// sorts after its own: the restore must apply the delete first.
#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_an_incremental_frees_a_unique_value_before_it_is_taken() {
    let pg = fresh().await;
    pg.exec("CREATE UNIQUE INDEX users_email ON users (email);")
        .await;
    let ops = pg.ops();
    ops.full().await;
    pg.exec(
        "DELETE FROM users WHERE email = 'u2@globex';
         UPDATE users SET email = 'u2@globex' WHERE email = 'u0@acme';",
    )
    .await;
    let inc = ops
        .create(&CreateRequest {
            kind: BackupKind::Incremental,
            scope: Scope::All,
        })
        .await;
    let expected = pg.dump().await;
    pg.exec("UPDATE users SET email = 'scrambled-' || id;")
        .await;
    ops.restore(&restore_of(&inc.id)).await;
    assert_eq!(pg.dump().await, expected);
}

/// A table whose every column type survives the change log's JSON row images.
const LEDGER: &str = "
CREATE TABLE ledger (id BIGINT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
  d DATE, ts TIMESTAMPTZ, tsn TIMESTAMP(3), tm TIME, n NUMERIC, n2 NUMERIC(12,3),
  bp CHARACTER(6), vc VARCHAR(12), ba BYTEA, u UUID, b BOOLEAN, s SMALLINT, i INTEGER, t TEXT);
";

const LEDGER_ROWS: &str = "
INSERT INTO ledger (id, tenant_id, d, ts, n, t)
  SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, DATE '2026-01-01' + i,
         timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour', i * 1.5, 'row ' || i
  FROM generate_series(1, 40) i;
";

/// Changes made by a session whose settings change how values print (time zone, date
/// style, `bytea` output, float digits): the row images must not depend on them.
const LEDGER_CHANGES: &str = r#"
SET TimeZone = 'Asia/Kathmandu'; SET DateStyle = 'SQL, DMY'; SET bytea_output = 'escape';
SET extra_float_digits = 0; SET IntervalStyle = 'sql_standard';
INSERT INTO ledger VALUES
  (100, 'acme', '0044-03-15 BC', 'infinity', '2024-02-29 23:59:59.999', '24:00:00', 'NaN',
   -0.0005, 'ab', 'é€x', '\x00ff5c27'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true,
   -32768, 2147483647, E'tab\there \\ "q" ''s'''),
  (101, 'acme', '-infinity', '4713-11-24 00:00:00+00 BC', '-infinity', '00:00:00.000001',
   '123456789012345678901234567890.123456789', 1e8, '', '', '', NULL, false, NULL, NULL, ''),
  (102, 'globex', '5874897-12-31', '2024-03-10 02:30:00+05:45', '294276-12-31 23:59:59.999',
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
UPDATE ledger SET t = 'updated', ts = '2026-06-01 12:00:00+02' WHERE id IN (1, 2);
UPDATE ledger SET t = 'twice' WHERE id = 1;
DELETE FROM ledger WHERE id = 3;
UPDATE ledger SET tenant_id = 'globex' WHERE id = 4;
UPDATE ledger SET id = 200 WHERE id = 6;
INSERT INTO ledger (id, tenant_id) VALUES (300, 'acme');
DELETE FROM ledger WHERE id = 300;
UPDATE users SET email = 'changed', password_hash = 'new-secret' WHERE id = 1;
UPDATE accounts SET balance = 1.5 WHERE code = '2000';
UPDATE invoices SET amount = -0.0, note = 'float' WHERE id = 1;
"#;

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_incrementals_read_row_images_exactly() {
    let pg = fresh().await;
    pg.exec(LEDGER).await;
    pg.exec(LEDGER_ROWS).await;
    let ops = pg.ops();
    let tenant_full = |t: &str| full(Scope::Tenant(t.into()));
    let f = ops.full().await;
    let acme_full = ops.create(&tenant_full("acme")).await;
    ops.create(&tenant_full("globex")).await;
    pg.exec(LEDGER_CHANGES).await;

    // Tables of JSON-safe types log row images (never a secret column); `invoices` (a float
    // and a JSON column) logs keys only and is read from the table.
    let mut db = PgConnection::connect(&pg.url).await.unwrap();
    let logged: Vec<(String, bool, i64)> = sqlx::query_as(
        "SELECT tbl, bool_and(has_image), count(*) FILTER (WHERE image ? 'password_hash') \
         FROM rbac_backup_changes GROUP BY tbl ORDER BY tbl",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(
        logged,
        vec![
            ("accounts".to_owned(), true, 0),
            ("invoices".to_owned(), false, 0),
            ("ledger".to_owned(), true, 0),
            ("users".to_owned(), true, 0),
        ]
    );

    let inc = |scope: Scope| CreateRequest {
        kind: BackupKind::Incremental,
        scope,
    };
    let counts = |m: &rbac_admin::backup::Manifest, table: &str| {
        let t = m.tables.iter().find(|t| t.name == table).unwrap();
        (t.rows, t.deleted)
    };
    let all = ops.create(&inc(Scope::All)).await;
    assert_eq!(all.parent.as_ref(), Some(&f.id));
    // Inserted 100-102, updated 1 and 2, moved 4 to another tenant, 6 renamed 200; deleted
    // 3, 6 and 300 (inserted and deleted since the parent).
    assert_eq!(counts(&all, "ledger"), (7, 3));
    assert_eq!(counts(&all, "invoices"), (1, 0));
    let acme = ops.create(&inc(Scope::Tenant("acme".into()))).await;
    assert_eq!(acme.parent.as_ref(), Some(&acme_full.id));
    // Row 4 left acme (a delete there) and joined globex (a row there).
    assert_eq!(counts(&acme, "ledger"), (4, 3));
    let globex = ops.create(&inc(Scope::Tenant("globex".into()))).await;
    assert_eq!(counts(&globex, "ledger"), (3, 1));

    // The chain restores into another database exactly as the source is.
    let other = empty_database(LEDGER).await;
    ops.restore(&RestoreRequest {
        to: Some(other.clone()),
        ..restore_of(&all.id)
    })
    .await;
    for table in ["ledger", "accounts", "invoices", "tenants", "settings"] {
        assert_eq!(
            rows_of(&pg.url, table, "").await,
            rows_of(&other, table, "").await,
            "{table} differs after restoring the chain"
        );
    }
    let emails = "SELECT id, tenant_id, email FROM users ORDER BY id";
    let mut other_db = PgConnection::connect(&other).await.unwrap();
    let source: Vec<(i64, String, String)> =
        sqlx::query_as(emails).fetch_all(&mut db).await.unwrap();
    let restored: Vec<(i64, String, String)> = sqlx::query_as(emails)
        .fetch_all(&mut other_db)
        .await
        .unwrap();
    assert_eq!(source, restored);

    // Each tenant's chain, and the chain of everything restricted to the tenant, bring back
    // exactly its rows and leave the other's alone. acme's full backups hold row 4, whose
    // key globex holds now: the full step leaves it to the incremental that says so. Once
    // with the later steps' keys held in memory, once through the temporary table (as when
    // they are too many to hold): the same rows, and the same dry run report. (The reports
    // of the restores themselves differ: one path deletes the tenant's rows and copies the
    // backup's in, the other upserts.)
    let mut service = pg.service();
    service.set_fail_point(Some(FailPoint::LaterKeysOverflow));
    let staged = backup_support::Ops::new(service);
    for (tenant, m) in [
        ("acme", &acme),
        ("globex", &globex),
        ("acme", &all),
        ("globex", &all),
    ] {
        let mut reports = Vec::new();
        for via in [&ops, &staged] {
            let (mine, theirs) = (
                format!("WHERE tenant_id = '{tenant}'"),
                format!("WHERE tenant_id <> '{tenant}'"),
            );
            let (before_mine, before_theirs) = (
                rows_of(&pg.url, "ledger", &mine).await,
                rows_of(&pg.url, "ledger", &theirs).await,
            );
            pg.exec(&format!(
                "DELETE FROM ledger {mine}; INSERT INTO ledger (id, tenant_id) VALUES (999, '{tenant}');"
            ))
            .await;
            let request = RestoreRequest {
                tenant: Some(tenant.into()),
                ..restore_of(&m.id)
            };
            // The dry run sees what the restore does: no conflict.
            let dry = via
                .restore(&RestoreRequest {
                    dry_run: true,
                    ..request.clone()
                })
                .await;
            assert!(
                dry.tables.iter().all(|t| t.conflicts == 0),
                "{tenant}: {dry:?}"
            );
            via.restore(&request).await;
            assert_eq!(
                rows_of(&pg.url, "ledger", &mine).await,
                before_mine,
                "{tenant}"
            );
            assert_eq!(rows_of(&pg.url, "ledger", &theirs).await, before_theirs);
            // The second dry run follows the first one's restore, whose mark in the change
            // log spares it reading unchanged rows: only that count may differ.
            let mut tables = dry.tables;
            for t in &mut tables {
                t.unchanged_by_change_log = 0;
            }
            reports.push(tables);
        }
        assert_eq!(reports[0], reports[1], "{tenant}");
    }
}

/// The change log and capture function as they were before row images.
const LOG_BEFORE_IMAGES: &str = "
ALTER TABLE rbac_backup_changes DROP COLUMN has_image, DROP COLUMN image;
CREATE OR REPLACE FUNCTION rbac_backup_capture() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
  keys text[] := string_to_array(TG_ARGV[0], ',');
  tcol text := NULLIF(TG_ARGV[1], '');
  r jsonb; o jsonb; nk jsonb := '[]'; ok jsonb := '[]'; k text;
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    r := to_jsonb(NEW);
    FOREACH k IN ARRAY keys LOOP nk := nk || jsonb_build_array(r -> k); END LOOP;
    INSERT INTO rbac_backup_changes (tbl, pk, tenant)
      VALUES (TG_TABLE_NAME, nk::text, CASE WHEN tcol IS NULL THEN NULL ELSE r ->> tcol END);
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    o := to_jsonb(OLD);
    FOREACH k IN ARRAY keys LOOP ok := ok || jsonb_build_array(o -> k); END LOOP;
    IF TG_OP = 'DELETE' OR ok IS DISTINCT FROM nk
       OR (tcol IS NOT NULL AND (o ->> tcol) IS DISTINCT FROM (r ->> tcol)) THEN
      INSERT INTO rbac_backup_changes (tbl, pk, tenant)
        VALUES (TG_TABLE_NAME, ok::text, CASE WHEN tcol IS NULL THEN NULL ELSE o ->> tcol END);
    END IF;
  END IF;
  RETURN NULL;
END $f$;
";

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_a_change_log_from_before_row_images_keeps_working() {
    let pg = fresh().await;
    let ops = pg.ops();
    let inc = CreateRequest {
        kind: BackupKind::Incremental,
        scope: Scope::All,
    };
    let f = ops.full().await;
    pg.exec(LOG_BEFORE_IMAGES).await;
    pg.exec(
        "UPDATE invoices SET note = 'legacy' WHERE id <= 3; DELETE FROM invoices WHERE id = 4;
         UPDATE accounts SET balance = 2 WHERE code = '1000';",
    )
    .await;
    // The incremental gives the log its columns back and reads these entries from the table.
    let i = ops.create(&inc).await;
    assert_eq!(i.parent.as_ref(), Some(&f.id));
    let counts = |table: &str| {
        let t = i.tables.iter().find(|t| t.name == table).unwrap();
        (t.rows, t.deleted)
    };
    assert_eq!((counts("invoices"), counts("accounts")), ((3, 1), (2, 0)));
    let other = empty_database("").await;
    ops.restore(&RestoreRequest {
        to: Some(other.clone()),
        ..restore_of(&i.id)
    })
    .await;
    for table in ["invoices", "accounts", "tenants", "settings"] {
        assert_eq!(
            rows_of(&pg.url, table, "").await,
            rows_of(&other, table, "").await,
            "{table}"
        );
    }

    // The next full backup installs the capture with images again.
    ops.full().await;
    pg.exec("UPDATE accounts SET balance = 3 WHERE code = '2000';")
        .await;
    let mut db = PgConnection::connect(&pg.url).await.unwrap();
    let imaged: Vec<bool> = sqlx::query_scalar(
        "SELECT has_image AND image IS NOT NULL FROM rbac_backup_changes \
         WHERE tbl = 'accounts' AND pk LIKE '%\"2000\"%'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(imaged, vec![true, true]);
    ops.create(&inc).await;
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
    let ops = pg.ops();
    let m = ops.full().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.await.unwrap();
    ops.restore(&restore_of(&m.id)).await;
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

/// Types and values that stress the `COPY` text path: escapes, NULL versus empty, unicode,
/// every byte of `bytea`, special floats, numerics, time zones, arrays, JSON, types whose cast
/// to text differs from their output (`boolean`, `inet`, `character(n)`, through a domain),
/// an enum and a partitioned table.
const ODD_SCHEMA: &str = "
CREATE TYPE mood AS ENUM ('ok', 'tab\tbed', 'a''b');
CREATE DOMAIN flag AS boolean;
CREATE DOMAIN flag2 AS flag;
CREATE TABLE oddities (id BIGINT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
  t TEXT, bp CHARACTER(6), vc VARCHAR(12), b BOOLEAN, fl flag2, ba BYTEA, n NUMERIC,
  n2 NUMERIC(12,3), f8 DOUBLE PRECISION, f4 REAL, ts TIMESTAMPTZ, tsn TIMESTAMP, d DATE,
  iv INTERVAL, j JSON, jb JSONB, arr TEXT[], iarr INTEGER[], ip INET, net CIDR, u UUID,
  m mood, ch \"char\", bits BIT VARYING(8), pt POINT);
CREATE TABLE parts (id INTEGER NOT NULL, tenant_id TEXT NOT NULL, v TEXT, PRIMARY KEY (id))
  PARTITION BY RANGE (id);
CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (MINVALUE) TO (100);
CREATE TABLE parts_high PARTITION OF parts FOR VALUES FROM (100) TO (MAXVALUE);
";

const ODD_ROWS: &str = r#"
INSERT INTO oddities VALUES
 (1, 'acme', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (2, 'acme', '', 'a', '', false, true, '\x', '0', '-0.000', '-0', '-0', 'infinity', '-infinity',
  'infinity', '0', '""', '{}', '{}', '{}', '::', '::/0', '00000000-0000-0000-0000-000000000000',
  'ok', 'a', B'', '(0,0)'),
 (3, 'globex', E'back\\slash \\N tab\there new\nline cr\rend', 'x y', E'\\N', true, false,
  '\x00ff5c0a0d09', 'NaN', '123456789.125', 'NaN', 'Infinity', '2026-03-29 02:30:00.000001+05:45',
  '2000-02-29 23:59:59.999999', '0001-01-01 BC', '1 year 2 mons -3 days 04:05:06.789',
  E'{"a": "x\\ty", "b": [1, 2.50]}', E'{"k": "\\u00e9\\n", "n": 1.0e2}',
  E'{"a,b","c\\"d",NULL,"",e\\\\f}', '{1,NULL,-3}', '192.168.1.5', '10.0.0.0/8',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', E'tab\tbed', E'\\t', B'1010', '(1.5,-2)'),
 (4, 'globex', E'ünïcödé ✓ 𝄞 日本語 \u202ertl', '€', 'ä', NULL, NULL, NULL,
  '-12345678901234567890.12345678901234567890', '0.001', '-Infinity', '1.4e-45',
  '1970-01-01 00:00:00+00', NULL, NULL, NULL, 'null', 'null', '{"\\\\"}', NULL, '::1/128',
  NULL, NULL, 'a''b', NULL, NULL, NULL),
 (5, 'acme', E'\x01\x02\x07\x08\x0b\x0c\x1b\x7f', NULL, NULL, NULL, NULL, NULL, '1e-30', NULL,
  '4.9e-324', '3.4028235e38', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL),
 (6, 'acme', '\N', NULL, NULL, NULL, NULL, NULL, NULL, NULL, '1.7976931348623157e308',
  '0.1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL);
UPDATE oddities SET ba = (SELECT string_agg(set_byte('\x00'::bytea, 0, i), ''::bytea)
  FROM generate_series(0, 255) i) WHERE id = 4;
INSERT INTO parts SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END,
  E'v\t' || i FROM generate_series(1, 200) i;
"#;

/// A database with the test schema (and `extra`) but no rows.
async fn empty_database(extra: &str) -> String {
    let admin = std::env::var("RBAC_TEST_POSTGRES_URL").unwrap();
    let name = format!("rbac_backup_test_{}", fastrand::u64(..));
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let mut db = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{SCHEMA}{extra}")))
        .execute(&mut db)
        .await
        .unwrap();
    url
}

/// `table`'s rows as text (every column in its output form), ordered.
async fn rows_of(url: &str, table: &str, filter: &str) -> Vec<String> {
    let mut db = PgConnection::connect(url).await.unwrap();
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT whole_row::text FROM \"{table}\" whole_row {filter} ORDER BY 1"
    )))
    .fetch_all(&mut db)
    .await
    .unwrap()
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_copy_round_trips_awkward_values_byte_exact() {
    let pg = fresh().await;
    pg.exec(ODD_SCHEMA).await;
    pg.exec(ODD_ROWS).await;
    let ops = pg.ops();
    let m = ops.full().await;
    let odd = m.tables.iter().find(|t| t.name == "oddities").unwrap();
    assert_eq!((odd.rows, odd.deleted), (6, 0));
    assert_eq!(
        m.tables.iter().find(|t| t.name == "parts").unwrap().rows,
        200
    );
    // Deep verify restores into a scratch SQLite database.
    ops.verify(&m.id, true).await;

    // Into another database with the same schema and no rows.
    let other = empty_database(ODD_SCHEMA).await;
    let report = ops
        .restore(&RestoreRequest {
            to: Some(other.clone()),
            ..restore_of(&m.id)
        })
        .await;
    assert_eq!(
        report
            .tables
            .iter()
            .find(|t| t.table == "oddities")
            .unwrap()
            .insert,
        6
    );
    for table in [
        "oddities", "parts", "invoices", "accounts", "tenants", "settings",
    ] {
        let (a, b) = (
            rows_of(&pg.url, table, "").await,
            rows_of(&other, table, "").await,
        );
        assert_eq!(a, b, "{table} differs after the round trip");
    }
    // Secrets were never written: restored users have none.
    let mut db = PgConnection::connect(&other).await.unwrap();
    let secrets: i64 = sqlx::query_scalar("SELECT count(password_hash) FROM users")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(secrets, 0);
    // The text stored through COPY is what `col::text` gives: a dry run against the source
    // sees every row unchanged.
    let dry = ops
        .restore(&RestoreRequest {
            dry_run: true,
            ..restore_of(&m.id)
        })
        .await;
    for t in &dry.tables {
        assert_eq!(
            (t.insert, t.replace, t.delete, t.conflicts),
            (0, 0, 0, 0),
            "{}: {t:?}",
            t.table
        );
    }

    // A tenant backup of the same data: only acme's rows.
    let acme = ops.create(&full(Scope::Tenant("acme".into()))).await;
    let rows = |n: &str| acme.tables.iter().find(|t| t.name == n).unwrap().rows;
    assert_eq!((rows("oddities"), rows("parts")), (4, 100));
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_copy_tenant_restore_leaves_other_tenants_exactly() {
    let pg = fresh().await;
    let ops = pg.ops();
    let mut acme_before = Vec::new();
    for t in ["invoices", "accounts"] {
        acme_before.push(rows_of(&pg.url, t, "WHERE tenant_id = 'acme'").await);
    }
    let m = ops.create(&full(Scope::Tenant("acme".into()))).await;
    // Both tenants change: updates, deletes, inserts, secrets.
    pg.exec(
        "UPDATE invoices SET note = E'changed\\there', amount = amount + 1;
         DELETE FROM invoices WHERE id % 10 = 0;
         INSERT INTO invoices (id, tenant_id, note) VALUES (900, 'acme', 'new'), (901, 'globex', 'new');
         UPDATE accounts SET balance = balance * 2;
         DELETE FROM accounts WHERE code = '2000';
         UPDATE users SET email = email || '.old', password_hash = 'rotated-' || id;
         INSERT INTO users (tenant_id, email, password_hash)
           VALUES ('acme', 'late@acme', 'p'), ('globex', 'late@globex', 'q');",
    )
    .await;
    let tables = ["invoices", "accounts", "users", "tenants", "settings"];
    let globex_only = |all: Vec<Vec<String>>| -> Vec<Vec<String>> {
        all.into_iter()
            .map(|rows| {
                rows.into_iter()
                    .filter(|r| !r.contains(",acme,") && !r.starts_with("(acme,"))
                    .collect()
            })
            .collect()
    };
    let mut globex = Vec::new();
    for t in tables {
        globex.push(rows_of(&pg.url, t, "").await);
    }
    let report = ops.restore(&restore_of(&m.id)).await;
    assert!(report.tables.iter().all(|t| t.conflicts == 0));
    let mut after = Vec::new();
    for t in tables {
        after.push(rows_of(&pg.url, t, "").await);
    }
    assert_eq!(globex_only(after), globex_only(globex), "globex untouched");
    // acme is back as it was, except the secrets, which stay as they are now.
    for (i, t) in ["invoices", "accounts"].iter().enumerate() {
        assert_eq!(
            rows_of(&pg.url, t, "WHERE tenant_id = 'acme'").await,
            acme_before[i]
        );
    }
    let mut db = PgConnection::connect(&pg.url).await.unwrap();
    let users: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT email, password_hash FROM users WHERE tenant_id = 'acme' ORDER BY id",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(users.len(), 3, "the late acme user is gone: {users:?}");
    assert!(
        users.iter().all(|(e, p)| e.ends_with("@acme")
            && p.as_deref().is_some_and(|p| p.starts_with("rotated-"))),
        "{users:?}"
    );

    // A key now held by globex: the restore is refused and nothing changes (the COPY path,
    // and the staged upsert of a table with secret columns).
    for clash in [
        "UPDATE invoices SET tenant_id = 'globex' WHERE id = 2",
        "UPDATE users SET tenant_id = 'globex' WHERE id = 1",
    ] {
        pg.exec(clash).await;
        let before = pg.dump().await;
        let err = ops
            .service
            .restore(&restore_of(&m.id), &ops.actor(), &NoProgress)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        assert_eq!(pg.dump().await, before);
        pg.exec(&clash.replace("'globex'", "'acme'")).await;
    }
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_copy_restore_failing_halfway_changes_nothing() {
    let pg = fresh().await;
    // Enough rows for several chunks in one table.
    pg.exec(
        "INSERT INTO invoices (id, tenant_id, amount, note)
           SELECT 1000 + i, 'acme', i, repeat(md5(i::text), 8) FROM generate_series(1, 100000) i;",
    )
    .await;
    let ops = pg.ops();
    let m = ops.full().await;
    let invoice_chunks: Vec<&rbac_admin::backup::ChunkInfo> =
        m.chunks.iter().filter(|c| c.table == "invoices").collect();
    assert!(invoice_chunks.len() >= 3, "{}", invoice_chunks.len());
    pg.exec(
        "DELETE FROM invoices WHERE id % 3 = 0; UPDATE accounts SET balance = 7;
         UPDATE users SET email = 'changed';",
    )
    .await;
    let damaged = pg.dump().await;

    // 1. A constraint fails in the last table (users, the staged path), after the others
    //    were copied.
    pg.exec("ALTER TABLE users ADD CONSTRAINT no_u0 CHECK (email <> 'u0@acme') NOT VALID")
        .await;
    let err = ops
        .service
        .restore(&restore_of(&m.id), &ops.actor(), &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(pg.dump().await, damaged);
    pg.exec("ALTER TABLE users DROP CONSTRAINT no_u0").await;

    // 2. A corrupt chunk in the middle of a table's COPY stream (earlier chunks already sent).
    let path = pg
        .dir
        .path()
        .join("backups")
        .join(m.id.as_str())
        .join(&invoice_chunks[invoice_chunks.len() - 1].name);
    let good = std::fs::read(&path).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x40;
    std::fs::write(&path, &bad).unwrap();
    let err = ops
        .service
        .restore(&restore_of(&m.id), &ops.actor(), &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert_eq!(pg.dump().await, damaged);

    // 3. A row the server refuses in the middle of a COPY (too long for a narrowed column).
    std::fs::write(&path, &good).unwrap();
    pg.exec(
        "UPDATE invoices SET note = NULL WHERE id > 1000;
         ALTER TABLE invoices ALTER COLUMN note TYPE VARCHAR(20);",
    )
    .await;
    let narrowed = pg.dump().await;
    let err = ops
        .service
        .restore(&restore_of(&m.id), &ops.actor(), &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(pg.dump().await, narrowed);
    pg.exec("ALTER TABLE invoices ALTER COLUMN note TYPE TEXT")
        .await;

    // With everything in order, it all comes back.
    ops.restore(&restore_of(&m.id)).await;
    let mut db = PgConnection::connect(&pg.url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(n, 100_500);
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_not_null_secret_columns_do_not_block_a_restore() {
    let pg = fresh().await;
    pg.exec(
        "CREATE DOMAIN key_text AS TEXT NOT NULL;
         CREATE TABLE api_keys (id BIGINT PRIMARY KEY, tenant_id TEXT NOT NULL, label TEXT,
             key_hash key_text, key_salt BYTEA NOT NULL, key_rounds INTEGER NOT NULL,
             key_kind TEXT NOT NULL DEFAULT 'v1');
         ALTER TABLE api_keys ALTER COLUMN key_hash SET NOT NULL;
         INSERT INTO api_keys VALUES (1, 'acme', 'ci', 'h1', '\\x01', 10, 'v2'),
                                     (2, 'globex', NULL, 'h2', '\\x02', 12, 'v2');",
    )
    .await;
    let text = format!(
        "database = \"{}\"\nstorage = \"{}\"\n{}",
        pg.url,
        pg.dir.path().join("backups").display(),
        backup_support::CONFIG_EXTRA.replace(
            "secret_columns = [\"users.password_hash\"]",
            "secret_columns = [\"users.password_hash\", \"api_keys.key_hash\", \"api_keys.key_salt\", \"api_keys.key_rounds\", \"api_keys.key_kind\"]",
        )
    );
    let service = BackupService::open(BackupConfig::from_toml_str(&text).unwrap()).unwrap();
    let engine = backup_support::engine();
    let ops = Actor::new("ops", &engine);
    let m = full_backup(&service, &ops).await;
    pg.exec("DELETE FROM api_keys WHERE id = 2; UPDATE api_keys SET label = 'changed';")
        .await;
    service
        .restore(&restore_of(&m.id), &ops, &NoProgress)
        .await
        .unwrap();
    let mut db = PgConnection::connect(&pg.url).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar("SELECT t::text FROM api_keys t ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            "(1,acme,ci,h1,\"\\\\x01\",10,v2)".to_owned(),
            "(2,globex,,\"\",\"\\\\x\",0,v1)".to_owned(),
        ],
        "the kept row keeps its secrets; the restored one gets empty values or the default"
    );
}

/// Indexes, constraints and comments of the tables of [`fresh`] plus [`INDEXED`]: name,
/// definition and oid, ordered.
async fn catalog(url: &str) -> Vec<(String, String, i64)> {
    let mut db = PgConnection::connect(url).await.unwrap();
    sqlx::query_as(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) || ' valid=' || indisvalid \
                || coalesce(' comment=' || obj_description(indexrelid, 'pg_class'), ''), \
                indexrelid::oid::int8 \
         FROM pg_index WHERE indrelid IN ('invoices'::regclass, 'settings'::regclass) \
         UNION ALL \
         SELECT conname::text, pg_get_constraintdef(oid), 0::int8 FROM pg_constraint \
         WHERE conrelid IN ('invoices'::regclass, 'settings'::regclass, 'setting_notes'::regclass) \
         ORDER BY 1, 2",
    )
    .fetch_all(&mut db)
    .await
    .unwrap()
}

const INDEXED: &str = "
CREATE UNIQUE INDEX invoices_note_unique ON invoices (note) WHERE note IS NOT NULL;
CREATE INDEX invoices_tenant_amount ON invoices (tenant_id, amount DESC) WITH (fillfactor = 70);
CREATE INDEX invoices_commented ON invoices (issued);
COMMENT ON INDEX invoices_commented IS 'kept as it is';
ALTER TABLE invoices ADD CONSTRAINT invoices_big_unique UNIQUE (big) DEFERRABLE INITIALLY DEFERRED;
CREATE TABLE setting_notes (id INT PRIMARY KEY, key TEXT REFERENCES settings(key));
";

/// A full restore of a whole table loads it without its indexes and builds them afterwards,
/// exactly as they were; what it cannot rebuild exactly (an index with a comment, a key that
/// another table's foreign key uses) stays in place. A rebuild that fails (a unique index
/// made after the backup that its rows violate) changes nothing.
#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_full_restore_rebuilds_indexes_exactly() {
    let pg = fresh().await;
    pg.exec(INDEXED).await;
    let ops = pg.ops();
    let m = ops.full().await;
    let backed_up = pg.dump().await;
    pg.exec(
        "DELETE FROM invoices WHERE id > 400; UPDATE invoices SET note = note || ' changed' \
         WHERE id < 10; INSERT INTO setting_notes VALUES (1, 'currency');",
    )
    .await;
    let before = catalog(&pg.url).await;
    let report = ops.restore(&restore_of(&m.id)).await;
    let invoices = report
        .tables
        .iter()
        .find(|t| t.table == "invoices")
        .unwrap();
    assert_eq!((invoices.insert, invoices.delete), (500, 400));
    assert_eq!(pg.dump().await, backed_up);
    let after = catalog(&pg.url).await;
    let definitions = |c: &[(String, String, i64)]| {
        c.iter()
            .map(|(n, d, _)| (n.clone(), d.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(definitions(&after), definitions(&before));
    let oid = |c: &[(String, String, i64)], name: &str| {
        c.iter()
            .find(|(n, d, _)| n == name && d.starts_with("CREATE"))
            .unwrap()
            .2
    };
    for rebuilt in [
        "invoices_pkey",
        "invoices_note_unique",
        "invoices_tenant_amount",
        "invoices_big_unique",
    ] {
        assert_ne!(oid(&before, rebuilt), oid(&after, rebuilt), "{rebuilt}");
    }
    for kept in ["invoices_commented", "settings_pkey"] {
        assert_eq!(oid(&before, kept), oid(&after, kept), "{kept}");
    }

    // A unique index made after the backup that the backup's rows violate: the rebuild
    // fails and nothing changes.
    pg.exec(
        "DELETE FROM invoices WHERE id > 2; UPDATE invoices SET paid = (id = 1); \
         CREATE UNIQUE INDEX invoices_paid_once ON invoices (paid);",
    )
    .await;
    let (rows, indexes) = (pg.dump().await, catalog(&pg.url).await);
    let error = ops
        .service
        .restore(&restore_of(&m.id), &ops.actor(), &NoProgress)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("nothing was changed"), "{error}");
    assert_eq!(pg.dump().await, rows);
    assert_eq!(catalog(&pg.url).await, indexes);
}

/// The counts of a dry run of `m` (optionally for one tenant): per table, (insert, replace,
/// unchanged, delete, unchanged rows not read thanks to the change log).
async fn dry_counts(
    service: &BackupService,
    ops: &Actor<'_>,
    m: &rbac_admin::backup::BackupId,
    tenant: Option<&str>,
) -> std::collections::BTreeMap<String, [u64; 5]> {
    let report = service
        .restore(
            &RestoreRequest {
                dry_run: true,
                tenant: tenant.map(str::to_owned),
                ..restore_of(m)
            },
            ops,
            &NoProgress,
        )
        .await
        .unwrap();
    report
        .tables
        .iter()
        .map(|t| {
            (
                t.table.clone(),
                [
                    t.insert,
                    t.replace,
                    t.unchanged,
                    t.delete,
                    t.unchanged_by_change_log,
                ],
            )
        })
        .collect()
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_dry_runs_read_only_what_the_change_log_names_and_count_exactly() {
    let pg = fresh().await;
    let ops = pg.ops();
    let m = ops.full().await;
    // Updates, a delete, an insert, a key change, an update to the same values.
    pg.exec(
        "UPDATE invoices SET amount = amount + 1 WHERE id IN (1, 2, 3);
         DELETE FROM invoices WHERE id = 4;
         INSERT INTO invoices SELECT 1000, tenant_id, amount, note, attachment, big, issued, meta,
           paid FROM invoices WHERE id = 5;
         UPDATE invoices SET id = 2000 WHERE id = 6;
         UPDATE invoices SET note = note WHERE id = 7;
         UPDATE accounts SET balance = 0 WHERE tenant_id = 'acme' AND code = '1000';",
    )
    .await;
    let rows = pg.dump().await;
    // Invoices 1, 2, 3, 4, 6 and 7 are read and compared; the 494 others are not read.
    let counts = dry_counts(&ops.service, &ops.actor(), &m.id, None).await;
    assert_eq!(counts["invoices"], [2, 3, 495, 2, 494]);
    assert_eq!(counts["accounts"], [0, 1, 5, 0, 5]);
    assert_eq!(counts["settings"], [0, 0, 2, 0, 2]);
    // acme holds the even invoices: 2 changed, 4 deleted, 6 moved to 2000 (still acme's).
    let acme = dry_counts(&ops.service, &ops.actor(), &m.id, Some("acme")).await;
    assert_eq!(acme["invoices"], [2, 1, 247, 1, 247]);
    assert_eq!(pg.dump().await, rows, "dry runs change nothing");

    // A TRUNCATE fires no row trigger: the row count gives it away, and the table is
    // compared in full.
    pg.exec("TRUNCATE settings").await;
    let counts = dry_counts(&ops.service, &ops.actor(), &m.id, None).await;
    assert_eq!(counts["settings"], [2, 0, 0, 0, 0]);
    assert_eq!(counts["invoices"], [2, 3, 495, 2, 494]);

    // Restored: the backup's rows are back, and the restore's mark in the change log makes
    // the next dry run of the same backup read only what changed after it.
    backup_support::settle_postgres(&pg.url).await;
    ops.restore(&restore_of(&m.id)).await;
    pg.exec("UPDATE invoices SET paid = NOT paid WHERE id = 10")
        .await;
    let counts = dry_counts(&ops.service, &ops.actor(), &m.id, None).await;
    assert_eq!(counts["invoices"], [0, 1, 499, 0, 499]);
    assert_eq!(counts["settings"], [0, 0, 2, 0, 2]);
    // The restore was of every tenant: a tenant's dry run compares in full.
    let acme = dry_counts(&ops.service, &ops.actor(), &m.id, Some("acme")).await;
    assert_eq!(acme["invoices"], [0, 1, 249, 0, 0]);

    // A newer backup lets the log be pruned past the older one's baseline: compared in full.
    backup_support::settle_postgres(&pg.url).await;
    let newer = ops.full().await;
    pg.exec("UPDATE invoices SET paid = NOT paid WHERE id = 10")
        .await;
    let counts = dry_counts(&ops.service, &ops.actor(), &newer.id, None).await;
    assert_eq!(counts["invoices"], [0, 1, 499, 0, 499]);
    let counts = dry_counts(&ops.service, &ops.actor(), &m.id, None).await;
    assert_eq!(counts["invoices"], [0, 0, 500, 0, 0]);

    // Another database never trusts this one's log.
    let other = empty_database("").await;
    let report = ops
        .restore(&RestoreRequest {
            dry_run: true,
            to: Some(other),
            ..restore_of(&newer.id)
        })
        .await;
    let invoices = report
        .tables
        .iter()
        .find(|t| t.table == "invoices")
        .unwrap();
    assert_eq!(
        (invoices.insert, invoices.unchanged_by_change_log),
        (500, 0)
    );
}

/// Each step's counts of a dry run of `id`, in the report's order: (table, [insert, replace,
/// unchanged, delete, conflicts, unchanged rows not read thanks to the change log]).
async fn dry_steps(
    service: &BackupService,
    ops: &Actor<'_>,
    id: &rbac_admin::backup::BackupId,
    tenant: Option<&str>,
) -> Vec<(String, [u64; 6])> {
    let request = RestoreRequest {
        dry_run: true,
        tenant: tenant.map(str::to_owned),
        ..restore_of(id)
    };
    dry_run_steps(service, ops, &request).await
}

/// [`dry_steps`] of any dry run.
async fn dry_run_steps(
    service: &BackupService,
    ops: &Actor<'_>,
    request: &RestoreRequest,
) -> Vec<(String, [u64; 6])> {
    let report = service.restore(request, ops, &NoProgress).await.unwrap();
    report
        .tables
        .iter()
        .map(|t| {
            let counts = [
                t.insert,
                t.replace,
                t.unchanged,
                t.delete,
                t.conflicts,
                t.unchanged_by_change_log,
            ];
            (t.table.clone(), counts)
        })
        .collect()
}

/// The counts of `table` in each step of [`dry_steps`].
fn of_table(steps: &[(String, [u64; 6])], table: &str) -> Vec<[u64; 6]> {
    steps
        .iter()
        .filter(|(t, _)| t == table)
        .map(|(_, c)| *c)
        .collect()
}

/// The counts a dry run reports, without how many rows it did not need to read.
fn decided(steps: &[(String, [u64; 6])]) -> Vec<(String, [u64; 5])> {
    steps
        .iter()
        .map(|(t, [i, r, u, d, c, _])| (t.clone(), [*i, *r, *u, *d, *c]))
        .collect()
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_dry_runs_of_a_chain_read_only_what_the_log_and_the_later_steps_name() {
    let pg = fresh().await;
    let ops = pg.ops();
    // The same dry runs comparing every row, and with the later keys in a temporary table.
    let in_full = pg.failing(FailPoint::DryRunInFull);
    let staged = pg.failing(FailPoint::LaterKeysOverflow);
    // And as if the log named more keys than a dry run holds.
    let overflow = pg.failing(FailPoint::ChangedKeysOverflow);
    ops.full().await;
    pg.exec(
        "UPDATE invoices SET amount = amount + 1 WHERE id IN (1, 2, 3);
         DELETE FROM invoices WHERE id = 4;
         INSERT INTO invoices SELECT 1000, tenant_id, amount, note, attachment, big, issued, meta,
           paid FROM invoices WHERE id = 5;
         UPDATE invoices SET id = 2000 WHERE id = 6;",
    )
    .await;
    let chain = ops.incremental().await;
    // After the chain's last step: rows it holds change again (2 now belongs to globex), one
    // it does not, one goes, one it deleted comes back.
    pg.exec(
        "UPDATE invoices SET paid = NOT paid WHERE id IN (1, 10);
         UPDATE invoices SET tenant_id = 'globex' WHERE id = 2;
         DELETE FROM invoices WHERE id = 11;
         INSERT INTO invoices SELECT 4, tenant_id, amount, note, attachment, big, issued, meta,
           paid FROM invoices WHERE id = 8;",
    )
    .await;
    let rows = pg.dump().await;
    let check = |tenant: Option<&'static str>| {
        let (ops, in_full, staged, overflow) = (&ops, &in_full, &staged, &overflow);
        let id = chain.id.clone();
        async move {
            let fast = dry_steps(&ops.service, &ops.actor(), &id, tenant).await;
            let full = dry_steps(in_full, &ops.actor(), &id, tenant).await;
            assert_eq!(decided(&fast), decided(&full), "tenant {tenant:?}");
            assert!(full.iter().all(|(_, c)| c[5] == 0), "{full:?}");
            // Past the limit, a table with changes is compared in full, to the same counts.
            let past_limit = dry_steps(overflow, &ops.actor(), &id, tenant).await;
            assert_eq!(decided(&past_limit), decided(&full), "tenant {tenant:?}");
            assert_eq!(of_table(&past_limit, "invoices")[0][5], 0, "{past_limit:?}");
            if tenant.is_some() {
                let later_staged = dry_steps(staged, &ops.actor(), &id, tenant).await;
                assert_eq!(later_staged, fast, "tenant {tenant:?}, later keys staged");
            }
            fast
        }
    };
    // The full step reads invoices 1, 2, 3, 4 and 6 (the incremental names them), 10 and 11
    // (changed since): 6 and 11 to insert again, 5 to replace, 1000 and 2000 to delete. The
    // incremental: 1 and 2 to replace, 4 to delete (6 is gone already).
    let invoices = |steps: &[(String, [u64; 6])]| of_table(steps, "invoices");
    let all = check(None).await;
    assert_eq!(invoices(&all), [[2, 5, 493, 2, 0, 493], [0, 2, 3, 1, 0, 0]]);
    // acme's 2 in the incremental now belongs to globex: a conflict.
    let acme = check(Some("acme")).await;
    assert_eq!(invoices(&acme)[1], [0, 0, 1, 1, 1, 0]);
    assert!(invoices(&acme)[0][5] >= 240, "{acme:?}");
    let globex = check(Some("globex")).await;
    assert!(invoices(&globex)[0][5] >= 240, "{globex:?}");
    assert_eq!(pg.dump().await, rows, "dry runs change nothing");

    // Restored, the chain's rows are back, and its mark in the change log stands for its
    // snapshot: only what changed since and what the incremental names is read.
    backup_support::settle_postgres(&pg.url).await;
    ops.restore(&restore_of(&chain.id)).await;
    pg.exec("UPDATE invoices SET paid = NOT paid WHERE id = 20")
        .await;
    let all = check(None).await;
    // 1, 2, 3 and 20 differ from the full backup, 4 and 6 come back, 1000 and 2000 go.
    assert_eq!(invoices(&all)[0], [2, 4, 494, 2, 0, 494]);

    // Restored again, `settings` alone: the mark of that restore says nothing of the
    // invoices, which are then compared in full, to the same counts.
    backup_support::settle_postgres(&pg.url).await;
    ops.restore(&RestoreRequest {
        tables: vec!["settings".into()],
        ..restore_of(&chain.id)
    })
    .await;
    let all = check(None).await;
    assert_eq!(invoices(&all)[0], [2, 4, 494, 2, 0, 0]);
    // A dry run of the invoices alone: that mark covers none of its tables, so it has no
    // baseline at all.
    let request = RestoreRequest {
        dry_run: true,
        tables: vec!["invoices".into()],
        ..restore_of(&chain.id)
    };
    let fast = dry_run_steps(&ops.service, &ops.actor(), &request).await;
    assert_eq!(fast, dry_run_steps(&in_full, &ops.actor(), &request).await);
    assert_eq!(of_table(&fast, "invoices")[0], [2, 4, 494, 2, 0, 0]);
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_dry_runs_into_empty_tables_count_inserts_and_still_check_every_chunk() {
    let pg = fresh().await;
    let ops = pg.ops();
    let in_full = pg.failing(FailPoint::DryRunInFull);
    let full = ops.full().await;
    pg.exec(
        "UPDATE invoices SET amount = amount + 1 WHERE id IN (1, 2);
         DELETE FROM invoices WHERE id = 4;
         INSERT INTO invoices (id, tenant_id, amount) VALUES (1000, 'acme', 1);",
    )
    .await;
    let chain = ops.incremental().await;
    let empty = empty_database("").await;
    for (id, tenant) in [
        (&full.id, None),
        (&full.id, Some("acme")),
        (&chain.id, None),
        (&chain.id, Some("globex")),
    ] {
        let request = RestoreRequest {
            dry_run: true,
            tenant: tenant.map(str::to_owned),
            to: Some(empty.clone()),
            ..restore_of(id)
        };
        let counted = dry_run_steps(&ops.service, &ops.actor(), &request).await;
        let compared = dry_run_steps(&in_full, &ops.actor(), &request).await;
        assert_eq!(counted, compared, "{id} {tenant:?}");
        let invoices = of_table(&counted, "invoices");
        let expected: &[[u64; 6]] = match (id == &full.id, tenant) {
            (true, None) => &[[500, 0, 0, 0, 0, 0]],
            (true, Some(_)) => &[[250, 0, 0, 0, 0, 0]],
            // The incremental's rows are inserts too (its steps compare with the table as
            // it is, not as the full step would leave it).
            (false, None) => &[[500, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0]],
            // globex's full step leaves invoice 1 to the incremental that names it.
            (false, Some(_)) => &[[249, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
        };
        assert_eq!(invoices, expected, "{id} {tenant:?}");
    }

    // Nothing is copied, but every chunk is still read and checked.
    let store = pg.dir.path().join("backups").join(full.id.as_str());
    let chunk = &full.chunks[full.chunks.len() / 2];
    backup_support::flip_byte(&store.join(&chunk.name), 40);
    let err = ops
        .service
        .restore(
            &RestoreRequest {
                dry_run: true,
                to: Some(empty.clone()),
                ..restore_of(&full.id)
            },
            &ops.actor(),
            &NoProgress,
        )
        .await
        .unwrap_err();
    match &err {
        BackupError::CorruptChunk { chunk: name, .. } => assert_eq!(name, &chunk.name),
        other => panic!("{other}"),
    }
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_tenant_restores_read_only_their_groups_of_a_full_backup() {
    let pg = fresh().await;
    // Invoices 1001–6000 of `acme` (3 in 5), `globex` (2 in 5) and `initech` (1 in 50), in
    // key order, so that every chunk mixes the three.
    pg.exec(
        "INSERT INTO tenants VALUES ('initech', 'Initech');
         INSERT INTO invoices (id, tenant_id, amount, note)
         SELECT i, CASE WHEN i % 50 = 0 THEN 'initech' WHEN i % 5 < 3 THEN 'acme' ELSE 'globex' END,
                i, 'invoice ' || i || ' ' || md5(i::text) || md5((i + 1)::text)
         FROM generate_series(1001, 6000) i;",
    )
    .await;
    let ops = pg.ops();
    let of = |tenant: &'static str| {
        let url = pg.url.clone();
        async move { rows_of(&url, "invoices", &format!("WHERE tenant_id = '{tenant}'")).await }
    };
    let (acme, initech) = (of("acme").await, of("initech").await);
    assert_eq!(initech.len(), 100);
    let f = ops.full().await;
    backup_support::assert_grouped_by_tenant(&f, "invoices");

    pg.exec("UPDATE invoices SET amount = -1").await;
    let tenant = |name: &str, dry_run| RestoreRequest {
        tenant: Some(name.into()),
        dry_run,
        ..restore_of(&f.id)
    };
    // `initech`'s rows are all in the mixed group.
    let dry = ops.restore(&tenant("initech", true)).await;
    backup_support::assert_changes(&dry, "invoices", (0, 100, 0, 0));
    ops.restore(&tenant("initech", false)).await;
    assert_eq!(of("initech").await, initech);
    ops.restore(&tenant("acme", false)).await;
    assert_eq!(of("acme").await, acme);
    assert!(
        rows_of(
            &pg.url,
            "invoices",
            "WHERE tenant_id = 'globex' AND amount <> -1"
        )
        .await
        .is_empty(),
        "globex untouched"
    );
    let verified = ops.verify(&f.id, true).await;
    assert_eq!(verified.records, f.rows());
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_tenant_dry_runs_of_a_chain_agree_when_rows_move_between_tenants() {
    // A tenant's dry run of a chain looks up only the later keys whose last record is a row of
    // the tenant (see `later::stage`); rows that move between tenants in and after the chain
    // are where that could go wrong. Every dry run is compared with one that reads every row.
    let pg = fresh().await;
    let ops = pg.ops();
    let in_full = pg.failing(FailPoint::DryRunInFull);
    let staged = pg.failing(FailPoint::LaterKeysOverflow);
    ops.full().await;
    // In the chain: 7 (globex) moves to acme and back again in a second incremental, 8 (acme)
    // moves to globex, 9 (globex) moves to acme, 12 (acme) goes, 3000 (acme) and 3001
    // (globex) come.
    pg.exec(
        "UPDATE invoices SET tenant_id = 'acme' WHERE id IN (7, 9);
         UPDATE invoices SET tenant_id = 'globex' WHERE id = 8;
         DELETE FROM invoices WHERE id = 12;
         INSERT INTO invoices (id, tenant_id, amount) VALUES (3000, 'acme', 1), (3001, 'globex', 2);",
    )
    .await;
    ops.incremental().await;
    pg.exec("UPDATE invoices SET tenant_id = 'globex' WHERE id = 7")
        .await;
    let chain = ops.incremental().await;
    // After the chain: 9 goes back to globex, 3001 moves to acme, 8 is deleted, 12 comes back
    // as globex's.
    pg.exec(
        "UPDATE invoices SET tenant_id = 'globex' WHERE id = 9;
         UPDATE invoices SET tenant_id = 'acme' WHERE id = 3001;
         DELETE FROM invoices WHERE id = 8;
         INSERT INTO invoices (id, tenant_id, amount) VALUES (12, 'globex', 3);",
    )
    .await;
    let agree = |label: &'static str| {
        let (ops, in_full, staged, id) = (&ops, &in_full, &staged, chain.id.clone());
        async move {
            for tenant in ["acme", "globex"] {
                let fast = dry_steps(&ops.service, &ops.actor(), &id, Some(tenant)).await;
                let full = dry_steps(in_full, &ops.actor(), &id, Some(tenant)).await;
                assert_eq!(decided(&fast), decided(&full), "{label}, {tenant}");
                assert!(
                    of_table(&fast, "invoices")[0][5] > 0,
                    "{label}, {tenant}: the fast path was taken: {fast:?}"
                );
                let later_staged = dry_steps(staged, &ops.actor(), &id, Some(tenant)).await;
                assert_eq!(later_staged, fast, "{label}, {tenant}, later keys staged");
            }
        }
    };
    agree("against the source").await;
    // The same after more rows moved, one of them (11) to a tenant it never had.
    pg.exec("UPDATE invoices SET tenant_id = 'acme' WHERE id IN (11, 7)")
        .await;
    agree("after more moves").await;

    // Restored for acme (9 first deleted: the chain's last word gives it to acme, the
    // database to globex), the database holds what acme's restore applied: 7 is not acme's,
    // as the second incremental gives it to globex. Then changed again.
    pg.exec("DELETE FROM invoices WHERE id = 9").await;
    backup_support::settle_postgres(&pg.url).await;
    ops.restore(&RestoreRequest {
        tenant: Some("acme".into()),
        ..restore_of(&chain.id)
    })
    .await;
    assert_eq!(
        rows_of(&pg.url, "invoices", "WHERE id IN (7, 9)")
            .await
            .len(),
        1,
        "7 went with acme's other rows, 9 is acme's again"
    );
    pg.exec("UPDATE invoices SET paid = NOT paid WHERE id = 20")
        .await;
    let fast = dry_steps(&ops.service, &ops.actor(), &chain.id, Some("acme")).await;
    let full = dry_steps(&in_full, &ops.actor(), &chain.id, Some("acme")).await;
    assert_eq!(decided(&fast), decided(&full), "after acme's restore");
    assert!(
        of_table(&fast, "invoices")[0][5] > 0,
        "after acme's restore, the fast path was taken: {fast:?}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_tenant_chains_restore_each_key_from_the_last_step_that_names_it() {
    // As on SQLite: a row one incremental gives to acme and the next takes away is not
    // restored as acme's, nor a row that goes, and a row that comes back is; with the later
    // keys held in memory and in the temporary table, in dry runs and restores.
    let pg = fresh().await;
    let ops = pg.ops();
    let staged = backup_support::Ops::new(pg.failing(FailPoint::LaterKeysOverflow));
    ops.full().await;
    pg.exec(
        "UPDATE invoices SET tenant_id = 'acme' WHERE id = 2;
         UPDATE invoices SET tenant_id = 'globex' WHERE id = 1;
         INSERT INTO invoices (id, tenant_id, amount) VALUES (5000, 'acme', 1);",
    )
    .await;
    ops.incremental().await;
    pg.exec(
        "UPDATE invoices SET tenant_id = 'globex' WHERE id = 2;
         UPDATE invoices SET tenant_id = 'acme' WHERE id = 1;
         DELETE FROM invoices WHERE id = 5000;",
    )
    .await;
    let chain = ops.incremental().await;
    let snapshot = pg.dump().await;
    let tenant_of = |id: i64| {
        let url = pg.url.clone();
        async move {
            let mut db = PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, String>("SELECT tenant_id FROM invoices WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut db)
                .await
                .unwrap()
        }
    };
    for via in [&ops, &staged] {
        for mess in [
            "",
            "DELETE FROM invoices WHERE id = 1;
             INSERT INTO invoices (id, tenant_id, amount) VALUES (5000, 'acme', 2);",
            "UPDATE invoices SET tenant_id = 'acme' WHERE id = 2;",
        ] {
            if !mess.is_empty() {
                pg.exec(mess).await;
            }
            let acme = |dry_run| RestoreRequest {
                tenant: Some("acme".into()),
                dry_run,
                ..restore_of(&chain.id)
            };
            let dry = via.restore(&acme(true)).await;
            assert!(dry.tables.iter().all(|t| t.conflicts == 0), "{dry:?}");
            via.restore(&acme(false)).await;
            assert_eq!(tenant_of(5000).await, None);
            assert_eq!(tenant_of(1).await.as_deref(), Some("acme"));
            if mess.contains("id = 2") {
                // Acme's row 2 is not acme's as the chain ends: it goes.
                assert_eq!(tenant_of(2).await, None);
                pg.exec("INSERT INTO invoices (id, tenant_id) SELECT 2, 'globex'")
                    .await;
                ops.restore(&RestoreRequest {
                    tenant: Some("globex".into()),
                    ..restore_of(&chain.id)
                })
                .await;
            }
            assert_eq!(pg.dump().await, snapshot, "after {mess:?}");
        }
    }
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_dry_runs_of_a_sqlite_chain_compare_values_as_the_restore_stores_them() {
    // A chain read from SQLite holds floats, blobs and integers where PostgreSQL has
    // `DOUBLE PRECISION`, `BYTEA` and `NUMERIC(12,2)`: once restored, a dry run of it finds
    // every row of every step unchanged, the incremental's (compared record by record) as
    // the full backup's (compared in bulk).
    let env = backup_support::Env::new(30);
    let ops = env.ops();
    ops.full().await;
    backup_support::exec(
        &env.db,
        "UPDATE invoices SET amount = amount * 3 + 0.1, attachment = x'00ff5c' WHERE id <= 5;
         UPDATE invoices SET amount = -0.0 WHERE id = 6;
         UPDATE accounts SET balance = 7 WHERE code = '1000';",
    );
    let chain = ops.incremental().await;
    let url = empty_database("").await;
    let into = |dry_run| RestoreRequest {
        to: Some(url.clone()),
        dry_run,
        ..restore_of(&chain.id)
    };
    ops.restore(&into(false)).await;
    let steps = dry_run_steps(&ops.service, &ops.actor(), &into(true)).await;
    // The full step's version of the rows the incremental changed is replaced.
    assert_eq!(
        of_table(&steps, "invoices"),
        [[0, 6, 54, 0, 0, 0], [0, 0, 6, 0, 0, 0]],
        "{steps:?}"
    );
    assert_eq!(
        of_table(&steps, "accounts"),
        [[0, 2, 4, 0, 0, 0], [0, 0, 2, 0, 0, 0]],
        "{steps:?}"
    );
    for table in ["settings", "tenants", "users"] {
        for [insert, replace, _, delete, conflicts, _] in of_table(&steps, table) {
            assert_eq!([insert, replace, delete, conflicts], [0; 4], "{steps:?}");
        }
    }
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn sqlite_dry_runs_of_a_postgres_backup_compare_values_as_sqlite_stores_them() {
    // A backup read from PostgreSQL holds every value as text; restored into SQLite tables
    // declared with types, the numbers land in columns of integer, real and numeric affinity
    // as numbers. A dry run of the same backup against that copy finds every row unchanged.
    let pg = fresh().await;
    let ops = pg.ops();
    let f = ops.full().await;
    let path = pg.dir.path().join("copy.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(SQLITE_SCHEMA)
        .unwrap();
    let url = format!("sqlite://{}", path.display());
    let into = |dry_run| RestoreRequest {
        to: Some(url.clone()),
        dry_run,
        ..restore_of(&f.id)
    };
    ops.restore(&into(false)).await;
    let copy = rusqlite::Connection::open(&path).unwrap();
    let stored: (String, String, String) = copy
        .query_row(
            "SELECT typeof(amount), typeof(big), typeof(id) FROM invoices WHERE id = 3",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(stored, ("real".into(), "integer".into(), "integer".into()));
    // `users` has a secret column, so it is restored by upsert; its keys, text in the backup,
    // are integers in the table, and every row stays.
    let users: i64 = copy
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 6);
    let steps = dry_run_steps(&ops.service, &ops.actor(), &into(true)).await;
    assert_eq!(
        of_table(&steps, "invoices"),
        [[0, 0, 500, 0, 0, 0]],
        "{steps:?}"
    );
    for (table, [insert, replace, unchanged, delete, conflicts, _]) in &steps {
        assert_eq!(
            [insert, replace, delete, conflicts],
            [&0; 4],
            "{table}: {steps:?}"
        );
        assert!(*unchanged > 0, "{table}: {steps:?}");
    }
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_a_later_delete_of_a_timestamp_key_is_the_last_word_on_it() {
    // A deleted key is written as its columns' text, as a row's key is (the change log's
    // JSON spells a timestamp otherwise): the first incremental gives the event to acme, the
    // second deletes it, and acme's restore leaves the event that globex holds since.
    let pg = fresh().await;
    pg.exec(
        "CREATE TABLE events (at TIMESTAMPTZ PRIMARY KEY,
           tenant_id TEXT NOT NULL REFERENCES tenants(id), what TEXT);
         INSERT INTO events VALUES ('2026-01-01 10:00:00+00', 'globex', 'kick-off'),
           ('2026-01-02 10:00:00+00', 'acme', 'review');",
    )
    .await;
    let ops = pg.ops();
    ops.full().await;
    pg.exec("UPDATE events SET tenant_id = 'acme' WHERE what = 'kick-off'")
        .await;
    ops.incremental().await;
    pg.exec("DELETE FROM events WHERE what = 'kick-off'").await;
    let chain = ops.incremental().await;
    let deleted = chain.tables.iter().find(|t| t.name == "events").unwrap();
    assert_eq!(deleted.deleted, 1);
    pg.exec("INSERT INTO events VALUES ('2026-01-01 10:00:00+00', 'globex', 'again')")
        .await;
    let before = rows_of(&pg.url, "events", "").await;
    let acme = |dry_run| RestoreRequest {
        tenant: Some("acme".into()),
        dry_run,
        ..restore_of(&chain.id)
    };
    let dry = ops.restore(&acme(true)).await;
    assert!(dry.tables.iter().all(|t| t.conflicts == 0), "{dry:?}");
    ops.restore(&acme(false)).await;
    assert_eq!(rows_of(&pg.url, "events", "").await, before);
}

/// The test schema, declared for SQLite with the same types.
const SQLITE_SCHEMA: &str = "
CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE users (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL,
  email TEXT NOT NULL, password_hash TEXT);
CREATE TABLE accounts (tenant_id TEXT NOT NULL, code TEXT NOT NULL,
  balance NUMERIC(12,2) NOT NULL, PRIMARY KEY (tenant_id, code));
CREATE TABLE invoices (id BIGINT PRIMARY KEY, tenant_id TEXT NOT NULL,
  amount DOUBLE PRECISION, note TEXT, attachment BLOB, big BIGINT,
  issued TIMESTAMPTZ, meta JSONB, paid BOOLEAN);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
";

/// `(id, tenant, amount, note, big)` of an invoice.
type Invoice = (i64, String, Option<f64>, Option<String>, Option<i64>);

/// Every invoice in PostgreSQL.
async fn pg_invoices(url: &str) -> Vec<Invoice> {
    let mut db = PgConnection::connect(url).await.unwrap();
    sqlx::query_as("SELECT id, tenant_id, amount, note, big FROM invoices ORDER BY id")
        .fetch_all(&mut db)
        .await
        .unwrap()
}

/// The same in SQLite.
fn sqlite_invoices(path: &std::path::Path) -> Vec<Invoice> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, tenant_id, amount, note, big FROM invoices ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn a_postgres_chain_restores_into_a_typed_sqlite_schema_exactly() {
    // A chain read from PostgreSQL (every value text) restored into SQLite tables declared
    // with types: updates, deletes, new rows and a row moved between tenants all arrive, as
    // typed values, whole and for one tenant.
    let pg = fresh().await;
    let ops = pg.ops();
    ops.full().await;
    pg.exec(
        "UPDATE invoices SET amount = amount * 2, note = 'twice' WHERE id IN (3, 4);
         DELETE FROM invoices WHERE id IN (5, 6);
         INSERT INTO invoices (id, tenant_id, amount, big) VALUES (900, 'acme', 0.1, -5);
         UPDATE invoices SET tenant_id = 'acme' WHERE id = 7;
         UPDATE users SET email = 'renamed' WHERE id = 2;",
    )
    .await;
    let chain = ops.incremental().await;
    let path = pg.dir.path().join("typed.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(SQLITE_SCHEMA)
        .unwrap();
    let url = format!("sqlite://{}", path.display());
    let into = |tenant: Option<&str>| RestoreRequest {
        to: Some(url.clone()),
        tenant: tenant.map(str::to_owned),
        ..restore_of(&chain.id)
    };
    ops.restore(&into(None)).await;
    let expected = pg_invoices(&pg.url).await;
    assert_eq!(sqlite_invoices(&path), expected);
    let users = |path: &std::path::Path| -> Vec<(i64, String)> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, email FROM users ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let restored_users = users(&path);
    assert_eq!(restored_users.len(), 6);
    assert!(restored_users.contains(&(2, "renamed".into())));

    // Acme's rows lost and changed in the copy; acme's restore of the chain puts them back
    // and leaves globex's alone.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "DELETE FROM invoices WHERE tenant_id = 'acme' AND id < 100;
             UPDATE invoices SET note = 'stale' WHERE id = 900;
             UPDATE invoices SET note = 'globex kept' WHERE id = 9;",
        )
        .unwrap();
    ops.restore(&into(Some("acme"))).await;
    let mut expected = expected;
    for row in &mut expected {
        if row.0 == 9 {
            row.3 = Some("globex kept".into());
        }
    }
    assert_eq!(sqlite_invoices(&path), expected);
    assert_eq!(users(&path), restored_users);
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_tenant_chain_restores_keep_the_secrets_of_rows_changed_since_the_full_backup() {
    // As on SQLite: `users` (a secret column) is restored by upsert, and keeps the rows that
    // a later step writes, with their secrets; later keys in memory and staged.
    let pg = fresh().await;
    let ops = pg.ops();
    let staged = backup_support::Ops::new(pg.failing(FailPoint::LaterKeysOverflow));
    let in_full = backup_support::Ops::new(pg.failing(FailPoint::DryRunInFull));
    ops.full().await;
    // Changed in place, new since the full backup, and moved in from globex.
    pg.exec(
        "UPDATE users SET email = email || '.changed' WHERE tenant_id = 'acme';
         INSERT INTO users (tenant_id, email, password_hash) VALUES ('acme', 'new', 'new-secret');
         UPDATE users SET tenant_id = 'acme' WHERE id = (SELECT min(id) FROM users WHERE tenant_id = 'globex');",
    )
    .await;
    let chain = ops.incremental().await;
    let snapshot = pg.dump().await;
    for via in [&ops, &staged, &in_full] {
        let acme = |dry_run| RestoreRequest {
            tenant: Some("acme".into()),
            dry_run,
            ..restore_of(&chain.id)
        };
        // The dry run counts the rows the full step deletes as the restore does.
        let dry = via.restore(&acme(true)).await;
        let done = via.restore(&acme(false)).await;
        assert_eq!(
            backup_support::full_step_deletes(&dry, "users"),
            backup_support::full_step_deletes(&done, "users"),
            "{dry:?}"
        );
        assert_eq!(pg.dump().await, snapshot);
    }
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn postgres_backups_are_exact_whatever_the_databases_session_defaults() {
    // Backups read values as text; a database (or role) whose defaults print floats with
    // fewer digits, dates day first, times in another zone or bytes escaped must not change
    // what a restore writes back.
    let pg = fresh().await;
    let name = pg.url.rsplit('/').next().unwrap().to_owned();
    pg.exec(&format!(
        "ALTER DATABASE {name} SET extra_float_digits = 0;
         ALTER DATABASE {name} SET DateStyle = 'SQL, DMY';
         ALTER DATABASE {name} SET TimeZone = 'Asia/Kathmandu';
         ALTER DATABASE {name} SET IntervalStyle = 'sql_standard';
         ALTER DATABASE {name} SET bytea_output = 'escape';"
    ))
    .await;
    pg.exec(
        "UPDATE invoices SET amount = 0.1::float8 + 0.2::float8, issued = '2024-02-29 23:59:59.123456+00',
           attachment = '\\x00ff5c27'::bytea WHERE id = 1;",
    )
    .await;
    let ops = pg.ops();
    let f = ops.full().await;
    pg.exec("UPDATE invoices SET amount = 1::float8 / 3, issued = issued + interval '1 microsecond' WHERE id = 2")
        .await;
    let chain = ops.incremental().await;
    // Compared in one fixed rendering, whatever each database's defaults.
    let exact = |url: String| async move {
        let mut db = PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(
            "SET extra_float_digits = 3; SET bytea_output = 'hex'; SET TimeZone = 'UTC';
             SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres';",
        )
        .execute(&mut db)
        .await
        .unwrap();
        sqlx::query_scalar::<_, String>("SELECT t::text FROM invoices t ORDER BY id")
            .fetch_all(&mut db)
            .await
            .unwrap()
    };
    let before = exact(pg.url.clone()).await;
    assert!(
        before.iter().any(|r| r.contains("0.30000000000000004")),
        "{}",
        before[0]
    );
    // Restores `id` through `via` into a fresh database: the rows that differ from `before`.
    let (pg_ref, before_ref, exact_ref) = (&pg, &before, &exact);
    let differing = move |via: &'static str, id: rbac_admin::backup::BackupId| {
        let (pg, before, exact) = (pg_ref, before_ref, exact_ref);
        async move {
            let url = empty_database("").await;
            let service = match via {
                "plain" => pg.service(),
                _ => odd_service(pg, via),
            };
            backup_support::Ops::new(service)
                .restore(&RestoreRequest {
                    to: Some(url.clone()),
                    ..restore_of(&id)
                })
                .await;
            let after = exact(url).await;
            let mut differ: Vec<String> = before
                .iter()
                .zip(&after)
                .filter(|(b, a)| b != a)
                .take(3)
                .map(|(b, a)| format!("{b} became {a}"))
                .collect();
            if before.len() != after.len() {
                differ.push(format!("{} rows became {}", before.len(), after.len()));
            }
            differ
        }
    };
    assert_eq!(
        differing("plain", chain.id.clone()).await,
        Vec::<String>::new(),
        "from {}",
        f.id
    );

    // The same when the connection URL itself asks for such settings.
    let options = "-c%20extra_float_digits%3D0%20-c%20bytea_output%3Descape\
                   %20-c%20TimeZone%3DAsia%2FKathmandu%20-c%20DateStyle%3DSQL%2CDMY";
    let shown: String = sqlx::query_scalar("SHOW bytea_output")
        .fetch_one(
            &mut PgConnection::connect(&format!("{}?options={options}", pg.url))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(shown, "escape", "the URL's options apply");
    let f = backup_support::Ops::new(odd_service(&pg, options))
        .full()
        .await;
    assert_eq!(
        differing(options, f.id.clone()).await,
        Vec::<String>::new(),
        "URL options"
    );
}

/// A backup service for `pg` whose connection URL carries `options` (URL-encoded `-c`
/// settings).
fn odd_service(pg: &Pg, options: &str) -> BackupService {
    let text = format!(
        "database = \"{}?options={options}\"\nstorage = \"{}\"\n{}",
        pg.url,
        pg.dir.path().join("backups").display(),
        backup_support::CONFIG_EXTRA
    );
    BackupService::open(BackupConfig::from_toml_str(&text).unwrap()).unwrap()
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn a_sqlite_tenant_with_an_integer_id_restores_into_postgres() {
    // SQLite keeps tenant ids as integers; the tenant is named `7` on the command line. A
    // tenant restore into PostgreSQL deleted tenant 7's rows there and restored none (the
    // backup's rows were compared with the text `7` only).
    let backup_support::SqliteApp {
        dir: _dir,
        db: _,
        ops,
    } = backup_support::SqliteApp::new(
        "CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id),
                              amount INTEGER NOT NULL);
         INSERT INTO orgs VALUES (7, 'seven'), (70, 'seventy');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
         INSERT INTO orders SELECT i, CASE WHEN i % 2 = 0 THEN 7 ELSE 70 END, i FROM n;",
        "tenant_table = \"orgs\"\n\
         tenant_column = \"org_id\"\ntenant_key = \"id\"\n",
    );
    let m = ops
        .create(&rbac_admin::backup::CreateRequest {
            kind: BackupKind::Full,
            scope: Scope::All,
        })
        .await;
    let url = empty_database(
        "CREATE TABLE orgs (id BIGINT PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE orders (id BIGINT PRIMARY KEY, org_id BIGINT NOT NULL REFERENCES orgs(id),
                              amount BIGINT NOT NULL);",
    )
    .await;
    let into = |tenant: Option<&str>| RestoreRequest {
        to: Some(url.clone()),
        tenant: tenant.map(str::to_owned),
        tables: vec!["orgs".into(), "orders".into()],
        ..restore_of(&m.id)
    };
    ops.restore(&into(None)).await;
    let all = rows_of(&url, "orders", "").await;
    assert_eq!(all.len(), 40);
    {
        let mut conn = PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("UPDATE orders SET amount = 0; DELETE FROM orders WHERE id > 30;")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let theirs = rows_of(&url, "orders", "WHERE org_id = 70").await;
    let report = ops.restore(&into(Some("7"))).await;
    let orders = report.tables.iter().find(|t| t.table == "orders").unwrap();
    assert!(orders.insert + orders.replace >= 20, "{orders:?}");
    let seven: Vec<String> = all.iter().filter(|r| r.contains(",7,")).cloned().collect();
    assert_eq!(seven.len(), 20);
    assert_eq!(rows_of(&url, "orders", "WHERE org_id = 7").await, seven);
    assert_eq!(rows_of(&url, "orders", "WHERE org_id = 70").await, theirs);
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn an_incremental_needs_its_parents_database_and_change_log() {
    use sha2::Digest as _;

    let pg = fresh().await;
    let ops = pg.ops();
    let inc = CreateRequest {
        kind: BackupKind::Incremental,
        scope: Scope::All,
    };
    let f = ops.full().await;
    assert!(
        f.source_database.is_some(),
        "the test server tells its identity"
    );

    // The parent read from another database (as after a failover or a recovery): the
    // changes since its snapshot cannot be told.
    let path = pg
        .dir
        .path()
        .join("backups")
        .join(f.id.as_str())
        .join("manifest.json");
    let original = std::fs::read(&path).unwrap();
    let mut sealed: serde_json::Value = serde_json::from_slice(&original).unwrap();
    sealed["manifest"]["source_database"] = "1:00000002:16384".into();
    let m: rbac_admin::backup::Manifest =
        serde_json::from_value(sealed["manifest"].clone()).unwrap();
    let text = serde_json::to_string(&m).unwrap();
    sealed["sha256"] = hex::encode(sha2::Sha256::digest(text.as_bytes())).into();
    std::fs::write(&path, serde_json::to_vec_pretty(&sealed).unwrap()).unwrap();
    let err = ops.refused(&inc).await;
    assert!(matches!(err, BackupError::NeedsFull(_)), "{err}");
    assert!(err.to_string().contains("not the one"), "{err}");
    std::fs::write(&path, &original).unwrap();
    ops.create(&inc).await;

    // No change log (dropped, or a database restored from elsewhere): a full backup first,
    // not a database error at every slot.
    pg.exec("DROP TABLE rbac_backup_changes CASCADE;").await;
    let err = ops.refused(&inc).await;
    assert!(matches!(err, BackupError::NeedsFull(_)), "{err}");
}

#[tokio::test]
#[cfg_attr(
    not(rbac_pg_tests),
    ignore = "needs PostgreSQL: set RBAC_TEST_POSTGRES_URL (bash .ci/postgres.sh prints one)"
)]
async fn incrementals_capture_partitions_and_refuse_what_the_log_cannot_hold() {
    // A partitioned table's trigger fires on its partitions, where the table name is the
    // partition's: the log must still name `parts`. A TRUNCATE fires no row trigger, and a
    // table whose trigger is gone or disabled records nothing: an incremental after either
    // needs a full backup, rather than an empty one reported as a success.
    let pg = fresh().await;
    pg.exec(
        "CREATE TABLE parts (id INTEGER NOT NULL, tenant_id TEXT NOT NULL, v TEXT, PRIMARY KEY (id))
           PARTITION BY RANGE (id);
         CREATE TABLE parts_low PARTITION OF parts FOR VALUES FROM (MINVALUE) TO (100);
         CREATE TABLE parts_high PARTITION OF parts FOR VALUES FROM (100) TO (MAXVALUE);
         INSERT INTO parts SELECT i, 'acme', 'v' || i FROM generate_series(1, 200) i;",
    )
    .await;
    let ops = pg.ops();
    let inc = CreateRequest {
        kind: BackupKind::Incremental,
        scope: Scope::All,
    };
    ops.full().await;
    pg.exec("UPDATE parts SET v = 'changed' WHERE id IN (5, 150); DELETE FROM parts WHERE id = 7;")
        .await;
    let i = ops.create(&inc).await;
    let parts = i.tables.iter().find(|t| t.name == "parts").unwrap();
    assert_eq!((parts.rows, parts.deleted), (2, 1), "{parts:?}");
    let snapshot = pg.dump().await;
    pg.exec("UPDATE parts SET v = 'lost';").await;
    ops.restore(&restore_of(&i.id)).await;
    assert_eq!(pg.dump().await, snapshot);

    let needs_full = |what: &'static str| {
        let ops = &ops;
        let inc = &inc;
        async move {
            let err = ops.refused(inc).await;
            assert!(matches!(err, BackupError::NeedsFull(_)), "{what}: {err}");
            err.to_string()
        }
    };
    // After the restore, a full backup starts the chain again.
    ops.full().await;
    pg.exec("TRUNCATE settings;").await;
    let why = needs_full("truncate").await;
    assert!(why.contains("`settings` was truncated"), "{why}");

    // A partition truncated: its own statement trigger marks the partitioned table.
    ops.full().await;
    pg.exec("TRUNCATE parts_low;").await;
    let why = needs_full("partition truncate").await;
    assert!(why.contains("`parts` was truncated"), "{why}");

    ops.full().await;
    pg.exec("ALTER TABLE accounts DISABLE TRIGGER rbac_backup_capture;")
        .await;
    let why = needs_full("disabled").await;
    assert!(
        why.contains("`accounts` has no enabled change capture"),
        "{why}"
    );

    // Disabled, written, then put back by another scope's full backup: the `all` chain still
    // missed the writes, and the mark that full backup left says so.
    ops.full().await;
    pg.exec(
        "ALTER TABLE accounts DISABLE TRIGGER rbac_backup_capture;
         UPDATE accounts SET balance = 1;",
    )
    .await;
    ops.create(&CreateRequest {
        kind: BackupKind::Full,
        scope: Scope::Tenant("acme".into()),
    })
    .await;
    let why = needs_full("put back by another scope").await;
    assert!(
        why.contains("`accounts` has no enabled change capture"),
        "{why}"
    );
}
