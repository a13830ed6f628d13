//! `GET /api/v1/docs`: the admin API reference as one server-rendered HTML page, made from the same
//! OpenAPI document as `/api/v1/openapi.json`.
//!
//! Self-contained on purpose: idbridge often runs where nothing outside is reachable, so the page
//! loads no script, font or stylesheet from elsewhere (and none at all: `<details>` does the
//! folding), and its Content-Security-Policy forbids any.

use std::fmt::Write;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Nothing may load or run but the page's own inline styles.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Nested schemas deeper than this are shown by name only; the document's own nesting is
/// shallow, and the bound keeps a recursive schema from recursing here.
const MAX_DEPTH: usize = 6;

#[tracing::instrument(skip_all)]
pub async fn docs() -> Response {
    let html = render(&super::admin::document());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
        .into_response()
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An id attribute value: letters, digits, `_` and `-` only.
fn anchor(prefix: &str, s: &str) -> String {
    let body: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}-{body}")
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// One operation: method, path template, the operation object.
type Op<'d> = (&'static str, &'d str, &'d Value);

/// Operations in document order, grouped by their first tag (tags in order of first use).
fn operations(doc: &Value) -> Vec<(String, Vec<Op<'_>>)> {
    let mut groups: Vec<(String, Vec<Op<'_>>)> = Vec::new();
    let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
        return groups;
    };
    for (path, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let tag = op
                .get("tags")
                .and_then(|t| t.get(0))
                .and_then(Value::as_str)
                .unwrap_or("other")
                .to_string();
            match groups.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, ops)) => ops.push((method, path, op)),
                None => groups.push((tag, vec![(method, path, op)])),
            }
        }
    }
    groups
}

pub fn render(doc: &Value) -> String {
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("API");
    let version = doc
        .pointer("/info/version")
        .and_then(Value::as_str)
        .unwrap_or("");
    let groups = operations(doc);
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n\
         <header><h1>{t} <small>{v}</small></h1><p>{d}</p>\
         <p>Machine-readable: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> \
         (OpenAPI {o}). Every call takes an admin token (<code>Authorization: Bearer idba_…</code>), \
         or, where its security says so, a platform token (<code>idbp_…</code>); errors are RFC 9457 \
         problem details.</p></header>\n<nav><ul>",
        t = esc(title),
        v = esc(version),
        d = esc(doc
            .pointer("/info/description")
            .and_then(Value::as_str)
            .unwrap_or("")),
        o = esc(str_of(doc, "openapi")),
    );
    for (tag, ops) in &groups {
        let _ = write!(
            h,
            "<li><a href=\"#{}\">{}</a> ({})</li>",
            anchor("tag", tag),
            esc(tag),
            ops.len()
        );
    }
    h.push_str("<li><a href=\"#schemas\">schemas</a></li></ul></nav>\n<main>");
    for (tag, ops) in &groups {
        let _ = write!(
            h,
            "<section id=\"{}\"><h2>{}</h2>",
            anchor("tag", tag),
            esc(tag)
        );
        for (method, path, op) in ops {
            operation(&mut h, method, path, op);
        }
        h.push_str("</section>\n");
    }
    h.push_str("<section id=\"schemas\"><h2>schemas</h2>");
    if let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, s) in schemas {
            let _ = write!(
                h,
                "<details class=\"schema\" id=\"{}\"><summary><code>{}</code></summary>{}</details>",
                anchor("schema", name),
                esc(name),
                schema(s, 0)
            );
        }
    }
    h.push_str("</section></main></body></html>\n");
    h
}

fn operation(h: &mut String, method: &str, path: &str, op: &Value) {
    let id = str_of(op, "operationId");
    let _ = write!(
        h,
        "<details class=\"op\" id=\"{a}\"><summary><span class=\"m {m}\">{M}</span> \
         <code>{p}</code> <span class=\"s\">{s}</span></summary>\
         <p class=\"id\">operationId <code>{i}</code></p>",
        a = anchor("op", id),
        m = method,
        M = method.to_ascii_uppercase(),
        p = esc(path),
        s = esc(str_of(op, "summary")),
        i = esc(id),
    );
    let description = str_of(op, "description");
    if !description.is_empty() {
        let _ = write!(h, "<p>{}</p>", esc(description));
    }
    if let Some(params) = op.get("parameters").and_then(Value::as_array)
        && !params.is_empty()
    {
        h.push_str(
            "<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th></th></tr>",
        );
        for p in params {
            let required = p.get("required").and_then(Value::as_bool) == Some(true);
            let _ = write!(
                h,
                "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(str_of(p, "name")),
                if required { " <b>required</b>" } else { "" },
                esc(str_of(p, "in")),
                p.get("schema").map(|s| schema(s, 0)).unwrap_or_default(),
                esc(str_of(p, "description")),
            );
        }
        h.push_str("</table>");
    }
    if let Some(body) = op.get("requestBody") {
        h.push_str("<h4>Request body</h4>");
        content(h, body);
    }
    if let Some(responses) = op.get("responses").and_then(Value::as_object) {
        h.push_str("<h4>Responses</h4><dl>");
        for (status, r) in responses {
            let _ = write!(
                h,
                "<dt>{}</dt><dd>{}",
                esc(status),
                esc(str_of(r, "description"))
            );
            content(h, r);
            h.push_str("</dd>");
        }
        h.push_str("</dl>");
    }
    h.push_str("</details>\n");
}

fn content(h: &mut String, body: &Value) {
    let Some(content) = body.get("content").and_then(Value::as_object) else {
        return;
    };
    for (media, c) in content {
        let _ = write!(
            h,
            "<div class=\"body\"><code>{}</code> {}</div>",
            esc(media),
            c.get("schema").map(|s| schema(s, 0)).unwrap_or_default()
        );
    }
}

fn type_name(s: &Value) -> String {
    match s.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => String::new(),
    }
}

/// One schema as HTML: references link to their entry under "schemas", objects list their
/// properties, unions list their alternatives.
fn schema(s: &Value, depth: usize) -> String {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return format!(
            "<a href=\"#{}\"><code>{}</code></a>",
            anchor("schema", name),
            esc(name)
        );
    }
    if depth > MAX_DEPTH {
        return "…".into();
    }
    let mut out = String::new();
    for (key, word) in [
        ("oneOf", "one of"),
        ("anyOf", "any of"),
        ("allOf", "all of"),
    ] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let _ = write!(out, "{word}:<ul>");
            for a in alts {
                let _ = write!(out, "<li>{}</li>", schema(a, depth + 1));
            }
            out.push_str("</ul>");
        }
    }
    let ty = type_name(s);
    if !ty.is_empty() {
        let _ = write!(out, "<span class=\"t\">{}</span>", esc(&ty));
    }
    if let Some(f) = s.get("format").and_then(Value::as_str) {
        let _ = write!(out, " <span class=\"f\">({})</span>", esc(f));
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let list: Vec<String> = values
            .iter()
            .map(|v| format!("<code>{}</code>", esc(&v.to_string())))
            .collect();
        let _ = write!(out, " one of {}", list.join(", "));
    }
    if let Some(items) = s.get("items") {
        let _ = write!(out, " of {}", schema(items, depth + 1));
    }
    if let Some(d) = s.get("description").and_then(Value::as_str)
        && depth > 0
    {
        let _ = write!(out, " <span class=\"d\">{}</span>", esc(d));
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str("<ul class=\"props\">");
        for (name, p) in props {
            let _ = write!(
                out,
                "<li><code>{}</code>{}: {}</li>",
                esc(name),
                if required.contains(&name.as_str()) {
                    " <b>required</b>"
                } else {
                    ""
                },
                schema(p, depth + 1)
            );
        }
        out.push_str("</ul>");
    }
    if depth == 0
        && let Some(d) = s.get("description").and_then(Value::as_str)
    {
        let _ = write!(out, "<p class=\"d\">{}</p>", esc(d));
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70em;\
padding:0 1em;color:#1b1b1b}header{border-bottom:1px solid #ddd}nav ul{display:flex;flex-wrap:wrap;\
gap:.3em 1.2em;padding:0;list-style:none}code{font:13px ui-monospace,monospace}\
details{border:1px solid #ddd;border-radius:4px;margin:.4em 0;padding:.3em .6em}\
summary{cursor:pointer}.m{display:inline-block;min-width:4.2em;font:bold 12px monospace;\
text-align:center;border-radius:3px;padding:.1em .3em;color:#fff;background:#555}\
.get{background:#2a6ebb}.post{background:#2c8a3c}.put{background:#a0651c}.patch{background:#7a4fb0}\
.delete{background:#b33a3a}.s{color:#444}.id,.d,.f{color:#666}table{border-collapse:collapse}\
td,th{border-bottom:1px solid #eee;padding:.2em .6em;text-align:left;vertical-align:top}\
ul.props{margin:.2em 0}dt{font-weight:bold}.t{color:#7a3e00}";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_everything_taken_from_the_document() {
        let doc = json!({
            "openapi": "3.1.0",
            "info": {"title": "<script>x</script>", "version": "1", "description": "a & b"},
            "paths": {"/p/{id}": {"get": {
                "tags": ["t\"q"], "operationId": "op<1>", "summary": "<b>s</b>",
                "parameters": [{"name": "id", "in": "path", "required": true,
                                "schema": {"type": "string"}, "description": "<i>"}],
                "responses": {"200": {"description": "ok",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A\"B"}}}}}
            }}},
            "components": {"schemas": {"A\"B": {"type": "object",
                "properties": {"k<": {"type": ["string", "null"], "enum": ["<v>"]}}}}}
        });
        let html = render(&doc);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>s</b>"), "{html}");
        assert!(!html.contains("<i>"), "{html}");
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(html.contains("href=\"#schema-A-B\""));
        assert!(html.contains("id=\"schema-A-B\""));
        assert!(html.contains("string | null"));
    }
}
