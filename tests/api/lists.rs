use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Five users with varied attributes; returns the app and the group id "Sales" (holding ann, bob).
async fn fixture() -> (TestApp, String) {
    let app = TestApp::new().await;
    let users = [
        json!({"schemas": [USER, ENTERPRISE], "userName": "ann@example.com", "externalId": "EXT-1",
               "name": {"givenName": "Ann", "familyName": "Archer"}, "title": "Engineer", "userType": "Employee",
               "emails": [{"value": "ann@example.com", "type": "work", "primary": true}, {"value": "ann@home.org", "type": "home"}],
               ENTERPRISE: {"employeeNumber": "100", "department": "R&D"}}),
        json!({"schemas": [USER, ENTERPRISE], "userName": "Bob@Example.com", "externalId": "ext-1",
               "name": {"givenName": "Bob", "familyName": "Baker"}, "userType": "Contractor",
               "emails": [{"value": "bob@example.org", "type": "work"}],
               ENTERPRISE: {"employeeNumber": "200", "department": "Sales"}}),
        json!({"schemas": [USER], "userName": "cat@example.com", "active": false,
               "name": {"givenName": "Cat", "familyName": "Cooper"}, "title": "50%_off",
               "emails": [{"value": "cat@other.net", "type": "home"}]}),
        json!({"schemas": [USER], "userName": "dan@example.com", "userType": "Employee",
               "name": {"givenName": "Dan", "familyName": "archer"}}),
        json!({"schemas": [USER], "userName": "eve@corp.example", "nickName": "",
               "emails": []}),
    ];
    let mut ids = Vec::new();
    for u in users {
        let r = app.post("/Users", u).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.id());
    }
    let sales = app.group("Sales", &[&ids[0], &ids[1]]).await;
    (app, sales)
}

fn names(body: &Value) -> Vec<String> {
    let mut v: Vec<String> = body["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["userName"].as_str().unwrap_or_default().to_lowercase())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn filters_select_the_right_users() {
    let (app, sales) = fixture().await;
    let cases: Vec<(String, Vec<&str>)> = vec![
        // Attribute names and operators are case-insensitive; userName values too (caseExact false).
        (r#"userName eq "ANN@example.com""#.into(), vec!["ann"]),
        (r#"USERNAME Eq "bob@example.com""#.into(), vec!["bob"]),
        (r#"userName ne "ann@example.com""#.into(), vec!["bob", "cat", "dan", "eve"]),
        (r#"userName sw "b""#.into(), vec!["bob"]),
        (r#"userName ew "@corp.example""#.into(), vec!["eve"]),
        (r#"userName co "example.com""#.into(), vec!["ann", "bob", "cat", "dan"]),
        (r#"userName gt "cat@example.com""#.into(), vec!["dan", "eve"]),
        (r#"userName le "bob@example.com""#.into(), vec!["ann", "bob"]),
        // externalId is caseExact.
        (r#"externalId eq "EXT-1""#.into(), vec!["ann"]),
        (r#"externalId eq "ext-1""#.into(), vec!["bob"]),
        (r#"externalId sw "EXT""#.into(), vec!["ann"]),
        ("externalId pr".into(), vec!["ann", "bob"]),
        (r#"name.familyName eq "archer""#.into(), vec!["ann", "dan"]),
        (r#"name.givenName sw "c""#.into(), vec!["cat"]),
        ("title pr".into(), vec!["ann", "cat"]),
        ("nickName pr".into(), vec![]),
        ("emails pr".into(), vec!["ann", "bob", "cat"]),
        (r#"title co "%_""#.into(), vec!["cat"]),
        (r#"title eq "engineer""#.into(), vec!["ann"]),
        ("active eq false".into(), vec!["cat"]),
        ("active eq true".into(), vec!["ann", "bob", "dan", "eve"]),
        (r#"not (userType eq "Employee")"#.into(), vec!["bob", "cat", "eve"]),
        (r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#.into(), vec!["ann"]),
        (r#"userType eq "Employee" or userName sw "e""#.into(), vec!["ann", "dan", "eve"]),
        (r#"emails[type eq "work" and value co "@example.org"]"#.into(), vec!["bob"]),
        (r#"emails[type eq "home"]"#.into(), vec!["ann", "cat"]),
        (r#"emails.type eq "work""#.into(), vec!["ann", "bob"]),
        (r#"emails[primary eq true]"#.into(), vec!["ann"]),
        (r#"emails co "other.net""#.into(), vec!["cat"]),
        (format!("{ENTERPRISE}:employeeNumber eq \"200\""), vec!["bob"]),
        (format!("{ENTERPRISE}:department sw \"r&\""), vec!["ann"]),
        (r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "cat@example.com""#.into(), vec!["cat"]),
        (format!("groups.value eq \"{sales}\""), vec!["ann", "bob"]),
        (format!("groups[value eq \"{sales}\"] and userType eq \"Contractor\""), vec!["bob"]),
        ("meta.lastModified gt \"2000-01-01T00:00:00Z\"".into(), vec!["ann", "bob", "cat", "dan", "eve"]),
        ("meta.created lt \"2000-01-01T00:00:00Z\"".into(), vec![]),
    ];
    for (filter, expect) in cases {
        let r = app.get(&format!("/Users?filter={}", enc(&filter))).await;
        assert_eq!(r.status, StatusCode::OK, "{filter}: {}", r.body);
        let got = names(&r.body);
        let got: Vec<&str> = got.iter().map(|n| n.split('@').next().unwrap()).collect();
        assert_eq!(got, expect, "filter {filter}");
        assert_eq!(r.body["totalResults"], expect.len(), "filter {filter}");
    }
}

/// `GET /Users?filter=<filter>` with `query` after it.
async fn find(app: &TestApp, filter: &str, query: &str) -> Resp {
    app.get(&format!("/Users?filter={}{query}", enc(filter)))
        .await
}

/// A lookup by `userName eq` (what Okta and Entra send before each create) is read in one query;
/// its answer must be the one the general list gives for the same users, which this gets with a
/// filter that selects the same user but is not a bare `userName eq`.
#[tokio::test]
async fn user_name_lookups_answer_as_the_general_list_does() {
    let (app, _sales) = fixture().await;
    let ann = find(&app, r#"userName eq "ann@example.com""#, "").await;
    let ann_id = ann.body["Resources"][0]["id"].as_str().unwrap().to_string();
    app.group("Engineering", &[&ann_id]).await;
    // ann in two groups, Bob (stored with capitals) in one, cat in none, and nobody.
    for name in [
        "ANN@example.com",
        "bob@example.com",
        "cat@example.com",
        "nobody@example.com",
    ] {
        for query in [
            "",
            "&startIndex=1&count=100",
            "&count=0",
            "&count=1",
            "&startIndex=2",
            "&attributes=userName,groups",
            "&excludedAttributes=groups",
            "&attributes=displayName",
        ] {
            let lookup = format!("userName eq \"{name}\"");
            let general = format!("userName eq \"{name}\" and userName pr");
            let fast = find(&app, &lookup, query).await;
            let slow = find(&app, &general, query).await;
            assert_eq!(
                fast.status,
                StatusCode::OK,
                "{lookup}{query}: {}",
                fast.body
            );
            assert_eq!(fast.body, slow.body, "{lookup}{query}");
        }
    }
    // What the comparison above rests on: the lookups found what they should.
    let ann = find(&app, r#"userName eq "ANN@EXAMPLE.COM""#, "").await;
    assert_eq!(ann.body["totalResults"], 1);
    let mut groups: Vec<&str> = ann.body["Resources"][0]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, ["Engineering", "Sales"]);
    let cat = find(&app, r#"userName eq "cat@example.com""#, "").await;
    assert_eq!(cat.body["totalResults"], 1);
    assert!(
        cat.body["Resources"][0].get("groups").is_none(),
        "{}",
        cat.body
    );
    let count0 = find(&app, r#"userName eq "bob@example.com""#, "&count=0").await;
    assert_eq!(count0.body["totalResults"], 1);
    assert!(
        count0.body["Resources"]
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "{}",
        count0.body
    );
    let nobody = find(&app, r#"userName eq "nobody@example.com""#, "").await;
    assert_eq!(nobody.body["totalResults"], 0);
    // A page of every user hands each the document its own GET gives, its groups and no
    // other user's: ann two, Bob one, cat none.
    let page = app.get("/Users?count=100").await;
    let listed = page.body["Resources"].as_array().unwrap();
    assert!(listed.len() >= 5, "{}", page.body);
    let mut with_groups = 0;
    for user in listed {
        let id = user["id"].as_str().unwrap();
        let own = app.get(&format!("/Users/{id}")).await;
        assert_eq!(user, &own.body, "{id}");
        with_groups += usize::from(user.get("groups").is_some());
    }
    assert_eq!(with_groups, 2, "{}", page.body);
}

#[tokio::test]
async fn bad_filters_are_invalid_filter() {
    let (app, _) = fixture().await;
    for filter in [
        r#"userName eq"#,
        r#"noSuchAttr eq "x""#,
        r#"userName zz "x""#,
        r#"(userName eq "x""#,
        r#"userName eq "x" extra"#,
        r#"meta.created gt "not a date""#,
        r#"emails[type eq "work"#,
    ] {
        let r = app.get(&format!("/Users?filter={}", enc(filter))).await;
        r.assert_error(400, Some("invalidFilter"));
    }
    let long = format!("userName eq \"{}\"", "x".repeat(10_000));
    app.get(&format!("/Users?filter={}", enc(&long)))
        .await
        .assert_error(400, Some("invalidFilter"));
    let deep = format!("{}userName eq \"x\"{}", "(".repeat(500), ")".repeat(500));
    app.get(&format!("/Users?filter={}", enc(&deep)))
        .await
        .assert_error(400, Some("invalidFilter"));
}

#[tokio::test]
async fn group_filters() {
    let (app, sales) = fixture().await;
    app.group("Support", &[]).await;
    let r = app
        .get(&format!(
            "/Groups?filter={}",
            enc(r#"displayName eq "sales""#)
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    assert_eq!(r.body["Resources"][0]["id"], sales);
    let ann = app
        .get(&format!(
            "/Users?filter={}",
            enc(r#"userName eq "ann@example.com""#)
        ))
        .await
        .body["Resources"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .get(&format!(
            "/Groups?filter={}",
            enc(&format!("members[value eq \"{ann}\"]"))
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    let r = app
        .get(&format!("/Groups?filter={}", enc("displayName sw \"s\"")))
        .await;
    assert_eq!(r.body["totalResults"], 2);
}

#[tokio::test]
async fn sorting() {
    let (app, _) = fixture().await;
    let r = app.get("/Users?sortBy=userName&sortOrder=descending").await;
    let order: Vec<String> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(
        order,
        vec![
            "eve@corp.example",
            "dan@example.com",
            "cat@example.com",
            "bob@example.com",
            "ann@example.com"
        ]
    );
    let r = app
        .get(&format!(
            "/Users?sortBy=name.givenName&filter={}",
            enc("name.givenName pr")
        ))
        .await;
    let order: Vec<&str> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"]["givenName"].as_str().unwrap())
        .collect();
    assert_eq!(order, vec!["Ann", "Bob", "Cat", "Dan"]);
    // A multi-valued attribute sorts by its first value; users without one come last or first
    // depending on the backend's NULL order, so only those with emails are compared.
    let r = app
        .get(&format!("/Users?sortBy=emails&filter={}", enc("emails pr")))
        .await;
    let order: Vec<&str> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["emails"][0]["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        vec!["ann@example.com", "bob@example.org", "cat@other.net"]
    );
    app.get("/Users?sortBy=userName&sortOrder=sideways")
        .await
        .assert_error(400, Some("invalidValue"));
}

#[tokio::test]
async fn index_pagination() {
    let (app, _) = fixture().await;
    let r = app.get("/Users?startIndex=2&count=2").await.body;
    assert_eq!(r["totalResults"], 5);
    assert_eq!(r["startIndex"], 2);
    assert_eq!(r["itemsPerPage"], 2);
    let all = app.get("/Users").await.body;
    assert_eq!(r["Resources"][0]["id"], all["Resources"][1]["id"]);
    assert_eq!(r["Resources"][1]["id"], all["Resources"][2]["id"]);
    // count=0 answers the total only; startIndex below 1 is 1.
    let z = app.get("/Users?count=0").await.body;
    assert_eq!(z["totalResults"], 5);
    assert_eq!(z["itemsPerPage"], 0);
    let s = app.get("/Users?startIndex=-4&count=1").await.body;
    assert_eq!(s["startIndex"], 1);
    assert_eq!(s["Resources"][0]["id"], all["Resources"][0]["id"]);
    app.get("/Users?count=abc")
        .await
        .assert_error(400, Some("invalidValue"));
}

/// The total of a paged list is kept by creates and deletes rather than counted: a refused
/// create or a delete of nobody leaves it alone, another directory's users are not in it, and a
/// page far into the list holds the same users as the whole list at that place, in both orders.
#[tokio::test]
async fn paged_totals_follow_creates_and_deletes() {
    let (app, _) = fixture().await;
    let (other, other_token) = app.other_directory().await;
    let auth = format!("Bearer {other_token}");
    let r = app
        .send(
            Method::POST,
            &format!("/scim/v2/{other}/Users"),
            Some(json!({"schemas": [USER], "userName": "zed@example.com"})),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    app.post(
        "/Users",
        json!({"schemas": [USER], "userName": "ANN@example.com"}),
    )
    .await
    .assert_error(409, Some("uniqueness"));
    let all = app.get("/Users").await.body;
    let gone = all["Resources"][1]["id"].as_str().unwrap().to_string();
    assert_eq!(app.delete(&format!("/Users/{gone}")).await.status, 204);
    assert_eq!(app.delete(&format!("/Users/{gone}")).await.status, 404);
    let page = app.get("/Users?startIndex=2&count=2").await.body;
    assert_eq!(page["totalResults"], 4, "{page}");
    assert_eq!(page["Resources"][0]["id"], all["Resources"][2]["id"]);
    assert_eq!(page["Resources"][1]["id"], all["Resources"][3]["id"]);
    let desc = app
        .get("/Users?startIndex=2&count=2&sortOrder=descending")
        .await
        .body;
    assert_eq!(desc["totalResults"], 4, "{desc}");
    assert_eq!(desc["Resources"][0]["id"], all["Resources"][3]["id"]);
    assert_eq!(desc["Resources"][1]["id"], all["Resources"][2]["id"]);
    let r = app
        .send(
            Method::GET,
            &format!("/scim/v2/{other}/Users?startIndex=1&count=0"),
            None,
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
}

#[tokio::test]
async fn cursor_pagination_walks_every_user_once() {
    let (app, _) = fixture().await;
    for sort in ["", "&sortBy=userName"] {
        let mut seen = Vec::new();
        let mut cursor = String::new();
        for _ in 0..10 {
            let r = app
                .get(&format!("/Users?count=2&cursor={}{sort}", enc(&cursor)))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert!(r.body.get("startIndex").is_none(), "{}", r.body);
            for u in r.body["Resources"].as_array().unwrap() {
                seen.push(u["id"].as_str().unwrap().to_string());
            }
            match r.body["nextCursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => break,
            }
        }
        assert_eq!(seen.len(), 5, "sort {sort:?}");
        let mut dedup = seen.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 5);
    }
    app.get("/Users?cursor=bm9wZQ")
        .await
        .assert_error(400, Some("invalidCursor"));
    app.get("/Users?cursor=&startIndex=1")
        .await
        .assert_error(400, Some("invalidCursor"));
}

#[tokio::test]
async fn search_endpoints() {
    let (app, _) = fixture().await;
    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                      "filter": "userType eq \"Employee\"", "attributes": ["userName"], "count": 10});
    let r = app.post("/Users/.search", body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(names(&r.body), vec!["ann@example.com", "dan@example.com"]);
    assert!(r.body["Resources"][0].get("emails").is_none());
    // At the root the filter applies to the types that have the attribute.
    let root = app.post("/.search", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                           "filter": "displayName sw \"Sa\" or userName sw \"ann\""})).await;
    assert_eq!(root.status, StatusCode::OK, "{}", root.body);
    assert_eq!(root.body["totalResults"], 2, "{}", root.body);
    let g = app.post("/Groups/.search", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                                               "filter": "displayName eq \"Sales\"", "excludedAttributes": ["members"]})).await;
    assert_eq!(g.body["totalResults"], 1);
    assert!(g.body["Resources"][0].get("members").is_none());
    // Cursors page one resource type; the root search refuses them in the protocol's terms.
    app.post(
        "/.search",
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "cursor": ""}),
    )
    .await
    .assert_error(400, Some("invalidCursor"));
    app.post("/Users/.search", json!({"filter": "userName pr"}))
        .await
        .assert_error(400, Some("invalidSyntax"));
}

/// Paging by position as Okta's import does (startIndex 1, 101, 201, ...): each page starts where
/// the one before ended, however the server finds it, and a user deleted between two pages moves
/// the positions after it as it would in the whole list.
#[tokio::test]
async fn pages_by_position_follow_the_whole_list_through_deletes_and_creates() {
    let app = TestApp::new().await;
    for i in 0..250 {
        app.user(&format!("page{i:03}@example.com")).await;
    }
    let ids = |body: &Value| -> Vec<String> {
        body["Resources"]
            .as_array()
            .expect("Resources")
            .iter()
            .map(|u| u["id"].as_str().expect("id").to_string())
            .collect()
    };
    let page = |start: usize| {
        let app = &app;
        async move {
            let r = app
                .get(&format!("/Users?startIndex={start}&count=100"))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body
        }
    };
    let all = ids(&app.get("/Users?count=1000").await.body);
    assert_eq!(all.len(), 250);

    let mut walked = Vec::new();
    for start in [1, 101, 201] {
        let p = page(start).await;
        assert_eq!(p["totalResults"], 250);
        assert_eq!(p["startIndex"], start);
        walked.extend(ids(&p));
    }
    assert_eq!(walked, all, "the pages, in order, are the whole list");

    // Page 1 read again; then a user of it is deleted: page 2 starts one later than it did.
    assert_eq!(ids(&page(1).await), all[..100]);
    let gone = &all[10];
    assert_eq!(app.delete(&format!("/Users/{gone}")).await.status, 204);
    let rest: Vec<String> = all.iter().filter(|id| *id != gone).cloned().collect();
    let second = page(101).await;
    assert_eq!(second["totalResults"], 249);
    assert_eq!(ids(&second), rest[100..200]);

    // A user created now is last; the third page, read right after the second, ends with them.
    let new = app.user("page-new@example.com").await;
    let third = page(201).await;
    assert_eq!(third["totalResults"], 250);
    let mut expected = rest[200..].to_vec();
    expected.push(new);
    assert_eq!(ids(&third), expected);
}
