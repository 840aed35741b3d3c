//! Validation of the names a policy is made of: permissions, wildcard patterns, roles, tenants and
//! subjects.

use std::fmt;

/// Most segments a permission name may have (`a.b.c.d.e.f.g.h`).
pub const MAX_PERMISSION_SEGMENTS: usize = 8;
/// Longest role or tenant name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest subject identifier, in bytes (room for e-mail addresses and URIs).
pub const MAX_SUBJECT_LEN: usize = 256;

/// Why a name was refused. Messages say what is allowed so that the user can fix the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// A permission segment is empty (`finance..read`, a leading or trailing dot).
    #[error("`{0}` has an empty segment (two dots in a row, or a leading or trailing dot)")]
    EmptySegment(String),
    /// A permission segment holds a character other than `[a-z0-9_]`.
    #[error(
        "`{name}` has the character `{ch}`; permission segments use lowercase letters, digits and `_`"
    )]
    BadPermissionChar {
        /// The whole name.
        name: String,
        /// The first offending character.
        ch: char,
    },
    /// More than [`MAX_PERMISSION_SEGMENTS`] segments.
    #[error("`{0}` has more than 8 segments")]
    TooManySegments(String),
    /// A `*` anywhere but as the whole last segment.
    #[error("`{0}`: a wildcard may only be the whole last segment (`finance.*`, `*`)")]
    MisplacedWildcard(String),
    /// A role or tenant name with a character outside `[A-Za-z0-9_.:@/-]`.
    #[error(
        "`{name}` has the character `{ch}`; role and tenant names use letters, digits and `_ - . : @ /`"
    )]
    BadNameChar {
        /// The whole name.
        name: String,
        /// The first offending character.
        ch: char,
    },
    /// A subject identifier with whitespace or a control character.
    #[error("subject `{0}` contains whitespace or a control character")]
    BadSubjectChar(String),
    /// A name longer than its limit.
    #[error("`{name}…` is longer than {max} bytes")]
    TooLong {
        /// The first characters of the name.
        name: String,
        /// The limit.
        max: usize,
    },
}

fn truncated(name: &str) -> String {
    name.chars().take(32).collect()
}

/// Checks a permission name such as `finance.invoices.read`: 1 to 8 segments of `[a-z0-9_]`.
///
/// ```
/// use rbac_core::name::validate_permission;
/// assert!(validate_permission("finance.invoices.read").is_ok());
/// assert!(validate_permission("Finance.read").is_err());
/// assert!(validate_permission("finance.*").is_err()); // a pattern, not a permission
/// ```
pub fn validate_permission(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN * 2 {
        return Err(NameError::TooLong {
            name: truncated(name),
            max: MAX_NAME_LEN * 2,
        });
    }
    if is_plain_permission(name.as_bytes()) {
        return Ok(());
    }
    // Something is wrong: find what, the slow way.
    let mut segments = 0;
    for segment in name.split('.') {
        segments += 1;
        if segment.is_empty() {
            return Err(NameError::EmptySegment(name.to_owned()));
        }
        if let Some(ch) = segment.chars().find(|c| !is_segment_char(*c)) {
            if ch == '*' {
                return Err(NameError::MisplacedWildcard(name.to_owned()));
            }
            return Err(NameError::BadPermissionChar {
                name: name.to_owned(),
                ch,
            });
        }
    }
    if segments > MAX_PERMISSION_SEGMENTS {
        return Err(NameError::TooManySegments(name.to_owned()));
    }
    Ok(())
}

/// Whether `name` is a valid permission, in one pass over its bytes: the common case, which
/// batch checks meet once a query.
fn is_plain_permission(name: &[u8]) -> bool {
    let mut segments = 1;
    let mut segment_len = 0;
    for &b in name {
        if b == b'.' {
            if segment_len == 0 {
                return false;
            }
            segments += 1;
            segment_len = 0;
        } else if BYTE_CLASS[usize::from(b)] & SEGMENT_BYTE != 0 {
            segment_len += 1;
        } else {
            return false;
        }
    }
    segment_len > 0 && segments <= MAX_PERMISSION_SEGMENTS
}

/// [`BYTE_CLASS`] bit: a byte of a permission segment (`[a-z0-9_]`).
const SEGMENT_BYTE: u8 = 1;
/// [`BYTE_CLASS`] bit: a byte of a role or tenant name (`[A-Za-z0-9_.:@/-]`).
const NAME_BYTE: u8 = 2;

/// What each byte may be part of: one lookup a byte in the one-pass checks.
static BYTE_CLASS: [u8; 256] = {
    let mut class = [0; 256];
    let mut b = 0;
    while b < 256 {
        if is_segment_byte(b as u8) {
            class[b] |= SEGMENT_BYTE;
        }
        if is_name_byte(b as u8) {
            class[b] |= NAME_BYTE;
        }
        b += 1;
    }
    class
};

/// The rule for permission segments; every allowed character is ASCII.
const fn is_segment_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// The rule for role and tenant names; every allowed character is ASCII.
const fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@' | b'/')
}

fn is_segment_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_segment_byte)
}

/// A grant or deny target: one permission, or every permission under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    /// `*`: every declared permission.
    All,
    /// `finance.*`: every declared permission whose name starts with `finance.`.
    /// Holds the prefix without the trailing `.*`.
    Prefix(String),
    /// One permission.
    Exact(String),
}

impl Pattern {
    /// Parses `*`, `prefix.*` or an exact permission name.
    ///
    /// ```
    /// use rbac_core::name::Pattern;
    /// assert_eq!(Pattern::parse("finance.*").unwrap(), Pattern::Prefix("finance".into()));
    /// assert!(Pattern::parse("finance.*.read").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Pattern, NameError> {
        if text == "*" {
            return Ok(Pattern::All);
        }
        if let Some(prefix) = text.strip_suffix(".*") {
            validate_permission(prefix).map_err(|e| match e {
                NameError::MisplacedWildcard(_) => NameError::MisplacedWildcard(text.to_owned()),
                NameError::TooManySegments(_) => NameError::TooManySegments(text.to_owned()),
                other => other,
            })?;
            if prefix.split('.').count() >= MAX_PERMISSION_SEGMENTS {
                return Err(NameError::TooManySegments(text.to_owned()));
            }
            return Ok(Pattern::Prefix(prefix.to_owned()));
        }
        validate_permission(text)?;
        Ok(Pattern::Exact(text.to_owned()))
    }

    /// Whether the permission `name` falls under this pattern.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Exact(exact) => exact == name,
            Pattern::Prefix(prefix) => name
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.starts_with('.')),
        }
    }

    /// Whether this pattern is a wildcard.
    pub fn is_wildcard(&self) -> bool {
        !matches!(self, Pattern::Exact(_))
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::All => f.write_str("*"),
            Pattern::Prefix(prefix) => write!(f, "{prefix}.*"),
            Pattern::Exact(name) => f.write_str(name),
        }
    }
}

/// Checks a role or tenant name: 1 to 128 bytes of letters, digits and `_ - . : @ /`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            name: truncated(name),
            max: MAX_NAME_LEN,
        });
    }
    if is_plain_name(name.as_bytes()) {
        return Ok(());
    }
    match name.chars().find(|c| !is_name_char(*c)) {
        Some(ch) => Err(NameError::BadNameChar {
            name: name.to_owned(),
            ch,
        }),
        None => Ok(()),
    }
}

/// Whether every byte of `name` is a role or tenant name character: every allowed character
/// is ASCII, so this is the character test.
fn is_plain_name(name: &[u8]) -> bool {
    name.iter()
        .all(|&b| BYTE_CLASS[usize::from(b)] & NAME_BYTE != 0)
}

/// Whether `name` is printable ASCII other than the space, which has no whitespace or control
/// character; only other bytes need the full test.
fn is_plain_subject(name: &[u8]) -> bool {
    name.iter().all(u8::is_ascii_graphic)
}

fn is_name_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_name_byte)
}

/// Checks a subject identifier: 1 to 256 bytes, no whitespace or control characters.
pub fn validate_subject(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_SUBJECT_LEN {
        return Err(NameError::TooLong {
            name: truncated(name),
            max: MAX_SUBJECT_LEN,
        });
    }
    if is_plain_subject(name.as_bytes()) {
        return Ok(());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(NameError::BadSubjectChar(name.to_owned()));
    }
    Ok(())
}

/// The closest candidate to `wanted` if it is close enough to be a likely typo.
pub fn suggest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Short names are too easy to reach: allow one edit per three characters, at least one.
    let limit = (wanted.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::levenshtein(wanted, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names() {
        for ok in ["a", "finance.invoices.read", "a_1.b2", "a.b.c.d.e.f.g.h"] {
            assert_eq!(validate_permission(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "A.b",
            "a-b",
            "a.b.c.d.e.f.g.h.i",
            "a.*",
            "a b",
        ] {
            assert!(validate_permission(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns() {
        assert_eq!(Pattern::parse("*"), Ok(Pattern::All));
        assert_eq!(Pattern::parse("a.b.*"), Ok(Pattern::Prefix("a.b".into())));
        assert_eq!(Pattern::parse("a.b"), Ok(Pattern::Exact("a.b".into())));
        for bad in [
            "*.a",
            "a.*.b",
            "a*",
            "a.b*",
            ".*",
            "a.b.c.d.e.f.g.h.*",
            "**",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        let p = Pattern::parse("fin.*").unwrap();
        assert!(p.matches("fin.x"));
        assert!(!p.matches("fin"));
        assert!(!p.matches("finance.x"));
        assert_eq!(p.to_string(), "fin.*");
    }

    #[test]
    fn role_and_subject_names() {
        assert!(validate_name("super_admin").is_ok());
        assert!(validate_name("group-has-a-very-long-name-1").is_ok());
        assert!(validate_name("has space").is_err());
        assert!(validate_subject("alice@example.com").is_ok());
        assert!(validate_subject("a\tb").is_err());
        assert!(validate_subject("").is_err());
    }

    proptest::proptest! {
        /// The one-pass checks agree with the rules as written: split at dots, test each char.
        #[test]
        fn fast_checks_agree_with_the_rules(
            name in "(([a-z_1]{1,2}[.]){0,9}[a-z]{1,2}|[a-zA-Z0-9_.*: @/\t\u{e9}\u{2003}-]{0,12})"
        ) {
            let segments: Vec<&str> = name.split('.').collect();
            let permission = !name.is_empty()
                && segments.len() <= MAX_PERMISSION_SEGMENTS
                && segments
                    .iter()
                    .all(|s| !s.is_empty() && s.chars().all(is_segment_char));
            proptest::prop_assert_eq!(validate_permission(&name).is_ok(), permission);
            // The fast paths alone must accept what the rules accept: the slow path behind
            // them would hide one that refused too much. (Emptiness is checked before them.)
            proptest::prop_assert_eq!(is_plain_permission(name.as_bytes()), permission);
            let role = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:@/".contains(c));
            proptest::prop_assert_eq!(validate_name(&name).is_ok(), role);
            proptest::prop_assert_eq!(is_plain_name(name.as_bytes()), role || name.is_empty());
            let subject =
                !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control());
            proptest::prop_assert_eq!(validate_subject(&name).is_ok(), subject);
            let plain_subject = name.bytes().all(|b| b.is_ascii() && !b.is_ascii_whitespace() && !b.is_ascii_control());
            proptest::prop_assert_eq!(is_plain_subject(name.as_bytes()), plain_subject);
        }
    }

    #[test]
    fn suggestions() {
        let names = ["finance.invoices.read", "finance.invoices.create"];
        assert_eq!(
            suggest("finance.invoice.read", names),
            Some("finance.invoices.read")
        );
        assert_eq!(suggest("crm.leads.read", names), None);
    }
}
