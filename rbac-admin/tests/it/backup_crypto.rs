//! Encrypted backups: a host with only a public key writes backups it cannot read; identities
//! and passphrases read them; wrong or missing keys give clear errors; key rotation re-wraps.

use crate::backup_support;

use age::secrecy::ExposeSecret;
use backup_support::*;
use rbac_admin::backup::{
    Actor, BackupConfig, BackupError, BackupKind, BackupService, CreateRequest, LogQuery,
    NoProgress, RestoreRequest, Scope, Selector, Status,
};

fn full() -> CreateRequest {
    CreateRequest {
        kind: BackupKind::Full,
        scope: Scope::All,
    }
}

fn restore_to(id: &rbac_admin::backup::BackupId, url: String) -> RestoreRequest {
    RestoreRequest {
        from: Selector::Id(id.clone()),
        tables: vec![],
        modules: vec![],
        tenant: None,
        to: Some(url),
        dry_run: false,
    }
}

fn service(env: &Env, encryption: &str) -> BackupService {
    let text = format!("{}\n[encryption]\n{encryption}\n", env.config_text(""));
    // [encryption] must come after the top-level keys but the module table ends the file.
    let text = text.replacen("[modules]\nfinance = [\"accounts\", \"invoices\"]\n", "", 1);
    let text = format!("{text}\n[modules]\nfinance = [\"accounts\", \"invoices\"]\n");
    BackupService::open(BackupConfig::from_toml_str(&text).unwrap()).unwrap()
}

struct Keys {
    public: String,
    identity_file: String,
}

fn keypair(env: &Env, name: &str) -> Keys {
    let id = age::x25519::Identity::generate();
    let file = env.dir.path().join(name);
    std::fs::write(
        &file,
        format!("# test key\n{}\n", id.to_string().expose_secret()),
    )
    .unwrap();
    Keys {
        public: id.to_public().to_string(),
        identity_file: file.display().to_string(),
    }
}

#[tokio::test]
async fn a_public_key_host_writes_backups_only_the_identity_can_read() {
    let env = Env::new(500);
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let k = keypair(&env, "key.txt");
    let writer = service(&env, &format!("recipients = [\"{}\"]", k.public));
    let m = writer.create(&full(), &ops, &NoProgress).await.unwrap();
    let enc = m.encryption.clone().unwrap();
    assert_eq!(enc.algorithm, "aes-256-gcm");
    assert_eq!(enc.recipients.len(), 1);
    assert_eq!(enc.recipients[0].recipient, k.public);
    // The stored chunks are not plain zstd (they are sealed).
    for c in &m.chunks {
        let data = std::fs::read(env.store.join(m.id.as_str()).join(&c.name)).unwrap();
        assert!(zstd::decode_all(&data[..]).is_err());
    }
    // The writer cannot read its own backup.
    let err = writer
        .verify(&ops, &m.id, false, &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, BackupError::Key(_)), "{err}");
    assert!(err.to_string().contains("no key is configured"), "{err}");
    let (_, url) = env.url("nokey.db");
    assert!(matches!(
        writer
            .restore(&restore_to(&m.id, url), &ops, &NoProgress)
            .await,
        Err(BackupError::Key(_))
    ));

    // A reader with the identity can.
    let reader = service(&env, &format!("identity_files = [\"{}\"]", k.identity_file));
    reader.verify(&ops, &m.id, true, &NoProgress).await.unwrap();
    let (copy, url) = env.url("copy.db");
    reader
        .restore(&restore_to(&m.id, url), &ops, &NoProgress)
        .await
        .unwrap();
    assert_eq!(table(&copy, "invoices"), table(&env.db, "invoices"));

    // Another identity cannot, and says so.
    let other = keypair(&env, "other.txt");
    let wrong = service(
        &env,
        &format!("identity_files = [\"{}\"]", other.identity_file),
    );
    let err = wrong
        .verify(&ops, &m.id, false, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("none of the configured keys can decrypt"),
        "{err}"
    );
    assert!(err.to_string().contains(&k.public));
}

#[tokio::test]
async fn passphrases_wrap_too_and_a_wrong_one_is_refused() {
    let env = Env::new(50);
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let good = env.dir.path().join("pass.txt");
    std::fs::write(&good, "correct horse battery staple\n").unwrap();
    let bad = env.dir.path().join("bad.txt");
    std::fs::write(&bad, "wrong\n").unwrap();
    let s = service(&env, &format!("passphrase_file = \"{}\"", good.display()));
    let m = s.create(&full(), &ops, &NoProgress).await.unwrap();
    assert_eq!(
        m.encryption.as_ref().unwrap().recipients[0].recipient,
        "passphrase"
    );
    s.verify(&ops, &m.id, false, &NoProgress).await.unwrap();
    let w = service(&env, &format!("passphrase_file = \"{}\"", bad.display()));
    let err = w.verify(&ops, &m.id, false, &NoProgress).await.unwrap_err();
    assert!(matches!(err, BackupError::Key(_)), "{err}");
}

#[tokio::test]
async fn key_rotation_rewraps_without_reencrypting() {
    let env = Env::new(50);
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let old = keypair(&env, "old.txt");
    let new = keypair(&env, "new.txt");
    let s = service(&env, &format!("recipients = [\"{}\"]", old.public));
    let m = s.create(&full(), &ops, &NoProgress).await.unwrap();
    let chunk = env.store.join(m.id.as_str()).join(&m.chunks[0].name);
    let sealed_before = std::fs::read(&chunk).unwrap();
    let rotate = service(
        &env,
        &format!(
            "recipients = [\"{}\"]\nidentity_files = [\"{}\"]",
            new.public, old.identity_file
        ),
    );
    let rotated = rotate.rewrap(&ops, &m.id).await.unwrap();
    // Logged, with who did it.
    let log = rotate.logs(&ops, &LogQuery::default()).await.unwrap();
    let row = log
        .iter()
        .find(|e| e.operation == "rewrap")
        .expect("a rewrap row");
    assert_eq!(
        (row.status, row.actor.as_str(), row.backup_id.as_deref()),
        (Status::Success, "ops", Some(m.id.as_str()))
    );
    // So is a refusal after the permission check: a backup that is not encrypted.
    let plain = service(&env, "")
        .create(&full(), &ops, &NoProgress)
        .await
        .unwrap();
    let err = rotate.rewrap(&ops, &plain.id).await.unwrap_err();
    let log = rotate.logs(&ops, &LogQuery::default()).await.unwrap();
    let row = log
        .iter()
        .find(|e| e.operation == "rewrap" && e.backup_id.as_deref() == Some(plain.id.as_str()))
        .expect("a row for the refused rewrap");
    assert_eq!(
        (row.status, row.error.clone()),
        (Status::Failed, Some(err.to_string()))
    );
    assert_eq!(
        rotated.encryption.as_ref().unwrap().recipients[0].recipient,
        new.public
    );
    assert_eq!(
        rotated.encryption.as_ref().unwrap().key_id,
        m.encryption.as_ref().unwrap().key_id
    );
    assert_eq!(
        std::fs::read(&chunk).unwrap(),
        sealed_before,
        "data not re-encrypted"
    );
    let new_reader = service(
        &env,
        &format!("identity_files = [\"{}\"]", new.identity_file),
    );
    new_reader
        .verify(&ops, &m.id, true, &NoProgress)
        .await
        .unwrap();
    let old_reader = service(
        &env,
        &format!("identity_files = [\"{}\"]", old.identity_file),
    );
    assert!(matches!(
        old_reader.verify(&ops, &m.id, false, &NoProgress).await,
        Err(BackupError::Key(_))
    ));
}

/// A tenant restore of an encrypted chain (a full backup and an incremental) skips the chunks
/// that hold none of the tenant's rows, decompresses only its groups of the others, still
/// reads every tenant's keys from the incremental, and its progress reaches every total.
#[tokio::test]
async fn an_encrypted_chain_restores_one_tenant_from_its_groups_alone() {
    use rbac_admin::backup::BackupKind;
    let env = Env::new(20);
    // 110,000 invoices of `acme` (more than two chunks: one holds nothing else), then 5,000
    // that mix three tenants, `initech` in the mixed group.
    exec(
        &env.db,
        &format!(
            "INSERT INTO tenants VALUES ('initech', 'Initech');{}{}",
            invoices_sql(1001, 111_000, "'acme'"),
            invoices_sql(111_001, 116_000, THREE_TENANTS)
        ),
    );
    let k = keypair(&env, "backup.key");
    let s = service(
        &env,
        &format!(
            "recipients = [\"{}\"]\nidentity_files = [\"{}\"]",
            k.public, k.identity_file
        ),
    );
    let engine = engine();
    let ops = Actor::new("ops", &engine);
    let f = s.create(&full(), &ops, &NoProgress).await.unwrap();
    assert!(f.encryption.is_some());
    let acme_alone = |c: &&rbac_admin::backup::ChunkInfo| {
        c.table == "invoices"
            && c.groups.len() == 1
            && c.groups[0].tenant.as_deref() == Some("acme")
    };
    assert!(f.chunks.iter().any(|c| acme_alone(&c)), "{:?}", f.chunks);
    assert!(
        f.chunks
            .iter()
            .any(|c| c.table == "invoices" && c.groups.len() > 1)
    );

    // The incremental moves a row of `acme` to `initech`, changes and deletes rows of
    // `initech`, and adds one.
    exec(
        &env.db,
        "UPDATE invoices SET tenant_id = 'initech' WHERE id = 1001;
         UPDATE invoices SET amount = amount + 0.5 WHERE tenant_id = 'initech' AND id % 100 = 0;
         DELETE FROM invoices WHERE id = 111050;
         INSERT INTO invoices (id, tenant_id, amount) VALUES (200000, 'initech', 1.5);",
    );
    let inc = s
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
    let of = |tenant: &str| -> Vec<Vec<rusqlite::types::Value>> {
        table(&env.db, "invoices")
            .into_iter()
            .filter(|r| r[1] == rusqlite::types::Value::Text(tenant.into()))
            .collect()
    };
    let initech = of("initech");
    assert_eq!(initech.len(), 101);
    exec(
        &env.db,
        "UPDATE invoices SET amount = -1; DELETE FROM invoices WHERE id = 200000;",
    );

    let restore = |dry_run| RestoreRequest {
        tenant: Some("initech".into()),
        to: None,
        dry_run,
        ..restore_to(&inc.id, String::new())
    };
    let progress = ProgressLog::default();
    let dry = s.restore(&restore(true), &ops, &progress).await.unwrap();
    progress.assert_complete();
    assert_eq!(dry.chain, [f.id.clone(), inc.id.clone()]);
    let progress = ProgressLog::default();
    s.restore(&restore(false), &ops, &progress).await.unwrap();
    progress.assert_complete();
    assert_eq!(of("initech"), initech);
    assert!(
        table(&env.db, "invoices")
            .iter()
            .filter(|r| r[1] != rusqlite::types::Value::Text("initech".into()))
            .all(|r| r[2] == rusqlite::types::Value::Real(-1.0)),
        "other tenants untouched"
    );
}
