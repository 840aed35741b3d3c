//! Cutting record streams into stored chunks (zstd, then optionally sealed), and back.
//!
//! Memory stays bounded: at most one chunk's records ([`CHUNK_RAW_TARGET`] plus one row) and its
//! compressed form are held at a time by the writer, and the upload queue holds at most
//! [`UPLOAD_QUEUE`] more.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::crypto::DataKey;
use super::model::{BackupError, BackupId, ChunkInfo, Manifest};

/// Raw (uncompressed) bytes after which a chunk is closed.
pub(crate) const CHUNK_RAW_TARGET: usize = 8 * 1024 * 1024;
/// The largest raw chunk a reader accepts (a manifest claiming more is refused).
const CHUNK_RAW_MAX: u64 = 256 * 1024 * 1024;
/// Chunks waiting for upload.
pub(crate) const UPLOAD_QUEUE: usize = 2;

/// A chunk ready to store.
pub(crate) struct Outgoing {
    pub(crate) name: String,
    pub(crate) data: Bytes,
}

/// Encodes records for one table after another into chunks, handing finished chunks to the
/// uploader. Runs on a blocking thread.
pub(crate) struct ChunkWriter<'a> {
    backup: BackupId,
    level: i32,
    key: Option<&'a DataKey>,
    /// Finished chunks go to the uploader thread, or (async readers) wait in `pending`.
    out: Option<mpsc::Sender<Outgoing>>,
    pending: Vec<Outgoing>,
    table: String,
    /// The current chunk's records.
    pub(crate) buf: Vec<u8>,
    records: u64,
    pub(crate) chunks: Vec<ChunkInfo>,
    /// The index of this writer's first chunk in the backup (chunks are sealed by index).
    first_index: usize,
}

impl<'a> ChunkWriter<'a> {
    pub(crate) fn new(
        backup: BackupId,
        level: i32,
        key: Option<&'a DataKey>,
        out: mpsc::Sender<Outgoing>,
    ) -> ChunkWriter<'a> {
        ChunkWriter {
            backup,
            level,
            key,
            out: Some(out),
            pending: Vec::new(),
            table: String::new(),
            buf: Vec::with_capacity(CHUNK_RAW_TARGET + 64 * 1024),
            records: 0,
            chunks: Vec::new(),
            first_index: 0,
        }
    }

    /// A writer for async readers: finished chunks wait in [`ChunkWriter::take_pending`].
    pub(crate) fn pending(
        backup: BackupId,
        level: i32,
        key: Option<&'a DataKey>,
    ) -> ChunkWriter<'a> {
        ChunkWriter {
            backup,
            level,
            key,
            out: None,
            pending: Vec::new(),
            table: String::new(),
            buf: Vec::with_capacity(CHUNK_RAW_TARGET + 64 * 1024),
            records: 0,
            chunks: Vec::new(),
            first_index: 0,
        }
    }

    /// Numbers this writer's chunks after `n` chunks written by another writer of the same
    /// backup.
    pub(crate) fn starting_at(mut self, n: usize) -> ChunkWriter<'a> {
        self.first_index = n;
        self
    }

    /// Chunks finished since the last call (async writers upload them).
    pub(crate) fn take_pending(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.pending)
    }

    /// Starts the records of `table` (closing the previous table's last chunk).
    pub(crate) fn begin_table(&mut self, table: &str) -> Result<(), BackupError> {
        self.flush()?;
        self.table = table.to_owned();
        Ok(())
    }

    /// Called after each record was appended to `buf`.
    pub(crate) fn record_done(&mut self) -> Result<(), BackupError> {
        self.records += 1;
        if self.buf.len() >= CHUNK_RAW_TARGET {
            self.flush()?;
        }
        Ok(())
    }

    /// Closes the current chunk, if it holds anything.
    pub(crate) fn flush(&mut self) -> Result<(), BackupError> {
        if self.records == 0 {
            return Ok(());
        }
        let index = u32::try_from(self.first_index + self.chunks.len())
            .map_err(|_| BackupError::InvalidInput("too many chunks".into()))?;
        let compressed =
            zstd::bulk::compress(&self.buf, self.level).map_err(|source| BackupError::Io {
                context: "cannot compress a chunk".into(),
                source,
            })?;
        let stored = match self.key {
            Some(key) => key.seal(&self.backup, index, &compressed)?,
            None => compressed,
        };
        let name = format!("chunks/{index:06}.bin");
        self.chunks.push(ChunkInfo {
            name: name.clone(),
            table: self.table.clone(),
            records: self.records,
            raw_size: self.buf.len() as u64,
            size: stored.len() as u64,
            sha256: hex::encode(Sha256::digest(&stored)),
        });
        self.buf.clear();
        self.records = 0;
        let outgoing = Outgoing {
            name,
            data: Bytes::from(stored),
        };
        match &self.out {
            Some(out) => out
                .blocking_send(outgoing)
                .map_err(|_| BackupError::Storage("the upload of a chunk failed".into())),
            None => {
                self.pending.push(outgoing);
                Ok(())
            }
        }
    }
}

/// Checks, decrypts and decompresses a stored chunk; errors name the chunk.
pub(crate) fn decode(
    manifest: &Manifest,
    index: usize,
    stored: &[u8],
    key: Option<&DataKey>,
) -> Result<Vec<u8>, BackupError> {
    let info = manifest
        .chunks
        .get(index)
        .ok_or_else(|| BackupError::CorruptManifest {
            id: manifest.id.to_string(),
            reason: format!("no chunk {index}"),
        })?;
    let corrupt = |reason: String| BackupError::CorruptChunk {
        id: manifest.id.clone(),
        chunk: info.name.clone(),
        reason,
    };
    if stored.len() as u64 != info.size {
        return Err(corrupt(format!(
            "{} bytes stored, the manifest says {}",
            stored.len(),
            info.size
        )));
    }
    if hex::encode(Sha256::digest(stored)) != info.sha256 {
        return Err(corrupt("SHA-256 mismatch".into()));
    }
    if info.raw_size > CHUNK_RAW_MAX {
        return Err(corrupt(format!("claims {} raw bytes", info.raw_size)));
    }
    let compressed;
    let compressed_ref = match (&manifest.encryption, key) {
        (Some(_), Some(key)) => {
            let index = u32::try_from(index).map_err(|_| corrupt("index".into()))?;
            compressed = key.open(&manifest.id, index, stored).map_err(corrupt)?;
            &compressed[..]
        }
        (Some(_), None) => {
            return Err(BackupError::Key(format!(
                "backup {} is encrypted and no key was given",
                manifest.id
            )));
        }
        (None, _) => stored,
    };
    let raw = zstd::bulk::decompress(compressed_ref, info.raw_size as usize)
        .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
    if raw.len() as u64 != info.raw_size {
        return Err(corrupt(
            "decompressed size differs from the manifest".into(),
        ));
    }
    Ok(raw)
}
