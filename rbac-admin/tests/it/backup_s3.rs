//! Backups stored in S3, against a real S3-compatible server on loopback (`bash .ci/s3.sh`;
//! credentials from the usual `AWS_*` variables, which `.ci/run` exports).

use crate::backup_support;
use crate::s3_support;

use backup_support::*;
use rbac_admin::backup::{
    Actor, BackupConfig, BackupKind, BackupService, CreateRequest, FailPoint, NoProgress,
    RestoreRequest, Scope, Selector,
};

#[tokio::test]
#[cfg_attr(
    not(rbac_s3_tests),
    ignore = "needs an S3 server: export RBAC_TEST_S3_ENDPOINT=$(bash .ci/s3.sh)"
)]
async fn backups_round_trip_through_s3_and_incomplete_ones_are_not_listed() {
    let s3 = s3_support::S3::from_env();
    let bucket = s3.fresh_bucket();
    let env = Env::new(3000);
    let text = env.config_text("").replacen(
        &format!("storage = \"{}\"", env.store.display()),
        &format!(
            "storage = \"s3://{bucket}/backups\"\nstorage_endpoint = \"{}\"",
            s3.endpoint
        ),
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
    let keys = s3.keys(&bucket).unwrap();
    assert!(
        keys.contains(&format!("backups/{}/manifest.json", m.id)),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.ends_with("lock.json")));
    assert!(!env.store.exists(), "nothing written locally");
    service
        .verify(&ops, &m.id, true, &NoProgress)
        .await
        .unwrap();
    let (copy, url) = env.url("from-s3.db");
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

    let mut failing = BackupService::open(BackupConfig::from_toml_str(&text).unwrap()).unwrap();
    failing.set_fail_point(Some(FailPoint::BeforeManifest));
    failing.create(&full, &ops, &NoProgress).await.unwrap_err();
    let listed = service.list(&ops).await.unwrap();
    assert_eq!(listed.len(), 1, "the unfinished backup is not listed");
    let mut archive = Vec::new();
    service.download(&ops, &m.id, &mut archive).await.unwrap();
    service.delete(&ops, &m.id).await.unwrap();
    assert!(
        !s3.keys(&bucket)
            .unwrap()
            .iter()
            .any(|k| k.contains(m.id.as_str()))
    );
}
