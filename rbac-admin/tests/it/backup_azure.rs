//! Backups stored in Azure Blob Storage, against Microsoft's Azurite emulator on loopback
//! (`bash .ci/azure.sh`), through the same configuration keys a deployment uses
//! (`az://container/prefix`, `storage_endpoint`, `[storage_options]`).

use crate::azure_support;
use crate::backup_support;

use backup_support::*;
use rbac_admin::backup::{
    Actor, BackupConfig, BackupKind, BackupService, CreateRequest, NoProgress, Scope,
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
    let text = object_store_config(&env, &storage, &options);
    object_store_round_trip(&env, &text, "backups/prod", || {
        azure.blobs(&container).unwrap()
    })
    .await;
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
    let text = object_store_config(&env, &storage, &wrong);
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
