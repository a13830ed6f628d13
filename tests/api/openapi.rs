//! The admin API's own description: the OpenAPI document a client generator reads, the reference
//! page people read, and the CLI dump CI validates.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::harness::*;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let r = app.api(Method::GET, "/api/v1/openapi.json", "", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                out.push((m.to_string(), path.clone(), op.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_operation_has_a_summary_an_operation_id_and_parameters_where_they_are() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() > 40, "{} operations", ops.len());
    let mut ids = BTreeSet::new();
    for (method, path, op) in &ops {
        let at = format!("{method} {path}");
        let summary = op["summary"].as_str().unwrap_or("");
        assert!(!summary.trim().is_empty(), "{at}: no summary");
        let id = op["operationId"].as_str().unwrap_or("");
        assert!(!id.is_empty(), "{at}: no operationId");
        assert!(
            ids.insert(id.to_string()),
            "{at}: operationId {id} repeated"
        );
        let template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let mut in_path = BTreeSet::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().expect("parameter name");
            let place = p["in"].as_str().expect("parameter in");
            if template.contains(name) {
                assert_eq!(place, "path", "{at}: {name}");
                assert_eq!(p["required"], true, "{at}: {name}");
                in_path.insert(name);
            } else {
                assert_eq!(place, "query", "{at}: {name} is not in the path template");
            }
        }
        assert_eq!(in_path, template, "{at}: path parameters");
    }
    // The paged lists and the audit filters take their options from the query string.
    let audit = &doc["paths"]["/api/v1/orgs/{org}/audit"]["get"]["parameters"];
    assert!(
        audit
            .as_array()
            .expect("audit parameters")
            .iter()
            .any(|p| p["name"] == "since" && p["in"] == "query"),
        "{audit}"
    );
}

#[tokio::test]
async fn change_sets_have_schemas_of_their_own() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    for owner in ["RuleChangeResult", "Changes", "GrantCreated"] {
        assert_eq!(
            schemas[owner]["properties"]["changes"]["items"]["$ref"],
            "#/components/schemas/UserOutcome",
            "{owner}: {}",
            schemas[owner]
        );
    }
    let outcome = &schemas["UserOutcome"]["properties"];
    for field in ["user_id", "user_name", "status", "changes"] {
        assert!(
            outcome.get(field).is_some(),
            "UserOutcome.{field}: {outcome}"
        );
    }
    assert_eq!(
        outcome["changes"]["items"]["$ref"],
        "#/components/schemas/AccessChange"
    );
    // The preview body: each alternative spells out its fields (a generator cannot read an
    // allOf inside a oneOf).
    let change = &schemas["RuleChange"];
    let alts = change["oneOf"].as_array().expect("RuleChange.oneOf");
    assert_eq!(alts.len(), 3, "{change}");
    for alt in alts {
        assert!(alt.get("allOf").is_none(), "{alt}");
        assert!(alt["properties"]["op"].is_object(), "{alt}");
    }
    assert_eq!(
        doc["paths"]["/api/v1/orgs/{org}/mappings/preview"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/RuleChange"
    );
}

#[tokio::test]
async fn the_reference_page_lists_every_operation_and_loads_nothing_from_elsewhere() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    // No token: like the document, the reference is public.
    let r = app.api(Method::GET, "/api/v1/docs", "", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        r.headers
    );
    let csp = r.header("content-security-policy").expect("CSP header");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = r.body.as_str().expect("an HTML page").to_string();
    assert!(html.contains("href=\"/api/v1/openapi.json\""));
    let lower = html.to_ascii_lowercase();
    for external in [
        "<script", " src=", "<link", "@import", "http://", "https://",
    ] {
        assert!(!lower.contains(external), "the page has {external:?}");
    }
    for (method, path, op) in operations(&doc) {
        assert!(html.contains(&format!("<code>{path}</code>")), "{path}");
        let summary = op["summary"]
            .as_str()
            .expect("summary")
            .replace('\'', "&#39;");
        assert!(html.contains(&summary), "{method} {path}: {summary}");
        let id = op["operationId"].as_str().expect("operationId");
        assert!(html.contains(&format!("id=\"op-{id}\"")), "{id}");
        assert!(
            html.contains(&format!(">{}</span>", method.to_ascii_uppercase())),
            "{method}"
        );
    }
    // Every tag is a section, every referenced schema has its entry.
    for tag in ["organization", "mappings", "sso", "webhooks"] {
        assert!(html.contains(&format!("id=\"tag-{tag}\"")), "{tag}");
    }
    for name in doc["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .keys()
    {
        assert!(
            html.contains(&format!("<code>{name}</code></summary>")),
            "{name}"
        );
    }
}

#[test]
fn the_cli_prints_the_document_without_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .arg("openapi")
        .env(
            "IDBRIDGE_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .output()
        .expect("run idbridge");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc, idbridge::http::admin::document());
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert!(!db.exists(), "no database is created");
}

/// Every list answers `{items, next}`, and the document says so: a generated client that reads
/// `next` from one list finds it on all of them.
#[tokio::test]
async fn every_list_documents_its_next_cursor() {
    let app = TestApp::new().await;
    let doc = document(&app).await;
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                doc["components"]["schemas"][name].clone()
            }
            None => schema.clone(),
        }
    };
    let mut lists = 0;
    for (method, path, op) in operations(&doc) {
        if method != "get" {
            continue;
        }
        let schema = resolve(&op["responses"]["200"]["content"]["application/json"]["schema"]);
        let props = &schema["properties"];
        if props["items"]["type"] != "array" {
            continue;
        }
        lists += 1;
        assert!(
            props.get("next").is_some(),
            "GET {path}: a list without `next`: {schema}"
        );
    }
    assert!(lists >= 12, "{lists} lists");
}
