use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::*;

const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[tokio::test]
async fn group_members_are_returned_with_display_ref_and_type() {
    let app = TestApp::new().await;
    let u = app.user("m1@example.com").await;
    let inner = app.group("Inner", &[]).await;
    let r = app
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "Tour Guides",
                                "members": [{"value": u}, {"value": inner}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let g = app.get(&format!("/Groups/{}", r.id())).await.body;
    let members = g["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    let user_m = members.iter().find(|m| m["value"] == u.as_str()).unwrap();
    assert_eq!(user_m["type"], "User");
    assert_eq!(user_m["display"], "m1@example.com");
    assert_eq!(
        user_m["$ref"],
        format!("{PUBLIC_URL}{}/Users/{u}", app.base)
    );
    let group_m = members
        .iter()
        .find(|m| m["value"] == inner.as_str())
        .unwrap();
    assert_eq!(group_m["type"], "Group");
    assert_eq!(group_m["display"], "Inner");
    // A group with no members has no `members` attribute.
    let empty = app.get(&format!("/Groups/{inner}")).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.body["displayName"], "Inner");
    assert!(empty.body.get("members").is_none(), "{}", empty.body);
}

#[tokio::test]
async fn excluded_members_are_not_returned_and_users_show_their_groups() {
    let app = TestApp::new().await;
    let u = app.user("g@example.com").await;
    let gid = app.group("Admins", &[&u]).await;
    let g = app
        .get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .await
        .body;
    assert!(g.get("members").is_none(), "{g}");
    assert_eq!(g["displayName"], "Admins");
    let l = app.get("/Groups?excludedAttributes=members").await.body;
    assert!(l["Resources"][0].get("members").is_none(), "{l}");

    let user = app.get(&format!("/Users/{u}")).await.body;
    assert_eq!(user["groups"][0]["value"], gid);
    assert_eq!(user["groups"][0]["display"], "Admins");

    // In two groups, the user shows both, once each; a user in none shows no `groups`.
    let second = app.group("Billing", &[&u]).await;
    let user = app.get(&format!("/Users/{u}")).await.body;
    let mut shown: Vec<(&str, &str)> = user["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| (g["value"].as_str().unwrap(), g["display"].as_str().unwrap()))
        .collect();
    shown.sort();
    let mut expected = vec![(gid.as_str(), "Admins"), (second.as_str(), "Billing")];
    expected.sort();
    assert_eq!(shown, expected, "{user}");
    assert_eq!(user["userName"], "g@example.com");
    let alone = app.user("alone@example.com").await;
    let user = app.get(&format!("/Users/{alone}")).await.body;
    assert!(user.get("groups").is_none(), "{user}");
    assert_eq!(user["userName"], "alone@example.com");
}

#[tokio::test]
async fn patch_adds_and_removes_members() {
    let app = TestApp::new().await;
    let (a, b, c) = (
        app.user("a@x.com").await,
        app.user("b@x.com").await,
        app.user("c@x.com").await,
    );
    let gid = app.group("G", &[&a]).await;
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            json!({"schemas": [PATCH], "Operations": [
                {"op": "add", "path": "members", "value": [{"value": b}, {"value": c}]},
                {"op": "remove", "path": format!("members[value eq \"{a}\"]")}
            ]}),
        )
        .await;
    // RFC 7644 §3.5.2: 204 without a body, with the new version's ETag.
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.body, Value::Null);
    let etag = r.header("etag").expect("ETag on 204").to_string();
    let got = app.get(&format!("/Groups/{gid}")).await;
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    let mut expect = vec![b.clone(), c.clone()];
    expect.sort();
    assert_eq!(app.member_ids(&gid).await, expect);
    // Adding a present member again changes nothing.
    let r = app
        .patch(
            &format!("/Groups/{gid}"),
            json!({"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": b}]}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.member_ids(&gid).await, expect);
}

#[tokio::test]
async fn group_patch_with_a_projection_answers_200_with_the_group() {
    let app = TestApp::new().await;
    let (a, b) = (app.user("a@proj.com").await, app.user("b@proj.com").await);
    let gid = app.group("G", &[&a]).await;
    let add_b = json!({"schemas": [PATCH], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": b}]}]});
    // RFC 7644 §3.5.2: "MUST return a 200 OK if the attributes parameter is specified".
    let r = app
        .patch(&format!("/Groups/{gid}?attributes=members"), add_b)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.header("etag").is_some());
    let mut got: Vec<String> = r.body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["value"].as_str().expect("value").to_string())
        .collect();
    got.sort();
    let mut expect = vec![a.clone(), b.clone()];
    expect.sort();
    assert_eq!(got, expect, "{}", r.body);
    assert!(r.body.get("displayName").is_none(), "{}", r.body);
    let rename = json!({"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "displayName", "value": "G2"}]});
    let r = app
        .patch(&format!("/Groups/{gid}?excludedAttributes=members"), rename)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["displayName"], "G2", "{}", r.body);
    // A user PATCH still answers with the user.
    let r = app
        .patch(
            &format!("/Users/{a}"),
            json!({"schemas": [PATCH], "Operations": [
                {"op": "replace", "path": "title", "value": "Lead"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["title"], "Lead", "{}", r.body);
}

#[tokio::test]
async fn unknown_member_is_refused_and_nothing_changes() {
    let app = TestApp::new().await;
    let a = app.user("a@y.com").await;
    let gid = app.group("Old name", &[&a]).await;
    let r = app
        .patch(&format!("/Groups/{gid}"), json!({"schemas": [PATCH], "Operations": [
            {"op": "replace", "path": "displayName", "value": "New name"},
            {"op": "add", "path": "members", "value": [{"value": "0190f0f0-0000-7000-8000-000000000000"}]}
        ]}))
        .await;
    r.assert_error(400, Some("invalidValue"));
    let g = app.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(g["displayName"], "Old name");
    assert_eq!(app.member_ids(&gid).await, vec![a]);
}

#[tokio::test]
async fn deleting_a_user_or_group_removes_its_memberships() {
    let app = TestApp::new().await;
    let (a, b) = (app.user("a@z.com").await, app.user("b@z.com").await);
    let child = app.group("Child", &[]).await;
    let gid = app.group("Parent", &[&a, &b, &child]).await;
    assert_eq!(
        app.delete(&format!("/Users/{a}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/Groups/{child}")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.member_ids(&gid).await, vec![b]);
}

#[tokio::test]
async fn put_replaces_members() {
    let app = TestApp::new().await;
    let (a, b) = (app.user("a@p.com").await, app.user("b@p.com").await);
    let gid = app.group("G", &[&a]).await;
    let r = app
        .put(
            &format!("/Groups/{gid}"),
            json!({"schemas": [GROUP], "displayName": "G2", "members": [{"value": b}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.member_ids(&gid).await, vec![b]);
    assert_eq!(
        app.get(&format!("/Groups/{gid}")).await.body["displayName"],
        "G2"
    );
}

#[tokio::test]
async fn a_large_group_is_read_and_patched() {
    let app = TestApp::new().await;
    let n = 3000;
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(app.user(&format!("big{i}@example.com")).await);
    }
    let gid = app.group("Everyone", &[]).await;
    for chunk in ids.chunks(1000) {
        let value: Vec<_> = chunk.iter().map(|id| json!({"value": id})).collect();
        let r = app
            .patch(
                &format!("/Groups/{gid}"),
                json!({"schemas": [PATCH], "Operations": [
            {"op": "add", "path": "members", "value": value}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    assert_eq!(app.member_ids(&gid).await.len(), n);
    // A GET without a projection writes the members as it sends them; it is the same document,
    // member for member and in the same order, as the one built whole for a projected GET.
    let streamed = app.get(&format!("/Groups/{gid}")).await;
    assert_eq!(
        streamed.header("content-type"),
        Some("application/scim+json")
    );
    let whole = app
        .get(&format!("/Groups/{gid}?excludedAttributes=externalId"))
        .await;
    assert_eq!(streamed.body, whole.body);
    assert_eq!(streamed.body["members"].as_array().unwrap().len(), n);
    assert_eq!(streamed.header("etag"), whole.header("etag"));
    let etag = streamed.header("etag").unwrap().to_string();
    let unchanged = app
        .send(
            axum::http::Method::GET,
            &format!("/Groups/{gid}"),
            None,
            &[("if-none-match", etag.as_str())],
        )
        .await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    let r = app
        .patch(
            &format!("/Groups/{gid}?excludedAttributes=members"),
            json!({"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": format!("members[value eq \"{}\"]", ids[17])}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.get("members").is_none(),
        "excludedAttributes applies to the PATCH response"
    );
    let members = app.member_ids(&gid).await;
    assert_eq!(members.len(), n - 1);
    assert!(!members.contains(&ids[17]));
    let l = app
        .get(&format!(
            "/Groups?filter={}&excludedAttributes=members",
            enc(&format!("members.value eq \"{}\"", ids[18]))
        ))
        .await;
    assert_eq!(l.body["totalResults"], 1, "{}", l.body);
}

#[tokio::test]
async fn a_member_display_sent_by_the_idp_is_returned_as_sent() {
    let app = TestApp::new().await;
    let u = app.user("shown@example.com").await;
    let r = app
        .post(
            "/Groups",
            json!({"schemas": [GROUP], "displayName": "G",
                   "members": [{"value": u, "display": "Shown Person", "type": "User"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let g = app.get(&format!("/Groups/{}", r.id())).await.body;
    assert_eq!(g["members"][0]["display"], "Shown Person");
}

// ---- membership PATCHes as Okta and Entra send them -------------------------------------------

mod members_only {
    use axum::http::StatusCode;
    use serde_json::{Value, json};

    use crate::access::{
        Org, access, by_name, events, in_sa, last_seq, org, org_user, role_in, rule,
    };
    use crate::harness::*;

    /// A group mapped to admin in the organization's sub-account, with these users as members.
    async fn mapped_group(o: &Org, members: &[&str]) -> String {
        rule(
            &o.app,
            &o.owner,
            by_name("Engineering"),
            role_in(&o.sa, "admin"),
        )
        .await;
        o.app.group("Engineering", members).await
    }

    async fn role(o: &Org, user_name: &str) -> Value {
        let user = org_user(&o.app, &o.owner, user_name).await;
        in_sa(&access(&o.app, &o.owner, &user).await, &o.sa)["role"].clone()
    }

    /// The group's ETag and meta as a GET shows them.
    async fn meta(app: &TestApp, gid: &str) -> (String, Value) {
        let r = app.get(&format!("/Groups/{gid}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        (
            r.header("etag").unwrap().to_string(),
            r.body["meta"].clone(),
        )
    }

    /// Who each event after `seq` is about, with its type.
    async fn events_after(o: &Org, seq: i64) -> Vec<(String, String)> {
        events(&o.app, &o.owner, seq)
            .await
            .iter()
            .map(|e| {
                let user = e["user_id"].as_str().unwrap_or_default().to_string();
                (e["type"].as_str().unwrap().to_string(), user)
            })
            .collect()
    }

    #[tokio::test]
    async fn okta_adding_members_already_there_grants_nothing_twice_but_moves_the_version() {
        let o = org().await;
        let a = o.app.user("a@x.com").await;
        let b = o.app.user("b@x.com").await;
        let gid = mapped_group(&o, &[&a]).await;
        let (etag, before) = meta(&o.app, &gid).await;
        let seq = last_seq(&o.app, &o.owner).await;

        let add = |ids: &[&str]| {
            let value: Vec<Value> = ids
                .iter()
                .map(|id| json!({"value": id, "display": "someone"}))
                .collect();
            patch(json!([{"op": "add", "path": "members", "value": value}]))
        };
        let r = o.app.patch(&format!("/Groups/{gid}"), add(&[&a, &b])).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        let new_etag = r.header("etag").expect("ETag on 204").to_string();
        assert_ne!(new_etag, etag);
        let (got, after) = meta(&o.app, &gid).await;
        assert_eq!(got, new_etag, "the 204's ETag is the group's new version");
        assert_ne!(after["version"], before["version"]);
        assert!(after["lastModified"].as_str() >= before["lastModified"].as_str());
        let mut members = vec![a.clone(), b.clone()];
        members.sort();
        assert_eq!(o.app.member_ids(&gid).await, members);
        let bu = org_user(&o.app, &o.owner, "b@x.com").await;
        assert_eq!(
            events_after(&o, seq).await,
            vec![("access.granted".to_string(), bu)],
            "only the new member is granted"
        );
        assert_eq!(role(&o, "b@x.com").await, "admin");

        // Both again: nobody's access changes, nothing is announced, the version still moves.
        let seq = last_seq(&o.app, &o.owner).await;
        let r = o.app.patch(&format!("/Groups/{gid}"), add(&[&a, &b])).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        assert_ne!(r.header("etag").unwrap(), new_etag);
        assert_eq!(o.app.member_ids(&gid).await, members);
        assert_eq!(events_after(&o, seq).await, vec![]);
    }

    #[tokio::test]
    async fn removing_a_non_member_changes_no_one() {
        let o = org().await;
        let a = o.app.user("a@x.com").await;
        let outsider = o.app.user("out@x.com").await;
        let gid = mapped_group(&o, &[&a]).await;
        let seq = last_seq(&o.app, &o.owner).await;
        for body in [
            // Okta
            patch(json!([{"op": "remove", "path": format!("members[value eq \"{outsider}\"]")}])),
            // Entra
            patch(json!([{"op": "Remove", "path": "members", "value": [{"value": outsider}]}])),
        ] {
            let r = o.app.patch(&format!("/Groups/{gid}"), body).await;
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        }
        assert_eq!(o.app.member_ids(&gid).await, vec![a]);
        assert_eq!(events_after(&o, seq).await, vec![]);
        assert_eq!(role(&o, "a@x.com").await, "admin");
        assert_eq!(role(&o, "out@x.com").await, Value::Null);
    }

    #[tokio::test]
    async fn an_unknown_member_refuses_the_whole_patch() {
        let o = org().await;
        let a = o.app.user("a@x.com").await;
        let b = o.app.user("b@x.com").await;
        let gid = mapped_group(&o, &[&a]).await;
        let (etag, before) = meta(&o.app, &gid).await;
        let seq = last_seq(&o.app, &o.owner).await;
        let r = o
            .app
            .patch(
                &format!("/Groups/{gid}"),
                patch(json!([
                    {"op": "Remove", "path": "members", "value": [{"value": a}]},
                    {"op": "Add", "path": "members", "value": [
                        {"value": b}, {"value": "0190f0f0-0000-7000-8000-000000000000"}]}
                ])),
            )
            .await;
        r.assert_error(400, Some("invalidValue"));
        assert_eq!(o.app.member_ids(&gid).await, vec![a]);
        assert_eq!(meta(&o.app, &gid).await, (etag, before));
        assert_eq!(events_after(&o, seq).await, vec![]);
        assert_eq!(role(&o, "a@x.com").await, "admin");
        assert_eq!(role(&o, "b@x.com").await, Value::Null);
    }

    #[tokio::test]
    async fn access_follows_added_and_removed_members_in_the_same_request_only() {
        let o = org().await;
        let stays = o.app.user("stays@x.com").await;
        let leaves = o.app.user("leaves@x.com").await;
        let joins = o.app.user("joins@x.com").await;
        let gid = mapped_group(&o, &[&stays, &leaves]).await;
        let seq = last_seq(&o.app, &o.owner).await;
        let r = o
            .app
            .patch(
                &format!("/Groups/{gid}"),
                patch(json!([
                    {"op": "Add", "path": "members", "value": [{"value": joins}]},
                    {"op": "remove", "path": format!("members[value eq \"{leaves}\"]")}
                ])),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
        assert_eq!(role(&o, "joins@x.com").await, "admin");
        assert_eq!(role(&o, "leaves@x.com").await, Value::Null);
        assert_eq!(role(&o, "stays@x.com").await, "admin");
        let mut got = events_after(&o, seq).await;
        got.sort();
        let mut want = vec![
            (
                "access.granted".to_string(),
                org_user(&o.app, &o.owner, "joins@x.com").await,
            ),
            (
                "access.revoked".to_string(),
                org_user(&o.app, &o.owner, "leaves@x.com").await,
            ),
        ];
        want.sort();
        assert_eq!(got, want, "nothing for the member who stays");

        // Asked for with `attributes`, the answer is 200 with the members.
        let r = o
            .app
            .patch(
                &format!("/Groups/{gid}?attributes=members"),
                patch(json!([{"op": "add", "path": "members", "value": [{"value": leaves}]}])),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["members"].as_array().unwrap().len(), 3, "{}", r.body);
        assert_eq!(role(&o, "leaves@x.com").await, "admin");
    }
}
