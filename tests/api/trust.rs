//! Trust between an organization's IdPs: a mapping rule matches only the groups of the directory
//! (or the claims of the connection) it is bound to, so a second, less trusted IdP cannot grant
//! what the first one's groups grant.

use axum::http::{Method, StatusCode};
use idbridge::mapping::rule::Source;
use idbridge::store::admin::OrgScope;
use serde_json::{Value, json};

use crate::harness::TestApp;

/// A second directory of the app's own organization (a contractor's IdP, say) and its token.
async fn second_directory(app: &TestApp) -> (String, String) {
    let (d, t) = app
        .store
        .create_directory(&OrgScope::for_org(&app.org_id, "test"), "contractors")
        .await
        .unwrap();
    (d.id, t.token)
}

/// A SCIM request to `directory` with its token.
async fn scim(app: &TestApp, directory: &str, token: &str, path: &str, body: Value) -> Value {
    let auth = format!("Bearer {token}");
    let r = app
        .send(
            Method::POST,
            &format!("/scim/v2/{directory}{path}"),
            Some(body),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body
}

/// A user of `directory` in a group called `group`.
async fn member_of(app: &TestApp, directory: &str, token: &str, user: &str, group: &str) {
    let u = scim(
        app,
        directory,
        token,
        "/Users",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user, "active": true}),
    )
    .await;
    scim(
        app,
        directory,
        token,
        "/Groups",
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": group,
               "members": [{"value": u["id"]}]}),
    )
    .await;
}

async fn sub_account(app: &TestApp, admin: &str) -> String {
    let r = app
        .api(
            Method::POST,
            &app.org_path("/sub-accounts"),
            admin,
            Some(json!({"name": "Production"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}

/// An admin role in `sa` for the members of groups called Engineering, with this rule body added.
async fn engineering_rule(
    app: &TestApp,
    admin: &str,
    sa: &str,
    extra: Value,
) -> crate::harness::Resp {
    let mut body = json!({
        "matcher": {"type": "display_name", "display_name": "Engineering"},
        "grant": {"type": "sub_account_role", "sub_account": {"one": sa}, "role": "admin"}
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    app.api(Method::POST, &app.org_path("/mappings"), admin, Some(body))
        .await
}

/// The user's role in `sa`, if any.
async fn role_in(app: &TestApp, admin: &str, user_name: &str, sa: &str) -> Option<String> {
    let user = app.org_user_id(admin, user_name).await;
    let role = crate::sso::role_in(app, admin, &user, sa).await;
    role.as_str().map(String::from)
}

/// Mallory, a contractor, in the contractors' directory's group called Engineering.
async fn contractor_in_engineering(app: &TestApp, directory: &str, token: &str) {
    member_of(app, directory, token, MALLORY, "Engineering").await;
}

const MALLORY: &str = "mallory@contractor.example";

#[tokio::test]
async fn a_contractor_directorys_group_named_like_a_mapped_group_grants_nothing() {
    let app = TestApp::new().await;
    let admin = app.admin_token("org_admin", None).await;
    let sa = sub_account(&app, &admin).await;
    // Made while the organization has one directory: bound to it.
    let r = engineering_rule(&app, &admin, &sa, json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(
        r.body["rule"]["source"],
        json!({"directory": app.directory_id}),
        "{r:?}"
    );

    let (contractors, token) = second_directory(&app).await;
    member_of(
        &app,
        &app.directory_id,
        &app.token,
        "kate@acme.example",
        "Engineering",
    )
    .await;
    contractor_in_engineering(&app, &contractors, &token).await;
    assert_eq!(
        role_in(&app, &admin, "kate@acme.example", &sa)
            .await
            .as_deref(),
        Some("admin")
    );
    assert_eq!(role_in(&app, &admin, MALLORY, &sa).await, None);

    // A rule trusting every directory, said in so many words, matches both.
    let r = engineering_rule(&app, &admin, &sa, json!({"source": "any"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(
        role_in(&app, &admin, MALLORY, &sa).await.as_deref(),
        Some("admin")
    );
}

#[tokio::test]
async fn a_rule_without_source_is_refused_when_the_organization_has_two_directories() {
    let app = TestApp::new().await;
    let admin = app.admin_token("org_admin", None).await;
    let sa = sub_account(&app, &admin).await;
    let (contractors, _) = second_directory(&app).await;
    let r = engineering_rule(&app, &admin, &sa, json!({})).await;
    r.assert_problem(400);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("2 directories"), "{detail}");
    assert!(detail.contains("\"source\""), "{detail}");

    // Another organization's directory, or a connection for groups, is refused too.
    let (elsewhere, _) = app.other_directory().await;
    for source in [
        json!({"directory": elsewhere}),
        json!({"connection": app.directory_id}),
        json!("everything"),
    ] {
        let r = engineering_rule(&app, &admin, &sa, json!({ "source": source })).await;
        r.assert_problem(400);
    }
    let r = engineering_rule(
        &app,
        &admin,
        &sa,
        json!({"source": {"directory": contractors}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["rule"]["source"]["directory"], contractors.as_str());
    let stored = app.api_ok(&app.org_path("/mappings"), &admin).await;
    assert_eq!(stored["items"].as_array().unwrap().len(), 1, "{stored}");
}

#[tokio::test]
async fn deleting_a_directory_deletes_the_rules_bound_to_it_and_audits_each() {
    let app = TestApp::new().await;
    let admin = app.admin_token("org_admin", None).await;
    let sa = sub_account(&app, &admin).await;
    let (contractors, token) = second_directory(&app).await;
    let bound = engineering_rule(
        &app,
        &admin,
        &sa,
        json!({"source": {"directory": contractors}}),
    )
    .await;
    let bound = bound.body["rule"]["id"].as_str().unwrap().to_string();
    let kept = engineering_rule(
        &app,
        &admin,
        &sa,
        json!({"source": {"directory": app.directory_id}}),
    )
    .await;
    let kept = kept.body["rule"]["id"].as_str().unwrap().to_string();
    contractor_in_engineering(&app, &contractors, &token).await;

    let r = app
        .api(
            Method::DELETE,
            &app.org_path(&format!("/directories/{contractors}")),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let rules = app.api_ok(&app.org_path("/mappings"), &admin).await;
    let ids: Vec<&str> = rules["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [kept.as_str()]);
    let audit = app
        .api_ok(
            &app.org_path(&format!(
                "/audit?resource_type=MappingRule&resource_id={bound}"
            )),
            &admin,
        )
        .await;
    let entry = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["operation"] == "delete")
        .unwrap_or_else(|| panic!("no deletion audited: {audit}"));
    assert!(
        entry["detail"].as_str().unwrap().contains(&contractors),
        "{audit}"
    );
}

#[tokio::test]
async fn rules_stored_before_the_upgrade_are_bound_to_their_organizations_only_directory() {
    let (_dir, url, pool) = crate::sso::sqlite_migrated_below(13).await;
    for stmt in [
        "INSERT INTO organizations (id, name, name_ci, created_at) VALUES ('o1', 'One', 'one', 1)",
        "INSERT INTO organizations (id, name, name_ci, created_at) VALUES ('o2', 'Two', 'two', 1)",
        "INSERT INTO directories (id, org_id, name, created_at) VALUES ('d1', 'o1', 'Okta', 1)",
        "INSERT INTO directories (id, org_id, name, created_at) VALUES ('d2', 'o2', 'Okta', 1)",
        "INSERT INTO directories (id, org_id, name, created_at) VALUES ('d3', 'o2', 'Contractors', 1)",
    ] {
        sqlx::query(stmt).execute(&pool).await.unwrap();
    }
    let matcher = r#"{"type":"display_name","display_name":"Engineering"}"#;
    let grant = r#"{"type":"org_role","role":"org_viewer"}"#;
    for (id, org) in [("r1", "o1"), ("r2", "o2")] {
        sqlx::query(
            "INSERT INTO mapping_rules (id, org_id, matcher, grant_json, created_by, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, 'test', 1, 1)",
        )
        .bind(id)
        .bind(org)
        .bind(matcher)
        .bind(grant)
        .execute(&pool)
        .await
        .unwrap();
    }
    let store = crate::sso::upgraded(&url, pool).await;
    let one = store
        .list_rules(&OrgScope::for_org("o1", "t"))
        .await
        .unwrap();
    assert_eq!(one[0].source, Source::Directory("d1".into()));
    // Two directories: which one the rule trusted is unknown, so it keeps matching both.
    let two = store
        .list_rules(&OrgScope::for_org("o2", "t"))
        .await
        .unwrap();
    assert_eq!(two[0].source, Source::Any);
}

#[tokio::test]
async fn a_claim_from_another_connection_does_not_match_a_rule_bound_to_one() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_owner", None).await;
    let sa = sub_account(&app, &admin).await;
    let trusted = crate::sso::connection(&app, &admin, true).await;
    let other = crate::sso::connection(&app, &admin, true).await;
    let body = |source: Value| {
        json!({
            "matcher": {"type": "claim", "value": "eng-admins"},
            "grant": {"type": "sub_account_role", "sub_account": {"one": sa}, "role": "admin"},
            "source": source
        })
    };
    let path = app.org_path("/mappings");
    // Two connections: the rule must say which one's claims it trusts.
    let mut unsourced = body(Value::Null);
    unsourced.as_object_mut().unwrap().remove("source");
    app.api(Method::POST, &path, &admin, Some(unsourced))
        .await
        .assert_problem(400);
    let r = app
        .api(
            Method::POST,
            &path,
            &admin,
            Some(body(json!({"directory": trusted.id}))),
        )
        .await;
    r.assert_problem(400);
    let r = app
        .api(
            Method::POST,
            &path,
            &admin,
            Some(body(json!({"connection": trusted.id}))),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");

    let claim = || crate::sso::groups(&["eng-admins"]);
    crate::sso::sign_in_as(&app, &other, "ada@example.com", claim())
        .await
        .unwrap();
    assert_eq!(role_in(&app, &admin, "ada@example.com", &sa).await, None);
    crate::sso::sign_in_as(&app, &trusted, "ada@example.com", claim())
        .await
        .unwrap();
    assert_eq!(
        role_in(&app, &admin, "ada@example.com", &sa)
            .await
            .as_deref(),
        Some("admin")
    );
    // The same values through the other connection again: the rule no longer matches.
    crate::sso::sign_in_as(&app, &other, "ada@example.com", claim())
        .await
        .unwrap();
    assert_eq!(role_in(&app, &admin, "ada@example.com", &sa).await, None);

    // Deleting the trusted connection deletes its rule.
    let r = app
        .api(
            Method::DELETE,
            &app.org_path(&format!("/sso/connections/{}", trusted.id)),
            &admin,
            None,
        )
        .await;
    assert!(r.status.is_success(), "{r:?}");
    let rules = app.api_ok(&path, &admin).await;
    assert_eq!(rules["items"], json!([]), "{rules}");
}
