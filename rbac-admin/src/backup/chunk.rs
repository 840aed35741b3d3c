//! Cutting record streams into stored chunks (zstd, then optionally sealed), and back.
//!
//! Memory stays bounded: the writer fills one chunk ([`CHUNK_RAW_TARGET`] plus one row) while,
//! with [`ChunkWriter::pipelined`], a second thread compresses, seals and hashes the previous
//! one (one more may wait between them), and the upload queue holds at most [`UPLOAD_QUEUE`]
//! stored chunks.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::crypto::DataKey;
use super::model::{BackupError, BackupId, ChunkInfo, Manifest};

/// Raw (uncompressed) bytes after which a chunk is closed.
pub(crate) const CHUNK_RAW_TARGET: usize = 4 * 1024 * 1024;
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
    /// Chunks closed so far.
    closed: usize,
    /// With [`ChunkWriter::pipelined`]: closed chunks go to the compressor thread.
    jobs: Option<std::sync::mpsc::SyncSender<Job>>,
}

/// A closed chunk on its way to the compressor thread.
struct Job {
    index: u32,
    table: String,
    records: u64,
    raw: Vec<u8>,
}

/// Compresses, seals and hashes a closed chunk: what is stored, and its manifest entry.
fn finish_chunk(
    backup: &BackupId,
    level: i32,
    key: Option<&DataKey>,
    job: &Job,
) -> Result<(ChunkInfo, Outgoing), BackupError> {
    let compressed = zstd::bulk::compress(&job.raw, level).map_err(|source| BackupError::Io {
        context: "cannot compress a chunk".into(),
        source,
    })?;
    let stored = match key {
        Some(key) => key.seal(backup, job.index, &compressed)?,
        None => compressed,
    };
    let name = format!("chunks/{:06}.bin", job.index);
    let info = ChunkInfo {
        name: name.clone(),
        table: job.table.clone(),
        records: job.records,
        raw_size: job.raw.len() as u64,
        size: stored.len() as u64,
        sha256: hex::encode(Sha256::digest(&stored)),
    };
    let outgoing = Outgoing {
        name,
        data: Bytes::from(stored),
    };
    Ok((info, outgoing))
}

impl<'a> ChunkWriter<'a> {
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
            closed: 0,
            jobs: None,
        }
    }

    /// Runs `work` with a writer whose chunks are compressed, sealed and hashed on a second
    /// thread while `work` goes on reading (compression is about half of a backup's CPU time),
    /// then returns `work`'s result and the chunks' manifest entries, in order. Memory: the
    /// chunk being filled, one waiting, one being compressed, and the upload queue.
    pub(crate) fn pipelined<T>(
        backup: BackupId,
        level: i32,
        key: Option<&DataKey>,
        out: mpsc::Sender<Outgoing>,
        first_index: usize,
        work: impl FnOnce(&mut ChunkWriter<'_>) -> Result<T, BackupError>,
    ) -> Result<(T, Vec<ChunkInfo>), BackupError> {
        std::thread::scope(|scope| {
            let (jobs, incoming) = std::sync::mpsc::sync_channel::<Job>(1);
            let compressor_backup = backup.clone();
            let compressor = scope.spawn(move || {
                let mut infos = Vec::new();
                for job in incoming {
                    let (info, outgoing) = finish_chunk(&compressor_backup, level, key, &job)?;
                    infos.push(info);
                    out.blocking_send(outgoing)
                        .map_err(|_| BackupError::Storage("the upload of a chunk failed".into()))?;
                }
                Ok::<_, BackupError>(infos)
            });
            let mut writer = ChunkWriter {
                backup,
                level,
                key: None,
                out: None,
                pending: Vec::new(),
                table: String::new(),
                buf: Vec::with_capacity(CHUNK_RAW_TARGET + 64 * 1024),
                records: 0,
                chunks: Vec::new(),
                first_index,
                closed: 0,
                jobs: Some(jobs),
            };
            let result = work(&mut writer).and_then(|t| writer.flush().map(|()| t));
            // Closing the queue lets the compressor finish what it holds.
            drop(writer);
            let compressed = compressor.join().unwrap_or_else(|_| {
                Err(BackupError::Storage("the chunk compressor stopped".into()))
            });
            match (result, compressed) {
                (Ok(t), Ok(infos)) => Ok((t, infos)),
                // The compressor's error is the cause when the reader only saw a closed queue.
                (_, Err(e)) => Err(e),
                (Err(e), Ok(_)) => Err(e),
            }
        })
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
        let index = u32::try_from(self.first_index + self.closed)
            .map_err(|_| BackupError::InvalidInput("too many chunks".into()))?;
        self.closed += 1;
        let records = std::mem::take(&mut self.records);
        if let Some(jobs) = &self.jobs {
            let raw = std::mem::replace(
                &mut self.buf,
                Vec::with_capacity(CHUNK_RAW_TARGET + 64 * 1024),
            );
            let job = Job {
                index,
                table: self.table.clone(),
                records,
                raw,
            };
            return jobs
                .send(job)
                .map_err(|_| BackupError::Storage("the chunk compressor stopped".into()));
        }
        let job = Job {
            index,
            table: self.table.clone(),
            records,
            raw: std::mem::take(&mut self.buf),
        };
        let result = finish_chunk(&self.backup, self.level, self.key, &job);
        // Keep the buffer's capacity for the next chunk.
        self.buf = job.raw;
        self.buf.clear();
        let (info, outgoing) = result?;
        self.chunks.push(info);
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
