//! Cutting record streams into stored chunks (zstd, then optionally sealed), and back.
//!
//! Memory stays bounded: the writer fills one chunk ([`CHUNK_RAW_TARGET`] plus one row) while,
//! with [`ChunkWriter::pipelined`], a second thread compresses, seals and hashes the previous
//! one (one more may wait between them), and the upload queue holds at most [`UPLOAD_QUEUE`]
//! stored chunks.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::codec;
use super::crypto::DataKey;
use super::model::{BackupError, BackupId, ChunkGroup, ChunkInfo, Manifest};

/// Raw (uncompressed) bytes after which a chunk is closed.
pub(crate) const CHUNK_RAW_TARGET: usize = 4 * 1024 * 1024;
/// The largest raw chunk a reader accepts (a manifest claiming more is refused).
const CHUNK_RAW_MAX: u64 = 256 * 1024 * 1024;
/// Chunks waiting for upload.
pub(crate) const UPLOAD_QUEUE: usize = 2;
/// Raw bytes a tenant needs in a chunk for a group of its own; smaller shares go to the
/// mixed group. Below this, a frame's compression suffers and the manifest grows for little
/// saved reading.
const GROUP_MIN_RAW: usize = 32 * 1024;
/// At most this many tenant groups per chunk (the largest shares), plus the mixed one.
const GROUPS_MAX: usize = 32;
/// Distinct tenants tracked per chunk; rows of further ones go to the mixed group.
const TENANTS_TRACKED: usize = 512;
/// The slot of rows that go to the mixed group whatever their share.
const MIXED: u32 = u32::MAX;

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
    /// The current table's tenant column, when its rows are grouped by tenant.
    tenant_column: Option<usize>,
    /// Where the current record starts in `buf`.
    record_start: usize,
    /// The tenants of the current chunk (see [`Tenants`]).
    tenants: Tenants,
    /// Buffers reused by [`finish_chunk`] when this writer compresses (not pipelined).
    scratch: Scratch,
}

/// The tenant of each record of a chunk being filled, for grouping at close.
#[derive(Default)]
struct Tenants {
    /// Each record's end in the chunk and its tenant's slot (or [`MIXED`]).
    marks: Vec<(usize, u32)>,
    /// The tenant of each slot, in order of first appearance.
    names: Vec<Vec<u8>>,
    index: std::collections::HashMap<Vec<u8>, u32>,
    /// The slot of the record before (rows of one tenant often come together).
    last: u32,
}

impl Tenants {
    fn slot(&mut self, name: Option<&[u8]>) -> u32 {
        let Some(name) = name else {
            return MIXED;
        };
        if self
            .names
            .get(self.last as usize)
            .is_some_and(|n| n == name)
        {
            return self.last;
        }
        let slot = match self.index.get(name) {
            Some(&slot) => slot,
            None if self.names.len() < TENANTS_TRACKED => {
                let slot = self.names.len() as u32;
                self.names.push(name.to_vec());
                self.index.insert(name.to_vec(), slot);
                slot
            }
            None => return MIXED,
        };
        self.last = slot;
        slot
    }
}

/// A closed chunk on its way to the compressor thread.
struct Job {
    index: u32,
    table: String,
    records: u64,
    raw: Vec<u8>,
    /// Each record's tenant, when the chunk's rows are grouped by tenant.
    tenants: Option<Tenants>,
}

/// One group of a chunk regrouped by tenant.
struct Group {
    /// `None`: the mixed group.
    tenant: Option<String>,
    records: u64,
    /// Where its records are in the regrouped chunk.
    range: std::ops::Range<usize>,
}

/// A chunk's records regrouped by tenant into `out`: the mixed group first (rows with no
/// tenant, such as global ones, then come before tenants' rows, as a parent often does), then
/// the largest shares. Within a group, records keep their order. `None` when no tenant has
/// enough rows in the chunk for a group of its own.
fn group_by_tenant(raw: &[u8], tenants: &Tenants, out: &mut Vec<u8>) -> Option<Vec<Group>> {
    let mut bytes = vec![0usize; tenants.names.len()];
    let mut start = 0;
    for &(end, slot) in &tenants.marks {
        if let Some(b) = bytes.get_mut(slot as usize) {
            *b += end.saturating_sub(start);
        }
        start = end;
    }
    let mut own: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] >= GROUP_MIN_RAW)
        .collect();
    own.sort_by_key(|&i| std::cmp::Reverse(bytes[i]));
    own.truncate(GROUPS_MAX);
    if own.is_empty() {
        return None;
    }
    // Slot → group; the mixed group is the first one.
    let mixed = 0;
    let mut group_of = vec![mixed; tenants.names.len()];
    for (g, &slot) in own.iter().enumerate() {
        group_of[slot] = g + 1;
    }
    let own_bytes: usize = own.iter().map(|&slot| bytes[slot]).sum();
    let mut sizes = vec![raw.len().saturating_sub(own_bytes)];
    sizes.extend(own.iter().map(|&slot| bytes[slot]));
    // Where each group's next record goes in `out`.
    let mut next: Vec<usize> = sizes
        .iter()
        .scan(0, |at, &size| {
            let here = *at;
            *at += size;
            Some(here)
        })
        .collect();
    let mut groups: Vec<Group> = std::iter::once(None)
        .chain(
            own.iter()
                .map(|&slot| Some(String::from_utf8_lossy(&tenants.names[slot]).into_owned())),
        )
        .zip(&next)
        .zip(&sizes)
        .map(|((tenant, &at), &size)| Group {
            tenant,
            records: 0,
            range: at..at + size,
        })
        .collect();
    out.clear();
    out.resize(raw.len(), 0);
    let mut start = 0;
    for &(end, slot) in &tenants.marks {
        let g = group_of.get(slot as usize).copied().unwrap_or(mixed);
        let record = raw.get(start..end)?;
        let at = next.get_mut(g)?;
        out.get_mut(*at..*at + record.len())?
            .copy_from_slice(record);
        *at += record.len();
        groups.get_mut(g)?.records += 1;
        start = end;
    }
    // Every record was placed, and filled its group exactly.
    if start != raw.len() || next.iter().zip(&groups).any(|(&at, g)| at != g.range.end) {
        return None;
    }
    if groups.first().is_some_and(|g| g.records == 0) {
        groups.remove(0);
    }
    Some(groups)
}

/// What a compressor keeps from one chunk to the next.
struct Scratch {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    /// The records of the chunk regrouped by tenant.
    regrouped: Vec<u8>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            compressor: None,
            regrouped: Vec::new(),
        }
    }
}

/// Compresses, seals and hashes a closed chunk: what is stored, and its manifest entry.
fn finish_chunk(
    backup: &BackupId,
    level: i32,
    key: Option<&DataKey>,
    job: &Job,
    scratch: &mut Scratch,
) -> Result<(ChunkInfo, Outgoing), BackupError> {
    let failed = |source| BackupError::Io {
        context: "cannot compress a chunk".into(),
        source,
    };
    let compressor = match &mut scratch.compressor {
        Some(c) => c,
        none => none.insert(zstd::bulk::Compressor::new(level).map_err(failed)?),
    };
    let grouped = match &job.tenants {
        Some(t) if t.marks.len() as u64 == job.records => {
            group_by_tenant(&job.raw, t, &mut scratch.regrouped)
        }
        _ => None,
    };
    let (compressed, groups) = match grouped {
        // One zstd frame per group, back to back: a plain decompression reads them all as
        // one stream, and a tenant's restore decompresses only the frames it needs.
        Some(ranges) => {
            let regrouped = &scratch.regrouped;
            let bound: usize = ranges
                .iter()
                .map(|g| zstd::zstd_safe::compress_bound(g.range.len()))
                .sum();
            // Each frame is written after the one before, into memory reserved, not touched,
            // for the worst case.
            let mut compressed = std::io::Cursor::new(Vec::with_capacity(bound));
            let mut groups = Vec::with_capacity(ranges.len());
            for Group {
                tenant,
                records,
                range,
            } in ranges
            {
                let frame = regrouped.get(range.clone()).unwrap_or_default();
                compressed.set_position(compressed.get_ref().len() as u64);
                let n = compressor
                    .compress_to_buffer(frame, &mut compressed)
                    .map_err(failed)?;
                groups.push(ChunkGroup {
                    tenant,
                    records,
                    raw_size: range.len() as u64,
                    compressed_size: n as u64,
                });
            }
            (compressed.into_inner(), groups)
        }
        None => (compressor.compress(&job.raw).map_err(failed)?, Vec::new()),
    };
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
        groups,
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
            tenant_column: None,
            record_start: 0,
            tenants: Tenants::default(),
            scratch: Scratch::new(),
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
                let mut scratch = Scratch::new();
                for job in incoming {
                    let (info, outgoing) =
                        finish_chunk(&compressor_backup, level, key, &job, &mut scratch)?;
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
                tenant_column: None,
                record_start: 0,
                tenants: Tenants::default(),
                scratch: Scratch::new(),
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
        self.begin_table_by_tenant(table, None)
    }

    /// Starts the rows of `table`, grouped in each chunk by the text of value
    /// `tenant_column` (see [`ChunkInfo::groups`]). Only for row records: the order of an
    /// incremental's records matters, a full backup's does not.
    pub(crate) fn begin_table_by_tenant(
        &mut self,
        table: &str,
        tenant_column: Option<usize>,
    ) -> Result<(), BackupError> {
        self.flush()?;
        self.table = table.to_owned();
        self.tenant_column = tenant_column;
        Ok(())
    }

    /// Called after each record was appended to `buf`.
    pub(crate) fn record_done(&mut self) -> Result<(), BackupError> {
        self.records += 1;
        if let Some(column) = self.tenant_column {
            let end = self.buf.len();
            let record = self.buf.get(self.record_start..end).unwrap_or_default();
            let tenant = codec::Reader::new(record).text_of_row(column);
            let slot = self.tenants.slot(tenant);
            self.tenants.marks.push((end, slot));
            self.record_start = end;
        }
        if self.buf.len() >= CHUNK_RAW_TARGET {
            self.flush()?;
        }
        Ok(())
    }

    /// The tenants of the chunk being closed, when its rows are grouped.
    fn take_tenants(&mut self) -> Option<Tenants> {
        self.record_start = 0;
        let tenants = std::mem::take(&mut self.tenants);
        self.tenant_column.map(|_| tenants)
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
        let tenants = self.take_tenants();
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
                tenants,
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
            tenants,
        };
        let result = finish_chunk(&self.backup, self.level, self.key, &job, &mut self.scratch);
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

/// Checks that the decoded records of a grouped chunk (`raw`, its groups back to back) are
/// what its groups say: each group's record count, and in a tenant's group, rows of that
/// tenant only (the value at `tenant_column`). For `verify`: a restore of another tenant would
/// otherwise never look.
pub(crate) fn check_groups(
    info: &ChunkInfo,
    raw: &[u8],
    (row_len, key_len): (usize, usize),
    tenant_column: Option<usize>,
) -> Result<(), String> {
    let mut at = 0usize;
    let mut values = Vec::new();
    for g in &info.groups {
        let end = at.saturating_add(usize::try_from(g.raw_size).unwrap_or(usize::MAX));
        let part = raw
            .get(at..end)
            .ok_or_else(|| "a group lies outside the chunk".to_owned())?;
        let mut reader = codec::Reader::new(part);
        let mut records = 0u64;
        while let Some(tag) = reader
            .next_ref(row_len, key_len, &mut values)
            .map_err(|e| e.to_string())?
        {
            records += 1;
            if let Some(tenant) = &g.tenant {
                let own = tag == codec::ROW
                    && tenant_column
                        .and_then(|i| values.get(i))
                        .is_some_and(|v| v.names_tenant(tenant));
                if !own {
                    return Err(format!("the group of tenant `{tenant}` holds another row"));
                }
            }
        }
        if records != g.records {
            return Err(format!(
                "a group holds {records} records, the manifest says {}",
                g.records
            ));
        }
        at = end;
    }
    Ok(())
}

/// Checks, decrypts and decompresses a stored chunk; errors name the chunk.
pub(crate) fn decode(
    manifest: &Manifest,
    index: usize,
    stored: &[u8],
    key: Option<&DataKey>,
) -> Result<Vec<u8>, BackupError> {
    decode_for(manifest, index, stored, key, None).map(|(raw, _)| raw)
}

/// [`decode`], for a restore of `tenant` when one is given: of a chunk grouped by tenant,
/// only the tenant's groups and the mixed one are decompressed (the whole chunk is still
/// checked and decrypted). Returns the records and how many were left out.
pub(crate) fn decode_for(
    manifest: &Manifest,
    index: usize,
    stored: &[u8],
    key: Option<&DataKey>,
    tenant: Option<&str>,
) -> Result<(Vec<u8>, u64), BackupError> {
    let info = manifest.chunk(index)?;
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
    // Every record takes at least one byte: this bounds the counts the groups add up.
    if info.records > info.raw_size {
        return Err(corrupt(format!(
            "claims {} records in {} bytes",
            info.records, info.raw_size
        )));
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
    if !info.groups.is_empty() {
        // Saturating: the sizes come from the manifest, and a sum that wraps must not pass.
        let sum =
            |f: fn(&ChunkGroup) -> u64| info.groups.iter().map(f).fold(0u64, u64::saturating_add);
        if sum(|g| g.compressed_size) != compressed_ref.len() as u64
            || sum(|g| g.raw_size) != info.raw_size
            || sum(|g| g.records) != info.records
        {
            return Err(corrupt(
                "its groups do not add up to the chunk the manifest describes".into(),
            ));
        }
        // Frame by frame, even for every group: a split that does not fall on the frames is
        // found by every reader, not only by a tenant's restore.
        let wanted = |g: &ChunkGroup| match (tenant, g.tenant.as_deref()) {
            (Some(tenant), Some(of)) => of == tenant,
            _ => true,
        };
        // One buffer of the exact size (the sizes add up to at most the chunk's raw size),
        // reserved and filled frame after frame, never zeroed first.
        let size = info
            .groups
            .iter()
            .filter(|g| wanted(g))
            .fold(0u64, |n, g| n.saturating_add(g.raw_size));
        let mut raw = std::io::Cursor::new(Vec::with_capacity(size as usize));
        let mut decompressor = zstd::bulk::Decompressor::new()
            .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
        let (mut at, mut skipped) = (0usize, 0u64);
        for g in &info.groups {
            let end = at.saturating_add(g.compressed_size as usize);
            if wanted(g) {
                let frame = compressed_ref
                    .get(at..end)
                    .ok_or_else(|| corrupt("a group lies outside the chunk".into()))?;
                raw.set_position(raw.get_ref().len() as u64);
                // The buffer never grows: a frame larger than the room left fails here.
                let n = decompressor
                    .decompress_to_buffer(frame, &mut raw)
                    .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
                if n as u64 != g.raw_size {
                    return Err(corrupt(
                        "decompressed size differs from the manifest".into(),
                    ));
                }
            } else {
                skipped = skipped.saturating_add(g.records);
            }
            at = end;
        }
        let raw = raw.into_inner();
        return Ok((raw, skipped));
    }
    let raw = zstd::bulk::decompress(compressed_ref, info.raw_size as usize)
        .map_err(|e| corrupt(format!("cannot decompress: {e}")))?;
    if raw.len() as u64 != info.raw_size {
        return Err(corrupt(
            "decompressed size differs from the manifest".into(),
        ));
    }
    Ok((raw, 0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;
    use chrono::Utc;

    /// Writes `rows` (tenant, or `None` for a NULL tenant; and a payload size) as one table
    /// grouped by tenant (column 1), and returns the manifest of the chunks.
    fn grouped(rows: &[(Option<&str>, usize)]) -> (Manifest, Vec<Outgoing>) {
        let id = BackupId::generate(Utc::now());
        let mut writer = ChunkWriter::pending(id.clone(), 3, None);
        writer.begin_table_by_tenant("t", Some(1)).unwrap();
        for (i, (tenant, size)) in rows.iter().enumerate() {
            writer.buf.push(codec::ROW);
            codec::put_int(&mut writer.buf, i as i64);
            match tenant {
                Some(t) => codec::put_text(&mut writer.buf, t.as_bytes()),
                None => codec::put_null(&mut writer.buf),
            }
            // Incompressible enough that sizes stay apart after compression.
            let payload: Vec<u8> = (0..*size).map(|_| fastrand::u8(..)).collect();
            codec::put_blob(&mut writer.buf, &payload);
            writer.record_done().unwrap();
        }
        writer.flush().unwrap();
        let manifest = Manifest::for_test(id, Vec::new(), writer.chunks.clone());
        let out = writer.take_pending();
        (manifest, out)
    }

    /// The ids (first value) of the records in `raw`.
    fn ids(raw: &[u8]) -> Vec<i64> {
        let mut reader = codec::Reader::new(raw);
        let mut values = Vec::new();
        let mut ids = Vec::new();
        while reader.next(3, 1, &mut values).unwrap().is_some() {
            if let Some(codec::Value::Int(id)) = values.first() {
                ids.push(*id);
            }
        }
        ids.sort_unstable();
        ids
    }

    #[test]
    fn rows_are_grouped_by_tenant_and_a_tenant_reads_only_its_groups() {
        // acme and globex have groups of their own; initech's few rows and the row with no
        // tenant share the mixed group.
        let mut rows = Vec::new();
        for i in 0..120 {
            rows.push((Some(["acme", "globex", "acme"][i % 3]), 1000));
            if i % 40 == 0 {
                rows.push((Some("initech"), 100));
            }
        }
        rows.push((None, 100));
        let (m, out) = grouped(&rows);
        assert_eq!(m.chunks.len(), 1);
        let info = &m.chunks[0];
        let tenants: Vec<Option<&str>> = info.groups.iter().map(|g| g.tenant.as_deref()).collect();
        assert_eq!(tenants, [None, Some("acme"), Some("globex")]);
        assert_eq!(
            info.groups.iter().map(|g| g.records).collect::<Vec<_>>(),
            [4, 80, 40]
        );
        let stored = &out[0].data;

        // Every record, as before groups existed.
        let all = decode(&m, 0, stored, None).unwrap();
        assert_eq!(ids(&all), (0..rows.len() as i64).collect::<Vec<_>>());
        // What `verify` checks: each group's count, and its rows' tenant.
        assert_eq!(check_groups(info, &all, (3, 1), Some(1)), Ok(()));
        let mut mislabelled = info.clone();
        mislabelled.groups[2].tenant = Some("acme".into());
        let err = check_groups(&mislabelled, &all, (3, 1), Some(1)).unwrap_err();
        assert!(
            err.contains("the group of tenant `acme` holds another row"),
            "{err}"
        );
        mislabelled.groups[2].tenant = Some("globex".into());
        mislabelled.groups[2].records += 1;
        assert!(check_groups(&mislabelled, &all, (3, 1), Some(1)).is_err());
        // A tenant: its group and the mixed one, and a count of the others.
        let of = |tenant| decode_for(&m, 0, stored, None, Some(tenant)).unwrap();
        let expect = |want: &dyn Fn(Option<&str>) -> bool| {
            rows.iter()
                .enumerate()
                .filter(|(_, (t, _))| want(*t))
                .map(|(i, _)| i as i64)
                .collect::<Vec<_>>()
        };
        let mixed = |t: Option<&str>| t.is_none() || t == Some("initech");
        let (acme, skipped) = of("acme");
        assert_eq!(ids(&acme), expect(&|t| t == Some("acme") || mixed(t)));
        assert_eq!(skipped, 40);
        let (initech, skipped) = of("initech");
        assert_eq!(ids(&initech), expect(&mixed));
        assert_eq!(skipped, 120);
        assert!(info.may_hold("initech") && info.may_hold("umbrella"));

        // A chunk of one tenant only is skipped whole by every other tenant.
        let (m, _) = grouped(&[(Some("acme"), 40_000), (Some("acme"), 40_000)]);
        assert_eq!(m.chunks[0].groups.len(), 1);
        assert!(m.chunks[0].may_hold("acme"));
        assert!(!m.chunks[0].may_hold("globex"));
    }

    #[test]
    fn small_shares_and_ungrouped_tables_stay_one_frame() {
        let (m, out) = grouped(&[(Some("acme"), 100), (Some("globex"), 100), (None, 10)]);
        assert!(m.chunks[0].groups.is_empty());
        let (raw, skipped) = decode_for(&m, 0, &out[0].data, None, Some("acme")).unwrap();
        assert_eq!((ids(&raw), skipped), (vec![0, 1, 2], 0));
    }

    #[test]
    fn groups_that_do_not_add_up_are_a_corrupt_chunk() {
        let (mut m, out) = grouped(&[(Some("acme"), 40_000), (Some("globex"), 40_000)]);
        m.chunks[0].groups[0].compressed_size += 1;
        m.chunks[0].groups[1].compressed_size -= 1;
        let err = decode_for(&m, 0, &out[0].data, None, Some("acme")).unwrap_err();
        assert!(err.to_string().contains("cannot decompress"), "{err}");
        // Reading every group goes frame by frame too, so `verify` finds the bad split.
        let err = decode(&m, 0, &out[0].data, None).unwrap_err();
        assert!(err.to_string().contains("cannot decompress"), "{err}");
        m.chunks[0].groups[1].records += 1;
        let err = decode(&m, 0, &out[0].data, None).unwrap_err();
        assert!(err.to_string().contains("do not add up"), "{err}");
        // Sizes that would wrap around to the right sum are refused, not trusted.
        let (mut m, out) = grouped(&[(Some("acme"), 40_000), (Some("globex"), 40_000)]);
        let raw = m.chunks[0].groups[0].raw_size;
        m.chunks[0].groups[0].raw_size = u64::MAX;
        m.chunks[0].groups[1].raw_size += raw + 1;
        let err = decode_for(&m, 0, &out[0].data, None, Some("globex")).unwrap_err();
        assert!(err.to_string().contains("do not add up"), "{err}");
    }
}
