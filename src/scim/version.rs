//! Resource versions on the wire (RFC 7644 §3.14): a weak entity tag per version, and the
//! `If-Match` / `If-None-Match` comparison against it (RFC 7232 §3.1, weak comparison).

/// RFC 7644 §3.14: the weak entity tag of a resource version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// RFC 7232 §3.1 with weak comparison: `*` or any listed tag equal to the current one.
pub fn if_match_ok(header: Option<&str>, version: i64) -> bool {
    let Some(h) = header else { return true };
    let current = version.to_string();
    h.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_matches_its_tag_as_clients_spell_it_and_nothing_else() {
        assert_eq!(etag(3), "W/\"3\"");
        for (header, ok) in [
            (None, true),
            (Some("*"), true),
            (Some("W/\"3\""), true),
            (Some("\"3\""), true),
            (Some("W/\"2\", W/\"3\""), true),
            (Some("W/\"2\""), false),
            (Some("W/\"33\""), false),
        ] {
            assert_eq!(if_match_ok(header, 3), ok, "{header:?}");
        }
    }
}
