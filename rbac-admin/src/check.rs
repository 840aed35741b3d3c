//! Batch checks: a CSV of `subject,tenant,permission` queries in, one decision a line out.

use std::io::Write;

use rbac_core::Engine;

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
    let mut summary = BatchSummary::default();
    let mut out = std::io::BufWriter::new(out);
    for record in rbac_core::lines::records(text) {
        let (line, fields) = match record {
            Ok(record) => (record.line, Ok(record.fields)),
            Err((line, e)) => (line, Err(e)),
        };
        let query = fields.and_then(|r| parse_query(&r));
        match query {
            Ok(None) => continue,
            Ok(Some((subject, tenant, permission))) => {
                let decision = snapshot.check(&subject, &tenant, &permission);
                summary.decided += 1;
                summary.allowed += usize::from(decision.is_allowed());
                if explain {
                    writeln!(out, "{}", snapshot.explain(&subject, &tenant, &permission))?;
                } else {
                    writeln!(out, "{decision}")?;
                }
            }
            Err(problem) => {
                summary.malformed += 1;
                writeln!(out, "error")?;
                out.flush()?;
                writeln!(err, "{source_name}:{line}: {problem}")?;
            }
        }
    }
    out.flush()?;
    Ok(summary)
}

/// `Ok(None)` for a blank line.
fn parse_query(record: &[String]) -> Result<Option<(String, String, String)>, String> {
    if record.iter().all(String::is_empty) {
        return Ok(None);
    }
    let [subject, tenant, permission] = record else {
        return Err(format!(
            "expected 3 fields `subject,tenant,permission`, found {}",
            record.len()
        ));
    };
    rbac_core::name::validate_subject(subject).map_err(|e| format!("bad subject: {e}"))?;
    if !tenant.is_empty() {
        rbac_core::name::validate_name(tenant).map_err(|e| format!("bad tenant: {e}"))?;
    }
    rbac_core::name::validate_permission(permission).map_err(|e| format!("bad permission: {e}"))?;
    Ok(Some((
        subject.to_owned(),
        tenant.to_owned(),
        permission.to_owned(),
    )))
}
