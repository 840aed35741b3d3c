//! Faults a backup must survive, on real SQLite files: a failure before the manifest, flipped
//! bytes in chunks and manifests, storage errors, restores failing halfway, writes running
//! during a backup.

use crate::backup_support;

use backup_support::*;
use rbac_admin::backup::{
    Actor, BackupError, BackupKind, CreateRequest, FailPoint, LogQuery, NoProgress, RestoreRequest,
    Scope, Status,
};

fn full() -> CreateRequest {
    CreateRequest {
        kind: BackupKind::Full,
        scope: Scope::All,
    }
}

#[tokio::test]
async fn a_failure_before_the_manifest_is_never_listed() {
    let env = Env::new(10);
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let mut service = env.service();
    service.set_fail_point(Some(FailPoint::BeforeManifest));
    let err = service
        .create(&full(), &ops, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Injected(_)));
    assert!(service.list(&ops).await.unwrap().is_empty());
    let failed = service
        .logs(
            &ops,
            &LogQuery {
                status: Some(Status::Failed),
                ..LogQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
}

#[tokio::test]
async fn a_flipped_byte_in_any_chunk_is_named_and_restore_refuses() {
    // Enough rows for several chunks across tables.
    let env = Env::new(60_000);
    let ops = env.ops();
    let m = ops.create(&full()).await;
    assert!(m.chunks.len() >= 3, "{} chunks", m.chunks.len());
    exec(
        &env.db,
        "UPDATE accounts SET balance = 1; PRAGMA wal_checkpoint(TRUNCATE);",
    );
    let before = dump(&env.db);
    for chunk in &m.chunks {
        let path = env.store.join(m.id.as_str()).join(&chunk.name);
        let original = std::fs::read(&path).unwrap();
        flip_byte(&path, original.len() / 2);
        let err = ops
            .service
            .verify(&ops.actor(), &m.id, false, &NoProgress)
            .await
            .unwrap_err();
        match &err {
            BackupError::CorruptChunk { chunk: name, .. } => assert_eq!(name, &chunk.name),
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains(&chunk.name));
        let err = ops
            .service
            .restore(&restore_of(&m.id), &ops.actor(), &NoProgress)
            .await
            .unwrap_err();
        assert!(matches!(err, BackupError::CorruptChunk { .. }), "{err}");
        assert_eq!(dump(&env.db), before, "restore refused, database unchanged");
        std::fs::write(&path, original).unwrap();
    }
    ops.verify(&m.id, false).await;
}

#[tokio::test]
async fn a_flipped_byte_in_the_manifest_fails_verification_and_listing() {
    let env = Env::new(10);
    let ops = env.ops();
    let m = ops.create(&full()).await;
    let path = env.store.join(m.id.as_str()).join("manifest.json");
    let original = std::fs::read(&path).unwrap();
    for offset in [
        10,
        original.len() / 3,
        original.len() / 2,
        original.len() - 5,
    ] {
        flip_byte(&path, offset);
        let err = ops
            .service
            .verify(&ops.actor(), &m.id, false, &NoProgress)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackupError::CorruptManifest { .. }),
            "offset {offset}: {err}"
        );
        assert!(
            ops.service
                .restore(&restore_of(&m.id), &ops.actor(), &NoProgress)
                .await
                .is_err()
        );
        assert!(
            ops.service.list(&ops.actor()).await.unwrap().is_empty(),
            "a corrupt backup is not listed as good"
        );
        std::fs::write(&path, &original).unwrap();
    }
    assert_eq!(ops.service.list(&ops.actor()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_storage_error_fails_cleanly_and_is_logged() {
    let env = Env::new(10);
    let ops = env.ops();
    // The backup location becomes a plain file: every write to it fails.
    std::fs::remove_dir_all(&env.store).ok();
    std::fs::write(&env.store, b"not a directory").unwrap();
    let err = ops
        .service
        .create(&full(), &ops.actor(), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Storage(_)), "{err}");
    let failed = ops
        .service
        .logs(
            &ops.actor(),
            &LogQuery {
                status: Some(Status::Failed),
                ..LogQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].error.as_deref().unwrap().contains("storage"));
}

#[tokio::test]
async fn a_restore_failing_at_commit_leaves_the_database_unchanged() {
    let env = Env::new(50);
    let ops = env.ops();
    let m = ops.create(&full()).await;
    // Restoring users alone while their tenant rows are gone violates the foreign key at commit.
    exec(
        &env.db,
        "PRAGMA foreign_keys = OFF; DELETE FROM tenants WHERE id = 'globex'; DELETE FROM users; PRAGMA wal_checkpoint(TRUNCATE);",
    );
    let before = dump(&env.db);
    let req = RestoreRequest {
        tables: vec!["users".into()],
        ..restore_of(&m.id)
    };
    let err = ops
        .service
        .restore(&req, &ops.actor(), &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    assert_eq!(dump(&env.db), before);
    // A restore that fails halfway through its rows (a constraint of the target): unchanged too.
    exec(
        &env.db,
        "UPDATE accounts SET balance = rowid; CREATE UNIQUE INDEX one_acct_balance ON accounts (tenant_id, balance);",
    );
    let before = dump(&env.db);
    let req = RestoreRequest {
        tables: vec!["invoices".into(), "accounts".into()],
        ..restore_of(&m.id)
    };
    let err = ops
        .service
        .restore(&req, &ops.actor(), &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert_eq!(dump(&env.db), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_during_a_backup_do_not_break_its_snapshot() {
    let env = Env::new(40_000);
    exec(&env.db, "INSERT INTO settings VALUES ('count', 0);");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let db = env.db.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut conn = rusqlite::Connection::open(&db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let tx = conn.transaction().unwrap();
                // Money moves between accounts (the sum stays 6000) and every new invoice bumps
                // a counter in another table.
                tx.execute("UPDATE accounts SET balance = balance - 7 WHERE tenant_id = 'acme' AND code = '1000'", []).unwrap();
                tx.execute("UPDATE accounts SET balance = balance + 7 WHERE tenant_id = 'globex' AND code = '3000'", []).unwrap();
                tx.execute(
                    "INSERT INTO invoices (tenant_id, amount) VALUES ('acme', 1.0)",
                    [],
                )
                .unwrap();
                tx.execute(
                    "UPDATE settings SET value = value + 1 WHERE key = 'count'",
                    [],
                )
                .unwrap();
                tx.commit().unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let ops = env.ops();
    let m = ops.create(&full()).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
    let (copy, url) = env.url("snapshot.db");
    ops.restore(&RestoreRequest {
        to: Some(url),
        ..restore_of(&m.id)
    })
    .await;
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let sum: i64 = conn
        .query_row("SELECT sum(balance) FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sum, 6000);
    let count: i64 = conn
        .query_row("SELECT value FROM settings WHERE key = 'count'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let invoices: i64 = conn
        .query_row("SELECT count(*) FROM invoices", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        invoices,
        80_000 + count,
        "invoices and the counter come from one snapshot"
    );
    assert!(
        (count as u64) < writes,
        "writes went on after the snapshot was taken"
    );
}

/// Cleaning up incomplete backups deletes only those whose writer is known to be gone: a
/// lock that cannot be read is not "no lock" (a writer would lose its backup to one failed
/// read of a bucket), and a lock naming a live process keeps its backup.
#[tokio::test]
async fn cleanup_removes_only_backups_whose_writer_is_known_gone() {
    let env = Env::new(20);
    let ops = env.ops();
    let m = ops.create(&full()).await;
    let dir = env.store.join(m.id.as_str());
    std::fs::remove_file(dir.join("manifest.json")).unwrap();

    // A lock that cannot be read (a symbolic link to itself: every read fails).
    std::fs::remove_file(dir.join("lock.json")).ok();
    std::os::unix::fs::symlink("lock.json", dir.join("lock.json")).unwrap();
    assert_eq!(ops.service.clean_incomplete().await.unwrap(), []);
    assert!(dir.join("chunks").exists());

    // A lock of this live process: kept.
    std::fs::remove_file(dir.join("lock.json")).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    // This process's boot and pid namespace, as a lock records them.
    let here = process_identity();
    let lock = |pid: u32, identity: &str| {
        serde_json::json!({
            "host": host.trim(),
            "pid": pid,
            "started_at": chrono::Utc::now(),
            "identity": identity,
        })
        .to_string()
    };
    std::fs::write(dir.join("lock.json"), lock(std::process::id(), &here)).unwrap();
    assert_eq!(ops.service.clean_incomplete().await.unwrap(), []);
    assert!(dir.join("chunks").exists());

    // Pid 0 is never a live process, but in another container with the same host name (or
    // before a reboot) its pids say nothing here: a young lock is kept.
    std::fs::write(dir.join("lock.json"), lock(0, "another-boot@pid:[1]")).unwrap();
    assert_eq!(ops.service.clean_incomplete().await.unwrap(), []);

    // A lock of a process of this machine that is gone: removed.
    std::fs::write(dir.join("lock.json"), lock(0, &here)).unwrap();
    assert_eq!(ops.service.clean_incomplete().await.unwrap(), vec![m.id]);
    assert!(!dir.exists());
}

/// An incremental whose parent is gone cannot be restored: verifying it says so, rather than
/// passing on its own chunks and leaving the news to the restore.
#[tokio::test]
async fn verifying_an_incremental_checks_its_chain() {
    let env = Env::new(20);
    let ops = env.ops();
    let f = ops.full().await;
    exec(
        &env.db,
        "UPDATE invoices SET amount = amount + 1 WHERE id % 3 = 0;",
    );
    let i = ops.incremental().await;
    assert_eq!(i.parent.as_ref(), Some(&f.id));
    ops.service
        .verify(&ops.actor(), &i.id, false, &NoProgress)
        .await
        .unwrap();
    std::fs::remove_dir_all(env.store.join(f.id.as_str())).unwrap();
    let err = ops
        .service
        .verify(&ops.actor(), &i.id, false, &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

/// A chain takes at most `max_chain_links` incrementals: the next one needs a full backup
/// (a scheduled incremental makes it), so that a frequent schedule never grows a chain past
/// what a restore reads. Manifests written before links were recorded are counted.
#[tokio::test]
async fn a_chain_stops_at_max_chain_links() {
    use rbac_admin::backup::{BackupConfig, BackupService};
    use sha2::Digest as _;

    let env = Env::new(20);
    let service = BackupService::open(
        BackupConfig::from_toml_str(&env.config_text("max_chain_links = 2\n")).unwrap(),
    )
    .unwrap();
    let ops = Ops::new(service);
    let f = ops.full().await;
    assert_eq!(f.links, Some(0));
    let touch = || {
        exec(
            &env.db,
            "UPDATE invoices SET amount = amount + 1 WHERE id = 1;",
        )
    };
    touch();
    let one = ops.incremental().await;
    // Written as a version before links were recorded would have written it.
    let without_links = |id: &rbac_admin::backup::BackupId| {
        let path = env.store.join(id.as_str()).join("manifest.json");
        let mut sealed: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        sealed["manifest"].as_object_mut().unwrap().remove("links");
        let old: rbac_admin::backup::Manifest =
            serde_json::from_value(sealed["manifest"].clone()).unwrap();
        assert_eq!(old.links, None);
        let text = serde_json::to_string(&old).unwrap();
        sealed["sha256"] = hex::encode(sha2::Sha256::digest(text.as_bytes())).into();
        std::fs::write(&path, serde_json::to_vec_pretty(&sealed).unwrap()).unwrap();
    };
    without_links(&one.id);
    touch();
    let two = ops.incremental().await;
    assert_eq!(two.links, Some(2), "counted through the old manifest");
    touch();
    let request = CreateRequest {
        kind: BackupKind::Incremental,
        scope: Scope::All,
    };
    let err = ops.refused(&request).await;
    assert!(matches!(err, BackupError::NeedsFull(_)), "{err}");
    assert!(err.to_string().contains("max_chain_links"), "{err}");
    // A full backup starts a new chain.
    let second = ops.full().await;
    let next = ops.incremental().await;
    assert_eq!(next.links, Some(1));
    // An old manifest whose chain cannot be read back (its full backup gone): not
    // restorable, so a full backup is needed, as for a chain too long to read.
    without_links(&next.id);
    std::fs::remove_dir_all(env.store.join(second.id.as_str())).unwrap();
    touch();
    let err = ops.refused(&request).await;
    assert!(matches!(err, BackupError::NeedsFull(_)), "{err}");
    // Out of range: refused with the configuration.
    let err = BackupConfig::from_toml_str(&env.config_text("max_chain_links = 0\n")).unwrap_err();
    assert!(err.to_string().contains("max_chain_links"), "{err}");
}
