//! Line-oriented CSV, as in casbin policy files and batch query files: one record a line, fields
//! trimmed, blank lines and `#` comments skipped, and every record numbered with its real line
//! in the file so that errors point at it.
//!
//! Quotes are read as casbin reads them. A field whose first character after any spaces is `"`
//! is quoted: it runs to the next `"` and may hold commas, so `a, "b,c"` and `a,"b,c"` are both
//! `a` and `b,c`. casbin has no escape for a quote inside quotes, and reads anything between a
//! closing quote and the next comma (spaces included) as more fields, so such a line is an error
//! here rather than read otherwise than casbin reads it; so is a quote that is not closed. A `"`
//! inside an unquoted field is kept as written.

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
/// let quoted: Vec<_> = fields(r#"p,"x,y", "z, w""#).unwrap().unwrap().collect();
/// assert_eq!(quoted, ["p", "x,y", "z, w"]);
/// // casbin would read a space after a closing quote as one more field: refused.
/// assert!(fields(r#"p, "x" , y"#).unwrap().is_err());
/// assert!(fields("  # a comment").is_none());
/// ```
pub fn fields(raw: &str) -> Option<Result<Fields<'_>, String>> {
    let trimmed = trim(raw);
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    if memchr::memchr(b'"', trimmed.as_bytes()).is_none() {
        // The common case: split at commas and trim each field, borrowing from the line.
        return Some(Ok(Fields(FieldsInner::Plain(Some(trimmed)))));
    }
    Some(quoted_fields(trimmed).map(|fields| Fields(FieldsInner::Quoted(fields.into_iter()))))
}

/// The fields of a trimmed line that holds a `"`, unquoted: see the module docs.
// Not the csv crate: it takes a quote as opening a field only as the field's first byte, so
// casbin's `a, "b,c"` (a space before the quote) would be split inside the quotes.
fn quoted_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        let field = trim(rest);
        let Some(inside) = field.strip_prefix('"') else {
            // Unquoted: up to the next comma, quotes and all.
            match rest.split_once(',') {
                Some((field, tail)) => {
                    fields.push(trim(field).to_owned());
                    rest = tail;
                    continue;
                }
                None => {
                    fields.push(field.to_owned());
                    return Ok(fields);
                }
            }
        };
        // Quoted: up to the next quote, then a comma or the end of the line.
        let Some(at) = memchr::memchr(b'"', inside.as_bytes()) else {
            return Err(format!(
                "field {}: the quote it opens is not closed",
                fields.len() + 1
            ));
        };
        fields.push(inside.get(..at).unwrap_or_default().to_owned());
        let after = inside.get(at + 1..).unwrap_or_default();
        match after.chars().next() {
            None => return Ok(fields),
            Some(',') => rest = after.get(1..).unwrap_or_default(),
            Some(next) => {
                return Err(format!(
                    "field {}: {next:?} right after its closing quote, where a comma or the \
                     end of the line must be (casbin would read the line otherwise)",
                    fields.len()
                ));
            }
        }
    }
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

    proptest::proptest! {
        /// Any fields, each written plainly or quoted (a field with a comma, or with a quote
        /// first, must be quoted, and a quoted one cannot hold a quote: such fields lose
        /// their quotes), with or without a space after each comma, read back as they were
        /// (a plain one trimmed).
        #[test]
        fn quoted_fields_read_back(
            written in proptest::collection::vec(("[a-z\",# ]{0,6}", proptest::bool::ANY), 1..6),
            spaced in proptest::bool::ANY,
        ) {
            let (line, expected): (Vec<String>, Vec<String>) = written
                .iter()
                .map(|(field, quote)| {
                    let needs_quotes = field.contains(',') || field.trim_start().starts_with('"');
                    let field = if needs_quotes { field.replace('"', "") } else { field.clone() };
                    if needs_quotes || (*quote && !field.contains('"')) {
                        (format!("\"{field}\""), field)
                    } else {
                        (field.clone(), field.trim().to_owned())
                    }
                })
                .unzip();
            let line = line.join(if spaced { ", " } else { "," });
            match fields(&line) {
                // A blank line or a comment: only when the line reads as one.
                None => {
                    let trimmed = line.trim();
                    proptest::prop_assert!(trimmed.is_empty() || trimmed.starts_with('#'), "{line:?}");
                }
                Some(got) => {
                    let got: Vec<String> = got
                        .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{line:?}: {e}")))?
                        .map(Cow::into_owned)
                        .collect();
                    proptest::prop_assert_eq!(got, expected, "{:?}", line);
                }
            }
        }
    }

    #[test]
    fn quoted_fields_hold_commas_after_spaces_and_errors_name_the_field() {
        let read = |line: &str| {
            fields(line).map(|f| f.map(|f| f.map(Cow::into_owned).collect::<Vec<_>>()))
        };
        assert_eq!(
            read(r#"g, "a,b", admin"#),
            Some(Ok(vec![
                "g".to_owned(),
                "a,b".to_owned(),
                "admin".to_owned()
            ]))
        );
        // A quote inside an unquoted field is kept, as casbin keeps it.
        assert_eq!(
            read(r#"g, a"b, admin"#),
            Some(Ok(vec![
                "g".to_owned(),
                "a\"b".to_owned(),
                "admin".to_owned()
            ]))
        );
        assert_eq!(
            read(r#"g, "a,b, admin"#),
            Some(Err("field 2: the quote it opens is not closed".to_owned()))
        );
        // casbin reads these as more fields than are written: refused, never read otherwise.
        for line in [
            r#"g, "a"b, admin"#,
            r#"g, "a" , admin"#,
            r#"g, "a""b", admin"#,
        ] {
            let err = read(line).and_then(Result::err).unwrap_or_default();
            assert!(
                err.starts_with("field 2: ") && err.contains("right after its closing quote"),
                "{line}: {err}"
            );
        }
    }

    #[test]
    fn quotes_after_spaces_are_removed_and_line_numbers_are_real() {
        let got: Vec<_> = records("\n# c\ng, \"alice\", admin\np,\"x,y\",\"say hi\"\n").collect();
        assert_eq!(
            got,
            [
                Ok(Record {
                    line: 3,
                    fields: vec!["g".into(), "alice".into(), "admin".into()]
                }),
                Ok(Record {
                    line: 4,
                    fields: vec!["p".into(), "x,y".into(), "say hi".into()]
                }),
            ]
        );
    }
}
