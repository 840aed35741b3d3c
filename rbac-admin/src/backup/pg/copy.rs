//! PostgreSQL's `COPY` text format, both ways, for the bulk data path.
//!
//! A row is a line ended by `\n`; columns are separated by `\t`; `\N` alone is NULL; inside a
//! value a backslash escapes: `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\v`, `\NNN` (octal) and `\xHH`
//! (hex) stand for their byte, any other escaped character for itself. A raw newline byte only
//! ever ends a row, so rows can be cut without parsing the values.
//!
//! Backups turn each line into one record of the chunk format (every value as text, exactly
//! the text the old `col::text` path wrote), so chunks, manifests, verify and restores into
//! SQLite are unchanged. Restores turn records back into lines for `COPY ... FROM STDIN`.

use super::super::chunk::ChunkWriter;
use super::super::codec::{self, ValueRef};
use super::super::model::BackupError;

fn bad(what: &str) -> BackupError {
    BackupError::Database(format!("unexpected COPY data from the server: {what}"))
}

/// Undoes COPY's escaping of one value into `out` (cleared first).
pub(crate) fn unescape(field: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = field.get(i) else {
            // A trailing lone backslash (never written by the server): keep it.
            out.push(b'\\');
            break;
        };
        i += 1;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u8;
                for _ in 0..2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v.wrapping_mul(16).wrapping_add(d as u8);
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v);
            }
            other => out.push(other),
        }
    }
}

/// Parses the complete lines at the start of `data` (COPY text rows of `columns` values) into
/// row records of `writer`. Returns the rows written and the bytes consumed (an incomplete
/// last line is left for the next call).
pub(crate) fn encode_rows(
    data: &[u8],
    columns: usize,
    writer: &mut ChunkWriter<'_>,
    scratch: &mut Vec<u8>,
) -> Result<(u64, usize), BackupError> {
    let mut pos = 0;
    let mut rows = 0u64;
    while let Some(len) = data[pos..].iter().position(|&b| b == b'\n') {
        let line = &data[pos..pos + len];
        writer.buf.push(codec::ROW);
        let mut n = 0usize;
        for field in line.split(|&b| b == b'\t') {
            n += 1;
            if field == b"\\N" {
                codec::put_null(&mut writer.buf);
            } else if field.contains(&b'\\') {
                unescape(field, scratch);
                codec::put_text(&mut writer.buf, scratch);
            } else {
                codec::put_text(&mut writer.buf, field);
            }
        }
        if n != columns {
            return Err(bad(&format!("a row of {n} values, expected {columns}")));
        }
        writer.record_done()?;
        rows += 1;
        pos += len + 1;
    }
    Ok((rows, pos))
}

/// Appends `v` escaped for COPY's text format.
pub(crate) fn escape_into(out: &mut Vec<u8>, v: &[u8]) {
    let mut start = 0;
    for (i, &b) in v.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => continue,
        };
        out.extend_from_slice(&v[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&v[start..]);
}

/// Appends one value in COPY's text format, as the row-at-a-time path binds it: text as is,
/// integers and reals in decimal (reals in Rust's shortest exact form, `NaN`, `inf`), blobs
/// as `bytea` hex. Allocates nothing beyond `out`.
pub(crate) fn put_value(out: &mut Vec<u8>, v: ValueRef<'_>) {
    use std::io::Write as _;
    match v {
        ValueRef::Null => out.extend_from_slice(b"\\N"),
        ValueRef::Text(s) => escape_into(out, s.as_bytes()),
        // Writing into a Vec cannot fail.
        ValueRef::Int(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Real(r) => {
            let _ = write!(out, "{r}");
        }
        ValueRef::Blob(b) => {
            out.extend_from_slice(b"\\\\x");
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.reserve(b.len() * 2);
            for &byte in b {
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 15)]);
            }
        }
        ValueRef::RawText(b) => escape_into(out, String::from_utf8_lossy(b).as_bytes()),
    }
}

/// Appends one row (values in column order) as a COPY text line.
pub(crate) fn put_row(out: &mut Vec<u8>, values: &[ValueRef<'_>]) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        put_value(out, *v);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_every_byte() {
        let all: Vec<u8> = (1u8..=255).collect();
        for v in [&b""[..], b"plain", b"a\\b\tc\nd\re", b"\\N", b"\\", &all] {
            let mut line = Vec::new();
            escape_into(&mut line, v);
            assert!(!line.contains(&b'\n') && !line.contains(&b'\t'));
            let mut back = Vec::new();
            unescape(&line, &mut back);
            assert_eq!(back, v);
        }
    }

    #[test]
    fn server_escapes_are_understood() {
        let mut out = Vec::new();
        unescape(b"\\b\\f\\v\\101\\x41\\x4a\\q\\\\", &mut out);
        assert_eq!(out, b"\x08\x0c\x0bAAJq\\");
    }

    #[test]
    fn values_become_copy_text() {
        let mut out = Vec::new();
        put_row(
            &mut out,
            &[
                ValueRef::Null,
                ValueRef::Text("a\tb"),
                ValueRef::Int(-5),
                ValueRef::Real(f64::NAN),
                ValueRef::Blob(&[0, 255]),
                ValueRef::Text(""),
                ValueRef::Int(i64::MIN),
                ValueRef::Real(-0.0),
            ],
        );
        assert_eq!(
            out,
            b"\\N\ta\\tb\t-5\tNaN\t\\\\x00ff\t\t-9223372036854775808\t-0\n"
        );
    }
}
