//! What SQLite stores for a value written into a column: its type affinity's conversions
//! (<https://www.sqlite.org/datatype3.html>, sections 3 and 4.2), so that a SQLite dry run
//! compares a backup's value as the restore would store it. A backup read from PostgreSQL
//! holds every value as text; restored into a column of `INTEGER`, `REAL` or `NUMERIC`
//! affinity, numbers written as text are stored as numbers.
//!
//! Only conversions that are certain are made: an integer or real literal without spaces, a
//! real that is exactly a small integer. A real literal's value is SQLite's own reading of it
//! (`CAST(? AS REAL)`, the routine affinity uses, which is not always the nearest double to
//! a long literal). Anything else is compared as it is, which can only report a row as
//! replaced that the restore would in fact leave unchanged, never the reverse.

use super::codec::Value;

/// A column's type affinity, from its declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Affinity {
    Integer,
    Text,
    /// `BLOB` or no declared type: values are stored as they come.
    Blob,
    Real,
    Numeric,
}

impl Affinity {
    /// The affinity of a column declared `decl` (section 3.1, the rules in order).
    pub(crate) fn of(decl: &str) -> Affinity {
        let decl = decl.to_ascii_uppercase();
        // `ANY` in a STRICT table keeps values as they come; elsewhere it would be NUMERIC,
        // but treating it as BLOB only ever compares more strictly.
        if decl.trim() == "ANY" {
            Affinity::Blob
        } else if decl.contains("INT") {
            Affinity::Integer
        } else if ["CHAR", "CLOB", "TEXT"].iter().any(|s| decl.contains(s)) {
            Affinity::Text
        } else if decl.contains("BLOB") || decl.trim().is_empty() {
            Affinity::Blob
        } else if ["REAL", "FLOA", "DOUB"].iter().any(|s| decl.contains(s)) {
            Affinity::Real
        } else {
            Affinity::Numeric
        }
    }

    /// What a column of this affinity stores for `v`, when that differs from `v` and the
    /// conversion is certain; None otherwise (the value is stored as it is, or the
    /// conversion is not one this module makes). `read_real` is SQLite's reading of a real
    /// literal.
    pub(crate) fn converts(
        self,
        v: &Value,
        read_real: &mut dyn FnMut(&str) -> Option<f64>,
    ) -> Option<Value> {
        match (self, v) {
            (Affinity::Integer | Affinity::Numeric, Value::Text(s)) => match literal(s)? {
                Literal::Integer(i) => Some(Value::Int(i)),
                Literal::Real => numeric_real(read_real(s)?),
            },
            (Affinity::Integer | Affinity::Numeric, Value::Real(r)) => match numeric_real(*r)? {
                Value::Int(i) => Some(Value::Int(i)),
                _ => None,
            },
            (Affinity::Real, Value::Text(s)) => match literal(s)? {
                // Exact for integers up to 2^53; beyond, both round to nearest.
                Literal::Integer(i) => Some(Value::Real(i as f64)),
                Literal::Real => read_real(s).filter(|r| r.is_finite()).map(Value::Real),
            },
            (Affinity::Real, Value::Int(i)) => Some(Value::Real(*i as f64)),
            (Affinity::Text, Value::Int(i)) => Some(Value::Text(i.to_string())),
            _ => None,
        }
    }
}

enum Literal {
    Integer(i64),
    /// Its value is SQLite's to read.
    Real,
}

/// `s` as an integer literal that fits in 64 bits, or a real literal, written plainly: an
/// optional sign, digits with at most one point, an optional exponent; no spaces, no hex.
fn literal(s: &str) -> Option<Literal> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (body.get(..at)?, Some(body.get(at + 1..)?)),
        None => (body, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole)
        || !fraction.is_none_or(digits)
        || whole.len() + fraction.map_or(0, str::len) == 0
    {
        return None;
    }
    if let Some(e) = exponent {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !digits(e) {
            return None;
        }
    }
    if fraction.is_none() && exponent.is_none() {
        // Too large for 64 bits: SQLite stores a real, which is not certain enough here.
        return s.parse().ok().map(Literal::Integer);
    }
    Some(Literal::Real)
}

/// A real as a column of `NUMERIC` or `INTEGER` affinity stores it: a real that is not a
/// whole number stays a real, a whole number below 2^51 becomes the integer. None for what
/// is less certain (larger whole numbers, `-0.0`, infinities), compared as it is.
fn numeric_real(r: f64) -> Option<Value> {
    const BOUND: f64 = 2_251_799_813_685_248.0;
    if !r.is_finite() {
        return None;
    }
    if r.fract() != 0.0 {
        return Some(Value::Real(r));
    }
    let i = r as i64;
    (r.abs() < BOUND && (i as f64).to_bits() == r.to_bits()).then_some(Value::Int(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_give_sqlites_affinities() {
        for (decl, a) in [
            ("INTEGER", Affinity::Integer),
            ("BIGINT", Affinity::Integer),
            ("varchar(12)", Affinity::Text),
            ("CLOB", Affinity::Text),
            ("", Affinity::Blob),
            ("BLOB", Affinity::Blob),
            ("DOUBLE PRECISION", Affinity::Real),
            ("float", Affinity::Real),
            ("NUMERIC(12,2)", Affinity::Numeric),
            ("DATE", Affinity::Numeric),
            ("any", Affinity::Blob),
            // The rules apply in order: "INT" wins over "CHAR", "POINT" holds "INT".
            ("CHARINT", Affinity::Integer),
            ("FLOATING POINT", Affinity::Integer),
        ] {
            assert_eq!(Affinity::of(decl), a, "{decl}");
        }
    }

    #[test]
    fn only_certain_conversions_are_made() {
        let text = |s: &str| Value::Text(s.to_owned());
        // Rust's reading stands in for SQLite's here; the restore test reads with SQLite.
        let mut read = |s: &str| s.parse::<f64>().ok();
        let numeric = Affinity::Numeric;
        let mut to = |a: Affinity, v: Value| a.converts(&v, &mut read);
        assert_eq!(to(numeric, text("42")), Some(Value::Int(42)));
        assert_eq!(to(numeric, text("-7")), Some(Value::Int(-7)));
        assert_eq!(to(numeric, text("007")), Some(Value::Int(7)));
        assert_eq!(to(numeric, text("3.0e+5")), Some(Value::Int(300_000)));
        assert_eq!(to(numeric, text("1.5")), Some(Value::Real(1.5)));
        assert_eq!(to(numeric, text(".5")), Some(Value::Real(0.5)));
        assert_eq!(to(numeric, Value::Real(2.0)), Some(Value::Int(2)));
        assert_eq!(to(numeric, Value::Real(2.5)), None);
        // Less certain: left as they are.
        for v in [
            text("-0.0"),
            text("1e16"),
            Value::Real(-0.0),
            Value::Real(1e300),
        ] {
            assert_eq!(to(numeric, v.clone()), None, "{v:?}");
        }
        for s in [
            "",
            "+",
            ".",
            "1e",
            "e5",
            " 42",
            "42 ",
            "0x10",
            "1,5",
            "NaN",
            "inf",
            "abc",
            "99999999999999999999",
            "1e400",
        ] {
            assert_eq!(to(numeric, text(s)), None, "{s:?}");
        }
        assert_eq!(to(Affinity::Integer, text("12")), Some(Value::Int(12)));
        assert_eq!(to(Affinity::Real, text("12")), Some(Value::Real(12.0)));
        assert_eq!(to(Affinity::Real, text("0.1")), Some(Value::Real(0.1)));
        assert_eq!(to(Affinity::Real, Value::Int(3)), Some(Value::Real(3.0)));
        assert_eq!(to(Affinity::Text, Value::Int(3)), Some(text("3")));
        assert_eq!(to(Affinity::Text, Value::Real(1.5)), None);
        assert_eq!(to(Affinity::Text, text("12")), None);
        assert_eq!(to(Affinity::Blob, text("12")), None);
        assert_eq!(to(Affinity::Blob, Value::Int(1)), None);
        // The value of a real literal is the reader's.
        let mut sqlite_like = |_: &str| Some(1.0);
        assert_eq!(
            numeric.converts(&text("1.0000000000000001110223"), &mut sqlite_like),
            Some(Value::Int(1))
        );
    }
}
