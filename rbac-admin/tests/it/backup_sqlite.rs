//! Backup and restore on real SQLite files: round trips, scopes, dry runs, incrementals,
//! point in time, gating and the log.

use crate::backup_support;

use backup_support::*;
use rbac_admin::backup::{
    Actor, BackupConfig, BackupKind, BackupService, CreateRequest, FailPoint, LogQuery, NoProgress,
    RestoreRequest, Scope, Selector, Status,
};
use rusqlite::OptionalExtension;
use rusqlite::types::Value;

fn full(scope: Scope) -> CreateRequest {
    CreateRequest {
        kind: BackupKind::Full,
        scope,
    }
}

fn restore_all(
    id: &rbac_admin::backup::BackupId,
    to: Option<String>,
    dry_run: bool,
) -> RestoreRequest {
    RestoreRequest {
        to,
        dry_run,
        ..restore_of(id)
    }
}

#[tokio::test]
async fn full_backup_restores_every_value_exactly_and_omits_secrets() {
    let env = Env::new(300);
    let ops = env.ops();
    let m = ops.full().await;
    assert_eq!(m.kind, BackupKind::Full);
    assert_eq!(
        m.tables.iter().find(|t| t.name == "invoices").unwrap().rows,
        600
    );
    let users = m.tables.iter().find(|t| t.name == "users").unwrap();
    assert_eq!(users.omitted_columns, vec!["password_hash".to_string()]);
    assert!(m.tables.iter().all(|t| !t.name.starts_with("rbac_backup_")));

    // The secret never reaches storage: no chunk contains it (chunks are only compressed).
    let (copy, url) = env.url("copy.db");
    let report = ops.restore(&restore_all(&m.id, Some(url), false)).await;
    assert!(!report.dry_run);
    let original = dump(&env.db);
    let restored = dump(&copy);
    for ((t1, rows1), (t2, rows2)) in original.iter().zip(&restored) {
        assert_eq!(t1, t2);
        if t1 == "users" {
            assert_eq!(rows1.len(), rows2.len());
            for (a, b) in rows1.iter().zip(rows2) {
                assert_eq!(a[..3], b[..3]);
                assert_eq!(b[3], Value::Null, "password hashes are never backed up");
            }
        } else {
            assert_eq!(rows1, rows2, "table {t1}");
        }
    }
    // REAL values round-trip bit for bit, including in an untyped column.
    let settings = table(&copy, "settings");
    assert!(settings.contains(&vec![
        Value::Text("pi".into()),
        Value::Real(std::f64::consts::PI)
    ]));
    // Text that is not UTF-8 comes back byte for byte, still as text.
    assert!(settings.contains(&vec![
        Value::Text("raw".into()),
        Value::Text("raw:61ff62".into())
    ]));
}

#[tokio::test]
async fn restore_in_place_brings_back_the_snapshot_and_keeps_secrets() {
    let env = Env::new(50);
    let ops = env.ops();
    let before = dump(&env.db);
    let m = ops.full().await;
    exec(&env.db, "DELETE FROM invoices WHERE id % 3 = 0; UPDATE accounts SET balance = 0;
                   INSERT INTO settings VALUES ('new', 1); UPDATE users SET email = 'x' WHERE id = 1;");
    let report = ops.restore(&restore_all(&m.id, None, false)).await;
    assert!(
        report
            .tables
            .iter()
            .any(|t| t.table == "settings" && t.delete == 5)
    );
    assert_eq!(
        dump(&env.db),
        before,
        "secrets kept, everything else as in the backup"
    );
}

#[tokio::test]
async fn dry_run_reports_and_leaves_the_file_byte_identical() {
    let env = Env::new(40);
    let ops = env.ops();
    let m = ops.full().await;
    exec(
        &env.db,
        "DELETE FROM invoices WHERE id <= 5; UPDATE accounts SET balance = 7 WHERE code = '1000';
                   INSERT INTO settings VALUES ('extra', 'x'), ('extra2', 'y');
                   PRAGMA wal_checkpoint(TRUNCATE);",
    );
    let hash = file_hash(&env.db);
    let report = ops.restore(&restore_all(&m.id, None, true)).await;
    assert!(report.dry_run);
    let get = |name: &str| {
        report
            .tables
            .iter()
            .find(|t| t.table == name)
            .unwrap()
            .clone()
    };
    assert_eq!(get("invoices").insert, 5);
    assert_eq!(get("invoices").unchanged, 75);
    assert_eq!(get("accounts").replace, 2);
    assert_eq!(get("accounts").unchanged, 4);
    assert_eq!(get("settings").delete, 2);
    assert_eq!(
        get("users").replace,
        0,
        "omitted secret columns do not count as changes"
    );
    assert_eq!(file_hash(&env.db), hash, "a dry run changes nothing");
    let wal = env.db.with_extension("db-wal");
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
}

#[tokio::test]
async fn tenant_restore_never_touches_other_tenants() {
    let env = Env::new(30);
    let engine = engine();
    let alice = Actor::new("alice", &engine);
    let service = env.service();
    let m = service
        .create(&full(Scope::Tenant("acme".into())), &alice, &NoProgress)
        .await
        .unwrap();
    assert_eq!(m.scope, Scope::Tenant("acme".into()));
    assert!(
        m.tables.iter().all(|t| t.name != "settings"),
        "untenanted tables are not in a tenant backup"
    );
    assert_eq!(
        m.tables.iter().find(|t| t.name == "tenants").unwrap().rows,
        1
    );
    assert_eq!(
        m.tables.iter().find(|t| t.name == "invoices").unwrap().rows,
        30
    );

    exec(
        &env.db,
        "DELETE FROM invoices; UPDATE accounts SET balance = 1; DELETE FROM settings;",
    );
    let globex_after_damage: Vec<_> = table(&env.db, "accounts")
        .into_iter()
        .filter(|r| r[0] == Value::Text("globex".into()))
        .collect();
    let req = RestoreRequest {
        tenant: Some("acme".into()),
        ..restore_all(&m.id, None, false)
    };
    service.restore(&req, &alice, &NoProgress).await.unwrap();
    let invoices = table(&env.db, "invoices");
    assert_eq!(invoices.len(), 30);
    assert!(invoices.iter().all(|r| r[1] == Value::Text("acme".into())));
    let accounts = table(&env.db, "accounts");
    let globex: Vec<_> = accounts
        .iter()
        .filter(|r| r[0] == Value::Text("globex".into()))
        .cloned()
        .collect();
    assert_eq!(globex, globex_after_damage, "globex untouched");
    assert!(
        accounts
            .iter()
            .filter(|r| r[0] == Value::Text("acme".into()))
            .all(|r| r[2] == Value::Integer(1000))
    );
    assert!(
        table(&env.db, "settings").is_empty(),
        "untenanted tables untouched"
    );
}

#[tokio::test]
async fn tenant_restore_from_a_full_backup_and_module_scopes() {
    let env = Env::new(20);
    let ops = env.ops();
    let all = ops.full().await;
    let finance = ops.create(&full("modules:finance".parse().unwrap())).await;
    let names: Vec<_> = finance.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["accounts", "invoices"]);

    exec(
        &env.db,
        "UPDATE accounts SET balance = 5; UPDATE users SET email = 'changed';",
    );
    let req = RestoreRequest {
        tenant: Some("globex".into()),
        modules: vec!["finance".into()],
        ..restore_all(&all.id, None, false)
    };
    ops.restore(&req).await;
    for r in table(&env.db, "accounts") {
        let expect = if r[0] == Value::Text("globex".into()) {
            1000
        } else {
            5
        };
        assert_eq!(r[2], Value::Integer(expect));
    }
    assert!(
        table(&env.db, "users")
            .iter()
            .all(|r| r[2] == Value::Text("changed".into())),
        "not in the modules"
    );
}

#[tokio::test]
async fn incremental_chains_restore_exactly_including_deletes() {
    let env = Env::new(100);
    let ops = env.ops();
    let f = ops.full().await;
    exec(
        &env.db,
        "UPDATE invoices SET amount = -1 WHERE id = 3; DELETE FROM invoices WHERE id = 4;
                   INSERT INTO invoices (tenant_id, amount) VALUES ('acme', 42.5);
                   UPDATE accounts SET code = '9999' WHERE tenant_id = 'acme' AND code = '1000';",
    );
    let inc = CreateRequest {
        kind: BackupKind::Incremental,
        scope: Scope::All,
    };
    let i1 = ops.create(&inc).await;
    assert_eq!(i1.parent.as_ref(), Some(&f.id));
    let inv = i1.tables.iter().find(|t| t.name == "invoices").unwrap();
    assert_eq!((inv.rows, inv.deleted), (2, 1));
    let acc = i1.tables.iter().find(|t| t.name == "accounts").unwrap();
    assert_eq!(
        (acc.rows, acc.deleted),
        (1, 1),
        "a key change is a delete and an insert"
    );
    assert!(i1.size() < f.size() / 4);
    // The full backup cannot go while the incremental needs it; the refusal is logged.
    let err = ops.service.delete(&ops.actor(), &f.id).await.unwrap_err();
    assert!(err.to_string().contains("delete those first"), "{err}");
    let log = ops
        .service
        .logs(&ops.actor(), &LogQuery::default())
        .await
        .unwrap();
    assert!(
        log.iter().any(|e| e.operation == "delete"
            && e.backup_id.as_deref() == Some(f.id.as_str())
            && e.status == Status::Failed
            && e.error.as_deref() == Some(err.to_string().as_str())),
        "{log:?}"
    );
    let snapshot1 = dump(&env.db);

    exec(
        &env.db,
        "DELETE FROM invoices WHERE tenant_id = 'globex' AND id % 2 = 0; INSERT INTO settings VALUES ('k', x'00ff');",
    );
    let i2 = ops.create(&inc).await;
    assert_eq!(i2.parent.as_ref(), Some(&i1.id));
    let snapshot2 = dump(&env.db);

    exec(&env.db, "DELETE FROM invoices; DELETE FROM accounts;");
    let report = ops.restore(&restore_all(&i1.id, None, false)).await;
    assert_eq!(report.chain, vec![f.id.clone(), i1.id.clone()]);
    assert_eq!(dump(&env.db), snapshot1);
    let (copy, url) = env.url("chain.db");
    ops.restore(&restore_all(&i2.id, Some(url), false)).await;
    let copied: Vec<_> = dump(&copy)
        .into_iter()
        .filter(|(t, _)| t != "users")
        .collect();
    let expected: Vec<_> = snapshot2
        .into_iter()
        .filter(|(t, _)| t != "users")
        .collect();
    assert_eq!(copied, expected);
}

#[tokio::test]
async fn point_in_time_picks_the_latest_backup_at_or_before() {
    let env = Env::new(10);
    let ops = env.ops();
    let first = ops.full().await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    exec(&env.db, "DELETE FROM invoices WHERE id = 1;");
    let second = ops.full().await;
    let at = |t| RestoreRequest {
        from: Selector::At(t),
        ..restore_all(&first.id, None, true)
    };
    let r = ops.restore(&at(first.finished_at)).await;
    assert_eq!(r.chain, vec![first.id.clone()]);
    let r = ops.restore(&at(chrono::Utc::now())).await;
    assert_eq!(r.chain, vec![second.id.clone()]);
    let early = first.started_at - chrono::Duration::hours(1);
    let err = ops
        .service
        .restore(&at(early), &ops.actor(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no complete backup at or before"),
        "{err}"
    );
}

#[tokio::test]
async fn permissions_gate_every_operation_and_denials_are_logged() {
    let env = Env::new(5);
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let alice = Actor::new("alice", &engine);
    let auditor = Actor::new("auditor", &engine);
    let nobody = Actor::new("mallory", &engine);
    let service = env.service();

    // A tenant reader whose tenant has no backup yet sees an empty list (not a denial);
    // a subject who may read nowhere is denied.
    assert_eq!(service.list(&alice).await.unwrap(), []);
    assert!(service.list(&nobody).await.unwrap_err().is_denied());
    assert!(
        service
            .logs(&nobody, &LogQuery::default())
            .await
            .unwrap_err()
            .is_denied()
    );

    for (actor, scope) in [
        (&alice, Scope::All),
        (&alice, Scope::Tenant("globex".into())),
        (&nobody, Scope::All),
        (&auditor, Scope::All),
    ] {
        let err = service
            .create(&full(scope), actor, &NoProgress)
            .await
            .unwrap_err();
        assert!(err.is_denied(), "{err}");
    }
    let acme = service
        .create(&full(Scope::Tenant("acme".into())), &alice, &NoProgress)
        .await
        .unwrap();
    let all = service
        .create(&full(Scope::All), &ops, &NoProgress)
        .await
        .unwrap();

    // alice sees only her tenant's backups; the auditor sees all, may not restore or delete.
    let listed: Vec<_> = service
        .list(&alice)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, vec![acme.id.clone()]);
    assert_eq!(service.list(&auditor).await.unwrap().len(), 2);
    assert!(service.list(&nobody).await.unwrap_err().is_denied());
    assert!(service.show(&alice, &all.id).await.unwrap_err().is_denied());
    assert!(
        service
            .restore(&restore_all(&all.id, None, true), &auditor, &NoProgress)
            .await
            .unwrap_err()
            .is_denied()
    );
    assert!(
        service
            .restore(&restore_all(&all.id, None, true), &alice, &NoProgress)
            .await
            .unwrap_err()
            .is_denied()
    );
    let own_tenant = RestoreRequest {
        tenant: Some("acme".into()),
        ..restore_all(&all.id, None, true)
    };
    service
        .restore(&own_tenant, &alice, &NoProgress)
        .await
        .unwrap();
    assert!(
        service
            .delete(&alice, &acme.id)
            .await
            .unwrap_err()
            .is_denied()
    );
    assert!(
        service
            .delete(&auditor, &acme.id)
            .await
            .unwrap_err()
            .is_denied()
    );
    let mut sink = Vec::new();
    assert!(
        service
            .download(&alice, &acme.id, &mut sink)
            .await
            .unwrap_err()
            .is_denied()
    );
    service.delete(&ops, &acme.id).await.unwrap();

    let denied = service
        .logs(
            &ops,
            &LogQuery {
                status: Some(Status::Denied),
                ..LogQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(denied.len() >= 8, "{denied:?}");
    assert!(
        denied
            .iter()
            .any(|e| e.actor == "mallory" && e.operation == "create")
    );
    assert!(
        denied
            .iter()
            .all(|e| e.error.as_deref().unwrap_or("").contains("denied"))
    );
    let ok = service
        .logs(
            &ops,
            &LogQuery {
                operation: Some("create".into()),
                status: Some(Status::Success),
                ..LogQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ok.len(), 2);
    assert!(
        ok.iter()
            .all(|e| e.rows.unwrap_or(0) > 0 && e.size.unwrap_or(0) > 0 && e.finished_at.is_some())
    );

    // alice's own rows, however many rows of other scopes are newer: the limit counts hers.
    for _ in 0..3 {
        service
            .create(&full(Scope::All), &ops, &NoProgress)
            .await
            .unwrap();
    }
    let hers = service
        .logs(
            &alice,
            &LogQuery {
                operation: Some("create".into()),
                limit: Some(2),
                ..LogQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(!hers.is_empty(), "alice's create of acme is in the log");
    assert!(hers.iter().all(|e| e.scope == "tenant:acme"), "{hers:?}");
}

#[tokio::test]
async fn download_is_one_tar_archive_of_the_stored_objects() {
    let env = Env::new(20);
    let ops = env.ops();
    let m = ops.full().await;
    let mut archive = Vec::new();
    ops.service
        .download(&ops.actor(), &m.id, &mut archive)
        .await
        .unwrap();
    let mut tar = tar::Archive::new(&archive[..]);
    let names: Vec<String> = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names.len(), m.chunks.len() + 1);
    assert!(names.contains(&format!("{}/manifest.json", m.id)));
}

#[tokio::test]
async fn deep_verify_restores_into_scratch_and_compares() {
    let env = Env::new(200);
    let ops = env.ops();
    let m = ops.full().await;
    let r = ops.verify(&m.id, true).await;
    assert!(r.deep);
    assert_eq!(r.chunks, m.chunks.len());
    assert_eq!(r.records, m.rows());
}

#[tokio::test]
async fn not_null_secret_columns_restore_into_an_empty_database() {
    let env = Env::new(5);
    // Secrets declared NOT NULL without a default, of several types, and one with a default.
    exec(
        &env.db,
        "CREATE TABLE api_keys (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, label TEXT,
                                key_hash TEXT NOT NULL, key_salt BLOB NOT NULL,
                                key_rounds INTEGER NOT NULL, key_kind TEXT NOT NULL DEFAULT 'v1');
         INSERT INTO api_keys VALUES (1, 'acme', 'ci', 'h1', x'01', 10, 'v2'),
                                     (2, 'globex', NULL, 'h2', x'02', 12, 'v2');",
    );
    let config = format!(
        "{}\n",
        env.config_text("").replace(
            "secret_columns = [\"users.password_hash\"]",
            "secret_columns = [\"users.password_hash\", \"api_keys.key_hash\", \"api_keys.key_salt\", \"api_keys.key_rounds\", \"api_keys.key_kind\"]",
        )
    );
    let service = rbac_admin::backup::BackupService::open(
        rbac_admin::backup::BackupConfig::from_toml_str(&config).unwrap(),
    )
    .unwrap();
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let m = service
        .create(&full(Scope::All), &ops, &NoProgress)
        .await
        .unwrap();
    let keys = m.tables.iter().find(|t| t.name == "api_keys").unwrap();
    assert_eq!(keys.omitted_columns.len(), 4);

    // Into an empty database: the rows come back, the secrets as empty values (or the
    // column's default), never the originals.
    let (copy, url) = env.url("empty.db");
    service
        .restore(&restore_all(&m.id, Some(url), false), &ops, &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        table(&copy, "api_keys"),
        vec![
            vec![
                Value::Integer(1),
                Value::Text("acme".into()),
                Value::Text("ci".into()),
                Value::Text(String::new()),
                Value::Blob(Vec::new()),
                Value::Integer(0),
                Value::Text("v1".into()),
            ],
            vec![
                Value::Integer(2),
                Value::Text("globex".into()),
                Value::Null,
                Value::Text(String::new()),
                Value::Blob(Vec::new()),
                Value::Integer(0),
                Value::Text("v1".into()),
            ],
        ]
    );

    // In place, existing rows keep their secrets and a deleted row comes back with empty ones.
    exec(
        &env.db,
        "DELETE FROM api_keys WHERE id = 2; UPDATE api_keys SET label = 'changed';",
    );
    service
        .restore(&restore_all(&m.id, None, false), &ops, &NoProgress)
        .await
        .unwrap();
    let rows = table(&env.db, "api_keys");
    assert_eq!(rows[0][2], Value::Text("ci".into()));
    assert_eq!(
        rows[0][3..],
        [
            Value::Text("h1".into()),
            Value::Blob(vec![1]),
            Value::Integer(10),
            Value::Text("v2".into())
        ]
    );
    assert_eq!(rows[1][3], Value::Text(String::new()));
}

#[tokio::test]
async fn latest_picks_the_newest_backup_that_holds_what_is_restored() {
    let env = Env::new(20);
    let ops = env.ops();
    let all = ops.full().await;
    let finance = ops
        .create(&full(Scope::Modules(vec!["finance".into()])))
        .await;
    let acme = ops.create(&full(Scope::Tenant("acme".into()))).await;
    let latest = |tables: &[&str], modules: &[&str], tenant: Option<&str>| RestoreRequest {
        from: Selector::Latest,
        tables: tables.iter().map(|t| (*t).to_owned()).collect(),
        modules: modules.iter().map(|m| (*m).to_owned()).collect(),
        tenant: tenant.map(str::to_owned),
        to: None,
        dry_run: true,
    };
    for (request, expected) in [
        (latest(&[], &[], None), &all.id),
        (latest(&[], &["finance"], None), &finance.id),
        (latest(&["invoices"], &[], None), &finance.id),
        (latest(&["users"], &[], None), &all.id),
        (latest(&[], &[], Some("acme")), &acme.id),
        (latest(&[], &[], Some("globex")), &all.id),
    ] {
        let report = ops.restore(&request).await;
        assert_eq!(
            report.chain.last(),
            Some(expected),
            "{:?} {:?} {:?}",
            request.tables,
            request.modules,
            request.tenant
        );
    }
}

fn change_log_rows(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(ROW_CHANGES, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn the_change_log_is_cut_below_every_scopes_newest_backup() {
    let env = Env::new(20);
    let ops = env.ops();
    let incremental = |scope: Scope| CreateRequest {
        kind: BackupKind::Incremental,
        scope,
    };
    let acme = || Scope::Tenant("acme".into());
    ops.full().await;
    ops.create(&full(acme())).await;
    exec(
        &env.db,
        "UPDATE invoices SET note = 'v2' WHERE id <= 5; DELETE FROM invoices WHERE id = 30;",
    );
    assert_eq!(change_log_rows(&env.db), 6);
    // The `all` chain moves on; the acme chain still needs the changes after its backup.
    ops.create(&incremental(Scope::All)).await;
    assert_eq!(
        change_log_rows(&env.db),
        6,
        "acme's head has not read them yet"
    );
    let acme_inc = ops.create(&incremental(acme())).await;
    assert_eq!(
        acme_inc
            .tables
            .iter()
            .find(|t| t.name == "invoices")
            .unwrap()
            .rows,
        5
    );
    assert_eq!(change_log_rows(&env.db), 0, "every head has read them");

    // Incrementals go on after a cut, and the chain still restores exactly.
    exec(&env.db, "UPDATE invoices SET amount = 1.5 WHERE id = 2;");
    let next = ops.create(&incremental(Scope::All)).await;
    assert_eq!(next.rows(), 1);
    // (Users are left out: their password hashes are secret, never in a backup.)
    let without_users = |p: &std::path::Path| {
        let mut d = dump(p);
        d.retain(|(t, _)| t != "users");
        d
    };
    let snapshot = without_users(&env.db);
    let (copy, url) = env.url("chain.db");
    ops.restore(&restore_all(&next.id, Some(url), false)).await;
    assert_eq!(without_users(&copy), snapshot);

    // Deleting the newest backup by hand leaves an older parent whose changes were cut: the
    // next incremental refuses instead of missing them, and a full backup starts over.
    exec(&env.db, "UPDATE invoices SET amount = 2.5 WHERE id = 3;");
    let newest = ops.create(&incremental(Scope::All)).await;
    ops.create(&incremental(acme())).await;
    assert_eq!(change_log_rows(&env.db), 0);
    ops.service.delete(&ops.actor(), &newest.id).await.unwrap();
    let err = ops
        .service
        .create(&incremental(Scope::All), &ops.actor(), &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("make a full backup"), "{err}");
    ops.full().await;
    ops.create(&incremental(Scope::All)).await;
}

/// A tenant restore of a chain whose full backup holds a row that has since moved to another
/// tenant under the same key: the full step leaves that key to the later step, so the chain
/// restores (before, the full step collided with the other tenant's row).
#[tokio::test]
async fn a_tenant_chain_restores_after_a_row_moved_to_another_tenant() {
    let env = Env::new(30);
    let ops = env.ops();
    let acme = || Scope::Tenant("acme".into());
    let incremental = |scope| CreateRequest {
        kind: BackupKind::Incremental,
        scope,
    };
    let all_full = ops.full().await;
    ops.create(&full(acme())).await;
    exec(
        &env.db,
        "UPDATE invoices SET tenant_id = 'globex' WHERE id = 1;
         UPDATE invoices SET note = 'changed' WHERE id = 2;",
    );
    let acme_chain = ops.create(&incremental(acme())).await;
    let all_chain = ops.create(&incremental(Scope::All)).await;
    assert_eq!(all_chain.parent.as_ref(), Some(&all_full.id));
    let snapshot = dump(&env.db);
    // Later keys held in memory, and (as when there are too many) in a temporary table.
    let mut service = env.service();
    service.set_fail_point(Some(FailPoint::LaterKeysOverflow));
    let spilled = Ops::new(service);
    for via in [&ops, &spilled] {
        for m in [&acme_chain, &all_chain] {
            exec(
                &env.db,
                "DELETE FROM invoices WHERE tenant_id = 'acme';
                 INSERT INTO invoices (id, tenant_id) VALUES (999, 'acme');",
            );
            let dry = via
                .restore(&RestoreRequest {
                    tenant: Some("acme".into()),
                    ..restore_all(&m.id, None, true)
                })
                .await;
            assert!(dry.tables.iter().all(|t| t.conflicts == 0), "{dry:?}");
            let req = RestoreRequest {
                tenant: Some("acme".into()),
                ..restore_all(&m.id, None, false)
            };
            via.restore(&req).await;
            assert_eq!(dump(&env.db), snapshot, "restored from {}", m.id);
        }
    }
}

/// A tenant restore of a chain of scope `all` takes each key from the last step that names
/// it: a row one incremental gives to the tenant and the next takes away is not restored as
/// the tenant's (before, the first incremental restored it, and where the other tenant held it,
/// the restore refused with a conflict).
#[tokio::test]
async fn a_tenant_chain_restores_each_key_from_the_last_step_that_names_it() {
    let env = Env::new(30);
    let ops = env.ops();
    let incremental = || CreateRequest {
        kind: BackupKind::Incremental,
        scope: Scope::All,
    };
    let tenant_of = |id: i64| -> Option<String> {
        let conn = rusqlite::Connection::open(&env.db).unwrap();
        conn.query_row("SELECT tenant_id FROM invoices WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .unwrap()
    };
    ops.full().await;
    // The first incremental gives 2 (globex's) and 500 (new) to acme, and takes 1 (acme's)
    // to globex; the second takes 2 and 500 away again and gives 1 back.
    exec(
        &env.db,
        "UPDATE invoices SET tenant_id = 'acme' WHERE id = 2;
         UPDATE invoices SET tenant_id = 'globex' WHERE id = 1;
         INSERT INTO invoices (id, tenant_id) VALUES (500, 'acme');",
    );
    assert_eq!(tenant_of(2).as_deref(), Some("acme"));
    ops.create(&incremental()).await;
    exec(
        &env.db,
        "UPDATE invoices SET tenant_id = 'globex' WHERE id = 2;
         UPDATE invoices SET tenant_id = 'acme' WHERE id = 1;
         DELETE FROM invoices WHERE id = 500;",
    );
    let chain = ops.create(&incremental()).await;
    let snapshot = dump(&env.db);
    let mut service = env.service();
    service.set_fail_point(Some(FailPoint::LaterKeysOverflow));
    let spilled = Ops::new(service);
    for via in [&ops, &spilled] {
        // Over the source (2 is globex's, as the chain ends), over a database where acme
        // holds 500 and lost 1, and over one where acme holds 2: each time, acme's rows become
        // what the chain's last word on each key says.
        for mess in [
            "",
            "DELETE FROM invoices WHERE id = 1;
             INSERT INTO invoices (id, tenant_id) VALUES (500, 'acme');",
            "UPDATE invoices SET tenant_id = 'acme' WHERE id = 2;",
        ] {
            exec(&env.db, mess);
            let dry = via
                .restore(&RestoreRequest {
                    tenant: Some("acme".into()),
                    ..restore_all(&chain.id, None, true)
                })
                .await;
            assert!(dry.tables.iter().all(|t| t.conflicts == 0), "{dry:?}");
            via.restore(&RestoreRequest {
                tenant: Some("acme".into()),
                ..restore_all(&chain.id, None, false)
            })
            .await;
            assert_eq!(tenant_of(500), None);
            assert_eq!(tenant_of(1).as_deref(), Some("acme"));
            if mess.contains("id = 2") {
                // Acme's row 2 is not acme's as the chain ends: it goes.
                assert_eq!(tenant_of(2), None);
                exec(
                    &env.db,
                    "INSERT INTO invoices (id, tenant_id) VALUES (2, 'globex');",
                );
                ops.restore(&RestoreRequest {
                    tenant: Some("globex".into()),
                    ..restore_all(&chain.id, None, false)
                })
                .await;
            }
            assert_eq!(dump(&env.db), snapshot, "after {mess:?}");
        }
    }
}

/// A tenant restore of a chain keeps the secret columns of the tenant's rows that a later
/// step writes: the full step leaves those keys to it, and the table (restored by upsert,
/// since the backup lacks its secrets) keeps their rows for it instead of deleting them.
#[tokio::test]
async fn a_tenant_chain_restore_keeps_the_secrets_of_rows_changed_since_the_full_backup() {
    let env = Env::new(10);
    let ops = env.ops();
    for scope in [Scope::All, Scope::Tenant("acme".into())] {
        ops.create(&full(scope.clone())).await;
        // Changed in place, new since the full backup, and moved in from globex.
        exec(
            &env.db,
            "UPDATE users SET email = email || '.changed' WHERE tenant_id = 'acme';
             INSERT INTO users (tenant_id, email, password_hash) VALUES ('acme', 'new', 'new-secret');
             UPDATE users SET tenant_id = 'acme' WHERE id = (SELECT min(id) FROM users WHERE tenant_id = 'globex');",
        );
        let chain = ops
            .create(&CreateRequest {
                kind: BackupKind::Incremental,
                scope,
            })
            .await;
        let snapshot = dump(&env.db);
        let mut service = env.service();
        service.set_fail_point(Some(FailPoint::LaterKeysOverflow));
        let spilled = Ops::new(service);
        for via in [&ops, &spilled] {
            let acme = |dry_run| RestoreRequest {
                tenant: Some("acme".into()),
                ..restore_all(&chain.id, None, dry_run)
            };
            // The dry run counts the rows the full step deletes as the restore does.
            let dry = via.restore(&acme(true)).await;
            let done = via.restore(&acme(false)).await;
            assert_eq!(
                full_step_deletes(&dry, "users"),
                full_step_deletes(&done, "users"),
                "{dry:?}"
            );
            assert_eq!(dump(&env.db), snapshot, "secrets kept, from {}", chain.id);
        }
    }
}

/// A table with a secret column is restored by upsert, then the rows of the scope it did not
/// restore are deleted by key: a key with a NULL part (a rowid table allows one) is matched
/// as restored, and its row stays.
#[tokio::test]
async fn an_upsert_restore_keeps_rows_whose_key_has_a_null_part() {
    let env = Env::new(5);
    exec(
        &env.db,
        "CREATE TABLE links (tenant_id TEXT NOT NULL, code TEXT, label TEXT, token TEXT,
           PRIMARY KEY (tenant_id, code));
         CREATE TABLE tags (tenant_id TEXT NOT NULL, tag TEXT, token TEXT,
           PRIMARY KEY (tenant_id, tag));
         INSERT INTO links VALUES ('acme', NULL, 'x', 's1'), ('acme', 'b', 'y', 's2'),
           ('globex', NULL, 'z', 's3');
         INSERT INTO tags VALUES ('acme', NULL, 't1'), ('acme', 'red', 't2'),
           ('globex', NULL, 't3');",
    );
    let text = env.config_text("").replace(
        r#"["users.password_hash"]"#,
        r#"["users.password_hash", "links.token", "tags.token"]"#,
    );
    let ops = Ops::new(BackupService::open(BackupConfig::from_toml_str(&text).unwrap()).unwrap());
    ops.full().await;
    // An incremental changes a row with a NULL key part and deletes another.
    exec(
        &env.db,
        "UPDATE links SET label = 'changed' WHERE tenant_id = 'acme' AND code IS NULL;
         DELETE FROM tags WHERE tenant_id = 'acme' AND tag IS NULL;",
    );
    let m = ops
        .create(&CreateRequest {
            kind: BackupKind::Incremental,
            scope: Scope::All,
        })
        .await;
    let before = dump(&env.db);
    for tenant in [None, Some("acme")] {
        exec(
            &env.db,
            "UPDATE links SET label = 'stale' WHERE tenant_id = 'acme' AND code IS NULL;
             INSERT INTO tags VALUES ('acme', NULL, 'back');",
        );
        ops.restore(&RestoreRequest {
            tenant: tenant.map(str::to_owned),
            ..restore_all(&m.id, None, false)
        })
        .await;
        assert_eq!(dump(&env.db), before, "tenant {tenant:?}");
    }
}

#[tokio::test]
async fn a_restore_bypasses_the_capture_triggers_and_the_next_incremental_asks_for_a_full() {
    let env = Env::new(50);
    let ops = env.ops();
    let inc = CreateRequest {
        kind: BackupKind::Incremental,
        scope: Scope::All,
    };
    let m = ops.full().await;
    let triggers = || {
        let conn = rusqlite::Connection::open(&env.db).unwrap();
        let mut stmt = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };
    let logged = |tbl: &str| -> i64 {
        let conn = rusqlite::Connection::open(&env.db).unwrap();
        conn.query_row(
            "SELECT count(*) FROM rbac_backup_changes WHERE tbl = ?1",
            [tbl],
            |r| r.get(0),
        )
        .unwrap()
    };
    let installed = triggers();
    // Three per table, and two more (before inserts and updates) on `invoices` and `users`,
    // whose key could pass to another tenant.
    assert_eq!(installed.len(), 19, "{installed:?}");
    exec(&env.db, "DELETE FROM invoices WHERE id <= 10;");
    ops.create(&inc).await;
    let before = logged("invoices");

    // A tenant restore and a full one write hundreds of rows, none of them logged; the
    // triggers are back afterwards, as they were.
    ops.restore(&RestoreRequest {
        tenant: Some("acme".into()),
        ..restore_all(&m.id, None, false)
    })
    .await;
    ops.restore(&restore_all(&m.id, None, false)).await;
    assert_eq!(triggers(), installed);
    assert_eq!(logged("invoices"), before);
    assert_eq!(logged("*restore*"), 2);

    let err = ops.refused(&inc).await;
    assert!(
        err.to_string().contains("restored since the parent backup"),
        "{err}"
    );
    ops.full().await;
    exec(&env.db, "UPDATE invoices SET note = 'after' WHERE id = 20;");
    let next = ops.create(&inc).await;
    let invoices = next.tables.iter().find(|t| t.name == "invoices").unwrap();
    assert_eq!(
        (invoices.rows, invoices.deleted),
        (1, 0),
        "writes are captured again"
    );

    // A dry run leaves the triggers alone, and so does a restore that fails.
    ops.restore(&restore_all(&m.id, None, true)).await;
    assert_eq!(triggers(), installed);
    // Both tenants' invoice n has the same amount in the backup.
    exec(
        &env.db,
        "UPDATE invoices SET amount = id; CREATE UNIQUE INDEX one_amount ON invoices (amount);",
    );
    let failed = ops
        .service
        .restore(&restore_all(&m.id, None, false), &ops.actor(), &NoProgress)
        .await;
    assert!(failed.is_err(), "duplicate amounts violate the new index");
    assert_eq!(triggers(), installed);
}

/// `INSERT OR REPLACE` and `UPDATE OR REPLACE` delete the rows whose unique columns the new
/// row takes, and SQLite fires no delete trigger for those: the incremental must still know
/// they are gone, whatever the index's collation, and however many columns it has.
#[tokio::test]
async fn rows_that_or_replace_deletes_stay_deleted_through_an_incremental() {
    let SqliteApp { dir: _dir, db, ops } = SqliteApp::new(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT);
         CREATE UNIQUE INDEX users_email ON users (email COLLATE NOCASE);
         CREATE TABLE tags (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b TEXT NOT NULL,
                            UNIQUE (a, b));
         INSERT INTO users VALUES (1, 'ann@example.com', 'Ann'), (2, 'bob@example.com', 'Bob');
         INSERT INTO tags VALUES (1, 'x', 'y'), (2, 'x', 'z'), (3, 'w', 'w');",
        "",
    );
    ops.full().await;
    exec(
        &db,
        "INSERT OR REPLACE INTO users VALUES (3, 'ANN@example.com', 'Ann again');
         INSERT OR IGNORE INTO users VALUES (4, 'bob@example.com', 'not Bob');
         UPDATE OR REPLACE tags SET b = 'y' WHERE id = 2;
         UPDATE tags SET a = 'v' WHERE id = 3;",
    );
    let expected = dump(&db);
    assert_eq!(table(&db, "users").len(), 2, "ann's first row was replaced");
    let inc = ops.incremental().await;
    exec(&db, "DELETE FROM users; DELETE FROM tags;");
    ops.restore(&restore_of(&inc.id)).await;
    assert_eq!(dump(&db), expected);
    // Again after the restore (whose mark asks for a full backup), through the capture
    // triggers it put back.
    ops.full().await;
    exec(&db, "INSERT OR REPLACE INTO tags VALUES (9, 'x', 'y');");
    let next = ops.incremental().await;
    exec(&db, "DELETE FROM tags;");
    ops.restore(&restore_of(&next.id)).await;
    assert_eq!(
        table(&db, "tags"),
        [
            vec![
                Value::Integer(3),
                Value::Text("v".into()),
                Value::Text("w".into())
            ],
            vec![
                Value::Integer(9),
                Value::Text("x".into()),
                Value::Text("y".into())
            ],
        ]
    );
}

/// What `OR REPLACE` capture must also cover: a key given to another tenant, a unique index
/// on a generated column, a row taking the value of one it displaced in the same
/// incremental; and an index dropped since must not leave triggers that block dropping its
/// column.
#[tokio::test]
async fn or_replace_capture_follows_tenants_generated_columns_and_dropped_indexes() {
    let SqliteApp { dir: _dir, db, ops } = SqliteApp::new(
        "CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE items (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL, code TEXT NOT NULL,
                             lower_code TEXT GENERATED ALWAYS AS (lower(code)) STORED,
                             email TEXT);
         CREATE UNIQUE INDEX items_lower_code ON items (lower_code);
         CREATE UNIQUE INDEX items_email ON items (email);
         INSERT INTO orgs VALUES (1, 'one'), (2, 'two');
         INSERT INTO items (id, org_id, code, email) VALUES
             (1, 1, 'a', 'a@x'), (2, 1, 'b', 'b@x'), (3, 2, 'c', 'c@x'), (4, 1, 'd', NULL),
             (6, 1, 'f', NULL);",
        "tenant_table = \"orgs\"\ntenant_column = \"org_id\"\ntenant_key = \"id\"\n",
    );
    let one = || Scope::Tenant("1".into());
    ops.create(&full(one())).await;
    exec(
        &db,
        // Item 1 is given to org 2. Item 7, new, takes item 2's e-mail (item 2 is first
        // logged after item 7). Item 4 takes item 6's code through the generated column,
        // which no `UPDATE` names.
        "INSERT OR REPLACE INTO items (id, org_id, code, email) VALUES (1, 2, 'z', 'z@x');
         INSERT INTO items (id, org_id, code, email) VALUES (7, 1, 'g', 'g@x');
         UPDATE OR REPLACE items SET email = 'b@x' WHERE id = 7;
         UPDATE OR REPLACE items SET code = 'F' WHERE id = 4;",
    );
    let mine = |db: &std::path::Path| -> Vec<Vec<Value>> {
        table(db, "items")
            .into_iter()
            .filter(|r| r[1] == Value::Integer(1))
            .collect()
    };
    let expected = mine(&db);
    assert_eq!(
        expected.iter().map(|r| r[0].clone()).collect::<Vec<_>>(),
        [Value::Integer(4), Value::Integer(7)]
    );
    let inc = ops
        .create(&CreateRequest {
            kind: BackupKind::Incremental,
            scope: one(),
        })
        .await;
    exec(&db, "DELETE FROM items WHERE org_id = 1;");
    ops.restore(&RestoreRequest {
        tenant: Some("1".into()),
        ..restore_of(&inc.id)
    })
    .await;
    assert_eq!(mine(&db), expected);

    // An index dropped since the full backup: capture is out of date, so the chain needs a
    // full backup, which leaves no trigger naming the column (its drop then works).
    ops.create(&full(Scope::All)).await;
    exec(&db, "DROP INDEX items_email;");
    let err = ops
        .refused(&CreateRequest {
            kind: BackupKind::Incremental,
            scope: Scope::All,
        })
        .await;
    assert!(err.to_string().contains("no change capture"), "{err}");
    ops.create(&full(Scope::All)).await;
    exec(&db, "ALTER TABLE items DROP COLUMN email;");
}

#[tokio::test]
async fn a_tenant_with_an_integer_id_restores_alone() {
    let SqliteApp { dir: _dir, db, ops } = SqliteApp::new(
        "CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id),
                              amount INTEGER NOT NULL);
         INSERT INTO orgs VALUES (7, 'seven'), (70, 'seventy');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
         INSERT INTO orders SELECT i, CASE WHEN i % 2 = 0 THEN 7 ELSE 70 END, i FROM n;",
        "tenant_table = \"orgs\"\n\
         tenant_column = \"org_id\"\ntenant_key = \"id\"\n",
    );
    let m = ops.create(&full(Scope::Tenant("7".into()))).await;
    let orders = m.tables.iter().find(|t| t.name == "orders").unwrap();
    assert_eq!(orders.rows, 20);
    exec(
        &db,
        "UPDATE orders SET amount = 0; DELETE FROM orders WHERE id > 30;",
    );
    let theirs = "SELECT * FROM orders WHERE org_id = 70 ORDER BY id";
    let rows = |sql: &str| -> Vec<(i64, i64, i64)> {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let seventy = rows(theirs);
    ops.restore(&restore_of(&m.id)).await;
    // Tenant 7's rows are back; tenant 70's (whose id merely starts with 7) are left alone.
    assert_eq!(
        rows("SELECT * FROM orders WHERE org_id = 7 ORDER BY id").len(),
        20
    );
    assert_eq!(rows(theirs), seventy);
    let mut expected: Vec<(i64, i64, i64)> = (1..=40)
        .filter(|i| i % 2 == 0 || *i <= 30)
        .map(|i| if i % 2 == 0 { (i, 7, i) } else { (i, 70, 0) })
        .collect();
    expected.sort();
    assert_eq!(rows("SELECT * FROM orders ORDER BY id"), expected);
}

#[tokio::test]
async fn tenant_restores_read_only_their_groups_of_a_full_backup() {
    let env = Env::new(20);
    let ops = env.ops();
    // Too few rows per tenant for groups: format 1, which older tools read.
    let small = ops.full().await;
    assert!(small.chunks.iter().all(|c| c.groups.is_empty()));
    assert_eq!(small.format, 1);
    // Invoices 1001–6000, in key order, so that every chunk mixes the three tenants.
    exec(
        &env.db,
        &format!(
            "INSERT INTO tenants VALUES ('initech', 'Initech');{}",
            invoices_sql(1001, 6000, THREE_TENANTS)
        ),
    );
    let of = |tenant: &str| -> Vec<Vec<Value>> {
        table(&env.db, "invoices")
            .into_iter()
            .filter(|r| r[1] == Value::Text(tenant.into()))
            .collect()
    };
    let (acme, initech) = (of("acme"), of("initech"));
    assert_eq!(initech.len(), 100);
    let f = ops.full().await;
    assert_grouped_by_tenant(&f, "invoices");

    exec(&env.db, "UPDATE invoices SET amount = -1;");
    let tenant = |name: &str, dry_run| RestoreRequest {
        tenant: Some(name.into()),
        ..restore_all(&f.id, None, dry_run)
    };
    // `initech`'s rows are all in the mixed group.
    let dry = ops.restore(&tenant("initech", true)).await;
    assert_changes(&dry, "invoices", (0, 100, 0, 0));
    ops.restore(&tenant("initech", false)).await;
    assert_eq!(of("initech"), initech);
    ops.restore(&tenant("acme", false)).await;
    assert_eq!(of("acme"), acme);
    assert!(
        of("globex").iter().all(|r| r[2] == Value::Real(-1.0)),
        "globex untouched"
    );
    // The grouped chunks still verify and restore whole.
    let verified = ops.verify(&f.id, true).await;
    assert_eq!(verified.records, f.rows());
}

/// A schema whose foreign keys cascade: replacing the parent table's rows must not erase or
/// blank child rows restored before it (tables restore in name order: `invoices` and `notes`
/// come before `tenants`), nor rows of tables the restore does not cover.
#[tokio::test]
async fn cascading_foreign_keys_do_not_undo_a_restore() {
    let SqliteApp { dir: _dir, db, ops } = SqliteApp::new(
        "CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE invoices (id INTEGER PRIMARY KEY,
             tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
             amount INTEGER NOT NULL);
         CREATE TABLE notes (id INTEGER PRIMARY KEY,
             tenant_id TEXT REFERENCES tenants(id) ON DELETE SET NULL, body TEXT);
         CREATE TABLE zettel (id INTEGER PRIMARY KEY,
             tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE);
         INSERT INTO tenants VALUES ('acme', 'Acme'), ('globex', 'Globex');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
         INSERT INTO invoices SELECT i, CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, i FROM n;
         INSERT INTO notes VALUES (1, 'acme', 'a'), (2, 'globex', 'g');
         INSERT INTO zettel VALUES (1, 'acme'), (2, 'globex');",
        "tenant_table = \"tenants\"\n\
         tenant_column = \"tenant_id\"\ntenant_key = \"id\"\n",
    );
    let original = dump(&db);

    let m = ops.create(&full(Scope::All)).await;
    exec(
        &db,
        "UPDATE invoices SET amount = 0; UPDATE notes SET body = NULL;",
    );
    ops.restore(&restore_of(&m.id)).await;
    assert_eq!(dump(&db), original);

    // One tenant: its parent row is replaced, the other tenant's rows stay.
    let t = ops.create(&full(Scope::Tenant("acme".into()))).await;
    exec(
        &db,
        "UPDATE invoices SET amount = -1 WHERE tenant_id = 'acme';",
    );
    ops.restore(&restore_of(&t.id)).await;
    assert_eq!(dump(&db), original);

    // Only the parent table: the children it does not cover keep their rows.
    let req = RestoreRequest {
        tables: vec!["tenants".into()],
        ..restore_of(&m.id)
    };
    ops.restore(&req).await;
    assert_eq!(dump(&db), original);
}

/// Tables keyed by a BLOB (16-byte UUIDs): the capture triggers must not fail the
/// application's writes (JSON cannot hold a BLOB), and an incremental must carry the changed
/// and deleted rows by their BLOB keys, so that the chain restores exactly.
#[tokio::test]
async fn blob_keyed_tables_keep_accepting_writes_and_restore_exactly() {
    // A secret column makes restores of `api_keys` upsert by key and delete the keys the
    // backup does not hold (the key set of the restore).
    let SqliteApp { dir: _dir, db, ops } = SqliteApp::new(
        "CREATE TABLE tenants (id TEXT PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE docs (id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL, body TEXT);
         CREATE TABLE links (a BLOB, b INTEGER, tenant_id TEXT, PRIMARY KEY (a, b));
         CREATE TABLE api_keys (id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL, label TEXT,
                                token TEXT);
         INSERT INTO api_keys VALUES (x'01', 'acme', 'one', 's1'), (x'02', 'acme', 'two', 's2'),
                                     (x'03', 'globex', 'three', 's3');
         INSERT INTO tenants VALUES ('acme', 'Acme'), ('globex', 'Globex');
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)
         INSERT INTO docs SELECT randomblob(16), CASE WHEN i % 2 = 0 THEN 'acme' ELSE 'globex' END, 'v' || i FROM n;
         INSERT INTO links SELECT id, 1, tenant_id FROM docs;",
        "tenant_table = \"tenants\"\ntenant_column = \"tenant_id\"\ntenant_key = \"id\"\n\
         secret_columns = [\"api_keys.token\"]\n",
    );
    let first = ops.create(&full(Scope::All)).await;
    let labels = |db: &std::path::Path| -> Vec<(Vec<u8>, String)> {
        let conn = rusqlite::Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, label FROM api_keys ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let keys_before = labels(&db);
    exec(
        &db,
        "DELETE FROM api_keys WHERE id = x'02'; INSERT INTO api_keys VALUES (x'09', 'acme', 'new', 's9');
         UPDATE api_keys SET label = 'renamed' WHERE id = x'01';",
    );
    ops.restore(&restore_of(&first.id)).await;
    assert_eq!(
        labels(&db),
        keys_before,
        "upserted by BLOB key, the new key deleted"
    );
    let token: Option<String> = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT token FROM api_keys WHERE id = x'01'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(token.as_deref(), Some("s1"), "a kept row keeps its secret");

    // A chain starts after a restore with a full backup.
    let f = ops.create(&full(Scope::All)).await;
    // The application writes on, through the installed triggers.
    exec(
        &db,
        "UPDATE docs SET body = body || '!' WHERE tenant_id = 'acme';
         DELETE FROM docs WHERE rowid IN (SELECT rowid FROM docs WHERE tenant_id = 'globex' LIMIT 3);
         INSERT INTO docs VALUES (randomblob(16), 'acme', 'new'), (x'00', 'globex', 'tiny');
         UPDATE links SET b = 2 WHERE tenant_id = 'acme';
         INSERT INTO links VALUES (x'0102', 7, 'globex');",
    );
    let after = dump(&db);
    let i = ops.incremental().await;
    assert_eq!(i.parent.as_ref(), Some(&f.id));
    let docs = i.tables.iter().find(|t| t.name == "docs").unwrap();
    assert_eq!((docs.rows, docs.deleted), (17, 3), "{docs:?}");

    exec(
        &db,
        "DELETE FROM docs; DELETE FROM links; UPDATE tenants SET name = '?';",
    );
    ops.restore(&restore_of(&i.id)).await;
    assert_eq!(dump(&db), after);

    // One tenant of the chain: its rows come back, the other tenant's stay as they are.
    exec(
        &db,
        "DELETE FROM docs WHERE tenant_id = 'acme'; UPDATE docs SET body = 'theirs' WHERE tenant_id = 'globex';",
    );
    let theirs = table(&db, "docs")
        .into_iter()
        .filter(|r| r[1] == Value::Text("globex".into()))
        .collect::<Vec<_>>();
    let req = RestoreRequest {
        tenant: Some("acme".into()),
        ..restore_of(&i.id)
    };
    ops.restore(&req).await;
    let now = table(&db, "docs");
    let acme_after: Vec<_> = after
        .iter()
        .find(|(t, _)| t == "docs")
        .unwrap()
        .1
        .iter()
        .filter(|r| r[1] == Value::Text("acme".into()))
        .cloned()
        .collect();
    let acme_now: Vec<_> = now
        .iter()
        .filter(|r| r[1] == Value::Text("acme".into()))
        .cloned()
        .collect();
    assert_eq!(acme_now, acme_after);
    let theirs_now: Vec<_> = now
        .into_iter()
        .filter(|r| r[1] == Value::Text("globex".into()))
        .collect();
    assert_eq!(theirs_now, theirs);
}

/// What the SQLite change log cannot vouch for needs a full backup: a table rebuilt since
/// the parent (SQLite's way to change a constraint: create, copy, drop, rename), whose
/// triggers went with the old table, and a database file replaced by an older copy, whose
/// log is behind the parent's position. Keys of REAL values (julian-day timestamps) keep
/// every digit, so their changes are not taken for deletes.
#[tokio::test]
async fn the_change_log_vouches_for_an_incremental_or_a_full_backup_is_needed() {
    let SqliteApp { dir, db, ops } = SqliteApp::new(
        "CREATE TABLE readings (at REAL PRIMARY KEY, v INTEGER NOT NULL);
         INSERT INTO readings VALUES (2460671.0370601853, 1), (2460671.2370601853, 2),
                                     (0.1, 3), (1e-310, 4);
         CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO notes VALUES (1, 'a'), (2, 'b');",
        "[modules]\nnotebook = [\"notes\"]\n",
    );
    let incremental = CreateRequest {
        kind: BackupKind::Incremental,
        scope: Scope::All,
    };
    let needs_full = |err: rbac_admin::backup::BackupError, needle: &str| {
        assert!(
            matches!(err, rbac_admin::backup::BackupError::NeedsFull(_))
                && err.to_string().contains(needle),
            "{err}"
        );
    };

    ops.create(&full(Scope::All)).await;
    exec(
        &db,
        "UPDATE readings SET v = v + 10; DELETE FROM readings WHERE v = 13;",
    );
    let after = dump(&db);
    let i = ops.incremental().await;
    let readings = i.tables.iter().find(|t| t.name == "readings").unwrap();
    assert_eq!((readings.rows, readings.deleted), (3, 1), "{readings:?}");
    exec(&db, "UPDATE readings SET v = 0;");
    ops.restore(&restore_of(&i.id)).await;
    assert_eq!(dump(&db), after);

    // A table rebuilt since the parent.
    ops.create(&full(Scope::All)).await;
    exec(
        &db,
        "CREATE TABLE notes_new (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         INSERT INTO notes_new SELECT * FROM notes; DROP TABLE notes;
         ALTER TABLE notes_new RENAME TO notes; UPDATE notes SET body = 'changed';",
    );
    let err = ops.refused(&incremental).await;
    needs_full(err, "`notes` has no change capture");
    // Put back by another scope's full backup: the `all` chain still missed the writes, and
    // the mark that full backup left says so.
    ops.create(&full(Scope::Modules(vec!["notebook".into()])))
        .await;
    let err = ops.refused(&incremental).await;
    needs_full(err, "`notes` has no change capture");

    // An older copy of the file put in place of the database.
    ops.create(&full(Scope::All)).await;
    let old_copy = dir.path().join("old.db");
    std::fs::copy(&db, &old_copy).unwrap();
    exec(
        &db,
        "UPDATE notes SET body = 'x'; UPDATE notes SET body = 'y';",
    );
    let parent = ops.incremental().await;
    std::fs::copy(&old_copy, &db).unwrap();
    let _ = std::fs::remove_file(dir.path().join("app.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("app.db-shm"));
    exec(&db, "UPDATE notes SET body = 'z' WHERE id = 1;");
    assert!(parent.change_seq > 0);
    let err = ops.refused(&incremental).await;
    needs_full(err, "was replaced");
    // Written to past the parent's position, the copy's log looks like a continuation of
    // the parent's, but holds none of the changes between the copy and the parent: the
    // parent's mark is what it lacks.
    exec(
        &db,
        "UPDATE notes SET body = 'v'; UPDATE notes SET body = 'w'; UPDATE notes SET body = 'u';",
    );
    let err = ops.refused(&incremental).await;
    needs_full(err, "no mark of the parent backup");
    // A full backup starts a chain the log can vouch for again.
    ops.create(&full(Scope::All)).await;
    exec(&db, "UPDATE notes SET body = 't' WHERE id = 1;");
    ops.incremental().await;
}
