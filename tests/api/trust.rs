//! Trust between an organization's IdPs: a mapping rule matches only the groups of the directory
//! (or the claims of the connection) it is bound to, so a second, less trusted IdP cannot grant
//! what the first one's groups grant.

use axum::http::{Method, StatusCode};
use idbridge::mapping::rule::Source;
use idbridge::service::setup;
use idbridge::store::admin::OrgScope;
use serde_json::{Value, json};

use crate::harness::TestApp;

/// A second directory of the app's own organization (a contractor's IdP, say) and its token.
async fn second_directory(app: &TestApp) -> (String, String) {
    let (d, t) = setup::create_directory(
        &app.store,
        &OrgScope::for_org(&app.org_id, "test"),
        "contractors",
    )
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

// ---- which users a connection signs in ----------------------------------------------------------

/// An OIDC connection of the app's organization to `issuer`, made over the admin API with
/// `extra` settings (none: the defaults), read back from the store for `sign_in`.
async fn oidc_connection(
    app: &TestApp,
    admin: &str,
    issuer: &str,
    extra: Value,
) -> idbridge::store::sso::Connection {
    let mut body = json!({
        "name": "Okta",
        "jit": true,
        "oidc": {"issuer": issuer, "client_id": "idbridge-at-idp", "client_secret": "idp-secret"}
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let id = crate::observability::create_connection(app, admin, body).await;
    app.store
        .get_connection(&OrgScope::for_org(&app.org_id, "test"), &id)
        .await
        .unwrap()
}

/// Claims `domain` for the organization, routed to `connection` (or to none), and proves it
/// in DNS.
async fn verified_domain(app: &TestApp, admin: &str, domain: &str, connection: Option<&str>) {
    let r = app
        .api(
            Method::POST,
            &app.org_path("/domains"),
            admin,
            Some(json!({ "domain": domain, "connection_id": connection })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    crate::dns::publish(
        r.body["verification"]["name"].as_str().unwrap(),
        r.body["verification"]["value"].as_str().unwrap(),
    );
    let r = app
        .api(
            Method::POST,
            &app.org_path(&format!("/domains/{domain}/verify")),
            admin,
            None,
        )
        .await;
    assert_eq!(r.body["verified"], true, "{}", r.body);
}

fn unique_domain(label: &str) -> String {
    format!("{label}{}.example", uuid::Uuid::now_v7().simple())
}

async fn user_exists(app: &TestApp, admin: &str, email: &str) -> bool {
    let users = app.api_ok(&app.org_path("/users?limit=1000"), admin).await;
    users["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["user_name"] == email)
}

#[tokio::test]
async fn a_contractors_idp_cannot_sign_in_the_users_of_a_domain_routed_to_the_companys_idp() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_owner", None).await;
    let fake = crate::harness::fake_issuer();
    let corp = oidc_connection(&app, &admin, &fake, json!({})).await;
    // The contractor's IdP signs in people of domains the organization does not own.
    let contractor =
        oidc_connection(&app, &admin, &fake, json!({"allow_other_domains": true})).await;
    assert!(!corp.allow_other_domains, "off unless asked for");
    assert!(contractor.allow_other_domains);
    let company = unique_domain("corp");
    verified_domain(&app, &admin, &company, Some(&corp.id)).await;

    let ada = format!("ada@{company}");
    let claim = || crate::sso::groups(&["eng"]);
    // The contractor's IdP asserting a company address neither creates nor signs in anyone.
    let e = crate::sso::sign_in_as(&app, &contractor, &ada, claim())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "domain_not_routed", "{e}");
    assert!(!user_exists(&app, &admin, &ada).await);
    crate::sso::sign_in_as(&app, &corp, &ada, claim())
        .await
        .unwrap();
    assert!(user_exists(&app, &admin, &ada).await);
    // Nor once she exists, whatever case the address is written in.
    let e = crate::sso::sign_in_as(&app, &contractor, &ada.to_uppercase(), claim())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "domain_not_routed", "{e}");

    // The company's IdP signs in only the domains the organization verified.
    let outsider = "bob@contractor.example";
    let e = crate::sso::sign_in_as(&app, &corp, outsider, claim())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "domain_not_verified", "{e}");
    assert!(!user_exists(&app, &admin, outsider).await);
    crate::sso::sign_in_as(&app, &contractor, outsider, claim())
        .await
        .unwrap();
    assert!(user_exists(&app, &admin, outsider).await);

    // Turned on later, the setting lets the company's IdP sign in other domains too.
    let r = app
        .api(
            Method::PATCH,
            &app.org_path(&format!("/sso/connections/{}", corp.id)),
            &admin,
            Some(json!({"allow_other_domains": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["allow_other_domains"], true);
    let corp = app
        .store
        .get_connection(&OrgScope::for_org(&app.org_id, "test"), &corp.id)
        .await
        .unwrap();
    crate::sso::sign_in_as(&app, &corp, outsider, claim())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_verified_domain_routed_to_no_connection_signs_in_through_each_and_can_be_pinned() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_owner", None).await;
    let fake = crate::harness::fake_issuer();
    let first = oidc_connection(&app, &admin, &fake, json!({})).await;
    let second = oidc_connection(&app, &admin, &fake, json!({})).await;
    let domain = unique_domain("both");
    verified_domain(&app, &admin, &domain, None).await;
    let claim = || crate::sso::groups(&[]);
    for conn in [&first, &second] {
        crate::sso::sign_in_as(&app, conn, &format!("ada@{domain}"), claim())
            .await
            .unwrap();
    }
    // Routing the domain to one connection pins its users there from the next sign-in.
    let r = app
        .api(
            Method::PATCH,
            &app.org_path(&format!("/domains/{domain}")),
            &admin,
            Some(json!({"connection_id": second.id})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let e = crate::sso::sign_in_as(&app, &first, &format!("ada@{domain}"), claim())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "domain_not_routed", "{e}");
    crate::sso::sign_in_as(&app, &second, &format!("ada@{domain}"), claim())
        .await
        .unwrap();
}

#[tokio::test]
async fn connections_made_before_the_upgrade_keep_signing_in_other_domains() {
    let (_dir, url, pool) = crate::sso::sqlite_migrated_below(15).await;
    sqlx::query(
        "INSERT INTO organizations (id, name, name_ci, created_at) VALUES ('o1', 'One', 'one', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sso_connections (id, org_id, kind, name, config, jit, enabled, created_at, \
         updated_at, signs_in_owner) VALUES ('c1', 'o1', 'oidc', 'Okta', '{}', TRUE, TRUE, 1, 1, TRUE)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let store = crate::sso::upgraded(&url, pool).await;
    let conn = store
        .get_connection(&OrgScope::for_org("o1", "t"), "c1")
        .await
        .unwrap();
    assert!(
        conn.allow_other_domains,
        "no one is locked out by the upgrade"
    );
}

#[tokio::test]
async fn a_refused_domain_creates_no_one_and_is_audited_and_explained() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_owner", None).await;
    let idp = crate::harness::OidcIdp::start().await;
    let conn = oidc_connection(&app, &admin, &idp.issuer, json!({}))
        .await
        .id;
    let outsider = "eve@elsewhere.example";
    idp.set_user(json!({"email": outsider, "email_verified": true}));
    let r = crate::harness::oidc_sign_in(&app, &idp, &conn).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert!(!user_exists(&app, &admin, outsider).await);

    let failed = app
        .api_ok(&app.org_path("/audit?operation=sso.sign_in_failed"), &admin)
        .await;
    let item = &failed["items"][0];
    let detail: Value = serde_json::from_str(item["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["reason"], "domain_not_verified", "{detail}");
    let said = item["explanation"].as_str().unwrap();
    assert!(said.contains("Domains page"), "{said}");
}
