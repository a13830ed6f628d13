//! Stored times (microseconds since the Unix epoch) as the admin API and the CLI show them: RFC 3339
//! in UTC with a `Z`, the form every client library parses.

use serde::Serializer;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 §5.6 `date-time` in UTC, e.g. `2026-12-05T13:40:00.123456Z`.
pub fn format(us: i64) -> String {
    super::from_micros(us)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Parses an RFC 3339 `date-time` (any offset) into microseconds since the epoch.
pub fn parse(s: &str) -> Result<i64, String> {
    time::OffsetDateTime::parse(s.trim(), &Rfc3339)
        .map(super::micros)
        .map_err(|_| format!("{s:?} is not an RFC 3339 date-time (e.g. 2026-01-31T09:00:00Z)"))
}

pub fn serialize<S: Serializer>(us: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*us))
}

pub mod option {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(us: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match us {
            Some(us) => s.serialize_str(&super::format(*us)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_utc_with_z() {
        let us = 1_780_000_000_123_456;
        let s = format(us);
        assert!(s.ends_with('Z'), "{s}");
        assert_eq!(parse(&s), Ok(us));
        assert_eq!(
            parse("2026-01-31T10:00:00+01:00"),
            parse("2026-01-31T09:00:00Z")
        );
        assert!(parse("1780000000").is_err());
    }
}
