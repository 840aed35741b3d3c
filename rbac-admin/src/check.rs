//! Batch checks: a CSV of `subject,tenant,permission` queries in, one decision a line out.
//!
//! Input is read line by line, so memory stays bounded by one chunk of queries whatever the
//! input's length, and answers come out as soon as the input pauses: a program that writes a
//! query to `rbac-admin check --batch -` and waits can read its answer before it writes the
//! next one.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::ops::Range;

use rbac_core::{Decision, Engine, Explanation, Snapshot};

use crate::CliError;

/// What a batch run saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Queries decided.
    pub decided: usize,
    /// Of those, allowed.
    pub allowed: usize,
    /// Lines that were not a query; each printed `error` (or its JSON object) and was reported
    /// on `err`.
    pub malformed: usize,
}

/// How a batch prints its answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOptions {
    /// Add the reason: the role chain and the rule that decided.
    pub explain: bool,
    /// JSON Lines instead of text: one compact object per query line, `{"line", "subject",
    /// "tenant", "permission", "decision", "cause"}` (with `explain`, also `"reason"`,
    /// `"held_roles"` and `"chain"`), or `{"line", "error"}` for a malformed line, which is
    /// still reported on `err` too.
    pub json_lines: bool,
}

/// A decision as JSON: `check --format json`, and each line of `check --batch --format json`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct Decided<'a> {
    /// The query's line in a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) line: Option<usize>,
    pub(crate) subject: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) permission: &'a str,
    pub(crate) decision: &'static str,
    pub(crate) cause: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) held_roles: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chain: Option<&'a [String]>,
}

impl<'a> Decided<'a> {
    /// `why` as JSON, with the reason when `explain`.
    pub(crate) fn new(why: &'a Explanation, line: Option<usize>, explain: bool) -> Decided<'a> {
        let query = [why.subject.as_str(), &why.tenant, &why.permission];
        Decided {
            reason: explain.then(|| why.to_string()),
            held_roles: explain.then_some(why.held_roles.as_slice()),
            chain: explain.then_some(why.chain.as_slice()),
            ..Decided::plain(line, query, why.decision)
        }
    }

    /// The query `[subject, tenant, permission]` and its decision, without the reason.
    fn plain(line: Option<usize>, query: [&'a str; 3], decision: Decision) -> Decided<'a> {
        let [subject, tenant, permission] = query;
        Decided {
            line,
            subject,
            tenant,
            permission,
            decision: decision.verdict(),
            cause: decision.cause().as_str(),
            reason: None,
            held_roles: None,
            chain: None,
        }
    }
}

/// A malformed batch line as JSON.
#[derive(serde::Serialize)]
struct Malformed<'a> {
    line: usize,
    error: &'a str,
}

/// Writes `value` as one line of JSON.
fn json_line(out: &mut impl Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    // `From` gives back a write error as it was, so a closed pipe is still `BrokenPipe`.
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}

/// How many queries are decided in one call of [`Snapshot::check_batch`], which reads ahead
/// in large snapshots; as many as the benchmark's batch rows.
const CHUNK: usize = 256;

/// Bytes of input read at a time. Queries read are answered (and the output flushed) each time
/// this buffer runs dry, so larger is fewer flushes; 64 KiB is about 2,000 queries.
const INPUT_BUFFER: usize = 64 * 1024;

/// Decides every query in `text`; [`run_batch_from`] over a string.
///
/// ```
/// let policy = rbac_core::Policy::from_toml_str(r#"
///     [permissions.finance.invoices]
///     read = "List invoices"
///     [roles.clerk]
///     grants = ["finance.invoices.read"]
///     [subjects.alice]
///     roles = ["clerk"]
/// "#).unwrap();
/// let engine = rbac_core::Engine::new(&policy);
/// let (mut out, mut err) = (Vec::new(), Vec::new());
/// let text = "alice,,finance.invoices.read\nbob,,finance.invoices.read\nalice,,Finance\n";
/// let summary = rbac_admin::check::run_batch(&engine, text, "q.csv", false, &mut out, &mut err)?;
/// assert_eq!(String::from_utf8(out).unwrap(), "allow\ndeny\nerror\n");
/// assert!(String::from_utf8(err).unwrap().starts_with("q.csv:3: bad permission"));
/// assert_eq!((summary.decided, summary.allowed, summary.malformed), (2, 1, 1));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn run_batch(
    engine: &Engine,
    text: &str,
    source_name: &str,
    explain: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<BatchSummary> {
    let options = BatchOptions {
        explain,
        json_lines: false,
    };
    run_batch_from(engine, text.as_bytes(), source_name, options, out, err).map_err(|e| match e {
        CliError::Read { source, .. } | CliError::Io(source) => source,
        other => std::io::Error::other(other),
    })
}

/// Decides every query read from `input` and writes `allow` or `deny` (with `explain`, the
/// reason; with `json_lines`, a JSON object) a line, in order. Lines starting with `#` and
/// lines of unquoted empty fields are skipped. A malformed line (wrong field count, bad
/// name, not UTF-8, over 64 KiB) prints `error` (or `{"line", "error"}`) in its place, so that
/// output lines stay aligned with queries, and is reported on `err` as
/// `SOURCE:LINE: problem`; it is never skipped silently.
///
/// Queries are answered a chunk at a time through [`Snapshot::check_batch`], and whenever
/// everything read so far is parsed and reading on would wait for `input`, so that answers
/// never wait for input that has not been written yet. A failure to read `input` is
/// [`CliError::Read`] naming `source_name`; one to write `out` or `err` is [`CliError::Io`].
pub fn run_batch_from(
    engine: &Engine,
    input: impl Read,
    source_name: &str,
    options: BatchOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<BatchSummary, CliError> {
    let snapshot = engine.snapshot();
    let mut batch = Batch {
        pending: Pending {
            snapshot: &snapshot,
            options,
            names: String::new(),
            queries: Vec::with_capacity(CHUNK),
            summary: BatchSummary::default(),
        },
        out: BufWriter::new(out),
        err,
        source_name,
        line: 0,
    };
    let mut input = BufReader::with_capacity(INPUT_BUFFER, input);
    let mut partial = PartialLine::default();
    loop {
        if input.buffer().is_empty() {
            // Reading on may wait for whoever writes the input: answer what it asked so far.
            batch.pending.decide(&mut batch.out)?;
            batch.out.flush()?;
        }
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(CliError::Read {
                    path: source_name.to_owned(),
                    source,
                });
            }
        };
        let Some(end) = memchr::memchr(b'\n', buf) else {
            if buf.is_empty() {
                // The end of the input; its last line may lack a newline.
                if !partial.is_empty() {
                    batch.line(&partial.bytes, partial.overlong)?;
                }
                break;
            }
            let n = buf.len();
            partial.push(buf);
            input.consume(n);
            continue;
        };
        if partial.is_empty() {
            // The common case: the whole line is in the buffer.
            batch.line(&buf[..end], end > MAX_LINE)?;
        } else {
            partial.push(&buf[..end]);
            batch.line(&partial.bytes, partial.overlong)?;
            partial = PartialLine::default();
        }
        input.consume(end + 1);
    }
    batch.pending.decide(&mut batch.out)?;
    batch.out.flush()?;
    Ok(batch.pending.summary)
}

/// Longest line read, in bytes. A query's three names take at most 640, so only padding (spaces
/// around the fields) could make a longer line valid: such lines are malformed too, which keeps
/// the memory a line takes bounded.
const MAX_LINE: usize = 64 * 1024;

/// A line that does not end in the input buffer, gathered across reads. At most `MAX_LINE`
/// bytes are kept, so that input without newlines cannot take unbounded memory.
#[derive(Default)]
struct PartialLine {
    bytes: Vec<u8>,
    /// More than `MAX_LINE` bytes came: `bytes` is not all of the line.
    overlong: bool,
}

impl PartialLine {
    fn push(&mut self, more: &[u8]) {
        self.overlong |= self.bytes.len() + more.len() > MAX_LINE;
        if !self.overlong {
            self.bytes.extend_from_slice(more);
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && !self.overlong
    }
}

/// A batch being answered.
struct Batch<'a, 'o> {
    pending: Pending<'a>,
    out: BufWriter<&'o mut dyn Write>,
    err: &'o mut dyn Write,
    source_name: &'o str,
    /// The number of the last line read.
    line: usize,
}

impl Batch<'_, '_> {
    /// Takes the next line (without its newline); `overlong` when it was longer than
    /// `MAX_LINE` bytes and `raw` is not all of it.
    fn line(&mut self, raw: &[u8], overlong: bool) -> Result<(), CliError> {
        self.line += 1;
        let parsed = if overlong {
            Err(format!("the line is longer than {MAX_LINE} bytes"))
        } else {
            parse_query(raw)
        };
        match parsed {
            Ok(None) => {}
            Ok(Some(query)) => {
                self.pending.push(&query, self.line);
                if self.pending.queries.len() == CHUNK {
                    self.pending.decide(&mut self.out)?;
                }
            }
            Err(problem) => {
                // The queries before it are answered first, so that `error` takes its line's
                // place in the output.
                self.pending.decide(&mut self.out)?;
                self.pending.summary.malformed += 1;
                if self.pending.options.json_lines {
                    let line = self.line;
                    json_line(
                        &mut self.out,
                        &Malformed {
                            line,
                            error: &problem,
                        },
                    )?;
                } else {
                    writeln!(self.out, "error")?;
                }
                self.out.flush()?;
                writeln!(self.err, "{}:{}: {problem}", self.source_name, self.line)?;
            }
        }
        Ok(())
    }
}

/// Queries read but not yet answered.
struct Pending<'a> {
    snapshot: &'a Snapshot,
    options: BatchOptions,
    /// The pending queries' names, end to end: one string for a chunk rather than three a line.
    names: String,
    /// Where each pending query's subject, tenant and permission sit in `names`, and its line.
    queries: Vec<([Range<usize>; 3], usize)>,
    summary: BatchSummary,
}

impl Pending<'_> {
    fn push(&mut self, query: &[Cow<'_, str>; 3], line: usize) {
        let ranges = query.each_ref().map(|name| {
            let start = self.names.len();
            self.names.push_str(name);
            start..self.names.len()
        });
        self.queries.push((ranges, line));
    }

    /// Answers the pending queries in order, one line each.
    fn decide(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.queries.is_empty() {
            return Ok(());
        }
        self.summary.decided += self.queries.len();
        let names = &self.names;
        let queries: Vec<(&str, &str, &str)> = self
            .queries
            .iter()
            .map(|([s, t, p], _)| (&names[s.clone()], &names[t.clone()], &names[p.clone()]))
            .collect();
        let lines = self.queries.iter().map(|(_, line)| *line);
        let BatchOptions {
            explain,
            json_lines,
        } = self.options;
        if explain {
            for ((subject, tenant, permission), line) in queries.into_iter().zip(lines) {
                let why = self.snapshot.explain(subject, tenant, permission);
                self.summary.allowed += usize::from(why.decision.is_allowed());
                if json_lines {
                    json_line(out, &Decided::new(&why, Some(line), true))?;
                } else {
                    writeln!(out, "{why}")?;
                }
            }
        } else {
            let decisions = self.snapshot.check_batch(&queries);
            for ((decision, (subject, tenant, permission)), line) in
                decisions.into_iter().zip(queries).zip(lines)
            {
                self.summary.allowed += usize::from(decision.is_allowed());
                if json_lines {
                    let query = [subject, tenant, permission];
                    json_line(out, &Decided::plain(Some(line), query, decision))?;
                } else {
                    // `Decision`'s Display, without the formatting machinery.
                    out.write_all(decision.verdict().as_bytes())?;
                    out.write_all(b"\n")?;
                }
            }
        }
        self.queries.clear();
        self.names.clear();
        Ok(())
    }
}

/// The query on a line, or `Ok(None)` for a blank one.
fn parse_query(raw: &[u8]) -> Result<Option<[Cow<'_, str>; 3]>, String> {
    let text = std::str::from_utf8(raw).map_err(|e| {
        format!(
            "not UTF-8: byte {} of the line is not valid UTF-8",
            e.valid_up_to() + 1
        )
    })?;
    let Some(fields) = rbac_core::lines::fields(text) else {
        return Ok(None);
    };
    let mut query: [Cow<'_, str>; 3] = Default::default();
    let mut count = 0;
    let mut blank = true;
    for field in fields? {
        blank &= field.is_empty();
        if let Some(slot) = query.get_mut(count) {
            *slot = field;
        }
        count += 1;
    }
    // Empty fields written as `""` are a query with empty names, not a blank line.
    if blank && memchr::memchr(b'"', raw).is_none() {
        return Ok(None);
    }
    if count != 3 {
        return Err(format!(
            "expected 3 fields `subject,tenant,permission`, found {count}"
        ));
    }
    let [subject, tenant, permission] = query;
    rbac_core::name::validate_subject(&subject).map_err(|e| format!("bad subject: {e}"))?;
    if !tenant.is_empty() {
        rbac_core::name::validate_name(&tenant).map_err(|e| format!("bad tenant: {e}"))?;
    }
    rbac_core::name::validate_permission(&permission)
        .map_err(|e| format!("bad permission: {e}"))?;
    Ok(Some([subject, tenant, permission]))
}
