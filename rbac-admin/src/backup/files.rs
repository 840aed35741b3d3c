//! The files directory (uploads) in backups of scope `all`.
//!
//! Files travel in the same chunks as table records (so compression, encryption, hashing and
//! verification are the same), as the pseudo-table [`FILES_TABLE`]: one record per piece of at
//! most [`PIECE`] bytes, `(path, offset, size, mode, mtime_ms, data)`. The manifest lists every
//! regular file of the directory at backup time with its size, time and SHA-256. An incremental
//! lists them all too but stores the content only of files that are new or changed (size or
//! time) since its parent, so a chain rebuilds the directory exactly.
//!
//! A restore writes the files into a staging directory beside the target, checks every file
//! against its SHA-256, then swaps the staging directory in with two renames: the target holds
//! the old files or the restored ones, never a mix, and a failure leaves it as it was.
//! Symbolic links and special files are skipped (and logged); paths that are not UTF-8 are
//! refused.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chunk::ChunkWriter;
use super::codec::{self, Value};
use super::model::BackupError;
use super::progress::Progress;

/// The name under which file records appear in chunks (no SQL table is named so).
pub const FILES_TABLE: &str = "@files";
/// Values per file record.
pub(crate) const FILE_RECORD_LEN: usize = 6;
/// Largest piece of a file in one record.
pub(crate) const PIECE: usize = 1024 * 1024;

/// One file of the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the directory, `/`-separated.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Unix permission bits.
    pub mode: u32,
    /// Last modification, Unix milliseconds.
    pub mtime_ms: i64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

/// The files part of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesManifest {
    /// The directory as configured when the backup was made.
    pub root: String,
    /// Every file of the directory at backup time.
    pub entries: Vec<FileEntry>,
    /// Records of [`FILES_TABLE`] in this backup's chunks.
    pub records: u64,
    /// Files whose content this backup stores (all of them in a full backup).
    pub stored_files: u64,
    /// Bytes of content this backup stores.
    pub stored_bytes: u64,
}

impl FilesManifest {
    /// Total bytes of the directory.
    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

fn mtime_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Regular files under `dir`, sorted by relative path.
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf, std::fs::Metadata)>, BackupError> {
    let mut out = Vec::new();
    let mut pending = vec![(String::new(), dir.to_path_buf())];
    while let Some((prefix, path)) = pending.pop() {
        let entries = std::fs::read_dir(&path).map_err(io(format!(
            "cannot read the files directory `{}`",
            path.display()
        )))?;
        for entry in entries {
            let entry = entry.map_err(io(format!("cannot read `{}`", path.display())))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(BackupError::InvalidInput(format!(
                    "a file name in `{}` is not UTF-8: rename it to back it up",
                    path.display()
                )));
            };
            let relative = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let kind = entry
                .file_type()
                .map_err(io(format!("cannot read `{}`", entry.path().display())))?;
            if kind.is_dir() {
                pending.push((relative, entry.path()));
            } else if kind.is_file() {
                let meta = entry
                    .metadata()
                    .map_err(io(format!("cannot read `{}`", entry.path().display())))?;
                out.push((relative, entry.path(), meta));
            } else {
                tracing::warn!(target: "rbac::backup", path = %relative, "not a regular file; skipped");
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes the files of `dir` as [`FILES_TABLE`] records into `writer` (content only for files
/// new or changed since `previous`, the parent backup's listing). Runs on a blocking thread.
pub(crate) fn write(
    dir: &Path,
    previous: Option<&FilesManifest>,
    writer: &mut ChunkWriter<'_>,
    progress: &dyn Progress,
) -> Result<FilesManifest, BackupError> {
    let before: BTreeMap<&str, &FileEntry> = previous
        .map(|p| p.entries.iter().map(|e| (e.path.as_str(), e)).collect())
        .unwrap_or_default();
    let files = walk(dir)?;
    progress.phase("files", Some(files.len() as u64));
    writer.begin_table(FILES_TABLE)?;
    let mut manifest = FilesManifest {
        root: dir.display().to_string(),
        ..FilesManifest::default()
    };
    let mut piece = vec![0u8; PIECE];
    for (relative, path, meta) in files {
        let (size, mode, mtime) = (meta.len(), mode_of(&meta), mtime_ms(&meta));
        if let Some(old) = before.get(relative.as_str())
            && old.size == size
            && old.mtime_ms == mtime
        {
            manifest.entries.push(FileEntry {
                mode,
                ..(*old).clone()
            });
            progress.advance(1);
            continue;
        }
        let mut file =
            std::fs::File::open(&path).map_err(io(format!("cannot read `{}`", path.display())))?;
        let mut hasher = Sha256::new();
        let mut offset = 0u64;
        loop {
            let n = read_full(&mut file, &mut piece)
                .map_err(io(format!("cannot read `{}`", path.display())))?;
            // An empty file is one record of no bytes, so that it is restored too.
            if n == 0 && offset > 0 {
                break;
            }
            hasher.update(&piece[..n]);
            writer.buf.push(codec::ROW);
            codec::put_text(&mut writer.buf, relative.as_bytes());
            codec::put_int(&mut writer.buf, to_i64(offset));
            codec::put_int(&mut writer.buf, to_i64(size));
            codec::put_int(&mut writer.buf, i64::from(mode));
            codec::put_int(&mut writer.buf, mtime);
            codec::put_blob(&mut writer.buf, &piece[..n]);
            writer.record_done()?;
            manifest.records += 1;
            offset += n as u64;
            if n < PIECE {
                break;
            }
        }
        // The bytes read are what is stored, even if the file grew or shrank meanwhile.
        manifest.stored_files += 1;
        manifest.stored_bytes += offset;
        manifest.entries.push(FileEntry {
            path: relative,
            size: offset,
            mode,
            mtime_ms: mtime,
            sha256: hex::encode(hasher.finalize()),
        });
        progress.advance(1);
    }
    writer.flush()?;
    Ok(manifest)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A relative path from a backup, checked: no absolute path, no `..`, nothing empty.
fn safe_relative(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if path.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(format!("unsafe file path `{path}` in the backup"));
    }
    Ok(p.to_path_buf())
}

/// What a files restore did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FilesReport {
    /// The directory restored into.
    pub target: String,
    /// Files the restored directory holds.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files absent from the target before.
    pub added: u64,
    /// Files present before with other content.
    pub replaced: u64,
    /// Files present before that the restore removes.
    pub removed: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// The backup restored from (the newest of its chain): what a selector such as `--latest`
    /// named when the report was made, so that the restore after a dry run takes that one.
    pub backup: String,
}

/// Writes file records into a staging directory, one chunk's records at a time, oldest backup
/// of a chain first (a newer piece of a path replaces the older file).
pub(crate) struct Stager {
    staging: PathBuf,
    open: Option<(String, std::fs::File, u64)>,
}

impl Stager {
    /// A fresh staging directory beside `target` (on the same file system, for the final
    /// rename), or in the temporary directory for a dry run, which writes nothing near it.
    pub(crate) fn new(target: &Path, dry_run: bool) -> Result<Stager, BackupError> {
        let temp = std::env::temp_dir();
        let parent = if dry_run {
            temp.as_path()
        } else {
            target
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| Path::new("."))
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "files".into());
        std::fs::create_dir_all(parent)
            .map_err(io(format!("cannot create `{}`", parent.display())))?;
        // A new directory of a name nobody can guess, readable by its owner only (`tempfile`
        // creates it 0700): the staged files are the decrypted backup, and a directory made
        // beforehand by someone else is never reused.
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{name}.restore-"))
            .tempdir_in(parent)
            .map_err(io(format!(
                "cannot create a staging directory in `{}`",
                parent.display()
            )))?
            .keep();

        Ok(Stager {
            staging,
            open: None,
        })
    }

    /// Applies the file records of one decoded chunk.
    pub(crate) fn chunk(&mut self, raw: &[u8], chunk: &str) -> Result<(), BackupError> {
        let mut reader = codec::Reader::new(raw);
        let mut values = Vec::new();
        let bad = |reason: String| BackupError::InvalidInput(format!("chunk `{chunk}`: {reason}"));
        while let Some(tag) = reader
            .next(FILE_RECORD_LEN, 2, &mut values)
            .map_err(|e| bad(e.to_string()))?
        {
            // Only rows: a delete record (two values) in a files chunk is a forged or broken
            // chunk, never something to index into.
            let (
                codec::ROW,
                Some(Value::Text(path)),
                Some(Value::Int(offset)),
                Some(Value::Blob(data)),
            ) = (tag, values.first(), values.get(1), values.get(5))
            else {
                return Err(bad("a file record has the wrong shape".into()));
            };
            let relative = safe_relative(path).map_err(bad)?;
            let offset = u64::try_from(*offset).map_err(|_| bad("negative offset".into()))?;
            let same = matches!(&self.open, Some((p, _, next)) if p == path && *next == offset);
            if !same {
                if offset != 0 {
                    return Err(bad(format!(
                        "`{path}` continues at {offset} without its start"
                    )));
                }
                let full = self.staging.join(&relative);
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(io(format!("cannot create `{}`", dir.display())))?;
                }
                let file = std::fs::File::create(&full)
                    .map_err(io(format!("cannot write `{}`", full.display())))?;
                self.open = Some((path.clone(), file, 0));
            }
            if let Some((_, file, next)) = &mut self.open {
                file.write_all(data)
                    .map_err(io(format!("cannot write `{path}`")))?;
                *next += data.len() as u64;
            }
        }
        Ok(())
    }

    /// Checks the staged files against `entries` (the newest backup's listing: anything else
    /// staged is removed), sets their modes and times, and swaps the staging directory in
    /// place of `target` (or, in a dry run, only reports and removes the staging directory).
    pub(crate) fn finish(
        mut self,
        entries: &[FileEntry],
        target: &Path,
        dry_run: bool,
    ) -> Result<FilesReport, BackupError> {
        self.open = None;
        let result = self.check_and_swap(entries, target, dry_run);
        let _ = std::fs::remove_dir_all(&self.staging);
        result
    }

    fn check_and_swap(
        &self,
        entries: &[FileEntry],
        target: &Path,
        dry_run: bool,
    ) -> Result<FilesReport, BackupError> {
        let mut report = FilesReport {
            target: target.display().to_string(),
            dry_run,
            ..FilesReport::default()
        };
        let wanted: BTreeMap<&str, &FileEntry> =
            entries.iter().map(|e| (e.path.as_str(), e)).collect();
        for (relative, path, _) in walk(&self.staging)? {
            if !wanted.contains_key(relative.as_str()) {
                std::fs::remove_file(&path)
                    .map_err(io(format!("cannot remove `{}`", path.display())))?;
            }
        }
        let existing: BTreeMap<String, std::fs::Metadata> = if target.exists() {
            walk(target)?.into_iter().map(|(r, _, m)| (r, m)).collect()
        } else {
            BTreeMap::new()
        };
        for entry in entries {
            let relative = safe_relative(&entry.path).map_err(BackupError::InvalidInput)?;
            let staged = self.staging.join(&relative);
            let digest = sha256_file(&staged).map_err(|_| {
                BackupError::InvalidInput(format!(
                    "file `{}` is listed in the backup but its content is missing from the chain",
                    entry.path
                ))
            })?;
            if digest != entry.sha256 {
                return Err(BackupError::InvalidInput(format!(
                    "file `{}`: restored content does not match its SHA-256",
                    entry.path
                )));
            }
            report.files += 1;
            report.bytes += entry.size;
            match existing.get(&entry.path) {
                None => report.added += 1,
                Some(_) => {
                    let old = sha256_file(&target.join(&relative)).unwrap_or_default();
                    if old != entry.sha256 {
                        report.replaced += 1;
                    }
                }
            }
            set_mode_and_time(&staged, entry);
        }
        report.removed = existing
            .keys()
            .filter(|k| !wanted.contains_key(k.as_str()))
            .count() as u64;
        if dry_run {
            return Ok(report);
        }
        // The staged directory becomes the target: with the permissions the one it replaces
        // had, or those `create_dir` gives a new one (it was made private while it filled).
        // Set last, so that a read-only target's mode does not stop the staging writes.
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(target)
                .map(|m| m.permissions())
                .unwrap_or_else(|_| std::fs::Permissions::from_mode(0o755));
            std::fs::set_permissions(&self.staging, mode).map_err(io(format!(
                "cannot set the permissions of `{}`",
                self.staging.display()
            )))?;
        }
        // Two renames: the old directory aside, the staged one in, then the old one removed.
        let aside = self.staging.with_extension("old");
        let had_target = target.exists();
        if had_target {
            std::fs::rename(target, &aside)
                .map_err(io(format!("cannot move `{}` aside", target.display())))?;
        }
        if let Err(e) = std::fs::rename(&self.staging, target) {
            if had_target {
                let _ = std::fs::rename(&aside, target);
            }
            return Err(io(format!(
                "cannot move the restored files to `{}`",
                target.display()
            ))(e));
        }
        if had_target {
            let _ = std::fs::remove_dir_all(&aside);
        }
        Ok(report)
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf)? {
            0 => break,
            n => hasher.update(&buf[..n]),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

fn set_mode_and_time(path: &Path, entry: &FileEntry) {
    // The time first: a read-only mode would refuse the handle that sets it.
    if let Ok(ms) = u64::try_from(entry.mtime_ms) {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        if let Ok(file) = std::fs::File::options().write(true).open(path) {
            let _ = file.set_modified(time);
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(entry.mode));
    }
    if let Ok(ms) = u64::try_from(entry.mtime_ms) {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        if let Ok(file) = std::fs::File::options().write(true).open(path) {
            let _ = file.set_modified(time);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_from_a_backup_cannot_leave_the_directory() {
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "./a"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
        assert!(safe_relative("a/b.txt").is_ok());
    }

    /// A files chunk holds rows only: a delete record (two values), as a forged or broken
    /// chunk may hold, is a typed error, never an index past its values.
    #[test]
    fn a_delete_record_in_a_files_chunk_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut stager = Stager::new(&dir.path().join("files"), true).unwrap();
        let mut raw = vec![codec::DELETE];
        codec::put_text(&mut raw, b"a.txt");
        codec::put_int(&mut raw, 0);
        let err = stager.chunk(&raw, "c1").unwrap_err();
        assert!(err.to_string().contains("wrong shape"), "{err}");
    }
}
