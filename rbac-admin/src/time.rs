//! Times on the command line and in output: RFC 3339 in UTC, or Unix epoch milliseconds.

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::CliError;

/// `1763900000000` → `2025-11-23T12:13:20.000Z`.
pub fn format_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

/// Parses `2026-11-23`, `2026-11-23T10:00:00Z` (any RFC 3339 time) or Unix milliseconds.
pub fn parse(flag: &str, text: &str) -> Result<i64, CliError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    if let Some(t) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    Err(CliError::invalid(format!(
        "bad time for {flag}: `{text}`; use 2026-11-23, 2026-11-23T10:00:00Z or Unix milliseconds"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        let ms = parse("--since", "2026-11-23T10:00:00Z").unwrap();
        assert_eq!(format_ms(ms), "2026-11-23T10:00:00.000Z");
        assert_eq!(parse("--since", "2026-11-23").unwrap(), ms - 10 * 3_600_000);
        assert_eq!(parse("--since", "42").unwrap(), 42);
        assert!(parse("--since", "yesterday").is_err());
    }
}
