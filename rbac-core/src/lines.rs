//! Line-oriented CSV, as in casbin policy files and batch query files: one record a line, fields
//! trimmed, double quotes honoured (a field quoted right after its comma may hold commas:
//! `a,"b,c"`; quotes around a field after a space are removed, as casbin does: `a, "b"` is `b`),
//! blank lines and `#` comments skipped, and every record
//! numbered with its real line in the file so that errors point at it.

use std::borrow::Cow;

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
        Some(match fields(raw)? {
            Ok(fields) => Ok(Record {
                line,
                fields: fields.map(Cow::into_owned).collect(),
            }),
            Err(e) => Err((line, e)),
        })
    })
}

/// The fields of one line, read as [`records`] reads each line, or `None` for a blank or `#`
/// comment line. Fields of a line without quotes are borrowed from it, so that a caller
/// reading a long stream line by line allocates nothing for them.
///
/// ```
/// use rbac_core::lines::fields;
///
/// let got: Vec<_> = fields(" alice , acme,finance.invoices.read").unwrap().unwrap().collect();
/// assert_eq!(got, ["alice", "acme", "finance.invoices.read"]);
/// let quoted: Vec<_> = fields(r#"p,"x,y""#).unwrap().unwrap().collect();
/// assert_eq!(quoted, ["p", "x,y"]);
/// assert!(fields("  # a comment").is_none());
/// ```
pub fn fields(raw: &str) -> Option<Result<Fields<'_>, String>> {
    let trimmed = trim(raw);
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    if memchr::memchr(b'"', trimmed.as_bytes()).is_none() {
        // The common case, read the way casbin reads it: split at commas, trim each field.
        // Building a csv reader per line would cost more than the rest of an import.
        return Some(Ok(Fields(FieldsInner::Plain(Some(trimmed)))));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .trim(csv::Trim::All)
        .from_reader(trimmed.as_bytes());
    let mut record = csv::StringRecord::new();
    Some(match reader.read_record(&mut record) {
        Ok(_) => Ok(Fields(FieldsInner::Quoted(
            record.iter().map(unquote).collect::<Vec<_>>().into_iter(),
        ))),
        Err(e) => Err(e.to_string()),
    })
}

/// The trimmed fields of one line, in order; see [`fields`].
#[derive(Debug, Clone)]
pub struct Fields<'a>(FieldsInner<'a>);

#[derive(Debug, Clone)]
enum FieldsInner<'a> {
    /// No quotes on the line: slices of it. Holds what is left after the fields read, `None`
    /// after the last.
    Plain(Option<&'a str>),
    /// Quoted fields, unquoted into strings of their own.
    Quoted(std::vec::IntoIter<String>),
}

impl<'a> Iterator for Fields<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        match &mut self.0 {
            FieldsInner::Plain(rest) => {
                let line = (*rest)?;
                let (field, tail) = match memchr::memchr(b',', line.as_bytes()) {
                    // A comma is one byte, so `at + 1` is where the next field starts.
                    Some(at) => (line.get(..at), line.get(at + 1..)),
                    None => (Some(line), None),
                };
                *rest = tail;
                field.map(|f| Cow::Borrowed(trim(f)))
            }
            FieldsInner::Quoted(fields) => fields.next().map(Cow::Owned),
        }
    }
}

/// `str::trim`, without its Unicode tables when both ends are plain ASCII.
fn trim(text: &str) -> &str {
    let ascii = text.trim_ascii();
    // U+000B (vertical tab) is Unicode whitespace but not ASCII whitespace, and a non-ASCII
    // byte may start or end Unicode whitespace: those ends take the full trim.
    let plain = |b: Option<&u8>| b.is_none_or(|&b| b.is_ascii() && b != 0x0b);
    if plain(ascii.as_bytes().first()) && plain(ascii.as_bytes().last()) {
        ascii
    } else {
        ascii.trim()
    }
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

    proptest::proptest! {
        /// Lines without quotes read as `str::trim` and `split(',')` read them.
        #[test]
        fn plain_lines_split_and_trim_as_str_does(
            raw in "[a#, \t\u{b}\u{c}\r\u{85}\u{a0}\u{2003}\u{e9}]{0,16}"
        ) {
            let expected = raw.trim();
            let got = fields(&raw).map(|f| f.map(|f| f.collect::<Vec<_>>()));
            if expected.is_empty() || expected.starts_with('#') {
                proptest::prop_assert!(got.is_none());
            } else {
                let expected: Vec<_> = expected.split(',').map(str::trim).collect();
                proptest::prop_assert_eq!(got, Some(Ok(expected.into_iter().map(Cow::Borrowed).collect())));
            }
        }
    }

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
