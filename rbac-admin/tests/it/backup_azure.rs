//! Backups stored in Azure Blob Storage, against Microsoft's Azurite emulator on loopback
//! (`bash .ci/azure.sh`), through the same configuration keys a deployment uses
//! (`az://container/prefix`, `storage_endpoint`, `[storage_options]`).

use crate::azure_support;
use crate::backup_support;

use backup_support::*;
use rbac_admin::backup::{
    Actor, BackupConfig, BackupKind, BackupService, CreateRequest, FailPoint, NoProgress,
    RestoreRequest, Scope, Selector,
};

#[tokio::test]
#[cfg_attr(
    not(rbac_azure_tests),
    ignore = "needs Azurite: export RBAC_TEST_AZURE_ENDPOINT=$(bash .ci/azure.sh)"
)]
async fn backups_round_trip_through_azure_and_incomplete_ones_are_not_listed() {
    let azure = azure_support::Azure::from_env();
    let container = azure.fresh_container();
    let env = Env::new(3000);
    let (storage, options) = azure.config_lines(&container, "backups/prod");
    let text = format!("{}{options}", env.config_text("")).replacen(
        &format!("storage = \"{}\"", env.store.display()),
        &storage,
        1,
    );
    let service = BackupService::open(BackupConfig::from_toml_str(&text).unwrap()).unwrap();
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let full = CreateRequest {
        kind: BackupKind::Full,
        scope: Scope::All,
    };
    let m = service.create(&full, &ops, &NoProgress).await.unwrap();
    let blobs = azure.blobs(&container).unwrap();
    assert!(
        blobs.contains(&format!("backups/prod/{}/manifest.json", m.id)),
        "{blobs:?}"
    );
    assert!(
        blobs
            .iter()
            .any(|b| b.starts_with(&format!("backups/prod/{}/chunks/", m.id))),
        "{blobs:?}"
    );
    assert!(!blobs.iter().any(|b| b.ends_with("lock.json")));
    assert!(!env.store.exists(), "nothing written locally");
    service
        .verify(&ops, &m.id, true, &NoProgress)
        .await
        .unwrap();

    // An incremental on top, then a restore of the chain into a new database.
    exec(
        &env.db,
        "UPDATE invoices SET amount = amount + 1 WHERE id <= 10",
    );
    let inc = service
        .create(
            &CreateRequest {
                kind: BackupKind::Incremental,
                scope: Scope::All,
            },
            &ops,
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(inc.parent.as_ref(), Some(&m.id));
    let (copy, url) = env.url("from-azure.db");
    let req = RestoreRequest {
        from: Selector::Latest,
        tables: vec![],
        modules: vec![],
        tenant: None,
        to: Some(url),
        dry_run: false,
    };
    service.restore(&req, &ops, &NoProgress).await.unwrap();
    assert_eq!(table(&copy, "invoices"), table(&env.db, "invoices"));

    // A backup that fails before its manifest leaves chunks but is never listed.
    let mut failing = BackupService::open(BackupConfig::from_toml_str(&text).unwrap()).unwrap();
    failing.set_fail_point(Some(FailPoint::BeforeManifest));
    failing.create(&full, &ops, &NoProgress).await.unwrap_err();
    let listed = service.list(&ops).await.unwrap();
    assert_eq!(listed.len(), 2, "the unfinished backup is not listed");

    // Deleting removes every blob of the backup.
    service.delete(&ops, &inc.id).await.unwrap();
    assert!(
        !azure
            .blobs(&container)
            .unwrap()
            .iter()
            .any(|b| b.contains(inc.id.as_str()))
    );
    assert_eq!(service.list(&ops).await.unwrap().len(), 1);
}

#[tokio::test]
#[cfg_attr(
    not(rbac_azure_tests),
    ignore = "needs Azurite: export RBAC_TEST_AZURE_ENDPOINT=$(bash .ci/azure.sh)"
)]
async fn a_wrong_azure_key_is_a_storage_error_that_names_the_location() {
    let azure = azure_support::Azure::from_env();
    let container = azure.fresh_container();
    let env = Env::new(10);
    let (storage, options) = azure.config_lines(&container, "backups");
    let wrong = options.replace(azure_support::KEY, "d3Jvbmcta2V5");
    let text = format!("{}{wrong}", env.config_text("")).replacen(
        &format!("storage = \"{}\"", env.store.display()),
        &storage,
        1,
    );
    let service = BackupService::open(BackupConfig::from_toml_str(&text).unwrap()).unwrap();
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let err = service
        .create(
            &CreateRequest {
                kind: BackupKind::Full,
                scope: Scope::All,
            },
            &ops,
            &NoProgress,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("az://{container}/backups")), "{err}");
    assert!(azure.blobs(&container).unwrap().is_empty());
}
