//! What the console's People, Mapping and Activity pages call, over the admin API: finding a
//! person, their SCIM users, signing them out everywhere; the IdP groups a rule can name and each
//! rule's reach; the events and audit log narrowed, with failed sign-ins explained.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{OidcIdp, Resp, TestApp, enc, oidc_sign_in, query, silent_authorize};

const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const SAAS_CALLBACK: &str = "https://app.example.test/callback";

/// A SCIM user with a display name and a work email other than its userName; its SCIM id.
async fn person(app: &TestApp, base: &str, token: &str, user_name: &str, name: &str, email: &str) {
    let r = app
        .send(
            Method::POST,
            &format!("{base}/Users"),
            Some(json!({
                "schemas": [CORE_USER],
                "userName": user_name,
                "displayName": name,
                "emails": [{"value": email, "type": "work", "primary": true}],
                "active": true
            })),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// The userNames a search of the users answers, in order.
async fn search(app: &TestApp, token: &str, q: &str) -> Vec<String> {
    let page = app
        .api_ok(&app.org_path(&format!("/users?q={}", enc(q))), token)
        .await;
    names(&page)
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_name"].as_str().unwrap().to_string())
        .collect()
}

async fn post(app: &TestApp, token: &str, suffix: &str, body: Value) -> Resp {
    app.api(Method::POST, &app.org_path(suffix), token, Some(body))
        .await
}

/// An OIDC connection of the organization to `idp`, created over the admin API; its id.
async fn oidc_connection(app: &TestApp, token: &str, idp: &OidcIdp, jit: bool) -> String {
    let r = post(
        app,
        token,
        "/sso/connections",
        json!({
            "name": "Okta OIDC",
            "jit": jit,
            // The test IdP's people are of a domain no one verifies.
            "allow_other_domains": true,
            "oidc": {
                "issuer": idp.issuer,
                "client_id": "idbridge-at-idp",
                "client_secret": "idp-secret",
                "groups_claim": "groups"
            }
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.id()
}

/// The session token a successful sign-in set in its cookie.
#[track_caller]
fn session_cookie(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("idbridge_session="))
        .map(|v| v.split(';').next().unwrap())
        .find(|v| !v.is_empty())
        .expect("a session cookie")
        .to_string()
}

/// `{method} /users/no-such-user/{what}` answers 404 with problem details.
async fn no_such_user(app: &TestApp, token: &str, method: Method, what: &str) {
    let path = app.org_path(&format!("/users/no-such-user/{what}"));
    app.api(method, &path, token, None)
        .await
        .assert_problem(404);
}

// ---- people -------------------------------------------------------------------------------------

#[tokio::test]
async fn people_are_found_by_a_part_of_their_email_or_name_and_never_in_another_organization() {
    let app = TestApp::new().await;
    let viewer = app.admin_token("org_viewer", None).await;
    let (base, token) = (app.base.clone(), app.token.clone());
    person(
        &app,
        &base,
        &token,
        "ada@acme.example",
        "Ada Lovelace",
        "ada.l@mail.acme.example",
    )
    .await;
    person(
        &app,
        &base,
        &token,
        "grace@acme.example",
        "Grace Hopper",
        "grace@navy.example",
    )
    .await;
    person(
        &app,
        &base,
        &token,
        "alan@acme.example",
        "Alan Turing",
        "alan@bletchley.example",
    )
    .await;
    // Another organization on the same database has a person matching every search below.
    let (other_dir, other_token) = app.other_directory().await;
    person(
        &app,
        &format!("/scim/v2/{other_dir}"),
        &other_token,
        "ada.lovelace@other.example",
        "Ada Lovelace",
        "grace@navy.example",
    )
    .await;

    // A prefix of the userName, a part in the middle, any case.
    assert_eq!(search(&app, &viewer, "ADA@").await, ["ada@acme.example"]);
    assert_eq!(search(&app, &viewer, "ACME.ex").await.len(), 3);
    // The display name, and an email that is not the userName.
    assert_eq!(
        search(&app, &viewer, "hopper").await,
        ["grace@acme.example"]
    );
    assert_eq!(
        search(&app, &viewer, "Lovelace").await,
        ["ada@acme.example"]
    );
    assert_eq!(
        search(&app, &viewer, "bletchley").await,
        ["alan@acme.example"]
    );
    assert_eq!(search(&app, &viewer, "navy").await, ["grace@acme.example"]);
    // LIKE's wildcards are plain characters in a search.
    assert!(search(&app, &viewer, "%").await.is_empty());
    assert!(search(&app, &viewer, "a_a").await.is_empty());
    assert!(search(&app, &viewer, "nobody").await.is_empty());
    // Blank finds everyone.
    assert_eq!(search(&app, &viewer, "  ").await.len(), 3);

    // Paged: one at a time, each page after the last, the same three people.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .api_ok(
                &app.org_path(&format!("/users?q=acme&limit=1&after={after}")),
                &viewer,
            )
            .await;
        seen.extend(names(&page));
        match page["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "ada@acme.example",
            "alan@acme.example",
            "grace@acme.example"
        ]
    );

    let r = app
        .api(
            Method::GET,
            &app.org_path(&format!("/users?q={}", "x".repeat(300))),
            &viewer,
            None,
        )
        .await;
    r.assert_problem(400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("q"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_persons_scim_users_are_listed_with_their_directories() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let r = post(&app, &owner, "/directories", json!({"name": "Okta"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let okta_dir = r.body["directory"]["id"].as_str().unwrap().to_string();
    let okta_token = r.body["token"]["token"].as_str().unwrap().to_string();
    let (base, token) = (app.base.clone(), app.token.clone());
    person(
        &app,
        &base,
        &token,
        "ada@acme.example",
        "Ada",
        "ada@acme.example",
    )
    .await;
    let okta_base = format!("/scim/v2/{okta_dir}");
    person(
        &app,
        &okta_base,
        &okta_token,
        "Ada@Acme.example",
        "Ada",
        "ada@acme.example",
    )
    .await;
    let user = app.org_user_id(&owner, "ada@acme.example").await;

    let list = app
        .api_ok(&app.org_path(&format!("/users/{user}/scim-users")), &owner)
        .await;
    let mut dirs: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["active"], true, "{s}");
            (
                s["directory_name"].as_str().unwrap().to_string(),
                s["user_name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    dirs.sort();
    assert_eq!(
        dirs,
        [
            ("Okta".to_string(), "Ada@Acme.example".to_string()),
            ("test directory".to_string(), "ada@acme.example".to_string())
        ]
    );
    assert_eq!(list["next"], Value::Null);
    no_such_user(&app, &owner, Method::GET, "scim-users").await;
}

#[tokio::test]
async fn signing_a_person_out_everywhere_ends_every_session_at_once_and_is_audited() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let viewer = app.admin_token("org_viewer", None).await;
    let idp = OidcIdp::start().await;
    let conn = oidc_connection(&app, &admin, &idp, true).await;
    let r = post(
        &app,
        &admin,
        "/clients",
        json!({"name": "SaaS", "redirect_uris": [SAAS_CALLBACK]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let client_id = r.body["client"]["id"].as_str().unwrap().to_string();

    idp.set_user(json!({"email": "grace@example.com", "email_verified": true}));
    // Two browsers, each signed in through the IdP.
    let laptop = session_cookie(&oidc_sign_in(&app, &idp, &conn).await);
    let phone = session_cookie(&oidc_sign_in(&app, &idp, &conn).await);
    for cookie in [&laptop, &phone] {
        let to = silent_authorize(&app, &client_id, SAAS_CALLBACK, &[], cookie).await;
        assert!(query(&to, "code").is_some(), "{to}");
    }
    let user = app.org_user_id(&admin, "grace@example.com").await;
    let path = app.org_path(&format!("/users/{user}/sessions/revoke"));

    // Reading is not signing out.
    app.api(Method::POST, &path, &viewer, None)
        .await
        .assert_problem(403);
    let r = app.api(Method::POST, &path, &admin, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["revoked"], 2, "{}", r.body);

    for cookie in [&laptop, &phone] {
        let to = silent_authorize(&app, &client_id, SAAS_CALLBACK, &[], cookie).await;
        assert_eq!(
            query(&to, "error").as_deref(),
            Some("login_required"),
            "{to}"
        );
    }
    let sessions = app
        .api_ok(&app.org_path(&format!("/users/{user}/sessions")), &admin)
        .await;
    for s in sessions["items"].as_array().unwrap() {
        assert_eq!(s["revoked_reason"], "admin", "{s}");
    }
    let audit = app
        .api_ok(
            &app.org_path(&format!("/audit?resource_id={user}")),
            &viewer,
        )
        .await;
    let entry = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["operation"] == "revoke_sessions")
        .unwrap_or_else(|| panic!("not audited: {audit}"));
    assert_eq!(entry["resource_type"], "User");
    assert!(entry["detail"].as_str().unwrap().contains('2'), "{entry}");

    // Again: nothing left to revoke, still answered and audited.
    let r = app.api(Method::POST, &path, &admin, None).await;
    assert_eq!(r.body["revoked"], 0, "{}", r.body);
    no_such_user(&app, &admin, Method::POST, "sessions/revoke").await;
}

// ---- mapping helpers ----------------------------------------------------------------------------

/// The (source, name) pairs a group search answers, in order.
async fn group_choices(app: &TestApp, token: &str, q: &str) -> Vec<(String, String)> {
    let found = app
        .api_ok(
            &app.org_path(&format!("/mappings/groups?q={}", enc(q))),
            token,
        )
        .await;
    found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let source = g["source"].as_str().unwrap().to_string();
            let name = if source == "claim" {
                assert_eq!(g["matcher"], json!({"type": "claim", "value": g["value"]}));
                g["value"].as_str().unwrap().to_string()
            } else {
                assert_eq!(
                    g["matcher"],
                    json!({"type": "group_id", "group_id": g["id"]})
                );
                g["display_name"].as_str().unwrap().to_string()
            };
            (source, name)
        })
        .collect()
}

fn choice(source: &str, name: &str) -> (String, String) {
    (source.to_string(), name.to_string())
}

#[tokio::test]
async fn group_search_finds_scim_groups_and_the_claim_values_seen_at_sign_in() {
    let app = TestApp::new().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let viewer = app.admin_token("org_viewer", None).await;
    let ada = app.user("ada@example.com").await;
    app.group("Engineering", &[&ada]).await;
    app.group("Sales Engineering", &[]).await;
    app.group("Marketing", &[]).await;
    // Another organization's group and sign-ins are never offered.
    let (other_dir, other_token) = app.other_directory().await;
    let r = app
        .send(
            Method::POST,
            &format!("/scim/v2/{other_dir}/Groups"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Engineering elsewhere"
            })),
            &[("authorization", &format!("Bearer {other_token}"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // Nothing seen before anyone signs in.
    assert_eq!(
        group_choices(&app, &viewer, "eng").await,
        [
            choice("scim_group", "Engineering"),
            choice("scim_group", "Sales Engineering")
        ]
    );

    let idp = OidcIdp::start().await;
    let conn = oidc_connection(&app, &admin, &idp, false).await;
    let too_long = "g".repeat(300);
    idp.set_user(json!({
        "email": "ada@example.com",
        "email_verified": true,
        "groups": ["okta-eng-admins", "okta-sales", too_long]
    }));
    session_cookie(&oidc_sign_in(&app, &idp, &conn).await);

    assert_eq!(
        group_choices(&app, &viewer, "ENG").await,
        [
            choice("scim_group", "Engineering"),
            choice("scim_group", "Sales Engineering"),
            choice("claim", "okta-eng-admins")
        ]
    );
    let all = app.api_ok(&app.org_path("/mappings/groups"), &viewer).await;
    let claims: Vec<&Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["source"] == "claim")
        .collect();
    // A value longer than 256 bytes is not kept.
    assert_eq!(claims.len(), 2, "{all}");
    assert_eq!(claims[0]["connection_id"], conn.as_str());
    assert_eq!(claims[0]["connection_name"], "Okta OIDC");
    assert!(claims[0]["last_seen_at"].as_str().is_some(), "{all}");
    // `limit` bounds each source.
    let one = app
        .api_ok(&app.org_path("/mappings/groups?limit=1"), &viewer)
        .await;
    assert_eq!(one["items"].as_array().unwrap().len(), 2, "{one}");
    app.api(
        Method::GET,
        &app.org_path(&format!("/mappings/groups?q={}", "x".repeat(300))),
        &viewer,
        None,
    )
    .await
    .assert_problem(400);
}

/// The claim values of every choice a blank group search answers (`limit` 1000).
async fn claims_seen(app: &TestApp, token: &str) -> Vec<String> {
    let all = app
        .api_ok(&app.org_path("/mappings/groups?limit=1000"), token)
        .await;
    all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["source"] == "claim")
        .map(|g| g["value"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_connection_keeps_at_most_a_thousand_claim_values_and_the_latest_stay() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let idp = OidcIdp::start().await;
    let conn = oidc_connection(&app, &admin, &idp, true).await;
    let many: Vec<String> = (0..1005).map(|i| format!("group-{i:04}")).collect();
    idp.set_user(json!({"email": "ada@example.com", "email_verified": true, "groups": many}));
    session_cookie(&oidc_sign_in(&app, &idp, &conn).await);
    assert_eq!(claims_seen(&app, &admin).await.len(), 1000);

    idp.set_user(json!({
        "email": "grace@example.com",
        "email_verified": true,
        "groups": ["new-a", "new-b"]
    }));
    session_cookie(&oidc_sign_in(&app, &idp, &conn).await);
    let kept = claims_seen(&app, &admin).await;
    assert_eq!(kept.len(), 1000);
    assert!(kept.contains(&"new-a".to_string()) && kept.contains(&"new-b".to_string()));
}

/// The ids of every user a rule reaches, page by page (`limit` 1), checking `count` on each.
async fn reach_ids(app: &TestApp, token: &str, rule: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = String::new();
    loop {
        let page = app
            .api_ok(
                &app.org_path(&format!("/mappings/{rule}/reach?limit=1&after={after}")),
                token,
            )
            .await;
        assert_eq!(page["count"], count, "{page}");
        for u in page["items"].as_array().unwrap() {
            assert!(!u["matched"].as_array().unwrap().is_empty(), "{u}");
            ids.push(u["id"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(n) => after = n.to_string(),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn a_rules_reach_is_who_its_preview_said_would_gain_and_only_active_users() {
    let app = TestApp::new().await;
    let admin = app.admin_token("org_admin", None).await;
    let viewer = app.admin_token("org_viewer", None).await;
    let sa = post(&app, &admin, "/sub-accounts", json!({"name": "EU"}))
        .await
        .id();
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let c = app.user("c@example.com").await;
    app.group("Engineering", &[&a, &b, &c]).await;
    app.group("Sales", &[&a]).await;
    let rule = json!({
        "matcher": {"type": "display_name", "display_name": "engineering"},
        "grant": {"type": "sub_account_role", "sub_account": {"one": sa}, "role": "admin"}
    });
    let mut with_op = rule.clone();
    with_op["op"] = json!("create");
    let preview = post(&app, &viewer, "/mappings/preview", with_op).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    let mut gaining: Vec<String> = preview.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["user_id"].as_str().unwrap().to_string())
        .collect();
    gaining.sort();
    assert_eq!(gaining.len(), 3);

    let created = post(&app, &admin, "/mappings", rule).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let rule_id = created.body["rule"]["id"].as_str().unwrap().to_string();
    let sales = post(
        &app,
        &admin,
        "/mappings",
        json!({
            "matcher": {"type": "display_name", "display_name": "Sales"},
            "grant": {"type": "org_role", "role": "org_viewer"}
        }),
    )
    .await;
    assert_eq!(sales.status, StatusCode::CREATED, "{}", sales.body);
    let sales_id = sales.body["rule"]["id"].as_str().unwrap().to_string();

    assert_eq!(reach_ids(&app, &viewer, &rule_id, 3).await, gaining);
    let reach = |list: &Value, id: &str| -> Value {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["reach"]
            .clone()
    };
    let list = app
        .api_ok(&app.org_path("/mappings?with_reach=true"), &viewer)
        .await;
    assert_eq!(reach(&list, &rule_id), 3, "{list}");
    assert_eq!(reach(&list, &sales_id), 1, "{list}");
    // Without asking, the list stays as it was.
    let plain = app.api_ok(&app.org_path("/mappings"), &viewer).await;
    assert_eq!(reach(&plain, &rule_id), Value::Null, "{plain}");

    // A deactivated user is no longer reached.
    let r = app
        .patch(
            &format!("/Users/{b}"),
            crate::harness::patch(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    crate::harness::assert_patched(&r);
    let b_user = app.org_user_id(&viewer, "b@example.com").await;
    let now = reach_ids(&app, &viewer, &rule_id, 2).await;
    assert!(!now.contains(&b_user), "{now:?}");
    app.api(
        Method::GET,
        &app.org_path("/mappings/no-such-rule/reach"),
        &viewer,
        None,
    )
    .await
    .assert_problem(404);
}

// ---- activity -----------------------------------------------------------------------------------

/// The (type, user_id) of the events a query answers.
async fn events(app: &TestApp, token: &str, query: &str) -> Vec<(String, String)> {
    let page = app
        .api_ok(&app.org_path(&format!("/events?limit=1000&{query}")), token)
        .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["user_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    enc(&t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap())
}

#[tokio::test]
async fn events_narrow_by_type_user_and_time() {
    let app = TestApp::new().await;
    let viewer = app.admin_token("org_viewer", None).await;
    let admin = app.admin_token("org_admin", None).await;
    let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(5);
    let a = app.user("a@example.com").await;
    app.user("b@example.com").await;
    app.group("Engineering", &[&a]).await;
    let r = post(
        &app,
        &admin,
        "/mappings",
        json!({
            "matcher": {"type": "display_name", "display_name": "Engineering"},
            "grant": {"type": "org_role", "role": "org_viewer"}
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let a_user = app.org_user_id(&viewer, "a@example.com").await;
    let after = time::OffsetDateTime::now_utc() + time::Duration::seconds(5);

    let all = events(&app, &viewer, "").await;
    let provisioned = events(&app, &viewer, "type=user.provisioned").await;
    assert_eq!(provisioned.len(), 2, "{all:?}");
    assert!(provisioned.iter().all(|(t, _)| t == "user.provisioned"));
    assert!(all.len() > provisioned.len(), "{all:?}");
    let of_a = events(&app, &viewer, &format!("user_id={a_user}")).await;
    assert!(of_a.iter().all(|(_, u)| *u == a_user), "{of_a:?}");
    assert!(of_a.iter().any(|(t, _)| t == "access.granted"), "{of_a:?}");
    assert!(of_a.len() < all.len());
    assert_eq!(
        events(
            &app,
            &viewer,
            &format!("type=access.granted&user_id={a_user}")
        )
        .await,
        [("access.granted".to_string(), a_user.clone())]
    );
    let window = format!("since={}&until={}", rfc3339(before), rfc3339(after));
    assert_eq!(events(&app, &viewer, &window).await, all);
    assert!(
        events(&app, &viewer, &format!("since={}", rfc3339(after)))
            .await
            .is_empty()
    );
    assert!(
        events(&app, &viewer, &format!("until={}", rfc3339(before)))
            .await
            .is_empty()
    );

    let r = app
        .api(
            Method::GET,
            &app.org_path("/events?type=user.created"),
            &viewer,
            None,
        )
        .await;
    r.assert_problem(400);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("user.provisioned"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn the_audit_log_narrows_by_operation_and_actor() {
    let app = TestApp::new().await;
    let viewer = app.admin_token("org_viewer", None).await;
    let admin = app.admin_token("org_admin", None).await;
    app.user("a@example.com").await;
    let sa = post(&app, &admin, "/sub-accounts", json!({"name": "EU"}))
        .await
        .id();
    let r = app
        .api(
            Method::DELETE,
            &app.org_path(&format!("/sub-accounts/{sa}")),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    let audit = |query: String| {
        let (app, viewer) = (&app, &viewer);
        async move {
            let page = app
                .api_ok(&app.org_path(&format!("/audit?limit=1000&{query}")), viewer)
                .await;
            page["items"].as_array().unwrap().clone()
        }
    };
    let all = audit(String::new()).await;
    let deleted = audit("operation=delete".into()).await;
    assert_eq!(deleted.len(), 1, "{all:?}");
    assert_eq!(deleted[0]["resource_id"], sa.as_str());
    let actor = deleted[0]["actor"].as_str().unwrap().to_string();
    let by_admin = audit(format!("actor={}", enc(&actor))).await;
    assert_eq!(by_admin.len(), 2, "{by_admin:?}");
    assert!(by_admin.iter().all(|e| e["actor"] == actor.as_str()));
    assert!(all.len() > by_admin.len(), "{all:?}");
    assert!(
        audit(format!("actor={}&operation=update", enc(&actor)))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_failed_sign_in_is_explained_in_plain_words() {
    let app = TestApp::new().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let viewer = app.admin_token("org_viewer", None).await;
    app.user("ada@example.com").await;
    let idp = OidcIdp::start().await;
    let conn = oidc_connection(&app, &admin, &idp, false).await;
    session_cookie(&oidc_sign_in(&app, &idp, &conn).await);
    // The directory has not pushed this person.
    idp.set_user(json!({"email": "mallory@example.com", "email_verified": true}));
    let r = oidc_sign_in(&app, &idp, &conn).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");

    let failed = app
        .api_ok(
            &app.org_path("/audit?operation=sso.sign_in_failed"),
            &viewer,
        )
        .await;
    let items = failed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{failed}");
    let detail: Value = serde_json::from_str(items[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["reason"], "not_provisioned", "{detail}");
    let said = items[0]["explanation"].as_str().unwrap();
    assert!(
        said.contains("not a user of the organization") && said.contains("directory"),
        "{said}"
    );
    assert!(!said.contains("not_provisioned"), "{said}");
    // A sign-in that worked needs no explanation.
    let ok = app
        .api_ok(&app.org_path("/audit?operation=sso.sign_in"), &viewer)
        .await;
    assert_eq!(ok["items"].as_array().unwrap().len(), 1, "{ok}");
    assert!(ok["items"][0].get("explanation").is_none(), "{ok}");
}
