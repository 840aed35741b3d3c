//! Shared setup for the backup tests: a small ERP database in a real SQLite file, a policy
//! with backup roles, and a configuration pointing both at a temporary directory.

#![allow(dead_code, reason = "each test file uses a part")]

use std::path::{Path, PathBuf};

use rbac_admin::backup::{
    Actor, BackupConfig, BackupId, BackupKind, BackupService, CreateRequest, Manifest, NoProgress,
    RestoreReport, RestoreRequest, Scope, Selector, VerifyReport,
};
use rbac_core::{Engine, Policy};
use rusqlite::Connection;
use rusqlite::types::Value;

pub(crate) const POLICY: &str = r#"
[permissions.system.backup]
create = "Create backups"
read = "List backups"
verify = "Verify backups"
download = "Download backups"
restore = "Restore backups"
delete = "Delete backups"
schedule = "Schedule backups"

[roles.backup_admin]
grants = ["system.backup.*"]

[roles.tenant_backup]
grants = ["system.backup.create", "system.backup.read", "system.backup.verify", "system.backup.restore"]

[roles.reader]
grants = ["system.backup.read"]

[tenants.acme]
[tenants.globex]

[subjects.ops]
roles = ["backup_admin"]

[subjects.auditor]
roles = ["reader"]

[subjects.alice.tenants]
acme = ["tenant_backup"]
"#;

/// Counts the change log's row changes, not its marks (`*backup*`, `*restore*`, ...: their
/// `tbl` starts with `*`), which backups and restores write beside them.
pub(crate) const ROW_CHANGES: &str =
    "SELECT count(*) FROM rbac_backup_changes WHERE tbl NOT LIKE '*%'";

/// This process's boot and pid namespace, as leases and locks record them.
pub(crate) fn process_identity() -> String {
    format!(
        "{}@{}",
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim(),
        std::fs::read_link("/proc/self/ns/pid").unwrap().display()
    )
}

pub(crate) fn engine() -> Engine {
    Engine::new(&Policy::from_toml_str(POLICY).expect("policy"))
}

pub(crate) const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE users (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    email TEXT NOT NULL, password_hash TEXT);
CREATE TABLE accounts (tenant_id TEXT NOT NULL REFERENCES tenants(id), code TEXT NOT NULL,
                       balance INTEGER NOT NULL, PRIMARY KEY (tenant_id, code));
CREATE TABLE invoices (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                       amount REAL, note TEXT, attachment BLOB, big INTEGER);
CREATE TABLE settings (key TEXT PRIMARY KEY, value);
";

/// Creates the database with two tenants and `n` invoices per tenant.
pub(crate) fn create_db(path: &Path, n: i64) {
    let mut conn = Connection::open(path).expect("open");
    conn.execute_batch(SCHEMA).expect("schema");
    let tx = conn.transaction().expect("tx");
    for (t, name) in [("acme", "Acme Corp"), ("globex", "Globex Inc")] {
        tx.execute("INSERT INTO tenants VALUES (?1, ?2)", (t, name))
            .expect("tenant");
        for u in 0..3 {
            tx.execute(
                "INSERT INTO users (tenant_id, email, password_hash) VALUES (?1, ?2, ?3)",
                (
                    t,
                    format!("user{u}@{t}.example"),
                    format!("$argon2id$secret-{t}-{u}"),
                ),
            )
            .expect("user");
        }
        for code in ["1000", "2000", "3000"] {
            tx.execute("INSERT INTO accounts VALUES (?1, ?2, 1000)", (t, code))
                .expect("acct");
        }
        for i in 0..n {
            let note: Option<String> = if i % 7 == 0 {
                None
            } else {
                Some(format!("invoice {i} for {t} ✓"))
            };
            let blob: Option<Vec<u8>> = if i % 5 == 0 {
                Some(vec![0, 1, 2, 255, (i % 256) as u8])
            } else {
                None
            };
            tx.execute(
                "INSERT INTO invoices (tenant_id, amount, note, attachment, big) VALUES (?1, ?2, ?3, ?4, ?5)",
                (t, i as f64 * 1.1 + 0.1, note, blob, i64::MAX - i),
            )
            .expect("invoice");
        }
    }
    tx.execute(
        "INSERT INTO settings VALUES ('currency', 'EUR'), ('pi', 3.141592653589793), ('n', NULL), ('raw', CAST(x'61ff62' AS TEXT))",
        [],
    )
    .expect("settings");
    tx.commit().expect("commit");
}

pub(crate) const CONFIG_EXTRA: &str = r#"
tenant_table = "tenants"
tenant_column = "tenant_id"
secret_columns = ["users.password_hash"]
[modules]
finance = ["accounts", "invoices"]
"#;

/// An application database of its own (`app.db` in a new directory, from a schema), and a
/// backup service over it storing into `backups` there.
pub(crate) struct SqliteApp {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) db: PathBuf,
    pub(crate) ops: Ops,
}

impl SqliteApp {
    /// `schema` (SQL run first) and `extra` configuration lines (tenants, modules, secrets).
    pub(crate) fn new(schema: &str, extra: &str) -> SqliteApp {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        exec(&db, schema);
        let config = format!(
            "database = \"sqlite://{}\"\nstorage = \"{}\"\n{extra}",
            db.display(),
            dir.path().join("backups").display()
        );
        let service = BackupService::open(BackupConfig::from_toml_str(&config).unwrap()).unwrap();
        SqliteApp {
            dir,
            db,
            ops: Ops::new(service),
        }
    }
}

pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) db: PathBuf,
    pub(crate) store: PathBuf,
}

impl Env {
    pub(crate) fn new(invoices: i64) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("app.db");
        create_db(&db, invoices);
        let store = dir.path().join("backups");
        Env { dir, db, store }
    }

    pub(crate) fn config_text(&self, extra: &str) -> String {
        format!(
            "database = \"sqlite://{}\"\nstorage = \"{}\"\n{extra}{CONFIG_EXTRA}",
            self.db.display(),
            self.store.display()
        )
    }

    pub(crate) fn config(&self) -> BackupConfig {
        BackupConfig::from_toml_str(&self.config_text("")).expect("config")
    }

    pub(crate) fn service(&self) -> BackupService {
        BackupService::open(self.config()).expect("service")
    }

    /// The service, driven by `ops`.
    pub(crate) fn ops(&self) -> Ops {
        Ops::new(self.service())
    }

    pub(crate) fn url(&self, name: &str) -> (PathBuf, String) {
        let p = self.dir.path().join(name);
        let url = format!("sqlite://{}", p.display());
        (p, url)
    }
}

/// A backup service driven by `ops`, who holds every backup permission: what tests that are
/// not about gating act through. Each call must succeed.
pub(crate) struct Ops {
    pub(crate) service: BackupService,
    engine: Engine,
}

impl Ops {
    pub(crate) fn new(service: BackupService) -> Ops {
        Ops {
            service,
            engine: engine(),
        }
    }

    /// `ops` as the actor of a call made on [`Ops::service`] directly.
    pub(crate) fn actor(&self) -> Actor<'_> {
        Actor::new("ops", &self.engine)
    }

    pub(crate) async fn create(&self, request: &CreateRequest) -> Manifest {
        self.service
            .create(request, &self.actor(), &NoProgress)
            .await
            .expect("create")
    }

    /// A backup that must be refused: the error.
    pub(crate) async fn refused(&self, request: &CreateRequest) -> rbac_admin::backup::BackupError {
        self.service
            .create(request, &self.actor(), &NoProgress)
            .await
            .expect_err("the backup must be refused")
    }

    /// A full backup of everything.
    pub(crate) async fn full(&self) -> Manifest {
        self.create(&CreateRequest {
            kind: BackupKind::Full,
            scope: Scope::All,
        })
        .await
    }

    /// An incremental backup of everything.
    pub(crate) async fn incremental(&self) -> Manifest {
        self.create(&CreateRequest {
            kind: BackupKind::Incremental,
            scope: Scope::All,
        })
        .await
    }

    pub(crate) async fn restore(&self, request: &RestoreRequest) -> RestoreReport {
        self.service
            .restore(request, &self.actor(), &NoProgress)
            .await
            .expect("restore")
    }

    pub(crate) async fn verify(&self, id: &BackupId, deep: bool) -> VerifyReport {
        self.service
            .verify(&self.actor(), id, deep, &NoProgress)
            .await
            .expect("verify")
    }
}

/// A restore of backup `id`: every table, into the configured database, for real.
/// The rows `report`'s first step of `table` deletes (the full step, in a chain's report).
pub(crate) fn full_step_deletes(
    report: &rbac_admin::backup::RestoreReport,
    table: &str,
) -> Option<u64> {
    report
        .tables
        .iter()
        .find(|t| t.table == table)
        .map(|t| t.delete)
}

pub(crate) fn restore_of(id: &BackupId) -> RestoreRequest {
    RestoreRequest {
        from: Selector::Id(id.clone()),
        tables: vec![],
        modules: vec![],
        tenant: None,
        to: None,
        dry_run: false,
    }
}

/// Every user table's rows, ordered by primary key, skipping the backup module's tables.
pub(crate) fn dump(path: &Path) -> Vec<(String, Vec<Vec<Value>>)> {
    let conn = Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'rbac_backup_%' ORDER BY name")
        .expect("tables");
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("q")
        .map(|r| r.expect("row"))
        .collect();
    let mut out = Vec::new();
    for t in tables {
        let mut s = conn
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1, 2"))
            .expect("select");
        let n = s.column_count();
        let rows = s
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get_ref(i).map(owned))
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        out.push((t, rows));
    }
    out
}

/// A value as stored; text that is not UTF-8 is shown as `raw:HEX` (still text).
fn owned(v: rusqlite::types::ValueRef<'_>) -> Value {
    match v {
        rusqlite::types::ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec()).unwrap_or_else(|_| format!("raw:{}", hex::encode(t))),
        ),
        rusqlite::types::ValueRef::Null => Value::Null,
        rusqlite::types::ValueRef::Integer(i) => Value::Integer(i),
        rusqlite::types::ValueRef::Real(r) => Value::Real(r),
        rusqlite::types::ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// The rows of one table.
pub(crate) fn table(path: &Path, name: &str) -> Vec<Vec<Value>> {
    dump(path)
        .into_iter()
        .find(|(t, _)| t == name)
        .map(|(_, r)| r)
        .unwrap_or_default()
}

/// SHA-256 of a file's bytes.
pub(crate) fn file_hash(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).expect("read")))
}

pub(crate) fn exec(path: &Path, sql: &str) {
    let conn = Connection::open(path).expect("open");
    conn.execute_batch(sql).expect("exec");
}

/// Flips one byte of a file in place.
pub(crate) fn flip_byte(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).expect("read");
    let i = offset.min(data.len() - 1);
    data[i] ^= 0x40;
    std::fs::write(path, data).expect("write");
}

/// Waits until every transaction on the PostgreSQL server at `url` that is older than the
/// last change logged in `rbac_backup_changes` has ended. A backup's snapshot cuts below the
/// oldest transaction running anywhere on the server (transaction ids are server-wide), so
/// tests that count exactly what an incremental or a dry run reads wait for other tests'
/// transactions first.
pub(crate) async fn settle_postgres(url: &str) {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    for _ in 0..600 {
        let settled: bool = sqlx::query_scalar(
            "SELECT coalesce(pg_snapshot_xmin(pg_current_snapshot()) > max(xid), true) \
             FROM rbac_backup_changes",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        if settled {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("transactions older than the last logged change stayed open for a minute");
}

/// `env`'s backup configuration with its storage lines replaced by `storage` (`storage = ...`
/// and `storage_endpoint = ...`) and `extra` (such as a `[storage_options]` table) at the end.
pub(crate) fn object_store_config(env: &Env, storage: &str, extra: &str) -> String {
    format!("{}{extra}", env.config_text("")).replacen(
        &format!("storage = \"{}\"", env.store.display()),
        storage,
        1,
    )
}

/// What backups need from every object store (S3, Azure), through the configuration `text`
/// whose location ends in `prefix`; `keys` lists every object name in the bucket or
/// container. A full backup is stored there and nothing locally, without a lock left behind,
/// and verifies with every chunk read; an incremental follows it and the chain restores into
/// a new database; a backup that fails before its manifest is never listed; a backup
/// downloads as an archive; deleting one removes all of its objects.
pub(crate) async fn object_store_round_trip(
    env: &Env,
    text: &str,
    prefix: &str,
    keys: impl Fn() -> Vec<String>,
) {
    use rbac_admin::backup::{
        Actor, BackupKind, CreateRequest, FailPoint, NoProgress, RestoreRequest, Scope, Selector,
    };
    let service = BackupService::open(BackupConfig::from_toml_str(text).unwrap()).unwrap();
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let create = |kind| CreateRequest {
        kind,
        scope: Scope::All,
    };
    let full = service
        .create(&create(BackupKind::Full), &ops, &NoProgress)
        .await
        .unwrap();
    let stored = keys();
    assert!(
        stored.contains(&format!("{prefix}/{}/manifest.json", full.id)),
        "{stored:?}"
    );
    assert!(
        stored
            .iter()
            .any(|k| k.starts_with(&format!("{prefix}/{}/chunks/", full.id))),
        "{stored:?}"
    );
    assert!(!stored.iter().any(|k| k.ends_with("lock.json")));
    assert!(!env.store.exists(), "nothing written locally");
    service
        .verify(&ops, &full.id, true, &NoProgress)
        .await
        .unwrap();

    exec(
        &env.db,
        "UPDATE invoices SET amount = amount + 1 WHERE id <= 10",
    );
    let inc = service
        .create(&create(BackupKind::Incremental), &ops, &NoProgress)
        .await
        .unwrap();
    assert_eq!(inc.parent.as_ref(), Some(&full.id));
    let (copy, url) = env.url("restored-from-object-store.db");
    let restore = RestoreRequest {
        from: Selector::Latest,
        tables: vec![],
        modules: vec![],
        tenant: None,
        to: Some(url),
        dry_run: false,
    };
    service.restore(&restore, &ops, &NoProgress).await.unwrap();
    assert_eq!(table(&copy, "invoices"), table(&env.db, "invoices"));

    let mut failing = BackupService::open(BackupConfig::from_toml_str(text).unwrap()).unwrap();
    failing.set_fail_point(Some(FailPoint::BeforeManifest));
    failing
        .create(&create(BackupKind::Full), &ops, &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(
        service.list(&ops).await.unwrap().len(),
        2,
        "the unfinished backup is not listed"
    );

    let mut archive = Vec::new();
    service
        .download(&ops, &full.id, &mut archive)
        .await
        .unwrap();
    assert!(!archive.is_empty());
    service.delete(&ops, &inc.id).await.unwrap();
    assert!(!keys().iter().any(|k| k.contains(inc.id.as_str())));
    assert_eq!(service.list(&ops).await.unwrap().len(), 1);
}

/// Asserts that the chunks of `table` in `m` are grouped by tenant: `acme` and `globex` have
/// groups of their own and `initech` (a few rows) is in the mixed group, so that a tenant
/// restore decompresses only part of each chunk.
pub(crate) fn assert_grouped_by_tenant(m: &Manifest, table: &str) {
    let groups: Vec<_> = m
        .chunks
        .iter()
        .filter(|c| c.table == table)
        .flat_map(|c| &c.groups)
        .collect();
    assert_eq!(m.format, 2, "a manifest with groups is format 2");
    let has = |t: Option<&str>| groups.iter().any(|g| g.tenant.as_deref() == t);
    assert!(
        has(Some("acme")) && has(Some("globex")) && has(None),
        "{groups:?}"
    );
    assert!(!has(Some("initech")), "{groups:?}");
}

/// Asserts what `report` says of `table`: rows to insert, replace and delete, and conflicts.
pub(crate) fn assert_changes(report: &RestoreReport, table: &str, expect: (u64, u64, u64, u64)) {
    let t = report.tables.iter().find(|t| t.table == table).unwrap();
    assert_eq!(
        (t.insert, t.replace, t.delete, t.conflicts),
        expect,
        "{table}"
    );
}

/// `INSERT`s of invoices `from..=to` into the SQLite test database, with `tenant` (an SQL
/// expression of the invoice id `i`) as their tenant and a note of about 60 random characters.
pub(crate) fn invoices_sql(from: u64, to: u64, tenant: &str) -> String {
    format!(
        "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to})
         INSERT INTO invoices (id, tenant_id, amount, note, big)
         SELECT i, {tenant}, i, 'invoice ' || i || ' ' || hex(randomblob(24)), i FROM n;"
    )
}

/// `acme` 3 in 5, `globex` 2 in 5 and `initech` 1 in 50: with [`invoices_sql`], rows that mix
/// three tenants, `initech` with too few for a group of its own.
pub(crate) const THREE_TENANTS: &str = "CASE WHEN i % 50 = 0 THEN 'initech' \
     WHEN i % 5 < 3 THEN 'acme' ELSE 'globex' END";

/// Records the progress a call reports: each phase's total, and the units advanced in it.
#[derive(Default)]
pub(crate) struct ProgressLog(std::sync::Mutex<Vec<(String, Option<u64>, u64)>>);

impl rbac_admin::backup::Progress for ProgressLog {
    fn phase(&self, name: &str, total: Option<u64>) {
        self.0.lock().unwrap().push((name.to_owned(), total, 0));
    }
    fn advance(&self, n: u64) {
        if let Some(last) = self.0.lock().unwrap().last_mut() {
            last.2 += n;
        }
    }
}

impl ProgressLog {
    /// Asserts that every phase with a total advanced exactly to it.
    pub(crate) fn assert_complete(&self) {
        let phases = self.0.lock().unwrap();
        assert!(!phases.is_empty());
        for (name, total, done) in phases.iter() {
            if let Some(total) = total {
                assert_eq!(done, total, "phase {name}: {phases:?}");
            }
        }
    }
}
