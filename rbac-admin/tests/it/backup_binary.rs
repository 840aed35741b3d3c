//! `rbac-admin backup ...` end to end through the real binary: the policy database and the
//! application database are both SQLite files, or both PostgreSQL databases on the test
//! server. Every subcommand, its exit code, its confirmation rule and its one-line errors.

use std::path::Path;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

use crate::admin::{TestDb, fresh_pg_database, one_error_line};
use crate::backup_support::{CONFIG_EXTRA, ROW_CHANGES, create_db, file_hash};

/// The application database the backups are taken of.
enum AppDb {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

const PG_SCHEMA: &str = "
CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE users (id BIGINT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                    email TEXT NOT NULL, password_hash TEXT);
CREATE TABLE accounts (tenant_id TEXT NOT NULL REFERENCES tenants(id), code TEXT NOT NULL,
                       balance NUMERIC(12,2) NOT NULL, PRIMARY KEY (tenant_id, code));
CREATE TABLE invoices (id BIGINT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
                       amount DOUBLE PRECISION, note TEXT, attachment BYTEA, big BIGINT);
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
INSERT INTO tenants VALUES ('acme', 'Acme Corp'), ('globex', 'Globex Inc');
INSERT INTO users SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END,
    'user' || i || '@example.com', 'secret-' || i FROM generate_series(1, 6) i;
INSERT INTO accounts SELECT t, c, 1000.25 FROM unnest(ARRAY['acme', 'globex']) t,
    unnest(ARRAY['1000', '2000', '3000']) c;
INSERT INTO invoices SELECT i, CASE WHEN i <= 50 THEN 'acme' ELSE 'globex' END, i * 1.1 + 0.1,
    CASE WHEN i % 7 = 0 THEN NULL ELSE 'invoice ' || i || ' ✓' END,
    CASE WHEN i % 5 = 0 THEN '\\x00ff10'::bytea END, 9223372036854775807 - i
    FROM generate_series(1, 100) i;
INSERT INTO settings VALUES ('currency', 'EUR'), ('none', NULL);
";

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

impl AppDb {
    fn like(policy: &TestDb) -> AppDb {
        if policy.url.starts_with("sqlite:") {
            let path = policy.path("app.db");
            create_db(&path, 50);
            AppDb::Sqlite(path)
        } else {
            let url = fresh_pg_database();
            block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(PG_SCHEMA))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            });
            AppDb::Postgres(url)
        }
    }

    fn url(&self) -> String {
        match self {
            AppDb::Sqlite(path) => format!("sqlite://{}", path.display()),
            AppDb::Postgres(url) => url.clone(),
        }
    }

    fn exec(&self, sql: &str) {
        match self {
            AppDb::Sqlite(path) => crate::backup_support::exec(path, sql),
            AppDb::Postgres(url) => block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }),
        }
    }

    fn count(&self, sql_where: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM invoices WHERE {sql_where}");
        match self {
            AppDb::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.query_row(&sql, [], |r| r.get(0)).unwrap()
            }
            AppDb::Postgres(url) => block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
            }),
        }
    }

    /// Something that changes when any row changes (the file's bytes on SQLite).
    fn fingerprint(&self) -> String {
        match self {
            AppDb::Sqlite(path) => file_hash(path),
            AppDb::Postgres(_) => format!(
                "{}/{}/{}",
                self.count("true"),
                self.count("note IS NULL"),
                self.count("tenant_id = 'acme'")
            ),
        }
    }
}

struct Session {
    policy: TestDb,
    app: AppDb,
    config: std::path::PathBuf,
}

impl Session {
    fn new(policy: TestDb) -> Session {
        policy.init();
        for args in [
            &["tenant", "create", "acme"][..],
            &["tenant", "create", "globex"],
            &["user", "assign", "ops", "backup_operator"],
            &["role", "create", "tenant_backup"],
            &["role", "grant", "tenant_backup", "system.backup.create"],
            &["role", "grant", "tenant_backup", "system.backup.read"],
            &["role", "grant", "tenant_backup", "system.backup.restore"],
            &[
                "user",
                "assign",
                "alice",
                "tenant_backup",
                "--tenant",
                "acme",
            ],
        ] {
            policy.ok(args);
        }
        let app = AppDb::like(&policy);
        let config = policy.path("backup.toml");
        let store = policy.path("backups");
        std::fs::write(
            &config,
            format!(
                "database = \"{}\"\nstorage = \"{}\"\n{CONFIG_EXTRA}",
                app.url(),
                store.display()
            ),
        )
        .unwrap();
        Session {
            policy,
            app,
            config,
        }
    }

    /// `rbac-admin backup ARGS` as `actor`, the configuration from the environment.
    fn backup(&self, actor: &str, args: &[&str]) -> Command {
        let mut cmd = self.policy.as_actor(actor);
        cmd.env("RBAC_BACKUP_CONFIG", &self.config)
            .arg("backup")
            .args(args);
        cmd
    }

    fn ok(&self, actor: &str, args: &[&str]) -> (String, String) {
        let output = self.backup(actor, args).output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        assert!(
            output.status.success(),
            "backup {args:?} as {actor}: {:?}\n{stdout}{stderr}",
            output.status.code()
        );
        (stdout, stderr)
    }

    fn fails(&self, actor: &str, args: &[&str], code: i32, needle: &str) {
        one_error_line(&self.backup(actor, args).output().unwrap(), code, needle);
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn backup_session(policy: TestDb) {
    let s = Session::new(policy);
    let total = s.app.count("true");

    // create: one line naming the backup; progress goes to standard error as log lines.
    let (out, log) = s.ok("ops", &["create"]);
    assert!(
        out.starts_with("created ") && out.contains("(full all, "),
        "{out}"
    );
    assert!(log.contains("INFO table invoices"), "progress lines: {log}");
    let full = out.split_whitespace().nth(1).unwrap().to_owned();

    // list / show, text and JSON.
    let list = json(&s.ok("ops", &["list", "--format", "json"]).0);
    assert_eq!(list[0]["id"], full.as_str());
    assert_eq!(list[0]["kind"], "full");
    let (text, _) = s.ok("ops", &["list"]);
    assert!(text.starts_with("ID ") && text.contains(&full), "{text}");
    let (shown, _) = s.ok("ops", &["show", &full]);
    assert!(
        shown.starts_with(&format!("id:        {full}\n")),
        "{shown}"
    );
    assert!(shown.contains("encrypted: no"), "{shown}");
    let manifest = json(&s.ok("ops", &["show", &full, "--format", "json"]).0);
    let tables = manifest["tables"].as_array().unwrap();
    assert!(tables.iter().any(|t| t["name"] == "invoices"), "{manifest}");
    let users = tables.iter().find(|t| t["name"] == "users").unwrap();
    let columns = users["columns"].to_string();
    assert!(
        columns.contains("email") && !columns.contains("password_hash"),
        "secret columns are not written: {users}"
    );

    // verify, shallow and deep.
    let (out, _) = s.ok("ops", &["verify", &full, "--deep"]);
    assert!(out.contains(": ok ("), "{out}");

    // An incremental after a change, then the chain restores exactly.
    s.app.exec("DELETE FROM invoices WHERE id <= 10;");
    let (out, _) = s.ok("ops", &["create", "--kind", "incremental"]);
    assert!(out.contains("(incremental all, "), "{out}");
    let incremental = out.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(s.app.count("true"), total - 10);

    // restore: a dry run changes nothing; without --yes off a terminal it shows the dry run
    // and refuses; with --yes it restores.
    let before = s.app.fingerprint();
    let (out, _) = s.ok("ops", &["restore", &full, "--dry-run"]);
    assert!(out.starts_with("dry run from"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("invoices") && l.split_whitespace().nth(1) == Some("10")),
        "ten rows to insert: {out}"
    );
    assert_eq!(s.app.fingerprint(), before);
    let refused = s.backup("ops", &["restore", &full]).output().unwrap();
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stdout).starts_with("dry run from"));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(s.app.fingerprint(), before);
    let (out, _) = s.ok("ops", &["restore", &full, "--yes"]);
    assert!(out.contains("restored from"), "{out}");
    assert_eq!(s.app.count("true"), total);
    // The latest backup (the incremental) brings the deletion back.
    s.ok("ops", &["restore", "--latest", "--yes"]);
    assert_eq!(s.app.count("true"), total - 10);
    s.ok("ops", &["restore", &full, "--yes"]);

    // Into a new SQLite file, a chain (a full backup and an incremental): the dry run shown
    // first previews it into an empty database, and the restore creates it.
    if let AppDb::Sqlite(_) = &s.app {
        let copy = s.policy.path("copy.db");
        let to = format!("sqlite://{}", copy.display());
        let latest = &incremental;
        let (out, _) = s.ok("ops", &["restore", latest, "--to", &to, "--dry-run"]);
        assert!(out.contains("dry run"), "{out}");
        assert!(!copy.exists(), "a dry run creates nothing");
        let (out, _) = s.ok("ops", &["restore", latest, "--to", &to, "--yes"]);
        assert!(out.contains("restored from"), "{out}");
        let conn = rusqlite::Connection::open(&copy).unwrap();
        let copied: i64 = conn
            .query_row("SELECT count(*) FROM invoices", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            copied,
            total - 10,
            "the chain's state: ten invoices deleted"
        );
    }

    // A tenant admin: their own tenant only.
    let (out, _) = s.ok("alice", &["create", "--scope", "tenant:acme"]);
    let acme = out.split_whitespace().nth(1).unwrap().to_owned();
    s.fails(
        "alice",
        &["create", "--scope", "tenant:globex"],
        2,
        "denied",
    );
    s.fails("alice", &["create"], 2, "denied");
    s.app.exec("DELETE FROM invoices WHERE tenant_id = 'acme'; DELETE FROM invoices WHERE tenant_id = 'globex' AND id % 2 = 0;");
    let globex_left = s.app.count("tenant_id = 'globex'");
    s.ok("alice", &["restore", &acme, "--tenant", "acme", "--yes"]);
    assert_eq!(s.app.count("tenant_id = 'acme'"), 50);
    assert_eq!(
        s.app.count("tenant_id = 'globex'"),
        globex_left,
        "another tenant's rows are untouched"
    );
    s.ok("ops", &["restore", &full, "--yes"]);
    // A tenant reader's log: its tenant's rows, however many of other scopes are newer.
    let hers = json(
        &s.ok("alice", &["logs", "--limit", "3", "--format", "json"])
            .0,
    );
    let scopes: Vec<&str> = hers
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["scope"].as_str().unwrap())
        .collect();
    assert!(
        !scopes.is_empty() && scopes.iter().all(|s| *s == "tenant:acme"),
        "{hers}"
    );

    // Someone without any backup grant: one line, exit 2, and the denial is logged.
    s.fails("carol", &["list"], 2, "denied");
    let logs = json(
        &s.ok("ops", &["logs", "--status", "denied", "--format", "json"])
            .0,
    );
    let actors: Vec<&str> = logs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["actor"].as_str())
        .collect();
    assert!(
        actors.contains(&"carol") && actors.contains(&"alice"),
        "{logs}"
    );

    // download: one tar archive with the manifest and the chunks.
    let archive = s.policy.path("full.tar");
    let (out, _) = s.ok("ops", &["download", &full, "-o", archive.to_str().unwrap()]);
    assert!(out.starts_with("wrote "), "{out}");
    let listing = StdCommand::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(
        listing.contains("manifest.json") && listing.contains("chunks/"),
        "{listing}"
    );

    // Bad ids and bad input: exit 3, one line, nothing run.
    for (args, needle) in [
        (
            &["show", "../../etc/passwd"][..],
            "invalid backup id `../../etc/passwd`",
        ),
        (
            &["restore", "--at", "yesterday"],
            "invalid value 'yesterday' for '--at <TIME>'",
        ),
    ] {
        // Rejected while parsing the command line (clap's usage error, exit 3).
        s.backup("ops", args)
            .assert()
            .code(3)
            .stdout("")
            .stderr(predicate::str::starts_with("error: ").and(predicate::str::contains(needle)));
    }
    s.fails(
        "ops",
        &["verify", "20261123T000000Z-0000abcd"],
        3,
        "20261123T000000Z-0000abcd",
    );

    // delete and prune ask first; --dry-run and --yes.
    s.fails("ops", &["delete", &acme], 3, "--yes");
    s.ok("ops", &["delete", &acme, "--yes"]);
    let (plan, _) = s.ok("ops", &["prune", "--keep", "daily=1", "--dry-run"]);
    assert!(
        plan.contains(&full) && plan.contains(&incremental),
        "{plan}"
    );
    let kept = json(&s.ok("ops", &["list", "--format", "json"]).0);
    assert_eq!(
        kept.as_array().unwrap().len(),
        2,
        "a dry run deletes nothing"
    );
    assert!(!kept.to_string().contains(&acme));
}

fn backup_schedules_and_the_scheduler(policy: TestDb) {
    let s = Session::new(policy);
    let (out, _) = s.ok(
        "ops",
        &[
            "schedule",
            "add",
            "nightly",
            "--cron",
            "0 2 * * *",
            "--tz",
            "Europe/Berlin",
            "--retention",
            "daily=7,weekly=4",
        ],
    );
    assert!(out.contains("nightly"), "{out}");
    s.ok(
        "ops",
        &[
            "schedule",
            "add",
            "acme-hourly",
            "--cron",
            "@hourly",
            "--kind",
            "incremental",
            "--scope",
            "tenant:acme",
        ],
    );
    let list = json(&s.ok("ops", &["schedule", "list", "--format", "json"]).0);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "{list}");
    assert!(names.contains(&"nightly") && names.contains(&"acme-hourly"));
    s.ok("ops", &["schedule", "disable", "nightly"]);
    let list = json(&s.ok("ops", &["schedule", "list", "--format", "json"]).0);
    let nightly = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "nightly")
        .unwrap()
        .clone();
    assert_eq!(nightly["active"], false, "{nightly}");
    s.ok("ops", &["schedule", "enable", "nightly"]);
    s.fails(
        "ops",
        &["schedule", "add", "bad", "--cron", "0 0 31 2 *"],
        3,
        "never matches",
    );
    s.fails(
        "alice",
        &["schedule", "add", "mine", "--cron", "@daily"],
        2,
        "denied",
    );
    s.fails("ops", &["schedule", "remove", "acme-hourly"], 3, "--yes");
    s.ok("ops", &["schedule", "remove", "acme-hourly", "--yes"]);

    // The scheduler runs until SIGTERM and then stops cleanly.
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("rbac-admin"))
        .current_dir(s.policy.path(""))
        .env_remove("RBAC_DATABASE_URL")
        .env("RBAC_ACTOR", "ops")
        .env("RBAC_BACKUP_CONFIG", &s.config)
        .args(["--db", &s.policy.url, "backup", "scheduler", "--poll", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "it keeps running");
    let term = StdCommand::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the scheduler did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("scheduler stopped: 0 runs, 0 failed"),
        "{stdout}"
    );
    assert!(stderr.contains("scheduler started"), "{stderr}");

    // --once runs what is due now (nothing, right after the slots were planned) and exits.
    let (out, _) = s.ok("ops", &["scheduler", "--once"]);
    assert!(out.contains("0 runs, 0 failed"), "{out}");
}

/// The change log is cut once every scope's newest backup has read it, and an incremental
/// on a parent older than the cut is refused (exit 3) rather than missing changes.
fn the_change_log_is_pruned(policy: TestDb) {
    let s = Session::new(policy);
    let log_rows = || match &s.app {
        AppDb::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.query_row(ROW_CHANGES, [], |r| r.get::<_, i64>(0))
                .unwrap()
        }
        AppDb::Postgres(url) => block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar(ROW_CHANGES)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }),
    };
    let settle = || {
        if let AppDb::Postgres(url) = &s.app {
            block_on(crate::backup_support::settle_postgres(url));
        }
    };
    s.ok("ops", &["create"]);
    s.app
        .exec("UPDATE invoices SET note = 'changed' WHERE id <= 5;");
    assert_eq!(log_rows(), 5);
    settle();
    let (out, _) = s.ok("ops", &["create", "--kind", "incremental"]);
    let first = out.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(
        log_rows(),
        0,
        "the only scope's newest backup has read every change"
    );
    s.app
        .exec("UPDATE invoices SET note = 'again' WHERE id = 7;");
    settle();
    let (out, _) = s.ok("ops", &["create", "--kind", "incremental"]);
    let second = out.split_whitespace().nth(1).unwrap().to_owned();
    assert_eq!(log_rows(), 0);
    s.ok("ops", &["delete", &second, "--yes"]);
    s.fails(
        "ops",
        &["create", "--kind", "incremental"],
        3,
        "make a full backup",
    );
    // The chain that is left still restores.
    s.ok("ops", &["restore", &first, "--yes"]);
    assert_eq!(s.app.count("note = 'changed'"), 5);
    s.ok("ops", &["create"]);
    s.ok("ops", &["create", "--kind", "incremental"]);
}

fn a_missing_configuration_is_one_clear_line(policy: TestDb) {
    policy.init();
    let missing = policy.path("nowhere.toml");
    let output = policy
        .cmd()
        .args(["backup", "--config"])
        .arg(&missing)
        .arg("list")
        .output()
        .unwrap();
    one_error_line(&output, 3, "nowhere.toml");
    assert!(!Path::new(&missing).exists());
    policy
        .cmd()
        .args(["backup", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("scheduler"));
}

/// `rbac-admin backup create` killed with SIGKILL while it writes chunks: what it leaves is
/// never listed, shown or restored, and the next run removes it, logs it as interrupted and
/// succeeds.
fn a_backup_killed_mid_way_leaves_nothing_good_looking(policy: TestDb) {
    use std::os::unix::process::ExitStatusExt;

    let s = Session::new(policy);
    // About 80 MB of rows, so 20 chunks of 4 MiB: the kill lands long before the manifest.
    s.app.exec(match &s.app {
        AppDb::Sqlite(_) => {
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
             INSERT INTO invoices (id, tenant_id, amount, note, attachment, big)
             SELECT 1000 + i, 'acme', i, 'bulk', randomblob(2000), i FROM n;"
        }
        AppDb::Postgres(_) => {
            "INSERT INTO invoices SELECT 1000 + i, 'acme', i, 'bulk',
                 decode(repeat(md5(i::text), 62), 'hex'), i
             FROM generate_series(1, 40000) i;"
        }
    });
    let store = s.policy.path("backups");
    let chunks_written = || {
        std::fs::read_dir(&store)
            .into_iter()
            .flatten()
            .any(|backup| {
                backup
                    .map(|b| {
                        b.path()
                            .join("chunks")
                            .read_dir()
                            .is_ok_and(|mut c| c.next().is_some())
                    })
                    .unwrap_or(false)
            })
    };

    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("rbac-admin"))
        .current_dir(s.policy.path(""))
        .env_remove("RBAC_DATABASE_URL")
        .env("RBAC_ACTOR", "ops")
        .env("RBAC_BACKUP_CONFIG", &s.config)
        .args(["--db", &s.policy.url, "backup", "create"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !chunks_written() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the backup ended ({status}) before it was seen writing chunks");
        }
        assert!(Instant::now() < deadline, "no chunk within 120 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed, not finished: {status}");

    let dirs: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .map(|d| d.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(
        !dirs[0].join("manifest.json").exists(),
        "the kill came before the manifest"
    );
    let dead = dirs[0].file_name().unwrap().to_str().unwrap().to_owned();
    let listed = json(&s.ok("ops", &["list", "--format", "json"]).0);
    assert_eq!(listed, serde_json::json!([]), "never listed");
    s.fails("ops", &["show", &dead], 3, "incomplete");
    s.fails("ops", &["restore", &dead, "--yes"], 3, "incomplete");

    // The next run removes the remains, logs the dead one as interrupted, and succeeds.
    let (out, _) = s.ok("ops", &["create"]);
    let good = out.split_whitespace().nth(1).unwrap().to_owned();
    let dirs: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .map(|d| d.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(dirs, vec![good.clone()]);
    let (out, _) = s.ok("ops", &["verify", &good]);
    assert!(out.contains(": ok ("), "{out}");
    let logs = json(
        &s.ok("ops", &["logs", "--status", "failed", "--format", "json"])
            .0,
    );
    let logs = logs.as_array().unwrap();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["backup_id"], dead.as_str());
    assert!(
        logs[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{logs:?}"
    );
}

on_both_databases!(
    backup_session,
    a_backup_killed_mid_way_leaves_nothing_good_looking,
    backup_schedules_and_the_scheduler,
    the_change_log_is_pruned,
    a_missing_configuration_is_one_clear_line
);

/// An encrypted backup: a host with only the public key creates it and cannot read it back;
/// a missing or wrong key is one line and exit 3, and the right one verifies.
#[test]
fn a_missing_or_wrong_key_is_one_clear_line() {
    use age::secrecy::ExposeSecret;
    let s = Session::new(TestDb::sqlite());
    let key = age::x25519::Identity::generate();
    let other = age::x25519::Identity::generate();
    let key_file = s.policy.path("backup.key");
    let other_file = s.policy.path("other.key");
    std::fs::write(&key_file, key.to_string().expose_secret()).unwrap();
    std::fs::write(&other_file, other.to_string().expose_secret()).unwrap();
    let base = std::fs::read_to_string(&s.config).unwrap();
    let write_config = |identity: &Path| {
        std::fs::write(
            &s.config,
            format!(
                "{base}[encryption]\nrecipients = [\"{}\"]\nidentity_files = [\"{}\"]\n",
                key.to_public(),
                identity.display()
            ),
        )
        .unwrap();
    };
    write_config(&s.policy.path("missing.key"));
    let (out, _) = s.ok("ops", &["create"]);
    assert!(out.contains(", encrypted)"), "{out}");
    let id = out.split_whitespace().nth(1).unwrap().to_owned();
    s.fails("ops", &["verify", &id], 3, "missing.key");
    write_config(&other_file);
    s.fails("ops", &["verify", &id], 3, "");
    s.fails("ops", &["restore", &id, "--dry-run"], 3, "");
    write_config(&key_file);
    let (out, _) = s.ok("ops", &["verify", &id, "--deep"]);
    assert!(out.contains(": ok ("), "{out}");
    // The key never reaches the output or the logs.
    let secret = key.to_string().expose_secret().to_owned();
    for args in [&["show", id.as_str()][..], &["logs"]] {
        let (out, log) = s.ok("ops", args);
        assert!(!out.contains(&secret) && !log.contains(&secret));
    }
}
