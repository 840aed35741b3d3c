//! Where backups live: a local directory or an object store (S3 and compatible, Google Cloud
//! Storage, Azure Blob Storage), through the `object_store` crate. Layout under the configured location:
//!
//! ```text
//! <id>/lock.json          while the backup is being written (who and when)
//! <id>/chunks/000000.bin  data chunks (zstd, optionally sealed)
//! <id>/manifest.json      written last, in one atomic put: its presence marks a complete backup
//! ```
//!
//! `manifest.json` is `{"sha256": "...", "manifest": {...}}`; the hash covers the compact JSON
//! of the manifest, so a changed byte anywhere is detected.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::model::{BackupError, BackupId, MANIFEST_FORMAT, Manifest};

/// Name of the manifest object inside a backup.
pub(crate) const MANIFEST: &str = "manifest.json";
const LOCK: &str = "lock.json";

/// A backup location.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: StorePath,
    /// For messages (never holds credentials: those come from the environment).
    pub(crate) location: String,
}

/// Written while a backup is in progress, so a cleaner can tell a live backup from a dead one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Lock {
    pub(crate) host: String,
    pub(crate) pid: u32,
    pub(crate) started_at: chrono::DateTime<chrono::Utc>,
    /// The writer's [`process_identity`]; absent in locks of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) identity: Option<String>,
}

impl Lock {
    pub(crate) fn here() -> Lock {
        Lock {
            host: hostname(),
            pid: std::process::id(),
            started_at: chrono::Utc::now(),
            identity: process_identity(),
        }
    }

    /// Whether the process that wrote it may still be running.
    pub(crate) fn may_be_alive(&self) -> bool {
        let young = chrono::Utc::now() - self.started_at < chrono::Duration::hours(24);
        // Its pid means something here only on this machine, boot and pid namespace: two
        // containers may share a host name (host networking). Elsewhere, or without an
        // identity (no `/proc`, an older version), the age alone decides.
        let here = self.host == hostname()
            && self.identity.is_some()
            && self.identity == process_identity();
        if here {
            return young && !process_gone(self.pid);
        }
        young
    }
}

/// This process's place on its machine: the boot and the pid namespace, so that another
/// container with the same host name and process ids, or the machine after a reboot, is not
/// taken for this one. `None` where `/proc` cannot tell.
pub(crate) fn process_identity() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{}@{}", boot.trim(), namespace.display()))
}

/// Whether process `pid` of this machine (and pid namespace) has ended. Only "no such
/// process" from `kill(pid, 0)` says so: a process of another user answers "not permitted"
/// and is alive, and `/proc/PID` may be hidden from other users (`hidepid`). Pid 0 (no pid)
/// has ended; without `kill` (not Unix) nothing has.
pub(crate) fn process_gone(pid: u32) -> bool {
    if pid == 0 {
        return true;
    }
    #[cfg(unix)]
    {
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        matches!(rustix::process::test_kill_process(pid), Err(e) if e == rustix::io::Errno::SRCH)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    sha256: String,
    manifest: serde_json::Value,
}

fn manifest_hash(manifest: &Manifest) -> Result<String, BackupError> {
    let text = serde_json::to_string(manifest)
        .map_err(|e| BackupError::Storage(format!("cannot encode the manifest: {e}")))?;
    Ok(hex::encode(Sha256::digest(text.as_bytes())))
}

impl Storage {
    /// Opens a location: a directory path (created if missing), `file:///dir`,
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix` (also
    /// `azure://`). Credentials come from the usual environment variables (`AWS_*`,
    /// `GOOGLE_*`, `AZURE_*`, read by `object_store`'s `from_env`), then `options` (the
    /// configuration's `[storage_options]`, `object_store` keys such as `aws_region`,
    /// `google_service_account`, `azure_storage_account_name`) override them.
    pub(crate) fn open(
        location: &str,
        endpoint: Option<&str>,
        options: &std::collections::BTreeMap<String, String>,
    ) -> Result<Storage, BackupError> {
        let cannot = |e: &dyn std::fmt::Display| {
            BackupError::Config(format!("cannot open storage `{location}`: {e}"))
        };
        let bad_key = |key: &str| {
            BackupError::Config(format!(
                "storage_options: `{key}` is not an option of this storage (see the object_store documentation of its builder's config keys)"
            ))
        };
        let split = |rest: &str| {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            (bucket.to_owned(), StorePath::from(prefix.trim_matches('/')))
        };
        let scheme = location.split_once("://").map(|(s, _)| s);
        let (store, prefix): (Arc<dyn ObjectStore>, StorePath) = match scheme {
            Some("s3") => {
                let (bucket, prefix) = split(&location["s3://".len()..]);
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(format!("s3://{bucket}"));
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                for (key, value) in options {
                    let key = key.parse().map_err(|_| bad_key(key))?;
                    builder = builder.with_config(key, value);
                }
                (Arc::new(builder.build().map_err(|e| cannot(&e))?), prefix)
            }
            Some("gs") => {
                let (bucket, prefix) = split(&location["gs://".len()..]);
                // The GCS client reads its endpoint only from the service account key.
                // Ignoring `storage_endpoint` would send the backups to Google instead.
                if endpoint.is_some() {
                    return Err(BackupError::Config(format!(
                        "storage_endpoint does not apply to `{location}`: for a GCS-compatible endpoint, set `gcs_base_url` in the service account key (`google_service_account_key` or the file named by `google_service_account`)"
                    )));
                }
                let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket);
                for (key, value) in options {
                    let key = key.parse().map_err(|_| bad_key(key))?;
                    builder = builder.with_config(key, value);
                }
                (Arc::new(builder.build().map_err(|e| cannot(&e))?), prefix)
            }
            Some(s @ ("az" | "azure")) => {
                let (container, prefix) = split(&location[s.len() + "://".len()..]);
                let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(container);
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_endpoint(endpoint.to_owned())
                        .with_allow_http(endpoint.starts_with("http://"));
                }
                for (key, value) in options {
                    let key = key.parse().map_err(|_| bad_key(key))?;
                    builder = builder.with_config(key, value);
                }
                (Arc::new(builder.build().map_err(|e| cannot(&e))?), prefix)
            }
            Some(other) if other != "file" => {
                return Err(BackupError::Config(format!(
                    "unsupported storage `{location}`: use a directory, `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`"
                )));
            }
            _ => {
                if !options.is_empty() {
                    return Err(BackupError::Config(
                        "storage_options apply to object stores (s3://, gs://, az://), not to a directory".into(),
                    ));
                }
                if endpoint.is_some() {
                    return Err(BackupError::Config(
                        "storage_endpoint applies to object stores (s3://, az://), not to a directory".into(),
                    ));
                }
                let dir = location.trim_start_matches("file://");
                std::fs::create_dir_all(dir).map_err(|source| BackupError::Io {
                    context: format!("cannot create the backup directory `{dir}`"),
                    source,
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| BackupError::Config(format!("cannot open `{dir}`: {e}")))?;
                (Arc::new(fs), StorePath::default())
            }
        };
        Ok(Storage {
            store,
            prefix,
            location: location.to_owned(),
        })
    }

    fn path(&self, id: &BackupId, name: &str) -> StorePath {
        let mut p = self.prefix.child(id.as_str());
        for part in name.split('/') {
            p = p.child(part);
        }
        p
    }

    fn err(&self, what: &str, e: object_store::Error) -> BackupError {
        BackupError::Storage(format!("{what} in `{}`: {e}", self.location))
    }

    /// Stores an object of a backup.
    pub(crate) async fn put(
        &self,
        id: &BackupId,
        name: &str,
        data: Bytes,
    ) -> Result<(), BackupError> {
        self.store
            .put(&self.path(id, name), PutPayload::from_bytes(data))
            .await
            .map_err(|e| self.err(&format!("cannot write {id}/{name}"), e))?;
        Ok(())
    }

    /// Reads an object of a backup.
    pub(crate) async fn get(&self, id: &BackupId, name: &str) -> Result<Bytes, BackupError> {
        let result = self.store.get(&self.path(id, name)).await;
        match result {
            Ok(r) => r
                .bytes()
                .await
                .map_err(|e| self.err(&format!("cannot read {id}/{name}"), e)),
            Err(object_store::Error::NotFound { .. }) => Err(BackupError::Storage(format!(
                "{id}/{name} is missing from `{}`",
                self.location
            ))),
            Err(e) => Err(self.err(&format!("cannot read {id}/{name}"), e)),
        }
    }

    /// Marks a backup as in progress.
    pub(crate) async fn put_lock(&self, id: &BackupId) -> Result<(), BackupError> {
        let text =
            serde_json::to_vec(&Lock::here()).map_err(|e| BackupError::Storage(e.to_string()))?;
        self.put(id, LOCK, Bytes::from(text)).await
    }

    /// The backup's lock: `None` when there is none (or it is not a lock this tool wrote).
    /// An error reading it is an error, never "no lock": a writer must not lose its backup
    /// to one failed read.
    async fn lock_of(&self, id: &BackupId) -> Result<Option<Lock>, BackupError> {
        match self.store.get(&self.path(id, LOCK)).await {
            Ok(r) => {
                let bytes = r
                    .bytes()
                    .await
                    .map_err(|e| self.err(&format!("cannot read {id}/{LOCK}"), e))?;
                Ok(serde_json::from_slice(&bytes).ok())
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(&format!("cannot read {id}/{LOCK}"), e)),
        }
    }

    /// Whether the backup's manifest is there (the backup is complete).
    async fn has_manifest(&self, id: &BackupId) -> Result<bool, BackupError> {
        match self.store.head(&self.path(id, MANIFEST)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err(&format!("cannot read {id}/{MANIFEST}"), e)),
        }
    }

    /// Removes the in-progress mark (after the manifest is stored).
    pub(crate) async fn remove_lock(&self, id: &BackupId) -> Result<(), BackupError> {
        match self.store.delete(&self.path(id, LOCK)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("cannot remove a lock", e)),
        }
    }

    /// Stores the manifest in one atomic put; this is what makes a backup complete.
    pub(crate) async fn put_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let sealed = Sealed {
            sha256: manifest_hash(manifest)?,
            manifest: serde_json::to_value(manifest)
                .map_err(|e| BackupError::Storage(e.to_string()))?,
        };
        let text =
            serde_json::to_vec_pretty(&sealed).map_err(|e| BackupError::Storage(e.to_string()))?;
        self.put(&manifest.id, MANIFEST, Bytes::from(text)).await
    }

    /// Reads and checks a manifest; a missing one means "no such complete backup".
    pub(crate) async fn manifest(&self, id: &BackupId) -> Result<Manifest, BackupError> {
        let bytes = match self.store.get(&self.path(id, MANIFEST)).await {
            Ok(r) => r
                .bytes()
                .await
                .map_err(|e| self.err(&format!("cannot read {id}/{MANIFEST}"), e))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BackupError::NotFound(id.clone()));
            }
            Err(e) => return Err(self.err(&format!("cannot read {id}/{MANIFEST}"), e)),
        };
        parse_manifest(id, &bytes)
    }

    /// Every backup id present, complete or not: `(complete, incomplete)`, oldest first.
    pub(crate) async fn ids(&self) -> Result<(Vec<BackupId>, Vec<BackupId>), BackupError> {
        let prefix = (!self.prefix.as_ref().is_empty()).then_some(&self.prefix);
        let listing = self
            .store
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| self.err("cannot list backups", e))?;
        let mut complete = Vec::new();
        let mut incomplete = Vec::new();
        for dir in listing.common_prefixes {
            let Some(Ok(id)) = dir.filename().map(str::parse::<BackupId>) else {
                continue;
            };
            if self.has_manifest(&id).await? {
                complete.push(id);
            } else {
                incomplete.push(id);
            }
        }
        complete.sort();
        incomplete.sort();
        Ok((complete, incomplete))
    }

    /// Incomplete backups whose writer is gone (killed, crashed): safe to remove.
    pub(crate) async fn abandoned(&self) -> Result<Vec<BackupId>, BackupError> {
        let (_, incomplete) = self.ids().await?;
        let mut dead = Vec::new();
        for id in incomplete {
            let alive = match self.lock_of(&id).await {
                Ok(Some(lock)) => lock.may_be_alive(),
                Ok(None) => false,
                Err(e) => {
                    // Unknown is alive: the next cleanup decides.
                    tracing::warn!(target: "rbac::backup", backup = %id, error = %e,
                        "cannot read the lock of an incomplete backup; leaving it");
                    true
                }
            };
            // A writer stores the manifest, then removes its lock: a backup listed incomplete
            // whose lock is gone may have been completed since it was listed.
            if !alive && !self.has_manifest(&id).await? {
                dead.push(id);
            }
        }
        Ok(dead)
    }

    /// Every object of a backup: `(name relative to the backup, size)`.
    pub(crate) async fn objects(&self, id: &BackupId) -> Result<Vec<(String, u64)>, BackupError> {
        let base = self.prefix.child(id.as_str());
        let metas: Vec<_> = self
            .store
            .list(Some(&base))
            .try_collect()
            .await
            .map_err(|e| self.err(&format!("cannot list {id}"), e))?;
        let mut out = Vec::new();
        for meta in metas {
            let full = meta.location.as_ref();
            let rel = full
                .strip_prefix(base.as_ref())
                .map(|r| r.trim_start_matches('/'))
                .unwrap_or(full);
            out.push((rel.to_owned(), meta.size));
        }
        out.sort();
        Ok(out)
    }

    /// Deletes a backup: the manifest first, so that a failure halfway leaves an incomplete
    /// backup (cleaned up later), never a complete-looking one with missing chunks.
    pub(crate) async fn delete(&self, id: &BackupId) -> Result<(), BackupError> {
        match self.store.delete(&self.path(id, MANIFEST)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.err(&format!("cannot delete {id}"), e)),
        }
        for (name, _) in self.objects(id).await? {
            match self.store.delete(&self.path(id, &name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(&format!("cannot delete {id}/{name}"), e)),
            }
        }
        // Local directories are left empty by object deletes; remove them when we can.
        if !self.location.contains("://") || self.location.starts_with("file://") {
            let dir =
                std::path::Path::new(self.location.trim_start_matches("file://")).join(id.as_str());
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }
}

/// Parses `manifest.json` bytes and checks the hash and format.
pub(crate) fn parse_manifest(id: &BackupId, bytes: &[u8]) -> Result<Manifest, BackupError> {
    let corrupt = |reason: String| BackupError::CorruptManifest {
        id: id.to_string(),
        reason,
    };
    let sealed: Sealed =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
    // The format first: a newer one may carry fields this build drops when it parses, and
    // the checksum would then fail for a reason that is not damage.
    let format = sealed.manifest.get("format").and_then(|f| f.as_u64());
    if let Some(format) = format
        && format > u64::from(MANIFEST_FORMAT)
    {
        return Err(corrupt(format!(
            "format {format} is newer than this tool understands ({MANIFEST_FORMAT}); upgrade rbac-admin"
        )));
    }
    let manifest: Manifest =
        serde_json::from_value(sealed.manifest).map_err(|e| corrupt(format!("unreadable: {e}")))?;
    if manifest_hash(&manifest)? != sealed.sha256 {
        return Err(corrupt("checksum mismatch".into()));
    }
    if &manifest.id != id {
        return Err(corrupt(format!("it names backup {}", manifest.id)));
    }
    // A tenant restore finds each row's tenant in this column: without it, no row could be
    // told apart, and none must be taken for the tenant's.
    for t in &manifest.tables {
        if let Some(column) = &t.tenant_column
            && t.tenant_position().is_none()
        {
            return Err(corrupt(format!(
                "table `{}`: its tenant column `{column}` is not among its columns",
                t.name
            )));
        }
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn open(location: &str, pairs: &[(&str, &str)]) -> Result<Storage, BackupError> {
        Storage::open(location, None, &options(pairs))
    }

    #[test]
    fn object_store_locations_open_with_their_prefix() {
        // Credentials that need no network to build a client (object_store's test key).
        let gcs_key = r#"{"private_key": "k", "private_key_id": "id", "client_email": "e", "disable_oauth": true}"#;
        let gcs = open(
            "gs://backups/app/prod",
            &[("google_service_account_key", gcs_key)],
        );
        assert_eq!(
            gcs.map(|s| s.prefix.to_string()).ok(),
            Some("app/prod".into())
        );
        let azure = open(
            "az://backups/app",
            &[("azure_storage_use_emulator", "true")],
        );
        assert_eq!(azure.map(|s| s.prefix.to_string()).ok(), Some("app".into()));
        let azure = open(
            "azure://backups",
            &[
                ("azure_storage_account_name", "acct"),
                ("azure_storage_account_key", "a2V5"),
            ],
        );
        assert_eq!(
            azure.map(|s| s.prefix.to_string()).ok(),
            Some(String::new())
        );
        let s3 = open(
            "s3://bucket/p",
            &[
                ("aws_region", "eu-west-1"),
                ("aws_access_key_id", "x"),
                ("aws_secret_access_key", "y"),
            ],
        );
        assert!(s3.is_ok());
    }

    #[test]
    fn a_newer_manifest_format_is_named_before_its_checksum_is_checked() {
        // A newer format may hold fields this build would drop, which breaks the checksum:
        // the user is told to upgrade, not that the backup is damaged.
        let id = BackupId::generate(chrono::Utc::now());
        let text = format!(
            r#"{{"sha256": "00", "manifest": {{"format": 99, "id": "{id}", "new_field": [1]}}}}"#
        );
        let err = parse_manifest(&id, text.as_bytes())
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.contains("format 99 is newer than this tool understands"),
            "{err}"
        );
        let text = r#"{"sha256": "00", "manifest": {"format": 1}}"#;
        let err = parse_manifest(&id, text.as_bytes())
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("unreadable"));
    }

    #[test]
    fn a_tenant_column_missing_from_its_table_is_a_corrupt_manifest() {
        use crate::backup::model::{ColumnInfo, TableManifest};
        let column = |name: &str| ColumnInfo {
            name: name.into(),
            decl_type: "TEXT".into(),
        };
        let invoices = TableManifest {
            name: "invoices".into(),
            columns: vec![column("id"), column("tenant_id")],
            omitted_columns: Vec::new(),
            primary_key: vec!["id".into()],
            tenant_column: Some("tenant_id".into()),
            rows: 0,
            deleted: 0,
            create_sql: None,
        };
        let id = BackupId::generate(chrono::Utc::now());
        let mut manifest = Manifest::for_test(id, vec![invoices], Vec::new());
        let sealed = |m: &Manifest| {
            let sealed = Sealed {
                sha256: manifest_hash(m).unwrap_or_default(),
                manifest: serde_json::to_value(m).unwrap_or_default(),
            };
            serde_json::to_vec(&sealed).unwrap_or_default()
        };
        assert!(parse_manifest(&manifest.id, &sealed(&manifest)).is_ok());
        // Sealed again after the edit: only the check of the column stands in the way.
        manifest.tables[0].tenant_column = Some("owner".into());
        let err = parse_manifest(&manifest.id, &sealed(&manifest))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("table `invoices`: its tenant column `owner` is not among its columns"),
            "{err}"
        );
    }

    #[test]
    fn bad_locations_and_options_are_clear_errors() {
        let message = |r: Result<Storage, BackupError>| match r {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        assert!(message(open("ftp://host/x", &[])).contains("unsupported storage `ftp://host/x`"));
        assert!(message(open("s3://b/p", &[("no_such_key", "1")])).contains("`no_such_key`"));
        assert!(message(open("gs://b/p", &[("aws_region", "x")])).contains("`aws_region`"));
        let dir = tempfile::tempdir()
            .map(|d| d.path().display().to_string())
            .unwrap_or_default();
        assert!(message(open(&dir, &[("aws_region", "x")])).contains("not to a directory"));
        // An endpoint the client would not use is refused rather than ignored: for gs://,
        // ignoring it would send the backups to Google instead.
        let endpoint = |location| {
            message(Storage::open(
                location,
                Some("http://127.0.0.1:9"),
                &options(&[]),
            ))
        };
        let gcs = endpoint("gs://b/p");
        assert!(
            gcs.contains("storage_endpoint does not apply to `gs://b/p`"),
            "{gcs}"
        );
        assert!(gcs.contains("gcs_base_url"), "{gcs}");
        assert!(endpoint(&dir).contains("storage_endpoint applies to object stores"));
    }
}
