//! List and search requests (RFC 7644 §3.4.2, §3.4.3), their responses, and RFC 9865 cursors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::error::{ScimError, ScimResult, ScimType};

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// Page size when the client names none (the most one page returns is the operator's
/// `Sizes::page_size`, advertised as `filter.maxResults`).
pub const DEFAULT_COUNT: u64 = 100;

/// A list request, from query parameters or a `.search` body.
#[derive(Debug, Default, Clone)]
pub struct ListRequest {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    pub cursor: Option<String>,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl ListRequest {
    /// From query parameters; names are matched case-insensitively, as some clients vary them.
    pub fn from_query(params: &[(String, String)]) -> ScimResult<ListRequest> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        Ok(ListRequest {
            filter: get("filter"),
            sort_by: get("sortBy"),
            sort_order: get("sortOrder"),
            start_index: get("startIndex")
                .map(|v| parse_int("startIndex", &v))
                .transpose()?,
            count: get("count").map(|v| parse_int("count", &v)).transpose()?,
            cursor: get("cursor"),
            attributes: get("attributes"),
            excluded_attributes: get("excludedAttributes"),
        })
    }

    /// RFC 7644 §3.4.3: a SearchRequest body.
    pub fn from_search_body(body: &Value) -> ScimResult<ListRequest> {
        let obj = body
            .as_object()
            .ok_or_else(|| ScimError::invalid_syntax("a SearchRequest must be a JSON object"))?;
        let get = |name: &str| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let text = |name: &str| -> ScimResult<Option<String>> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ScimError::invalid_value(format!("{name} must be a string"))),
            }
        };
        let list = |name: &str| -> ScimResult<Option<String>> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| Some(v.join(",")))
                    .ok_or_else(|| {
                        ScimError::invalid_value(format!("{name} must be a list of strings"))
                    }),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{name} must be a list of strings"
                ))),
            }
        };
        let int = |name: &str| -> ScimResult<Option<i64>> {
            match get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer"))),
                Some(Value::String(s)) => parse_int(name, s).map(Some),
                Some(_) => Err(ScimError::invalid_value(format!(
                    "{name} must be an integer"
                ))),
            }
        };
        Ok(ListRequest {
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: int("startIndex")?,
            count: int("count")?,
            cursor: text("cursor")?,
            attributes: list("attributes")?,
            excluded_attributes: list("excludedAttributes")?,
        })
    }
}

fn parse_int(name: &str, v: &str) -> ScimResult<i64> {
    v.trim()
        .parse()
        .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer, not {v:?}")))
}

/// RFC 9865 §4: a cursor the service cannot use.
pub fn invalid_cursor(detail: &str) -> ScimError {
    ScimError::bad_request(ScimType::InvalidCursor, detail)
}

/// A decoded RFC 9865 cursor. Cursors are opaque to clients: unsorted lists page by keyset on the
/// time-ordered id (stable under inserts); sorted lists page by position.
#[derive(Debug, PartialEq)]
pub enum Cursor {
    After(String),
    Offset(u64),
}

pub fn encode_cursor(c: &Cursor) -> String {
    let raw = match c {
        Cursor::After(id) => format!("k:{id}"),
        Cursor::Offset(n) => format!("o:{n}"),
    };
    URL_SAFE_NO_PAD.encode(raw)
}

pub fn decode_cursor(s: &str) -> ScimResult<Cursor> {
    let bad = || invalid_cursor("the cursor is not one this service issued");
    let raw = URL_SAFE_NO_PAD.decode(s.trim()).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    match raw.split_once(':') {
        Some(("k", id)) if uuid::Uuid::parse_str(id).is_ok() => Ok(Cursor::After(id.to_string())),
        Some(("o", n)) => n.parse().map(Cursor::Offset).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// RFC 7644 §3.4.2: a ListResponse; `startIndex` only for index pagination.
pub fn list_response(
    total: i64,
    start_index: u64,
    resources: Vec<Value>,
    cursor_mode: bool,
    next: Option<String>,
) -> Value {
    // Built by hand: `json!` would copy every resource (it serializes what it is given).
    let mut v = serde_json::Map::new();
    v.insert("schemas".into(), json!([LIST_RESPONSE]));
    v.insert("totalResults".into(), json!(total));
    v.insert("itemsPerPage".into(), json!(resources.len()));
    if !cursor_mode {
        v.insert("startIndex".into(), json!(start_index));
    }
    if let Some(n) = next {
        v.insert("nextCursor".into(), Value::String(n));
    }
    v.insert("Resources".into(), Value::Array(resources));
    Value::Object(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let id = uuid::Uuid::now_v7().to_string();
        for c in [Cursor::After(id.clone()), Cursor::Offset(200)] {
            assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        }
        for bad in [
            "",
            "!!",
            "azpw",
            &URL_SAFE_NO_PAD.encode("k:not-a-uuid"),
            &URL_SAFE_NO_PAD.encode("o:-1"),
        ] {
            let e = decode_cursor(bad).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert_eq!(
                e.scim_type,
                Some(crate::scim::error::ScimType::InvalidCursor)
            );
        }
    }
}
