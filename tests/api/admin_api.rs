//! The admin API as an administrator uses it day to day: tokens listed and revoked, people found,
//! times and errors in one format.

use idbridge::service::setup;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use idbridge::store::admin::OrgScope;

use crate::harness::TestApp;

/// Admin tokens are listed without their secrets, a revoked token is refused on its next request,
/// an admin neither sees nor revokes the owner's tokens, and an expired token is refused like an
/// unknown one.
#[tokio::test]
async fn admin_tokens_are_listed_revoked_and_expire() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let admin = app.admin_token("org_admin", None).await;
    let viewer = app.admin_token("org_viewer", None).await;

    let list = app.api_ok(&app.org_path("/admin-tokens"), &owner).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{list}");
    assert!(list["next"].is_null(), "{list}");
    let text = list.to_string();
    for secret in [&owner, &admin, &viewer] {
        assert!(
            !text.contains(secret.as_str()),
            "no secret in the list: {text}"
        );
    }
    assert!(!text.contains("hash"), "{text}");
    let t = &items[0];
    assert_eq!(t["name"], "test");
    assert!(t["created_at"].as_str().unwrap().ends_with('Z'), "{t}");
    assert!(t["expires_at"].is_null(), "{t}");
    assert!(t["revoked_at"].is_null(), "{t}");

    // An admin does not see the owner's token, and cannot revoke it.
    let list = app.api_ok(&app.org_path("/admin-tokens"), &admin).await;
    let roles: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.len(), 2, "{list}");
    assert!(!roles.contains(&"org_owner"), "{list}");
    let owner_id = items.iter().find(|t| t["role"] == "org_owner").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .api(
            Method::DELETE,
            &app.org_path(&format!("/admin-tokens/{owner_id}")),
            &admin,
            None,
        )
        .await;
    r.assert_problem(404);
    // A viewer manages no tokens.
    app.api(Method::GET, &app.org_path("/admin-tokens"), &viewer, None)
        .await
        .assert_problem(403);

    // Revoking the viewer's token refuses its very next request.
    let viewer_id = items.iter().find(|t| t["role"] == "org_viewer").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.api_ok(&app.org_path("/seats"), &viewer).await;
    let path = app.org_path(&format!("/admin-tokens/{viewer_id}"));
    let r = app.api(Method::DELETE, &path, &admin, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    app.api(Method::GET, &app.org_path("/seats"), &viewer, None)
        .await
        .assert_problem(401);
    app.api(Method::DELETE, &path, &admin, None)
        .await
        .assert_problem(409);
    let list = app.api_ok(&app.org_path("/admin-tokens"), &owner).await;
    let revoked = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == viewer_id.as_str())
        .unwrap();
    assert!(
        revoked["revoked_at"].as_str().unwrap().ends_with('Z'),
        "{revoked}"
    );

    // A token past its expiry is refused with 401, like an unknown one.
    let scope = OrgScope::for_org(&app.org_id, "test");
    let soon = app.store.now() + 3_600_000_000;
    let expiring = setup::create_admin_token_expiring(
        &app.store,
        &scope,
        "org_admin",
        None,
        "short",
        Some(soon),
    )
    .await
    .unwrap()
    .token;
    app.api_ok(&app.org_path("/seats"), &expiring).await;
    let list = app.api_ok(&app.org_path("/admin-tokens"), &owner).await;
    let short = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "short")
        .unwrap();
    assert!(
        short["expires_at"].as_str().unwrap().ends_with('Z'),
        "{short}"
    );
    app.api_ok(&app.org_path("/seats"), &expiring).await;
    app.advance(Duration::from_secs(3600));
    let r = app
        .api(Method::GET, &app.org_path("/seats"), &expiring, None)
        .await;
    r.assert_problem(401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
}

fn enc(s: &str) -> String {
    crate::harness::enc(s)
}

/// `GET /users` finds a person by userName or by any email of its SCIM users, case-insensitively;
/// the user's detail shows its SCIM users and claims.
#[tokio::test]
async fn users_are_found_by_user_name_or_email_and_show_their_scim_users() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let r = app
        .post(
            "/Users",
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "Bob@Example.com",
                "emails": [{"value": "Robert.Smith@Corp.Example", "type": "work"}],
                "active": true
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let scim_id = r.id();
    app.user("alice@example.com").await;

    let found = |q: String| {
        let app = &app;
        let owner = &owner;
        async move {
            let page = app
                .api_ok(&app.org_path(&format!("/users?{q}")), owner)
                .await;
            assert!(page["next"].is_null(), "{page}");
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["user_name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        found(format!("userName={}", enc("bob@EXAMPLE.com"))).await,
        ["Bob@Example.com"]
    );
    assert_eq!(
        found(format!("email={}", enc("robert.smith@corp.example"))).await,
        ["Bob@Example.com"]
    );
    assert_eq!(
        found(format!("email={}", enc("ALICE@example.com"))).await,
        ["alice@example.com"]
    );
    assert!(
        found(format!("userName={}", enc("bob@example")))
            .await
            .is_empty()
    );
    assert!(found(format!("email={}", enc("robert"))).await.is_empty());
    assert_eq!(found(String::new()).await.len(), 2);

    let id = app.org_user_id(&owner, "Bob@Example.com").await;
    let user = app
        .api_ok(&app.org_path(&format!("/users/{id}")), &owner)
        .await;
    assert_eq!(user["id"], id.as_str());
    assert!(
        user["created_at"].as_str().unwrap().ends_with('Z'),
        "{user}"
    );
    let scim = user["scim_users"].as_array().unwrap();
    assert_eq!(scim.len(), 1, "{user}");
    assert_eq!(scim[0]["directory_id"], app.directory_id.as_str());
    assert!(scim[0]["directory_name"].is_string(), "{user}");
    assert_eq!(scim[0]["id"], scim_id.as_str());
    assert_eq!(scim[0]["user_name"], "Bob@Example.com");
    assert_eq!(scim[0]["active"], true);
    assert_eq!(user["claims"], serde_json::json!([]));

    // Deactivated in the directory: the detail says so.
    let r = app
        .patch(
            &format!("/Users/{scim_id}"),
            crate::harness::patch(
                serde_json::json!([{"op": "replace", "path": "active", "value": false}]),
            ),
        )
        .await;
    crate::harness::assert_patched(&r);
    let user = app
        .api_ok(&app.org_path(&format!("/users/{id}")), &owner)
        .await;
    assert_eq!(user["scim_users"][0]["active"], false, "{user}");
}

/// `/access` lists every source per scope, the outranked ones too, and marks the winner.
#[tokio::test]
async fn access_lists_every_reason_and_marks_the_winner() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/sub-accounts"),
            &owner,
            Some(serde_json::json!({"name": "EU"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let sa = r.body["id"].as_str().unwrap().to_string();
    let scim = app.user("carol@example.com").await;
    app.group("Everyone", &[&scim]).await;
    let rule = serde_json::json!({
        "matcher": {"type": "display_name", "display_name": "Everyone"},
        "grant": {"type": "sub_account_role", "sub_account": "all", "role": "viewer"}
    });
    let r = app
        .api(Method::POST, &app.org_path("/mappings"), &owner, Some(rule))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let user = app.org_user_id(&owner, "carol@example.com").await;
    let grant = serde_json::json!({"grant": {
        "type": "sub_account_role", "sub_account": {"one": sa}, "role": "admin"}});
    let r = app
        .api(
            Method::POST,
            &app.org_path(&format!("/users/{user}/grants")),
            &owner,
            Some(grant),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let view = app
        .api_ok(&app.org_path(&format!("/users/{user}/access")), &owner)
        .await;
    let scope = view["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"] == "sub_account" && s["sub_account_id"] == sa.as_str())
        .unwrap_or_else(|| panic!("no sub-account scope: {view}"));
    let reasons = scope["reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 2, "{scope}");
    assert_eq!(reasons[0]["value"], "admin");
    assert_eq!(reasons[0]["wins"], true);
    assert_eq!(reasons[0]["reason"]["source"], "manual");
    assert_eq!(reasons[1]["value"], "viewer");
    assert_eq!(reasons[1]["wins"], false);
    assert_eq!(reasons[1]["reason"]["source"], "rule");
}

/// Times are RFC 3339 in UTC, `since`/`until` take RFC 3339, query-string errors are problem
/// details, and every list answers `{"items", "next"}`.
#[tokio::test]
async fn times_are_rfc3339_and_query_errors_are_problem_details() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    app.user("dave@example.com").await;

    let audit = app.api_ok(&app.org_path("/audit"), &owner).await;
    let at = audit["items"][0]["at"].as_str().unwrap().to_string();
    assert!(at.ends_with('Z'), "{audit}");
    let events = app.api_ok(&app.org_path("/events"), &owner).await;
    assert!(
        events["items"][0]["at"].as_str().unwrap().ends_with('Z'),
        "{events}"
    );

    let since = app
        .api_ok(&app.org_path(&format!("/audit?since={}", enc(&at))), &owner)
        .await;
    assert!(!since["items"].as_array().unwrap().is_empty(), "{since}");
    let until = app
        .api_ok(&app.org_path(&format!("/audit?until={}", enc(&at))), &owner)
        .await;
    assert!(until["items"].as_array().unwrap().is_empty(), "{until}");
    let later = app
        .api_ok(
            &app.org_path(&format!(
                "/audit?since={}",
                enc("2999-01-01T00:00:00+01:00")
            )),
            &owner,
        )
        .await;
    assert!(later["items"].as_array().unwrap().is_empty(), "{later}");

    for bad in [
        "/audit?since=1780000000",
        "/audit?until=yesterday",
        "/users?limit=ten",
        "/events?limit=-",
    ] {
        let r = app.api(Method::GET, &app.org_path(bad), &owner, None).await;
        r.assert_problem(400);
    }
    let r = app
        .api(
            Method::GET,
            &app.org_path("/audit?since=1780000000"),
            &owner,
            None,
        )
        .await;
    assert!(
        r.body["detail"].as_str().unwrap().contains("RFC 3339"),
        "{}",
        r.body
    );

    for list in [
        "/sub-accounts",
        "/directories",
        "/mappings",
        "/webhooks",
        "/admin-tokens",
    ] {
        let page = app.api_ok(&app.org_path(list), &owner).await;
        assert!(page["items"].is_array(), "{list}: {page}");
        assert!(
            page.get("next").is_some_and(|n| n.is_null()),
            "{list}: {page}"
        );
    }
}

/// Events page like every other list (`next` null on the last page), and a consumer polling with
/// the `seq` of the last event it processed sees each later event exactly once.
#[tokio::test]
async fn events_page_to_a_null_next_and_poll_on_from_the_last_seq() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    for name in ["e1@example.com", "e2@example.com", "e3@example.com"] {
        app.user(name).await;
    }
    let mut seen = Vec::new();
    let mut path = "/events?limit=1".to_string();
    loop {
        let page = app.api_ok(&app.org_path(&path), &owner).await;
        for e in page["items"].as_array().unwrap() {
            seen.push(e["seq"].as_i64().unwrap());
        }
        match page["next"].as_str() {
            Some(next) => path = format!("/events?limit=1&after={next}"),
            None => break,
        }
    }
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");

    let last = *seen.last().unwrap();
    let idle = app
        .api_ok(&app.org_path(&format!("/events?after={last}")), &owner)
        .await;
    assert_eq!(idle["items"], serde_json::json!([]), "{idle}");
    assert!(idle["next"].is_null(), "{idle}");

    app.user("e4@example.com").await;
    let fresh = app
        .api_ok(&app.org_path(&format!("/events?after={last}")), &owner)
        .await;
    let items = fresh["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{fresh}");
    assert!(
        items.iter().all(|e| e["seq"].as_i64().unwrap() > last),
        "{fresh}"
    );
    assert!(fresh["next"].is_null(), "{fresh}");
}

/// Another organization's directory is answered exactly like an id that names nothing, so its
/// ids cannot be probed, and its tokens are neither rotated nor revoked.
#[tokio::test]
async fn another_organizations_directory_is_answered_like_an_unknown_one() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let (theirs, _) = app.other_directory().await;
    for (method, suffix) in [
        (Method::GET, "/tokens"),
        (Method::POST, "/tokens"),
        (Method::DELETE, "/tokens/some-token"),
    ] {
        let mut details = Vec::new();
        for id in [theirs.as_str(), "no-such-directory"] {
            let path = app.org_path(&format!("/directories/{id}{suffix}"));
            let r = app.api(method.clone(), &path, &owner, None).await;
            r.assert_problem(404);
            details.push(r.body["detail"].as_str().unwrap().replace(id, "ID"));
        }
        assert_eq!(details[0], details[1], "{method} {suffix}");
    }
    let dir = app.store.find_directory(&theirs).await.unwrap();
    let tokens = app
        .store
        .list_directory_tokens(&OrgScope::for_org(&dir.org_id, "test"), &theirs)
        .await
        .unwrap();
    assert_eq!(tokens.len(), 1, "no token was added");
    assert!(tokens[0].revoked_at.is_none(), "nor revoked");
}

/// Each admin and directory token shows when it last authenticated a request (to the minute), so
/// an admin can tell a token an IdP or a script still uses from one safe to revoke.
#[tokio::test]
async fn tokens_show_when_they_were_last_used() {
    let app = TestApp::new().await;
    let owner = app.admin_token("org_owner", None).await;
    let admin = app.admin_token("org_admin", None).await;
    let last_used = |list: &serde_json::Value, role: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["role"] == role)
            .unwrap()["last_used_at"]
            .clone()
    };

    let list = app.api_ok(&app.org_path("/admin-tokens"), &owner).await;
    let first = last_used(&list, "org_owner");
    assert!(first.as_str().is_some_and(|t| t.ends_with('Z')), "{list}");
    assert!(
        last_used(&list, "org_admin").is_null(),
        "never used: {list}"
    );
    app.api_ok(&app.org_path("/admin-tokens"), &admin).await;
    let list = app.api_ok(&app.org_path("/admin-tokens"), &owner).await;
    assert!(last_used(&list, "org_admin").is_string(), "{list}");
    assert_eq!(last_used(&list, "org_owner"), first, "kept to the minute");

    let tokens = format!("/directories/{}/tokens", app.directory_id);
    let list = app.api_ok(&app.org_path(&tokens), &owner).await;
    assert!(list["items"][0]["last_used_at"].is_null(), "{list}");
    assert_eq!(app.get("/Users").await.status, StatusCode::OK);
    let list = app.api_ok(&app.org_path(&tokens), &owner).await;
    assert!(list["items"][0]["last_used_at"].is_string(), "{list}");
}
