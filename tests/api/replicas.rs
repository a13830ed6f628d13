//! Two `idbridge serve` processes on one database, behind an imaginary load balancer that sends
//! each request to either: concurrent membership PATCHes, conditional updates and a rule change
//! split across them lose no member, overwrite no update silently, leave every member with the
//! access the rule gives, and both replicas list the same events in the same order. On SQLite
//! (two processes on one file) and on PostgreSQL when the suite runs there.

use std::sync::Arc;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::crash::{cli, migrated_database, serve};

const USERS: usize = 120;

struct Replicas {
    http: Client,
    addrs: [String; 2],
    scim_base: String,
    scim_token: String,
    api_base: String,
    owner: String,
}

impl Replicas {
    /// The replica the `n`th request goes to.
    fn at(&self, n: usize) -> &str {
        &self.addrs[n % 2]
    }

    async fn scim(
        &self,
        n: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.scim_with(n, method, path, body, None).await
    }

    async fn scim_with(
        &self,
        n: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(
                method,
                format!("http://{}{}{path}", self.at(n), self.scim_base),
            )
            .bearer_auth(&self.scim_token);
        if let Some(etag) = if_match {
            req = req.header("if-match", etag);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn api(
        &self,
        n: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = self
            .http
            .request(
                method,
                format!("http://{}{}{path}", self.at(n), self.api_base),
            )
            .bearer_auth(&self.owner);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn members(&self, n: usize, group: &str) -> Vec<String> {
        let (status, g) = self
            .scim(n, reqwest::Method::GET, &format!("/Groups/{group}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{g}");
        let mut ids: Vec<String> = g["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Every event of the organization, as replica `n` lists them.
    async fn events(&self, n: usize) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .api(
                    n,
                    reqwest::Method::GET,
                    &format!("/events?after={after}&limit=1000"),
                    None,
                )
                .await;
            let items = page["items"].as_array().unwrap().clone();
            let Some(last) = items.last() else { break };
            after = last["seq"].as_i64().unwrap();
            all.extend(items);
        }
        all
    }
}

/// Runs `f(i)` for every `i` in `0..n`, 16 at a time; the results in order of `i`.
async fn concurrently<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (slots, work) = (slots.clone(), f(i));
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await.unwrap();
                work.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The organization "Two" and an owner's admin token, made with the CLI.
fn org_and_owner(db: &str) -> (Value, Value) {
    let org = cli(db, &["org", "create", "--name", "Two", "--json"]);
    let owner = cli(
        db,
        &[
            "admin-token",
            "create",
            "--org",
            "Two",
            "--role",
            "org_owner",
            "--json",
        ],
    );
    (org, owner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_on_one_database_lose_no_member_overwrite_no_update_and_agree_on_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_database(&dir, "replicas.db").await;
    let (org, owner) = org_and_owner(&db);
    let directory = cli(&db, &["directory", "create", "--org", "Two", "--json"]);
    let (mut first, a) = serve(&db);
    let (mut second, b) = serve(&db);
    let r = Arc::new(Replicas {
        http: Client::new(),
        addrs: [a, b],
        scim_base: format!("/scim/v2/{}", directory["id"].as_str().unwrap()),
        scim_token: directory["token"].as_str().unwrap().to_string(),
        api_base: format!("/api/v1/orgs/{}", org["id"].as_str().unwrap()),
        owner: owner["token"].as_str().unwrap().to_string(),
    });

    // Users, created half on each replica.
    let users: Vec<String> = concurrently(USERS, {
        let r = r.clone();
        move |i| {
            let r = r.clone();
            async move {
                let name = format!("user{i}@replicas.example");
                let (status, body) = r
                    .scim(
                        i,
                        reqwest::Method::POST,
                        "/Users",
                        Some(json!({
                            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                            "userName": name, "active": true,
                            "emails": [{ "value": name, "type": "work", "primary": true }]
                        })),
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{body}");
                body["id"].as_str().unwrap().to_string()
            }
        }
    })
    .await;

    // A group, and a rule on the other replica that maps it to a role.
    let (status, group) = r
        .scim(
            0,
            reqwest::Method::POST,
            "/Groups",
            Some(
                json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                         "displayName": "Viewers" }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let group = group["id"].as_str().unwrap().to_string();
    r.api(
        1,
        reqwest::Method::POST,
        "/mappings",
        Some(
            json!({ "matcher": { "type": "display_name", "display_name": "Viewers" },
                     "grant": { "type": "org_role", "role": "org_viewer" } }),
        ),
    )
    .await;

    // Every user added by its own PATCH (Entra's shape), the PATCHes split across replicas.
    concurrently(USERS, {
        let (r, users, group) = (r.clone(), users.clone(), group.clone());
        move |i| {
            let (r, user, group) = (r.clone(), users[i].clone(), group.clone());
            async move {
                let (status, body) = r
                    .scim(
                        i,
                        reqwest::Method::PATCH,
                        &format!("/Groups/{group}"),
                        Some(
                            json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                     "Operations": [{ "op": "Add", "path": "members",
                                                      "value": [{ "value": user }] }] }),
                        ),
                    )
                    .await;
                assert!(status.is_success(), "{status} {body}");
            }
        }
    })
    .await;
    let mut all = users.clone();
    all.sort();
    assert_eq!(r.members(0, &group).await, all, "no member lost");
    assert_eq!(
        r.members(1, &group).await,
        all,
        "both replicas see every member"
    );

    // Half of them removed one by one (Okta's shape), again split across replicas.
    let removed: Vec<String> = users.iter().step_by(2).cloned().collect();
    concurrently(removed.len(), {
        let (r, removed, group) = (r.clone(), removed.clone(), group.clone());
        move |i| {
            let (r, user, group) = (r.clone(), removed[i].clone(), group.clone());
            async move {
                let (status, body) = r
                    .scim(
                        i + 1,
                        reqwest::Method::PATCH,
                        &format!("/Groups/{group}"),
                        Some(json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                     "Operations": [{ "op": "remove",
                                                      "path": format!("members[value eq \"{user}\"]") }] })),
                    )
                    .await;
                assert!(status.is_success(), "{status} {body}");
            }
        }
    })
    .await;
    let mut kept: Vec<String> = users.iter().skip(1).step_by(2).cloned().collect();
    kept.sort();
    assert_eq!(
        r.members(1, &group).await,
        kept,
        "exactly the removed members are gone"
    );
    assert_eq!(r.members(0, &group).await, kept);

    // The access the rule gives: the members kept have the role, the removed ones do not.
    let org_users = r
        .api(0, reqwest::Method::GET, "/users?limit=1000", None)
        .await;
    for u in org_users["items"].as_array().unwrap() {
        let id = u["id"].as_str().unwrap();
        let n: usize = u["user_name"]
            .as_str()
            .unwrap()
            .trim_start_matches("user")
            .split('@')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let view = r
            .api(
                n,
                reqwest::Method::GET,
                &format!("/users/{id}/access"),
                None,
            )
            .await;
        let roles = view["org_roles"].to_string();
        assert_eq!(
            roles.contains("org_viewer"),
            n % 2 == 1,
            "{}: {view}",
            u["user_name"]
        );
    }

    // Conditional updates: two PUTs with the same ETag, one to each replica, at once. Exactly
    // one wins; the other is told its version is stale (412) rather than overwriting it.
    for (round, user) in users.iter().enumerate().take(20) {
        let resp = r
            .http
            .get(format!(
                "http://{}{}/Users/{user}",
                r.at(round),
                r.scim_base
            ))
            .bearer_auth(&r.scim_token)
            .send()
            .await
            .unwrap();
        let etag = resp.headers()["etag"].to_str().unwrap().to_string();
        let body: Value = resp.json().await.unwrap();
        let put = |n: usize, title: &'static str| {
            let (r, user, etag) = (r.clone(), user.clone(), etag.clone());
            let mut doc = body.clone();
            doc["title"] = json!(title);
            async move {
                r.scim_with(
                    n,
                    reqwest::Method::PUT,
                    &format!("/Users/{user}"),
                    Some(doc),
                    Some(&etag),
                )
                .await
            }
        };
        let (one, two) = tokio::join!(
            tokio::spawn(put(0, "from the first")),
            tokio::spawn(put(1, "from the second"))
        );
        let (one, two) = (one.unwrap(), two.unwrap());
        let mut statuses = [one.0.as_u16(), two.0.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 412], "round {round}: {} / {}", one.1, two.1);
        let winner = if one.0 == StatusCode::OK {
            "from the first"
        } else {
            "from the second"
        };
        let (_, now) = r
            .scim(
                round + 1,
                reqwest::Method::GET,
                &format!("/Users/{user}"),
                None,
            )
            .await;
        assert_eq!(now["title"], winner, "the stored user is the winner's");
    }

    // Both replicas list the same events in the same order, numbered in increasing order, and
    // each removed user's grant comes before its revocation.
    let (from_first, from_second) = (r.events(0).await, r.events(1).await);
    assert_eq!(from_first, from_second);
    let seqs: Vec<i64> = from_first
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let granted = from_first
        .iter()
        .filter(|e| e["type"] == "access.granted")
        .count();
    let revoked = from_first
        .iter()
        .filter(|e| e["type"] == "access.revoked")
        .count();
    assert_eq!(
        (granted, revoked),
        (USERS, USERS / 2),
        "one grant per member, one revocation per removal"
    );
    for e in from_first.iter().filter(|e| e["type"] == "access.revoked") {
        let user = &e["user_id"];
        let grant = from_first
            .iter()
            .position(|g| g["type"] == "access.granted" && &g["user_id"] == user)
            .expect("a grant before the revocation");
        let revocation = from_first.iter().position(|x| x == e).unwrap();
        assert!(
            grant < revocation,
            "{user}: granted at {grant}, revoked at {revocation}"
        );
    }

    for p in [&mut first, &mut second] {
        p.kill().unwrap();
        p.wait().unwrap();
    }
}

/// The form of a 303's `Location`, and the query parameter `name` of it.
fn location(r: &reqwest::Response) -> url::Url {
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{r:?}");
    url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap()
}

fn query(url: &url::Url, name: &str) -> String {
    crate::harness::query(url, name).unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// A sign-in started on one replica finishes on the other; the IdP's answer, our code and our
/// session each work once across both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sign_in_and_its_code_work_once_across_two_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_database(&dir, "sign-in.db").await;
    let (org, owner) = org_and_owner(&db);
    let owner = owner["token"].as_str().unwrap().to_string();
    let api = format!("/api/v1/orgs/{}", org["id"].as_str().unwrap());
    let env = [
        ("IDBRIDGE_ALLOW_PRIVATE_URLS", "1"),
        ("IDBRIDGE_PUBLIC_URL", "http://idbridge.test"),
    ];
    let (mut first, a) = crate::crash::serve_with(&db, &env);
    let (mut second, b) = crate::crash::serve_with(&db, &env);
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let idp = crate::harness::OidcIdp::start().await;
    let post = |at: &str, path: String, body: Value| {
        http.post(format!("http://{at}{path}"))
            .bearer_auth(&owner)
            .json(&body)
            .send()
    };
    let r = post(
        &a,
        format!("{api}/sso/connections"),
        json!({"name": "Okta", "jit": true, "allow_other_domains": true,
               "oidc": {"issuer": idp.issuer, "client_id": "idbridge-at-idp",
                        "client_secret": "idp-secret"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let conn = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let redirect_uri = "https://app.example.test/callback";
    let r = post(
        &b,
        format!("{api}/clients"),
        json!({"name": "SaaS", "redirect_uris": [redirect_uri]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let client: Value = r.json().await.unwrap();
    let client_id = client["client"]["id"].as_str().unwrap().to_string();
    let secret = client["client_secret"].as_str().unwrap().to_string();

    // Started on the first replica, answered by the IdP to the second.
    let start = http
        .get(format!("http://{a}/sso/{conn}/start"))
        .send()
        .await
        .unwrap();
    let to_idp = location(&start);
    idp.set_nonce(&query(&to_idp, "nonce"));
    let flow = start.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let callback = format!(
        "/sso/oidc/callback?code=c1&state={}",
        url::form_urlencoded::byte_serialize(query(&to_idp, "state").as_bytes())
            .collect::<String>()
    );
    let finish = |at: String| {
        http.get(format!("http://{at}{callback}"))
            .header("cookie", &flow)
            .send()
    };
    let done = finish(b.clone()).await.unwrap();
    // Signed in (no application asked, so a page says so).
    assert_eq!(done.status(), StatusCode::OK, "{done:?}");
    let session = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("idbridge_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    // The same answer again, on either replica: the sign-in was used up.
    for at in [&a, &b] {
        let again = finish(at.clone()).await.unwrap();
        assert_eq!(again.status(), StatusCode::FORBIDDEN, "{again:?}");
        assert!(
            again
                .headers()
                .get("set-cookie")
                .is_none_or(|c| !c.to_str().unwrap().starts_with("idbridge_session="))
        );
    }

    // The session made on the second replica is known to the first, whose code the second
    // exchanges once.
    let verifier = crate::harness::VERIFIER;
    let authorize = crate::harness::code_request_query(&client_id, redirect_uri, &[]);
    let r = http
        .get(format!("http://{a}/oauth/authorize?{authorize}"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    let code = query(&location(&r), "code");
    let exchange = |at: String| {
        http.post(format!("http://{at}/oauth/token"))
            .basic_auth(&client_id, Some(&secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
    };
    let r = exchange(b.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let tokens: Value = r.json().await.unwrap();
    assert!(tokens["id_token"].is_string(), "{tokens}");
    for at in [&a, &b] {
        let r = exchange(at.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    }

    for p in [&mut first, &mut second] {
        p.kill().unwrap();
        p.wait().unwrap();
    }
}
