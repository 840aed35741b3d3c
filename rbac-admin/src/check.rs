//! Batch checks: a CSV of `subject,tenant,permission` queries in, one decision a line out.

use std::io::Write;

use rbac_core::{Engine, Snapshot};

/// What a batch run saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Queries decided.
    pub decided: usize,
    /// Of those, allowed.
    pub allowed: usize,
    /// Lines that were not a query; each printed `error` and was reported on `err`.
    pub malformed: usize,
}

/// How many queries are decided in one call of [`Snapshot::check_batch`], which reads ahead
/// in large snapshots; as many as the benchmark's batch rows.
const CHUNK: usize = 256;

/// Decides every query in `text` and writes `allow` or `deny` (with `explain`, the reason) a
/// line, in order. Blank lines and lines starting with `#` are skipped. A malformed line prints
/// `error` in its place, so that output lines stay aligned with queries, and is reported on
/// `err` with its line number; it is never skipped silently.
pub fn run_batch(
    engine: &Engine,
    text: &str,
    source_name: &str,
    explain: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<BatchSummary> {
    let snapshot = engine.snapshot();
    let mut pending = Pending {
        snapshot: &snapshot,
        explain,
        queries: Vec::with_capacity(CHUNK),
        summary: BatchSummary::default(),
    };
    let mut out = std::io::BufWriter::new(out);
    for record in rbac_core::lines::records(text) {
        let (line, fields) = match record {
            Ok(record) => (record.line, Ok(record.fields)),
            Err((line, e)) => (line, Err(e)),
        };
        match fields.and_then(parse_query) {
            Ok(None) => {}
            Ok(Some(query)) => {
                pending.queries.push(query);
                if pending.queries.len() == CHUNK {
                    pending.decide(&mut out)?;
                }
            }
            Err(problem) => {
                // The queries before it are answered first, so that `error` takes its line's
                // place in the output.
                pending.decide(&mut out)?;
                pending.summary.malformed += 1;
                writeln!(out, "error")?;
                out.flush()?;
                writeln!(err, "{source_name}:{line}: {problem}")?;
            }
        }
    }
    pending.decide(&mut out)?;
    out.flush()?;
    Ok(pending.summary)
}

/// Queries read but not yet answered.
struct Pending<'a> {
    snapshot: &'a Snapshot,
    explain: bool,
    queries: Vec<(String, String, String)>,
    summary: BatchSummary,
}

impl Pending<'_> {
    /// Answers the pending queries in order, one line each.
    fn decide(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.queries.is_empty() {
            return Ok(());
        }
        self.summary.decided += self.queries.len();
        if self.explain {
            for (subject, tenant, permission) in &self.queries {
                let why = self.snapshot.explain(subject, tenant, permission);
                self.summary.allowed += usize::from(why.decision.is_allowed());
                writeln!(out, "{why}")?;
            }
        } else {
            for decision in self.snapshot.check_batch(&self.queries) {
                self.summary.allowed += usize::from(decision.is_allowed());
                writeln!(out, "{decision}")?;
            }
        }
        self.queries.clear();
        Ok(())
    }
}

/// The query on a line, or `Ok(None)` for a blank one.
fn parse_query(fields: Vec<String>) -> Result<Option<(String, String, String)>, String> {
    if fields.iter().all(String::is_empty) {
        return Ok(None);
    }
    let [subject, tenant, permission]: [String; 3] = fields.try_into().map_err(|f: Vec<_>| {
        format!(
            "expected 3 fields `subject,tenant,permission`, found {}",
            f.len()
        )
    })?;
    rbac_core::name::validate_subject(&subject).map_err(|e| format!("bad subject: {e}"))?;
    if !tenant.is_empty() {
        rbac_core::name::validate_name(&tenant).map_err(|e| format!("bad tenant: {e}"))?;
    }
    rbac_core::name::validate_permission(&permission)
        .map_err(|e| format!("bad permission: {e}"))?;
    Ok(Some((subject, tenant, permission)))
}
