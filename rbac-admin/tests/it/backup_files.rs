//! The files directory (uploads) in backups of scope `all`: full and incremental, restored
//! exactly (chain, in place, elsewhere), dry run, verification, and through the binary.

use std::collections::BTreeMap;
use std::path::Path;

use crate::backup_support::*;
use rbac_admin::backup::{
    Actor, BackupConfig, BackupKind, BackupService, CreateRequest, NoProgress, Scope, Selector,
};

/// Every file under `dir`: relative path → content.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                pending.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

struct Files {
    env: Env,
    uploads: std::path::PathBuf,
    service: BackupService,
}

fn setup() -> Files {
    let env = Env::new(10);
    let uploads = env.dir.path().join("uploads");
    std::fs::create_dir_all(uploads.join("acme/invoices")).unwrap();
    std::fs::create_dir_all(uploads.join("empty-dir")).unwrap();
    std::fs::write(uploads.join("acme/invoices/1.pdf"), b"%PDF-1.7 invoice one").unwrap();
    std::fs::write(uploads.join("acme/logo.png"), vec![0u8, 1, 2, 255]).unwrap();
    std::fs::write(uploads.join("empty.txt"), b"").unwrap();
    // Larger than one record piece (1 MiB) and one chunk's worth of pieces together.
    let big: Vec<u8> = (0..3_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(uploads.join("big.bin"), big).unwrap();
    let text = env.config_text(&format!("files_dir = \"{}\"\n", uploads.display()));
    let service = BackupService::open(BackupConfig::from_toml_str(&text).unwrap()).unwrap();
    Files {
        env,
        uploads,
        service,
    }
}

fn create(f: &Files, kind: BackupKind, scope: Scope) -> rbac_admin::backup::Manifest {
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(
        f.service
            .create(&CreateRequest { kind, scope }, &ops, &NoProgress),
    )
    .unwrap()
}

#[test]
fn full_and_incremental_backups_restore_the_directory_exactly() {
    let f = setup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let original = tree(&f.uploads);
    let full = create(&f, BackupKind::Full, Scope::All);
    let files = full.files.as_ref().unwrap();
    assert_eq!(files.entries.len(), 4);
    assert_eq!(files.stored_files, 4);
    assert!(full.chunks.iter().any(|c| c.table == "@files"));
    // Tenant and module backups do not carry the files.
    assert!(
        create(&f, BackupKind::Full, Scope::Tenant("acme".into()))
            .files
            .is_none()
    );

    // Change one file, add one, delete one: the incremental stores only the two new contents.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(f.uploads.join("acme/logo.png"), b"a new logo").unwrap();
    std::fs::write(f.uploads.join("acme/invoices/2.pdf"), b"%PDF invoice two").unwrap();
    std::fs::remove_file(f.uploads.join("empty.txt")).unwrap();
    let changed = tree(&f.uploads);
    let inc = create(&f, BackupKind::Incremental, Scope::All);
    let inc_files = inc.files.as_ref().unwrap();
    assert_eq!(inc_files.entries.len(), 4);
    assert_eq!(
        inc_files.stored_files, 2,
        "only new and changed files are stored"
    );
    assert!(inc_files.stored_bytes < 100);

    // Verify, shallow and deep (the deep check rebuilds the directory and checks every hash).
    for m in [&full, &inc] {
        let report = rt
            .block_on(f.service.verify(&ops, &m.id, true, &NoProgress))
            .unwrap();
        assert!(report.deep);
    }

    // The chain into a fresh directory gives the current tree; the full backup the original.
    let elsewhere = f.env.dir.path().join("restored");
    let report = rt
        .block_on(f.service.restore_files(
            &ops,
            &Selector::Id(inc.id.clone()),
            Some(&elsewhere),
            false,
            &NoProgress,
        ))
        .unwrap();
    assert_eq!((report.files, report.added, report.removed), (4, 4, 0));
    assert_eq!(tree(&elsewhere), changed);
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&elsewhere).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o7777,
            0o755,
            "a new directory gets what create_dir gives it"
        );
    }

    // A dry run in place reports and changes nothing.
    let plan = rt
        .block_on(f.service.restore_files(
            &ops,
            &Selector::Id(full.id.clone()),
            None,
            true,
            &NoProgress,
        ))
        .unwrap();
    assert!(plan.dry_run);
    assert_eq!((plan.added, plan.replaced, plan.removed), (1, 1, 1));
    assert_eq!(tree(&f.uploads), changed);
    let leftovers: Vec<_> = std::fs::read_dir(f.env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".restore-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "a dry run leaves no staging directory beside the target"
    );

    // In place: back to the original tree, mtimes and modes included, and the directory
    // keeps its own mode (it is replaced by the staged one).
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&f.uploads, std::fs::Permissions::from_mode(0o751)).unwrap();
    rt.block_on(f.service.restore_files(
        &ops,
        &Selector::Id(full.id.clone()),
        None,
        false,
        &NoProgress,
    ))
    .unwrap();
    assert_eq!(tree(&f.uploads), original);
    let mode = std::fs::metadata(&f.uploads).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o751);
    // Each files restore is a row of the operation log (the dry run, which changed
    // nothing, is not), with the backup and the number of files it holds.
    let logged = rt
        .block_on(f.service.logs(
            &ops,
            &rbac_admin::backup::LogQuery {
                operation: Some("restore".into()),
                ..Default::default()
            },
        ))
        .unwrap();
    let restored: Vec<(Option<&str>, Option<u64>)> = logged
        .iter()
        .map(|e| (e.backup_id.as_deref(), e.rows))
        .collect();
    // Newest first: the full backup in place, then the chain elsewhere; four files each.
    assert_eq!(
        restored,
        [
            (Some(full.id.as_str()), Some(4)),
            (Some(inc.id.as_str()), Some(4))
        ],
        "{logged:?}"
    );
    let entry = files
        .entries
        .iter()
        .find(|e| e.path == "acme/invoices/1.pdf")
        .unwrap();
    let meta = std::fs::metadata(f.uploads.join("acme/invoices/1.pdf")).unwrap();
    let mtime = meta
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert_eq!(mtime, entry.mtime_ms);

    // Only a global restorer may restore files.
    let alice = Actor::new("alice", &engine);
    let denied = rt.block_on(f.service.restore_files(
        &alice,
        &Selector::Id(full.id.clone()),
        None,
        true,
        &NoProgress,
    ));
    assert!(
        matches!(denied, Err(rbac_admin::backup::BackupError::Denied { .. })),
        "{denied:?}"
    );
}

#[test]
fn a_flipped_byte_in_a_files_chunk_fails_verification_and_restore() {
    let f = setup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let full = create(&f, BackupKind::Full, Scope::All);
    let chunk = full.chunks.iter().find(|c| c.table == "@files").unwrap();
    let path = f.env.store.join(full.id.as_str()).join(&chunk.name);
    flip_byte(&path, 100);
    let err = rt
        .block_on(f.service.verify(&ops, &full.id, false, &NoProgress))
        .unwrap_err();
    assert!(err.to_string().contains(&chunk.name), "{err}");
    let before = tree(&f.uploads);
    std::fs::write(f.uploads.join("new.txt"), b"made after the backup").unwrap();
    let with_new = tree(&f.uploads);
    assert!(
        rt.block_on(f.service.restore_files(
            &ops,
            &Selector::Id(full.id.clone()),
            None,
            false,
            &NoProgress
        ))
        .is_err()
    );
    assert_eq!(
        tree(&f.uploads),
        with_new,
        "a failed restore leaves the directory as it was"
    );
    assert_ne!(before, with_new);
}

#[test]
fn files_restore_through_the_binary() {
    let f = setup();
    let policy = crate::admin::TestDb::sqlite();
    policy.init();
    policy.ok(&["user", "assign", "ops", "backup_operator"]);
    let config = f.env.dir.path().join("backup.toml");
    std::fs::write(
        &config,
        f.env
            .config_text(&format!("files_dir = \"{}\"\n", f.uploads.display())),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = policy
            .as_actor("ops")
            .env("RBAC_BACKUP_CONFIG", &config)
            .arg("backup")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let original = tree(&f.uploads);
    let id = run(&["create"])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(run(&["show", &id]).contains("files:     4 files"));
    std::fs::remove_file(f.uploads.join("big.bin")).unwrap();
    exec(&f.env.db, "DELETE FROM invoices;");
    let plan = run(&["restore", &id, "--files", "--dry-run"]);
    assert!(
        plan.contains("dry run: files into") && plan.contains("1 added"),
        "{plan}"
    );
    let json: serde_json::Value = serde_json::from_str(&run(&[
        "restore",
        &id,
        "--files",
        "--dry-run",
        "--format",
        "json",
    ]))
    .unwrap();
    assert_eq!(json["files"]["added"], 1, "{json}");
    // The backup the plan is of: the restore after the dry run takes that one.
    assert_eq!(json["files"]["backup"], id.as_str(), "{json}");
    assert!(
        json["tables"].is_array(),
        "the database report keeps its members: {json}"
    );
    let done = run(&["restore", &id, "--files", "--yes"]);
    assert!(
        done.contains("files into") && done.contains("restored from"),
        "{done}"
    );
    assert_eq!(tree(&f.uploads), original);
    assert_eq!(table(&f.env.db, "invoices").len(), 20);
    std::fs::remove_file(f.uploads.join("empty.txt")).unwrap();
    run(&["restore", &id, "--files-only", "--yes"]);
    assert_eq!(tree(&f.uploads), original);

    // Files belong to no tenant or table, and a restore into another database must not
    // replace the live files directory: such combinations are refused, nothing changed.
    std::fs::remove_file(f.uploads.join("empty.txt")).unwrap();
    let changed = tree(&f.uploads);
    let refused = |args: &[&str], needle: &str| {
        let out = policy
            .as_actor("ops")
            .env("RBAC_BACKUP_CONFIG", &config)
            .arg("backup")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
    };
    refused(
        &["restore", &id, "--files", "--tenant", "acme", "--yes"],
        "--tenant",
    );
    refused(
        &["restore", &id, "--files", "--tables", "invoices", "--yes"],
        "--tables",
    );
    let copy = format!("sqlite://{}", f.env.dir.path().join("copy.db").display());
    refused(
        &["restore", &id, "--files", "--to", &copy, "--yes"],
        "--files-to",
    );
    assert_eq!(tree(&f.uploads), changed);
    let elsewhere = f.env.dir.path().join("uploads-copy");
    let elsewhere_arg = elsewhere.display().to_string();
    run(&[
        "restore",
        &id,
        "--files",
        "--to",
        &copy,
        "--files-to",
        &elsewhere_arg,
        "--yes",
    ]);
    assert_eq!(tree(&elsewhere), original);
    assert_eq!(tree(&f.uploads), changed, "the live directory is untouched");
}
