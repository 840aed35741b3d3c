//! The record encoding inside chunks: compact, typed, exact for NULL, 64-bit integers, reals
//! (bit for bit), text and blobs.
//!
//! A chunk's plaintext is a sequence of records. A record is a tag byte, `U` (a row, every
//! backed-up column in manifest order) or `D` (a deleted row: its primary key values), then the
//! values. A value is a type byte then its payload: `0` NULL; `1` integer, zigzag LEB128;
//! `2` real, 8 bytes little-endian IEEE-754; `3` text and `4` blob, LEB128 length then bytes;
//! `5` text that is not valid UTF-8 (SQLite allows it), kept byte for byte.

use super::model::BackupError;

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    /// Text whose bytes are not valid UTF-8.
    RawText(Vec<u8>),
}

impl Value {
    /// The value, borrowed.
    pub(crate) fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Int(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(s) => ValueRef::Text(s),
            Value::Blob(b) => ValueRef::Blob(b),
            Value::RawText(b) => ValueRef::RawText(b),
        }
    }

    /// Equality as stored: reals compare bit for bit.
    #[cfg(test)]
    pub(crate) fn same(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Real(a), Value::Real(b)) => a.to_bits() == b.to_bits(),
            _ => self == other,
        }
    }
}

/// A value borrowed from a decoded chunk: reading it allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
    /// Text whose bytes are not valid UTF-8.
    RawText(&'a [u8]),
}

impl ValueRef<'_> {
    /// Whether a tenant column value names tenant `tn`: the text `tn`, or an integer id whose
    /// decimal text is `tn` (SQLite schemas often key tenants by integer; a restore names
    /// them as text, and may restore them into PostgreSQL).
    pub(crate) fn names_tenant(self, tn: &str) -> bool {
        match self {
            ValueRef::Text(s) => s == tn,
            ValueRef::Int(i) => names_integer(tn, i),
            _ => false,
        }
    }

    pub(crate) fn to_value(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Real(r) => Value::Real(r),
            ValueRef::Text(s) => Value::Text(s.to_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            ValueRef::RawText(b) => Value::RawText(b.to_vec()),
        }
    }
}

/// Whether `tn` is the decimal text of `i` (`i.to_string() == tn`, without allocating: it
/// runs for every record of a tenant restore).
pub(crate) fn names_integer(tn: &str, i: i64) -> bool {
    use std::io::Write;
    // "-9223372036854775808" is the longest.
    let mut buf = [0u8; 20];
    let mut rest = &mut buf[..];
    if write!(rest, "{i}").is_err() {
        return false;
    }
    let len = 20 - rest.len();
    buf.get(..len) == Some(tn.as_bytes())
}

pub(crate) const ROW: u8 = b'U';
pub(crate) const DELETE: u8 = b'D';

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(crate) fn put_null(buf: &mut Vec<u8>) {
    buf.push(0);
}

pub(crate) fn put_int(buf: &mut Vec<u8>, v: i64) {
    buf.push(1);
    put_varint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

pub(crate) fn put_real(buf: &mut Vec<u8>, v: f64) {
    buf.push(2);
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_text(buf: &mut Vec<u8>, v: &[u8]) {
    buf.push(if std::str::from_utf8(v).is_ok() { 3 } else { 5 });
    put_varint(buf, v.len() as u64);
    buf.extend_from_slice(v);
}

pub(crate) fn put_blob(buf: &mut Vec<u8>, v: &[u8]) {
    buf.push(4);
    put_varint(buf, v.len() as u64);
    buf.extend_from_slice(v);
}

#[cfg(test)]
pub(crate) fn put_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => put_null(buf),
        Value::Int(i) => put_int(buf, *i),
        Value::Real(r) => put_real(buf, *r),
        Value::Text(t) => put_text(buf, t.as_bytes()),
        Value::Blob(b) => put_blob(buf, b),
        Value::RawText(b) => put_text(buf, b),
    }
}

/// Reads records from a decoded chunk.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

fn bad(what: &str) -> BackupError {
    BackupError::InvalidInput(format!("malformed record data: {what}"))
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    fn byte(&mut self) -> Result<u8, BackupError> {
        let b = *self.data.get(self.pos).ok_or_else(|| bad("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, BackupError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("integer too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], BackupError> {
        let len = usize::try_from(self.varint()?).map_err(|_| bad("length"))?;
        let end = self.pos.checked_add(len).ok_or_else(|| bad("length"))?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or_else(|| bad("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    fn value(&mut self) -> Result<ValueRef<'a>, BackupError> {
        Ok(match self.byte()? {
            0 => ValueRef::Null,
            1 => {
                let z = self.varint()?;
                ValueRef::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            2 => {
                let end = self.pos.checked_add(8).ok_or_else(|| bad("truncated"))?;
                let s = self
                    .data
                    .get(self.pos..end)
                    .ok_or_else(|| bad("truncated"))?;
                let mut b = [0u8; 8];
                b.copy_from_slice(s);
                self.pos = end;
                ValueRef::Real(f64::from_le_bytes(b))
            }
            3 => ValueRef::Text(
                std::str::from_utf8(self.bytes()?).map_err(|_| bad("text is not UTF-8"))?,
            ),
            4 => ValueRef::Blob(self.bytes()?),
            5 => ValueRef::RawText(self.bytes()?),
            t => return Err(bad(&format!("unknown value type {t}"))),
        })
    }

    /// The tag of the next record and how many values follow; `None` at the end.
    fn record(
        &mut self,
        row_len: usize,
        key_len: usize,
    ) -> Result<Option<(u8, usize)>, BackupError> {
        if self.pos == self.data.len() {
            return Ok(None);
        }
        let tag = self.byte()?;
        let n = match tag {
            ROW => row_len,
            DELETE => key_len,
            t => return Err(bad(&format!("unknown record tag {t}"))),
        };
        Ok(Some((tag, n)))
    }

    /// The next record: its tag and `n` values into `out` (cleared first); `None` at the end.
    pub(crate) fn next(
        &mut self,
        row_len: usize,
        key_len: usize,
        out: &mut Vec<Value>,
    ) -> Result<Option<u8>, BackupError> {
        out.clear();
        let Some((tag, n)) = self.record(row_len, key_len)? else {
            return Ok(None);
        };
        for _ in 0..n {
            out.push(self.value()?.to_value());
        }
        Ok(Some(tag))
    }

    /// Steps over one value without decoding it.
    fn skip_value(&mut self) -> Result<(), BackupError> {
        match self.byte()? {
            0 => {}
            1 => {
                self.varint()?;
            }
            2 => {
                let end = self.pos.checked_add(8).ok_or_else(|| bad("truncated"))?;
                if end > self.data.len() {
                    return Err(bad("truncated"));
                }
                self.pos = end;
            }
            3..=5 => {
                self.bytes()?;
            }
            t => return Err(bad(&format!("unknown value type {t}"))),
        }
        Ok(())
    }

    /// The bytes of value `column` of the row record that starts here, when it is UTF-8 text
    /// (a row's tenant, to group the rows of a chunk by it); `None` for any other value or
    /// record. Moves the reader to the end of the values it read.
    pub(crate) fn text_of_row(&mut self, column: usize) -> Option<&'a [u8]> {
        if self.byte().ok()? != ROW {
            return None;
        }
        for _ in 0..column {
            self.skip_value().ok()?;
        }
        if self.byte().ok()? != 3 {
            return None;
        }
        self.bytes().ok()
    }

    /// Where the reader is: [`Reader::rewind`] to it reads the same records again.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Goes back to a [`Reader::position`].
    pub(crate) fn rewind(&mut self, position: usize) {
        self.pos = position.min(self.data.len());
    }

    /// [`Reader::next_ref`] decoding only the values `wanted` marks (the others read as
    /// NULL): for a pass that looks at a few columns of every row.
    pub(crate) fn next_ref_only(
        &mut self,
        row_len: usize,
        key_len: usize,
        wanted: &[bool],
        out: &mut Vec<ValueRef<'a>>,
    ) -> Result<Option<u8>, BackupError> {
        out.clear();
        let Some((tag, n)) = self.record(row_len, key_len)? else {
            return Ok(None);
        };
        for i in 0..n {
            if wanted.get(i).copied().unwrap_or(false) {
                out.push(self.value()?);
            } else {
                self.skip_value()?;
                out.push(ValueRef::Null);
            }
        }
        Ok(Some(tag))
    }

    /// [`Reader::next`] without copying: the values borrow the chunk.
    pub(crate) fn next_ref(
        &mut self,
        row_len: usize,
        key_len: usize,
        out: &mut Vec<ValueRef<'a>>,
    ) -> Result<Option<u8>, BackupError> {
        out.clear();
        let Some((tag, n)) = self.record(row_len, key_len)? else {
            return Ok(None);
        };
        for _ in 0..n {
            out.push(self.value()?);
        }
        Ok(Some(tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_exactly() {
        let values = vec![
            Value::Null,
            Value::Int(0),
            Value::Int(-1),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Real(-0.0),
            Value::Real(f64::NAN),
            Value::Real(1e308),
            Value::Text(String::new()),
            Value::Text("héllo\0".into()),
            Value::Blob(vec![0, 255, 1]),
            Value::RawText(vec![b'a', 0xff, 0xfe]),
        ];
        let mut buf = vec![ROW];
        for v in &values {
            put_value(&mut buf, v);
        }
        buf.push(DELETE);
        put_int(&mut buf, 7);
        let mut r = Reader::new(&buf);
        let mut out = Vec::new();
        assert_eq!(r.next(values.len(), 1, &mut out).ok(), Some(Some(ROW)));
        assert!(out.iter().zip(&values).all(|(a, b)| a.same(b)));
        assert_eq!(r.next(values.len(), 1, &mut out).ok(), Some(Some(DELETE)));
        assert_eq!(out, vec![Value::Int(7)]);
        assert_eq!(r.next(values.len(), 1, &mut out).ok(), Some(None));
        assert!(Reader::new(&[ROW, 3, 9]).next(1, 1, &mut out).is_err());
        assert!(Reader::new(&[ROW, 2, 0, 0]).next(1, 1, &mut out).is_err());
        let mut borrowed = Vec::new();
        let mut r = Reader::new(&buf);
        assert_eq!(
            r.next_ref(values.len(), 1, &mut borrowed).ok(),
            Some(Some(ROW))
        );
        assert!(
            borrowed
                .iter()
                .zip(&values)
                .all(|(a, b)| a.to_value().same(b))
        );

        // Only the wanted values are decoded; the rest read as NULL, and a rewind reads the
        // same record again in full.
        let mut r = Reader::new(&buf);
        let start = r.position();
        let wanted: Vec<bool> = (0..values.len()).map(|i| i == 1 || i == 9).collect();
        assert_eq!(
            r.next_ref_only(values.len(), 1, &wanted, &mut borrowed)
                .ok(),
            Some(Some(ROW))
        );
        for (i, v) in borrowed.iter().enumerate() {
            let expected = if wanted[i] {
                values[i].clone()
            } else {
                Value::Null
            };
            assert!(v.to_value().same(&expected), "value {i}");
        }
        let after = r.position();
        r.rewind(start);
        assert_eq!(
            r.next_ref(values.len(), 1, &mut borrowed).ok(),
            Some(Some(ROW))
        );
        assert_eq!(r.position(), after);
        assert_eq!(
            r.next_ref_only(values.len(), 1, &wanted, &mut borrowed)
                .ok(),
            Some(Some(DELETE))
        );
        // Skipping still refuses what decoding refuses.
        assert!(
            Reader::new(&[ROW, 9])
                .next_ref_only(1, 1, &[false], &mut borrowed)
                .is_err()
        );
        assert!(
            Reader::new(&[ROW, 3, 5, b'a'])
                .next_ref_only(1, 1, &[false], &mut borrowed)
                .is_err()
        );
    }
}
