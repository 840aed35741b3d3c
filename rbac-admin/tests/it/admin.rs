//! Drives the real `rbac-admin` binary against a policy database: SQLite always, and a real
//! PostgreSQL server when `RBAC_TEST_POSTGRES_URL` is set at build time (`export
//! RBAC_TEST_POSTGRES_URL=$(bash .ci/postgres.sh)`); without it the PostgreSQL tests are
//! reported as ignored, with the reason.
//!
//! Text outputs are compared with golden files in `tests/snapshots/` (the same files for both
//! databases); `UPDATE_SNAPSHOTS=1 cargo test -p rbac-admin --test it admin` rewrites them.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

const ERP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/policies/erp.toml");

/// A policy database for one test, and a scratch directory (also the working directory, so that
/// the default `sqlite://rbac.db` never lands in the source tree).
pub(crate) struct TestDb {
    pub(crate) url: String,
    dir: tempfile::TempDir,
}

impl TestDb {
    pub(crate) fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        TestDb {
            url: format!("sqlite://{}/rbac.db", dir.path().display()),
            dir,
        }
    }

    /// A fresh database on the test server, so tests never see each other's data.
    pub(crate) fn postgres() -> TestDb {
        TestDb {
            url: fresh_pg_database(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Another database of the same kind (for import into a fresh database).
    fn sibling(&self) -> TestDb {
        if self.url.starts_with("sqlite:") {
            TestDb::sqlite()
        } else {
            TestDb::postgres()
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `rbac-admin --db URL`, acting as `root`, with no colour and no inherited database.
    pub(crate) fn cmd(&self) -> Command {
        self.as_actor("root")
    }

    pub(crate) fn as_actor(&self, actor: &str) -> Command {
        let mut cmd = Command::cargo_bin("rbac-admin").unwrap();
        cmd.current_dir(self.dir.path())
            .env_remove("RBAC_DATABASE_URL")
            .env_remove("RBAC_LOG")
            .env("NO_COLOR", "1")
            .env("RBAC_ACTOR", actor)
            .args(["--db", &self.url]);
        cmd
    }

    /// Runs a command that must succeed; returns its standard output.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let output = self.cmd().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "rbac-admin {args:?} failed with {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    pub(crate) fn init(&self) {
        self.ok(&["init", "--admin", "root"]);
    }
}

pub(crate) fn fresh_pg_database() -> String {
    rbac_test_support::fresh_postgres_database_blocking("rbac_admin_test")
}

/// Compares `actual` with `tests/snapshots/NAME.txt` (or writes it with `UPDATE_SNAPSHOTS=1`).
fn snapshot(name: &str, actual: &str) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run with UPDATE_SNAPSHOTS=1 to create it",
            file.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "output differs from {} (UPDATE_SNAPSHOTS=1 rewrites it)",
        file.display()
    );
}

/// Asserts that a failed command printed exactly one line, `error: ...`, and no panic.
pub(crate) fn one_error_line(output: &std::process::Output, code: i32, needle: &str) {
    let all = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "stderr: {all}");
    // Progress log lines of a long operation may come first; the error is one line after them.
    let stderr: String = all
        .lines()
        .filter(|l| !l.contains("  INFO "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        stderr.starts_with("error: ") && stderr.ends_with('\n') && stderr.lines().count() == 1,
        "not one error line: {stderr:?}"
    );
    assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A small company's policy built through the CLI, as an admin would.
fn build_session(db: &TestDb) {
    db.init();
    for (name, description) in [
        ("finance.invoices.read", "Read invoices"),
        ("finance.invoices.approve", "Approve invoices"),
        ("finance.payments.create", "Create payments"),
        ("crm.leads.read", "Read leads"),
    ] {
        db.ok(&["perm", "add", name, "-d", description]);
    }
    db.ok(&["tenant", "create", "acme", "-d", "Acme Corp"]);
    db.ok(&["tenant", "create", "globex"]);
    db.ok(&["role", "create", "viewer", "-d", "Reads everything"]);
    db.ok(&["role", "grant", "viewer", "finance.invoices.read"]);
    db.ok(&["role", "grant", "viewer", "crm.*"]);
    db.ok(&["role", "create", "accountant"]);
    db.ok(&["role", "inherit", "accountant", "viewer"]);
    db.ok(&["role", "grant", "accountant", "finance.*"]);
    db.ok(&[
        "role",
        "deny",
        "accountant",
        "finance.invoices.approve",
        "--tenant",
        "acme",
    ]);
    db.ok(&[
        "role",
        "create",
        "acme_auditor",
        "--tenant",
        "acme",
        "-d",
        "Acme's own auditors",
    ]);
    db.ok(&[
        "role",
        "grant",
        "acme_auditor",
        "finance.invoices.*",
        "--tenant",
        "acme",
    ]);
    db.ok(&["user", "assign", "alice", "accountant", "--tenant", "acme"]);
    db.ok(&["user", "assign", "alice", "viewer", "--tenant", "globex"]);
    db.ok(&["user", "assign", "bob", "acme_auditor", "--tenant", "acme"]);
    db.ok(&["user", "assign", "carol", "auditor"]);
}

fn full_admin_session(db: TestDb) {
    build_session(&db);

    // Checks against the database: exit 0 allowed, 2 denied, with the reason.
    db.cmd()
        .args(["check", "alice", "acme", "finance.payments.create"])
        .assert()
        .code(0)
        .stdout("allow\n");
    db.cmd()
        .args(["check", "alice", "acme", "finance.invoices.approve", "--explain"])
        .assert()
        .code(2)
        .stdout(
            "deny: `alice` in tenant `acme`, `finance.invoices.approve`: role `accountant` denies \
             `finance.invoices.approve` (rule scoped to tenant `acme`); a deny wins over every grant\n",
        );
    db.cmd()
        .args(["check", "alice", "globex", "finance.invoices.approve"])
        .assert()
        .code(2);
    // Unknown names are denies, with the reason.
    db.cmd()
        .args([
            "check",
            "alice",
            "initech",
            "finance.invoices.read",
            "--explain",
        ])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("unknown tenant `initech`"));
    db.cmd()
        .args(["check", "nobody", "acme", "finance.nope"])
        .assert()
        .code(2)
        .stdout("deny\n");
    db.cmd()
        .args(["check", "--batch", "-"])
        .write_stdin(
            "alice,acme,finance.invoices.read\nalice,globex,finance.invoices.read\n\
             bob,globex,finance.invoices.read\ncarol,,system.audit.verify\n",
        )
        .assert()
        .code(0)
        .stdout("allow\nallow\ndeny\nallow\n");
    let json = db.ok(&[
        "check",
        "bob",
        "acme",
        "finance.invoices.approve",
        "--format",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["decision"], "allow");
    assert_eq!(value["cause"], "granted");

    // can-i asks about the acting user.
    db.as_actor("carol")
        .args(["can-i", "system.audit.read"])
        .assert()
        .code(0)
        .stdout("yes\n");
    db.as_actor("carol")
        .args(["can-i", "system.roles.manage"])
        .assert()
        .code(2)
        .stdout("no\n");
    db.as_actor("alice")
        .args(["can-i", "finance.payments.create", "--tenant", "acme"])
        .assert()
        .code(0);

    // The text outputs, identical on both databases.
    snapshot(
        "matrix_acme",
        &db.ok(&["matrix", "--tenant", "acme", "--module", "finance"]),
    );
    snapshot(
        "matrix_global_csv",
        &db.ok(&["matrix", "--format", "csv", "--module", "finance"]),
    );
    snapshot(
        "role_list_acme",
        &db.ok(&["role", "list", "--tenant", "acme"]),
    );
    snapshot(
        "role_show_accountant_acme",
        &db.ok(&["role", "show", "accountant", "--tenant", "acme"]),
    );
    snapshot("user_list", &db.ok(&["user", "list"]));
    snapshot("user_show_alice", &db.ok(&["user", "show", "alice"]));
    snapshot("tenant_list", &db.ok(&["tenant", "list"]));
    snapshot(
        "perm_list_finance",
        &db.ok(&["perm", "list", "--module", "finance"]),
    );
    let status = db.ok(&["status"]);
    let status: String = status
        .lines()
        .map(|l| {
            if l.starts_with("database:") {
                "database:       (url)".to_owned()
            } else if l.starts_with("schema version:") {
                "schema version: (latest)".to_owned()
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    snapshot("status", &status);
    let html = db.ok(&["matrix", "--tenant", "acme", "--format", "html"]);
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    assert!(
        !html.contains("<script") && !html.contains("http"),
        "self-contained"
    );
    let matrix: serde_json::Value =
        serde_json::from_str(&db.ok(&["matrix", "--tenant", "acme", "--format", "json"])).unwrap();
    assert_eq!(
        matrix["cells"]["accountant"]["finance.invoices.approve"],
        "deny"
    );
    assert_eq!(
        matrix["cells"]["acme_auditor"]["finance.invoices.approve"],
        "allow"
    );

    // Export, import into a fresh database, compare.
    let exported = db.path("exported.toml");
    db.ok(&["policy", "export", "-o", exported.to_str().unwrap()]);
    let fresh = db.sibling();
    fresh.init();
    let imported = fresh
        .cmd()
        .args(["policy", "import", exported.to_str().unwrap(), "--yes"])
        .output()
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    // Off a terminal, progress is plain log lines.
    let log = String::from_utf8_lossy(&imported.stderr);
    assert!(log.contains("step 4/5: writing to the database"), "{log}");
    assert_eq!(
        fresh.ok(&["policy", "export"]),
        std::fs::read_to_string(&exported).unwrap()
    );
    assert_eq!(
        fresh.ok(&["diff", exported.to_str().unwrap(), "db"]),
        "no subject gains or loses any permission\n"
    );
    for (user, tenant, permission) in [
        ("alice", "acme", "finance.invoices.approve"),
        ("alice", "acme", "finance.payments.create"),
        ("bob", "acme", "finance.invoices.approve"),
        ("bob", "globex", "finance.invoices.read"),
        ("carol", "", "system.audit.read"),
    ] {
        let a = db
            .cmd()
            .args(["check", user, tenant, permission])
            .output()
            .unwrap();
        let b = fresh
            .cmd()
            .args(["check", user, tenant, permission])
            .output()
            .unwrap();
        assert_eq!(
            a.status.code(),
            b.status.code(),
            "{user} {tenant} {permission}"
        );
    }

    // A diff between the database and an edited file names what each subject gains and loses.
    let edited = db.path("edited.toml");
    let text = std::fs::read_to_string(&exported)
        .unwrap()
        .replace("denies = [\"finance.invoices.approve\"]\n", "");
    std::fs::write(&edited, text).unwrap();
    let diff = db.ok(&["diff", "db", edited.to_str().unwrap()]);
    snapshot("diff", &diff);

    // policy test: expectations against the database and a file.
    let expectations = db.path("expected.txt");
    std::fs::write(
        &expectations,
        "# subject tenant permission expected\n\
         alice acme finance.invoices.read allow\n\
         alice acme finance.invoices.approve deny\n\
         carol - system.audit.verify allow\n\
         dave acme finance.invoices.read deny\n",
    )
    .unwrap();
    db.cmd()
        .args(["policy", "test", expectations.to_str().unwrap()])
        .assert()
        .code(0)
        .stdout("ok: 4 expectations, 4 passed, 0 mismatched, 0 malformed lines\n");
    let failing = db
        .cmd()
        .args(["policy", "test", expectations.to_str().unwrap(), "--policy"])
        .arg(&edited)
        .output()
        .unwrap();
    assert_eq!(failing.status.code(), Some(3));
    let report = String::from_utf8(failing.stdout)
        .unwrap()
        .replace(&*expectations.to_string_lossy(), "expected.txt");
    snapshot("policy_test_mismatch", &report);

    // The audit trail names the actor of every change and its chain is intact.
    let audit = db.ok(&["audit", "list", "--format", "json"]);
    let records: Vec<serde_json::Value> = serde_json::from_str(&audit).unwrap();
    assert_eq!(records.len(), 20, "init + 19 changes");
    assert!(records.iter().all(|r| r["actor"] == "root"));
    assert_eq!(records[0]["comment"], "rbac-admin init");
    let by_alice = db.ok(&["audit", "list", "--subject", "alice", "--format", "json"]);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&by_alice)
            .unwrap()
            .len(),
        2
    );
    let jsonl = db.ok(&["audit", "export", "--limit", "3"]);
    assert_eq!(jsonl.lines().count(), 3);
    snapshot("audit_verify", &db.ok(&["audit", "verify"]));

    // Past database versions: import the edited file, then compare the stored versions.
    db.ok(&["policy", "import", edited.to_str().unwrap(), "--yes"]);
    assert_eq!(db.ok(&["diff", "db~1", "db"]), diff);
    assert_eq!(
        db.ok(&["diff", "db@20", "db@21"]),
        diff,
        "version 20 is the status above"
    );
    let back = db.ok(&["diff", "db", "db~1"]);
    assert!(
        back.starts_with("alice\n") && back.contains("    - finance.invoices.approve\n"),
        "{back}"
    );
    assert_eq!(
        db.ok(&["diff", "db~1", exported.to_str().unwrap()]),
        "no subject gains or loses any permission\n"
    );
    db.cmd()
        .args(["diff", "db@99", "db"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "policy version 99 is not available: the store can rebuild versions 0 to 21",
        ));
    db.cmd()
        .args(["diff", "db@x", "db"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("must be a whole number"));
    db.as_actor("alice")
        .args(["diff", "db~1", "db"])
        .assert()
        .code(2);
}

fn every_error_path(db: TestDb) {
    build_session(&db);
    let run = |actor: &str, args: &[&str]| db.as_actor(actor).args(args).output().unwrap();
    let version = || db.ok(&["status", "--format", "json"]);
    db.ok(&["role", "create", "unused"]);
    db.ok(&["role", "create", "layered"]);
    db.ok(&["role", "grant", "layered", "crm.*", "--tenant", "acme"]);
    let before = version();

    // Unknown names: exit 3, with a suggestion.
    one_error_line(
        &run("root", &["role", "grant", "acountant", "crm.*"]),
        3,
        "unknown role `acountant` globally (did you mean `accountant`?)",
    );
    one_error_line(
        &run(
            "root",
            &["user", "assign", "alice", "viewer", "--tenant", "acmee"],
        ),
        3,
        "unknown tenant `acmee` (did you mean `acme`?)",
    );
    one_error_line(
        &run("root", &["user", "show", "alicee"]),
        3,
        "unknown user `alicee` (did you mean `alice`?)",
    );
    // Bad or undeclared permissions.
    one_error_line(
        &run("root", &["role", "grant", "viewer", "Finance.X"]),
        3,
        "bad permission pattern",
    );
    one_error_line(
        &run("root", &["perm", "add", "Finance"]),
        3,
        "bad permission name",
    );
    one_error_line(
        &run("root", &["role", "grant", "viewer", "finance.nope"]),
        3,
        "change rejected, nothing was written: role `viewer`: grant names the undeclared permission `finance.nope`",
    );
    // A cycle is refused by validation.
    one_error_line(
        &run("root", &["role", "inherit", "viewer", "accountant"]),
        3,
        "inheritance cycle",
    );
    // Removing what is not there.
    one_error_line(
        &run("root", &["user", "unassign", "alice", "viewer"]),
        3,
        "assignment of role `viewer` to `alice` does not exist",
    );
    one_error_line(
        &run("root", &["role", "create", "viewer"]),
        3,
        "role `viewer` already exists globally",
    );
    // A user without the permission: exit 2, nothing changes.
    one_error_line(
        &run("alice", &["role", "create", "sneaky"]),
        2,
        "denied: `alice` lacks `system.roles.manage` globally",
    );
    one_error_line(
        &run("carol", &["user", "assign", "carol", "root"]),
        2,
        "denied: `carol` lacks `system.users.manage` globally",
    );
    one_error_line(
        &run("mallory", &["audit", "list"]),
        2,
        "lacks `system.audit.read`",
    );
    one_error_line(
        &run("alice", &["check", "bob", "acme", "finance.invoices.read"]),
        2,
        "lacks `system.policy.check` in tenant `acme`",
    );
    // Destructive commands off a terminal need --yes.
    one_error_line(
        &run("root", &["role", "delete", "viewer"]),
        3,
        "role `viewer` globally is still in use (held by `alice` in `globex`; inherited by `accountant`); unassign and uninherit it first",
    );
    // A global role with rules in a tenant: refused before any confirmation is asked.
    one_error_line(
        &run("root", &["role", "delete", "layered"]),
        3,
        "role `layered` globally is still in use (with rules of its own in `acme` (`rbac-admin role delete layered --tenant acme`)); delete its rules in those tenants first\n",
    );
    one_error_line(
        &run("root", &["role", "delete", "unused"]),
        3,
        "refusing to delete role `unused` globally without confirmation: standard input is not a terminal; pass --yes to confirm",
    );
    one_error_line(
        &run("root", &["tenant", "delete", "globex"]),
        3,
        "pass --yes",
    );
    one_error_line(
        &run("root", &["perm", "remove", "crm.leads.read"]),
        3,
        "pass --yes",
    );
    one_error_line(&run("root", &["policy", "import", ERP]), 3, "pass --yes");
    // The CLI's own permissions gate every command: removing one would lock everyone out.
    one_error_line(
        &run("root", &["perm", "remove", "system.roles.manage", "--yes"]),
        3,
        "one of rbac-admin's own permissions",
    );
    // `perm add` again without `-d` keeps the description (an idempotent script changes
    // nothing).
    let described = |name: &str| {
        let list: serde_json::Value =
            serde_json::from_str(&db.ok(&["perm", "list", "--format", "json"])).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["description"].clone())
    };
    let kept = described("crm.leads.read");
    assert!(kept.is_some());
    let at = version();
    db.ok(&["perm", "add", "crm.leads.read"]);
    assert_eq!(described("crm.leads.read"), kept);
    assert_eq!(version(), at, "nothing changed");
    // Decisions have no actor: `--by` with `--decisions` is refused, not ignored.
    let refused = run("root", &["audit", "export", "--decisions", "--by", "alice"]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--by"));
    // An actor given but empty is no actor, not the login user (here `root`).
    one_error_line(
        &db.as_actor("")
            .env("USER", "root")
            .args(["role", "create", "anonymous"])
            .output()
            .unwrap(),
        3,
        "no acting user",
    );
    one_error_line(
        &db.cmd()
            .env("USER", "root")
            .args(["--actor", "", "role", "create", "anonymous"])
            .output()
            .unwrap(),
        3,
        "no acting user",
    );
    // A role still in use cannot be deleted, even with --yes.
    one_error_line(
        &run("root", &["role", "delete", "viewer", "--yes"]),
        3,
        "is still in use",
    );
    // Formats a command does not print.
    one_error_line(
        &run("root", &["role", "list", "--format", "csv"]),
        3,
        "`role list` cannot print --format csv; use one of: text, json",
    );
    one_error_line(
        &run(
            "root",
            &["role", "grant", "viewer", "crm.*", "--format", "html"],
        ),
        3,
        "this command cannot print --format html; use text or json",
    );
    // Bad times.
    one_error_line(
        &run("root", &["audit", "list", "--since", "yesterday"]),
        3,
        "bad time for --since",
    );
    // init twice.
    one_error_line(
        &run("root", &["init", "--admin", "root"]),
        3,
        "is already initialised",
    );
    // An import that would lock the importer out.
    let lockout = db.path("lockout.toml");
    std::fs::write(&lockout, "[permissions.a]\nb = \"B\"\n").unwrap();
    one_error_line(
        &run(
            "root",
            &["policy", "import", lockout.to_str().unwrap(), "--yes"],
        ),
        3,
        "would lose `system.policy.import`",
    );
    // An invalid file.
    let invalid = db.path("invalid.toml");
    std::fs::write(&invalid, "[roles.x]\ngrants = [\"nope.read\"]\n").unwrap();
    let out = run(
        "root",
        &["policy", "import", invalid.to_str().unwrap(), "--yes"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("undeclared permission `nope.read`"));
    // None of the above changed anything.
    assert_eq!(version(), before);

    // Changes report in JSON too.
    let granted: serde_json::Value = serde_json::from_str(&db.ok(&[
        "role",
        "grant",
        "viewer",
        "finance.payments.create",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(granted["changed"], true);
    assert_eq!(
        granted["message"],
        format!(
            "role `viewer` now grants `finance.payments.create` globally (policy version {})",
            granted["version"]
        )
    );
    // A destructive command with --yes goes ahead (once the role is no longer held).
    db.ok(&[
        "user",
        "unassign",
        "bob",
        "acme_auditor",
        "--tenant",
        "acme",
    ]);
    db.ok(&[
        "role",
        "delete",
        "acme_auditor",
        "--tenant",
        "acme",
        "--yes",
    ]);
    db.ok(&["tenant", "delete", "globex", "--yes"]);
    assert!(!db.ok(&["tenant", "list"]).contains("globex"));

    // An edited audit record is found by verify (exit 3) and reported by status.
    tamper(&db.url);
    let verify = run("root", &["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("chain BROKEN at record 3"),
        "{verify:?}"
    );
    assert!(
        db.ok(&["status"])
            .contains("audit chain:    BROKEN at change record 3")
    );
}

/// Edits the third audit record behind the store's back.
fn tamper(url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        sqlx::query("UPDATE rbac_audit SET actor = 'someone-else' WHERE id = 3")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
}

on_both_databases!(full_admin_session, every_error_path);

#[test]
fn a_missing_or_unreachable_database_is_one_clear_line() {
    let db = TestDb::sqlite();
    one_error_line(
        &db.cmd().arg("status").output().unwrap(),
        1,
        "run `rbac-admin init --admin NAME` to create one",
    );
    assert!(
        !db.path("rbac.db").exists(),
        "a read must not create a database"
    );
    one_error_line(
        &db.cmd()
            .args(["--db", "postgres://nobody@127.0.0.1:9/none", "status"])
            .output()
            .unwrap(),
        1,
        "cannot connect to the policy database `postgres://nobody@127.0.0.1:9/none`",
    );
    one_error_line(
        &db.cmd()
            .args(["--db", "mysql://x/y", "role", "list"])
            .output()
            .unwrap(),
        3,
        "unsupported database URL",
    );
    // Another application's database: refused before anything is written to it (no policy
    // tables created, the journal mode left as it was), for every command but `init`.
    let other = db.path("other-app.db");
    {
        let conn = rusqlite::Connection::open(&other).unwrap();
        conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY);")
            .unwrap();
    }
    let before = std::fs::read(&other).unwrap();
    let url = format!("sqlite://{}", other.display());
    for args in [&["status"][..], &["perm", "list"], &["role", "list"]] {
        one_error_line(
            &db.cmd().args(["--db", &url]).args(args).output().unwrap(),
            1,
            "holds no policy database",
        );
    }
    assert_eq!(
        std::fs::read(&other).unwrap(),
        before,
        "nothing was written"
    );
    let tables: Vec<String> = {
        let conn = rusqlite::Connection::open(&other).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(tables, ["invoices"]);
    // The default database is `rbac.db` in the working directory; RBAC_DATABASE_URL overrides it.
    let mut cmd = Command::cargo_bin("rbac-admin").unwrap();
    cmd.current_dir(db.dir.path())
        .env_remove("RBAC_DATABASE_URL")
        .env("RBAC_ACTOR", "root")
        .args(["init", "--admin", "root"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "initialised `sqlite://rbac.db`",
        ));
    assert!(db.path("rbac.db").exists());
    let mut cmd = Command::cargo_bin("rbac-admin").unwrap();
    cmd.current_dir(std::env::temp_dir())
        .env(
            "RBAC_DATABASE_URL",
            format!("sqlite://{}", db.path("rbac.db").display()),
        )
        .env("RBAC_ACTOR", "root")
        .args(["can-i", "system.roles.manage"])
        .assert()
        .code(0)
        .stdout("yes\n");
}

#[test]
fn an_uninitialised_database_says_to_run_init() {
    let db = TestDb::sqlite();
    // A database created by something else (here: the store, via a failed-permission path is
    // impossible), so create an empty one with the core store's migrations.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        rbac_core::store::Store::connect(&db.url).await.unwrap();
    });
    one_error_line(
        &db.cmd().args(["role", "list"]).output().unwrap(),
        1,
        "has no administrator yet: run `rbac-admin init --admin NAME` first",
    );
}

#[test]
fn the_actor_comes_from_the_flag_or_the_environment_and_is_audited() {
    let db = TestDb::sqlite();
    db.init();
    db.ok(&["user", "assign", "sam", "security_admin"]);
    db.as_actor("nobody")
        .args(["--actor", "sam", "--comment", "ticket 42"])
        .args(["perm", "add", "crm.leads.read"])
        .assert()
        .success();
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&db.ok(&["audit", "list", "--by", "sam", "--format", "json"]))
            .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["action"], "permission.declare");
    assert_eq!(records[0]["comment"], "ticket 42");
    // No actor anywhere: a clear error, not a guess.
    let mut cmd = Command::cargo_bin("rbac-admin").unwrap();
    let out = cmd
        .current_dir(db.dir.path())
        .env_remove("RBAC_ACTOR")
        .env_remove("USER")
        .env_remove("USERNAME")
        .args(["--db", &db.url, "role", "list"])
        .output()
        .unwrap();
    one_error_line(
        &out,
        3,
        "no acting user: pass --actor NAME or set RBAC_ACTOR",
    );
}

#[test]
fn casbin_export_round_trips_through_check() {
    let db = TestDb::sqlite();
    build_session(&db);
    let dir = db.path("casbin");
    db.ok(&[
        "policy",
        "export",
        "--as",
        "casbin",
        "-o",
        dir.to_str().unwrap(),
    ]);
    let model = dir.join("model.conf");
    let policy = dir.join("policy.csv");
    for (user, tenant, permission, code) in [
        ("alice", "acme", "finance.payments.create", 0),
        ("alice", "acme", "finance.invoices.approve", 2),
        ("bob", "acme", "finance.invoices.approve", 0),
    ] {
        Command::cargo_bin("rbac-admin")
            .unwrap()
            .args(["check", "--casbin-model"])
            .arg(&model)
            .arg("--casbin-policy")
            .arg(&policy)
            .args([user, tenant, permission])
            .assert()
            .code(code);
    }
    // And a casbin pair imports into the database.
    let fresh = db.sibling();
    fresh.init();
    fresh
        .cmd()
        .args(["policy", "import", "--yes", "--force", "--casbin-model"])
        .arg(&model)
        .arg("--casbin-policy")
        .arg(&policy)
        .assert()
        .success();
    fresh
        .cmd()
        .args(["--actor", "root", "role", "list", "--format", "json"])
        .assert()
        .code(2);
}

#[test]
fn completions_and_the_man_page_come_from_the_same_definitions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        Command::cargo_bin("rbac-admin")
            .unwrap()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("can-i"));
    }
    Command::cargo_bin("rbac-admin")
        .unwrap()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH rbac-admin 1"))
        .stdout(predicate::str::contains("RBAC_DATABASE_URL"));
    let dir = tempfile::tempdir().unwrap();
    Command::cargo_bin("rbac-admin")
        .unwrap()
        .args(["man", "--out-dir"])
        .arg(dir.path())
        .assert()
        .success();
    assert!(dir.path().join("rbac-admin-role-grant.1").exists());
    // A closed pipe is not a panic.
    Command::cargo_bin("rbac-admin")
        .unwrap()
        .args(["completions", "bash"])
        .assert()
        .stderr(predicate::str::contains("panicked").not());
}

/// Runs `rbac-admin ARGS` on a pseudo-terminal (util-linux `script`), typing `input`.
fn on_a_terminal(db: &TestDb, args: &str, input: &str) -> (Option<i32>, String) {
    on_a_terminal_with(db, args, input, false)
}

fn on_a_terminal_with(
    db: &TestDb,
    args: &str,
    input: &str,
    no_color: bool,
) -> (Option<i32>, String) {
    use std::io::Write as _;
    let bin = assert_cmd::cargo::cargo_bin("rbac-admin");
    let line = format!("{} --db {} {args}", bin.display(), db.url);
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(db.dir.path())
        .env("RBAC_ACTOR", "root")
        .env("NO_COLOR", if no_color { "1" } else { "" })
        .env_remove("RBAC_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs commands on a pseudo-terminal");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_terminal_is_asked_before_destruction_and_shown_a_progress_bar() {
    let db = TestDb::sqlite();
    db.init();
    db.ok(&["role", "create", "temp"]);
    let (code, shown) = on_a_terminal(&db, "role delete temp", "n\n");
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("delete role `temp` globally? [y/N]"),
        "{shown}"
    );
    assert!(shown.contains("aborted: nothing was changed"), "{shown}");
    assert!(db.ok(&["role", "list"]).contains("temp"));
    let (code, shown) = on_a_terminal(&db, "role delete temp", "y\n");
    assert_eq!(code, Some(0), "{shown}");
    assert!(!db.ok(&["role", "list"]).contains("temp"));
    // Colour on a terminal, for the verdict.
    let (code, shown) = on_a_terminal(&db, "check root '' system.roles.read", "");
    assert_eq!(code, Some(0));
    assert!(shown.contains("\x1b[32mallow\x1b[0m"), "{shown:?}");
    // NO_COLOR turns it off.
    let (_, shown) = on_a_terminal_with(&db, "check root '' system.roles.read", "", true);
    assert!(
        shown.contains("allow") && !shown.contains('\x1b'),
        "{shown:?}"
    );

    let exported = db.path("exported.toml");
    db.ok(&["policy", "export", "-o", exported.to_str().unwrap()]);
    let (code, shown) = on_a_terminal(&db, &format!("policy import {}", exported.display()), "y\n");
    assert_eq!(code, Some(0), "{shown}");
    // A bar with position, not log lines.
    assert!(
        shown.contains("importing") && shown.contains("/5"),
        "{shown}"
    );
    assert!(!shown.contains(" INFO "), "{shown}");
}

#[test]
fn status_reports_the_last_successful_backup_from_the_backup_log() {
    let db = TestDb::sqlite();
    db.init();
    assert!(db.ok(&["status"]).contains("last backup:    none\n"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
        for sql in [
            "CREATE TABLE rbac_backup_log (id INTEGER PRIMARY KEY AUTOINCREMENT, operation TEXT NOT NULL, \
             backup_id TEXT, scope TEXT NOT NULL, status TEXT NOT NULL, actor TEXT NOT NULL, \
             started_at TEXT NOT NULL, finished_at TEXT, size INTEGER, rows INTEGER, duration_ms INTEGER, error TEXT)",
            "INSERT INTO rbac_backup_log (operation, scope, status, actor, started_at, finished_at) \
             VALUES ('create', 'all', 'success', 'root', '2026-11-20T10:00:00+00:00', '2026-11-20T10:00:05+00:00')",
            "INSERT INTO rbac_backup_log (operation, scope, status, actor, started_at, finished_at) \
             VALUES ('create', 'all', 'failed', 'root', '2026-11-21T10:00:00+00:00', '2026-11-21T10:00:01+00:00')",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    });
    assert!(
        db.ok(&["status"])
            .contains("last backup:    2026-11-20T10:00:05+00:00\n")
    );
}
