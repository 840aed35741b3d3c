//! Line-oriented CSV, as in casbin policy files and batch query files: one record a line, fields
//! trimmed, double quotes honoured (a field quoted right after its comma may hold commas:
//! `a,"b,c"`; quotes around a field after a space are removed, as casbin does: `a, "b"` is `b`),
//! blank lines and `#` comments skipped, and every record
//! numbered with its real line in the file so that errors point at it.

/// One record and the 1-based line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The line number in the text.
    pub line: usize,
    /// The trimmed fields.
    pub fields: Vec<String>,
}

/// Reads `text` into records; `Err` carries the line number and what is wrong with it.
///
/// ```
/// let records: Vec<_> = rbac_core::lines::records("# head\n\na,\"b,c\" \n").collect();
/// assert_eq!(records, [Ok(rbac_core::lines::Record { line: 3, fields: vec!["a".into(), "b,c".into()] })]);
/// ```
pub fn records(text: &str) -> impl Iterator<Item = Result<Record, (usize, String)>> + '_ {
    text.lines().enumerate().filter_map(|(i, raw)| {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return None;
        }
        if !trimmed.contains('"') {
            // The common case, read the way casbin reads it: split at commas, trim each field.
            // Building a csv reader per line would cost more than the rest of an import.
            let fields = trimmed.split(',').map(|f| f.trim().to_owned()).collect();
            return Some(Ok(Record { line, fields }));
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .trim(csv::Trim::All)
            .from_reader(trimmed.as_bytes());
        let mut record = csv::StringRecord::new();
        Some(match reader.read_record(&mut record) {
            Ok(_) => Ok(Record {
                line,
                fields: record.iter().map(unquote).collect(),
            }),
            Err(e) => Err((line, e.to_string())),
        })
    })
}

/// `"alice"` → `alice` (and `""` inside → `"`); anything else unchanged.
fn unquote(field: &str) -> String {
    match field.strip_prefix('"').and_then(|f| f.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => field.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_after_spaces_are_removed_and_line_numbers_are_real() {
        let got: Vec<_> =
            records("\n# c\ng, \"alice\", admin\np,\"x,y\",\"say \"\"hi\"\"\"\n").collect();
        assert_eq!(
            got,
            [
                Ok(Record {
                    line: 3,
                    fields: vec!["g".into(), "alice".into(), "admin".into()]
                }),
                Ok(Record {
                    line: 4,
                    fields: vec!["p".into(), "x,y".into(), "say \"hi\"".into()]
                }),
            ]
        );
    }
}
