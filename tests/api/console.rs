//! The self-service console: the SaaS makes a portal link with its platform token, the IT admin
//! opens it once, and the session it opens reaches that organization's pages of that intent only.

use idbridge::service::setup;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use crate::harness::*;
use idbridge::service::admin::Caller;
use idbridge::service::console::{self as console_svc, Intent, PortalLinkInput};
use idbridge::service::platform as platform_svc;

const RETURN_URL: &str = "https://app.example.test/settings/sso";

async fn platform_token(app: &TestApp) -> (String, String) {
    let t = platform_svc::create_platform_token(&app.store, "the SaaS", None)
        .await
        .unwrap();
    (t.token, t.id)
}

/// A portal link of this organization made through the platform API; returns its body.
async fn link(app: &TestApp, platform: &str, intent: &str) -> Value {
    let r = app
        .api(
            Method::POST,
            &app.org_path("/portal-links"),
            platform,
            Some(json!({"intent": intent, "return_url": RETURN_URL})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// The path of a link's URL, for the in-process router.
fn path_of(url: &str) -> String {
    url.strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("{url} is not under {PUBLIC_URL}"))
        .to_string()
}

/// A browser request to the console, with the session cookie if given.
async fn browse(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Resp {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header("cookie", format!("idbridge_console={c}"));
    }
    let body = match form {
        Some(f) => {
            req = req.header("content-type", "application/x-www-form-urlencoded");
            Body::from(f.to_string())
        }
        None => Body::empty(),
    };
    app.send_raw(req.body(body).unwrap()).await
}

/// A form posted with the session's cookie.
async fn post_form(app: &TestApp, path: &str, session: &str, form: &str) -> Resp {
    browse(app, Method::POST, path, Some(session), Some(form)).await
}

/// Opens a link as a browser does: the redirect and the session cookie it sets.
async fn open(app: &TestApp, url: &str) -> (String, String) {
    let r = browse(app, Method::GET, &path_of(url), None, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    let cookie = r
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    let value = cookie
        .strip_prefix("idbridge_console=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    (r.header("location").unwrap().to_string(), value)
}

fn html(r: &Resp) -> &str {
    r.body
        .as_str()
        .unwrap_or_else(|| panic!("not a page: {:?}", r.body))
}

/// The CSRF token of the page's forms.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn a_portal_link_opens_one_console_session_once_and_both_are_audited() {
    let app = TestApp::new().await;
    let (platform, platform_id) = platform_token(&app).await;
    let made = link(&app, &platform, "sso").await;
    let url = made["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{PUBLIC_URL}/console/open/idbl_")),
        "{made}"
    );
    assert_eq!(made["intent"], "sso");
    assert!(made["expires_at"].is_string());

    let r = browse(&app, Method::GET, &path_of(url), None, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/console/sso"));
    let cookie = r.header("set-cookie").unwrap();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/console",
        "Max-Age=3600",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    let session = cookie
        .strip_prefix("idbridge_console=")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    // The second opening shows a page that says so, and opens nothing.
    let again = browse(&app, Method::GET, &path_of(url), None, None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.header("set-cookie").is_none());
    assert!(html(&again).contains("already used"), "{:?}", again.body);

    let r = browse(&app, Method::GET, "/console/sso", Some(&session), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("<h1>Single sign-on</h1>"), "{page}");
    assert!(page.contains(&format!("href=\"{RETURN_URL}\"")), "{page}");
    // `/console` leads to the page of the link's intent.
    let r = browse(&app, Method::GET, "/console", Some(&session), None).await;
    assert_eq!(r.header("location"), Some("/console/sso"));

    let audit: Vec<(String, String, String)> = app
        .store
        .audit_entries(&app.org_id, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.operation, e.resource_type))
        .collect();
    let link_actor = format!("portal-link:{}", made["id"].as_str().unwrap());
    assert!(
        audit.contains(&(
            format!("platform-token:{platform_id}"),
            "create".into(),
            "PortalLink".into()
        )),
        "{audit:?}"
    );
    assert_eq!(
        audit
            .iter()
            .filter(|a| **a == (link_actor.clone(), "open".into(), "ConsoleSession".into()))
            .count(),
        1,
        "{audit:?}"
    );
}

#[tokio::test]
async fn an_expired_portal_link_opens_nothing() {
    let app = TestApp::new().await;
    let caller = Caller::operator(app.org_scope());
    let input = PortalLinkInput {
        intent: Intent::Domains,
        return_url: None,
    };
    let short = console_svc::create_portal_link(
        &app.store,
        &caller,
        PUBLIC_URL,
        &input,
        Duration::from_secs(15 * 60),
    )
    .await
    .unwrap();
    app.advance(Duration::from_secs(15 * 60));
    let r = browse(&app, Method::GET, &path_of(&short.url), None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("set-cookie").is_none());
    assert!(html(&r).contains("expired"), "{:?}", r.body);
    // A link that was never made reads the same.
    let r = browse(&app, Method::GET, "/console/open/idbl_nothing", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_domains_link_opens_the_domains_page_and_no_other() {
    let app = TestApp::new().await;
    let (platform, _) = platform_token(&app).await;
    let made = link(&app, &platform, "domains").await;
    let (location, session) = open(&app, made["url"].as_str().unwrap()).await;
    assert_eq!(location, "/console/domains");
    let r = browse(&app, Method::GET, "/console/domains", Some(&session), None).await;
    assert_eq!(r.status, StatusCode::OK);
    for page in [
        "/console/sso",
        "/console/directories",
        "/console/mapping",
        "/console/activity",
    ] {
        let r = browse(&app, Method::GET, page, Some(&session), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{page}");
        assert!(
            html(&r).contains("Your link does not open this page"),
            "{page}"
        );
    }
    // Without a session, a page says how to get one.
    let r = browse(&app, Method::GET, "/console/domains", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(html(&r).contains("Open a new link"), "{:?}", r.body);
    let r = browse(
        &app,
        Method::GET,
        "/console/domains",
        Some("idbc_forged"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn portal_links_are_made_by_the_platform_for_one_organization_only() {
    let app = TestApp::new().await;
    let (platform, _) = platform_token(&app).await;
    let owner = app.admin_token("org_owner", None).await;
    // An organization's own admin token does not hand out console sessions.
    app.api(
        Method::POST,
        &app.org_path("/portal-links"),
        &owner,
        Some(json!({"intent": "sso"})),
    )
    .await
    .assert_problem(403);

    // Another organization, with a domain of its own.
    let other = app
        .api(
            Method::POST,
            "/api/v1/orgs",
            &platform,
            Some(json!({"name": "Other"})),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    let other_id = other.body["id"].as_str().unwrap();
    idbridge::service::admin::add_domain(
        &app.store,
        &Caller::operator(idbridge::store::admin::OrgScope::for_org(other_id, "test")),
        "other.example",
        None,
    )
    .await
    .unwrap();
    // This organization's admin token cannot reach the other's links.
    app.api(
        Method::POST,
        &format!("/api/v1/orgs/{other_id}/portal-links"),
        &owner,
        Some(json!({"intent": "domains"})),
    )
    .await
    .assert_problem(404);
    app.api(
        Method::POST,
        "/api/v1/orgs/no-such-org/portal-links",
        &platform,
        Some(json!({"intent": "domains"})),
    )
    .await
    .assert_problem(404);

    // A session of this organization sees this organization's domains only.
    let made = link(&app, &platform, "domains").await;
    let (_, session) = open(&app, made["url"].as_str().unwrap()).await;
    let r = browse(&app, Method::GET, "/console/domains", Some(&session), None).await;
    assert!(!html(&r).contains("other.example"), "{:?}", r.body);

    // Bad input is a problem, and makes nothing.
    for bad in [
        json!({"intent": "everything"}),
        json!({}),
        json!({"intent": "sso", "return_url": "javascript:alert(1)"}),
        json!({"intent": "sso", "return_url": "/relative"}),
        json!({"intent": "sso", "extra": 1}),
    ] {
        app.api(
            Method::POST,
            &app.org_path("/portal-links"),
            &platform,
            Some(bad.clone()),
        )
        .await
        .assert_problem(400);
    }
}

#[tokio::test]
async fn console_pages_run_no_inline_script_cannot_be_framed_and_check_csrf() {
    let app = TestApp::new().await;
    let (platform, _) = platform_token(&app).await;
    let made = link(&app, &platform, "activity").await;
    let (location, session) = open(&app, made["url"].as_str().unwrap()).await;
    let r = browse(&app, Method::GET, &location, Some(&session), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let page = html(&r).to_string();
    assert_eq!(
        page.matches("<script").count(),
        page.matches("<script src=\"/console/static/console.js\"")
            .count(),
        "{page}"
    );
    assert!(page.contains("class=\"skip\" href=\"#main\""), "{page}");
    // The audit log shows the opening of this very session.
    assert!(page.contains("ConsoleSession"), "{page}");
    let js = browse(&app, Method::GET, "/console/static/console.js", None, None).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );

    // A form from elsewhere (no token, or another's) does not sign the admin out.
    let r = post_form(&app, "/console/sign-out", &session, "csrf=0000").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(&app, "/console/sign-out", &session, "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = browse(&app, Method::GET, &location, Some(&session), None).await;
    assert_eq!(r.status, StatusCode::OK);

    let form = format!("csrf={}", csrf_of(&page));
    let r = post_form(&app, "/console/sign-out", &session, &form).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = browse(&app, Method::GET, &location, Some(&session), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn the_cli_makes_a_portal_link_that_opens_the_console() {
    use crate::cli::{idbridge, json_of, migrated};
    let dir = tempfile::tempdir().unwrap();
    let db = migrated(&dir);
    let (ok, out, err) = idbridge(&db, &["org", "create", "--name", "Acme", "--json"]);
    assert!(ok, "{out}{err}");
    let create = |org: &str, intent: &str| {
        idbridge(
            &db,
            &[
                "portal-link",
                "create",
                "--org",
                org,
                "--intent",
                intent,
                "--json",
            ],
        )
    };
    let (ok, out, err) = create("Acme", "scim");
    assert!(ok, "{out}{err}");
    let made = json_of(&out);
    let url = made["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://sso.example.test/console/open/idbl_"),
        "{made}"
    );
    assert_eq!(made["intent"], "scim");
    // clap refuses an intent it does not know (exit 2) before anything is opened.
    let (ok, out, err) = create("Acme", "everything");
    assert!(!ok && err.contains("everything"), "{out}{err}");
    let (ok, out, err) = create("Nobody", "sso");
    assert!(!ok && out.contains("Nobody"), "{out}{err}");

    // The link opens the console of that organization, once.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = idbridge::store::Store::connect(&db, &Default::default())
            .await
            .unwrap();
        let router = idbridge::http::router(TestApp::state(&store, "https://sso.example.test"));
        use tower::ServiceExt;
        let path = url.strip_prefix("https://sso.example.test").unwrap();
        let open = |p: String| {
            router
                .clone()
                .oneshot(Request::get(p).body(Body::empty()).unwrap())
        };
        let r = open(path.to_string()).await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/console/directories");
        let r = open(path.to_string()).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        store.close().await;
    });
}

async fn text_of(b: &reqwest::Client, url: &str) -> String {
    b.get(url).send().await.unwrap().text().await.unwrap()
}

/// A real idbridge server on a fresh database with an organization of the interop tests (rules on
/// the `Engineering` and `Admins` groups) and a platform token of the SaaS.
pub(crate) struct Served {
    pub _store: idbridge::store::Store,
    pub _dir: Option<tempfile::TempDir>,
    pub base: String,
    pub org: crate::interop::Org,
    pub platform: String,
}

pub(crate) async fn served() -> Served {
    use crate::interop::*;
    let (store, _dir) = fresh_store().await;
    let (listener, base) = listen().await;
    serve(&store, listener, &base).await;
    let org = org(&store, &base, "example.org").await;
    let platform = platform_svc::create_platform_token(&store, "the SaaS", None)
        .await
        .unwrap()
        .token;
    Served {
        _store: store,
        _dir,
        base,
        org,
        platform,
    }
}

/// Turns just-in-time creation on for a connection, as the SaaS's admin would through the API.
pub(crate) async fn create_users_just_in_time(base: &str, org: &crate::interop::Org, id: &str) {
    reqwest::Client::new()
        .patch(format!(
            "{base}/api/v1/orgs/{}/sso/connections/{id}",
            org.id
        ))
        .bearer_auth(&org.admin)
        .json(&json!({"jit": true}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

/// The value of the wizard's field labelled `label` (`<dt>label</dt><dd><span ...>value</span>`).
fn wizard_value(page: &str, label: &str) -> String {
    let at = page
        .find(&format!("<dt>{label}</dt>"))
        .unwrap_or_else(|| panic!("no {label} in {page}"));
    let rest = &page[at..];
    let start = rest.find("class=\"value\"").unwrap();
    let rest = &rest[start..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest.find("</span>").unwrap();
    rest[start..end].to_string()
}

/// The SSO wizard as an IT admin goes through it, against the samlify IdP of `tests/interop`:
/// our values in Okta's order, then the IdP's metadata URL, then test sign-ins that show what
/// the IdP sent and what the mapping would give, and sign no one in.
#[tokio::test]
async fn the_sso_wizard_sets_up_okta_saml_and_its_test_sign_in_shows_the_groups_without_signing_in()
{
    use crate::interop::*;
    if !available() {
        return;
    }
    let Served {
        base,
        org,
        platform,
        // Kept to the end of the test: the server's database.
        _store,
        _dir,
    } = served().await;
    let made = api(
        &base,
        &platform,
        &format!("{}/portal-links", org.id),
        json!({"intent": "sso"}),
    )
    .await;
    let b = browser();
    let url = made["url"].as_str().unwrap();
    let r = b.get(url).send().await.unwrap();
    assert_eq!(location(url, &r), format!("{base}/console/sso"));
    let page = b.get(format!("{base}/console/sso")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("Okta (SAML)"), "{page}");
    let csrf = csrf_of(&page);

    let r = b
        .post(format!("{base}/console/sso"))
        .form(&[("csrf", csrf.as_str()), ("idp", "okta")])
        .send()
        .await
        .unwrap();
    let wizard_url = location(&base, &r);
    assert!(wizard_url.ends_with("?idp=okta"), "{wizard_url}");
    let id = wizard_url
        .trim_start_matches(&format!("{base}/console/sso/"))
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let page = text_of(&b, &wizard_url).await;
    // Okta's screen asks for the single sign-on URL first, then the audience.
    let acs = wizard_value(&page, "Single sign-on URL");
    let entity = wizard_value(&page, "Audience URI (SP Entity ID)");
    assert_eq!(acs, format!("{base}/sso/saml/{id}/acs"));
    assert_eq!(entity, format!("{base}/sso/saml/{id}"));
    assert!(page.find("Single sign-on URL") < page.find("Audience URI"));
    assert!(
        !page.contains("/test\""),
        "no test before the IdP's details: {page}"
    );

    let (_keys, key, cert) = idp_keys();
    let idp = saml_idp(
        free_port(),
        &key,
        &cert,
        &json!({"endpoints": {"sp_entity_id": entity, "acs_url": acs}, "config": {}}),
    )
    .await;
    // Metadata that is not there is said on the wizard, above the form.
    let r = b
        .post(format!("{base}/console/sso/{id}/metadata"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("idp", "okta"),
            ("metadata_xml", "<not metadata"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("role=\"alert\""), "{text}");
    let r = b
        .post(format!("{base}/console/sso/{id}/metadata"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("idp", "okta"),
            ("metadata_url", &format!("{}/metadata", idp.url)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&base, &r), wizard_url);
    let page = text_of(&b, &wizard_url).await;
    assert!(
        page.contains(&format!("/console/sso/{id}/test\"")),
        "{page}"
    );

    // A test sign-in: to the IdP and back to the console.
    let test = |b: reqwest::Client| {
        let (base, id) = (base.clone(), id.clone());
        async move {
            let start = format!("{base}/console/sso/{id}/test");
            let to_idp = location(&start, &b.get(&start).send().await.unwrap());
            let (action, response, relay) = idp_form(b.get(&to_idp).send().await.unwrap()).await;
            let r = post_acs(&b, &action, &response, relay.as_deref()).await;
            assert_eq!(r.status(), 303);
            let result = location(&action, &r);
            assert!(
                result.contains(&format!("/console/sso/{id}/tests/")),
                "{result}"
            );
            assert!(
                r.headers().get("set-cookie").is_none(),
                "no session is opened"
            );
            let page = b.get(&result).send().await.unwrap();
            assert_eq!(page.status(), 200);
            page.text().await.unwrap()
        }
    };
    // The connection does not create users and no directory has bob: the page says why.
    let page = test(b.clone()).await;
    assert!(page.contains("did not work"), "{page}");
    assert!(page.contains("bob@example.org"), "{page}");
    assert!(
        page.contains("Engineering") && page.contains("Admins"),
        "{page}"
    );
    assert!(page.contains("just in time"), "{page}");

    // The admin lets the connection create people at their first sign-in, on the wizard; a
    // form without the session's CSRF token changes nothing.
    let who = format!("{base}/console/sso/{id}/who-signs-in");
    let r = b
        .post(&who)
        .form(&[("csrf", "forged"), ("idp", "okta"), ("jit", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let conn = org_get(&base, &org, &format!("/sso/connections/{id}")).await;
    assert_eq!(conn["jit"], false, "{conn}");
    let r = b
        .post(&who)
        .form(&[("csrf", csrf.as_str()), ("idp", "okta"), ("jit", "on")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&base, &r), format!("{wizard_url}#test"));
    let conn = org_get(&base, &org, &format!("/sso/connections/{id}")).await;
    assert_eq!(conn["jit"], true, "{conn}");
    assert_eq!(conn["allow_other_domains"], false, "unticked: {conn}");
    let page = text_of(&b, &wizard_url).await;
    assert!(
        page.contains(r#"id="jit" name="jit" value="on" checked"#),
        "{page}"
    );
    // With just-in-time creation, the test shows the user it would create and their access.
    let page = test(b.clone()).await;
    assert!(page.contains("The test sign-in worked"), "{page}");
    assert!(page.contains("It would create the user"), "{page}");
    assert!(
        page.contains("org_viewer") && page.contains("admin"),
        "{page}"
    );
    // ...and kept nothing: no user, so no session either.
    let users = org_get(&base, &org, "/users").await;
    assert_eq!(users["items"], json!([]), "{users}");
    // Another browser (without the console session) cannot read the result.
    let other = browser()
        .get(format!("{base}/console/sso/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
}

/// The text of the element with this id (`id="x">text<`).
fn text_by_id(page: &str, id: &str) -> String {
    let at = page
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} in {page}"))
        + id.len()
        + 6;
    page[at..].split('<').next().unwrap().to_string()
}

/// A session of a fresh link of this intent: (its cookie, the CSRF token of its first page).
async fn session_of(app: &TestApp, intent: &str) -> (String, String) {
    let (platform, _) = platform_token(app).await;
    let made = link(app, &platform, intent).await;
    let (location, session) = open(app, made["url"].as_str().unwrap()).await;
    let r = browse(app, Method::GET, &location, Some(&session), None).await;
    let csrf = csrf_of(html(&r));
    (session, csrf)
}

#[tokio::test]
async fn the_directory_page_creates_a_directory_shows_its_token_once_rotates_and_revokes() {
    let app = TestApp::without_directory().await;
    let (session, csrf) = session_of(&app, "scim").await;
    let r = post_form(
        &app,
        "/console/directories",
        &session,
        &format!("csrf={csrf}&name=Okta"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(page.contains("shown only this once"), "{page}");
    let url = text_by_id(page, "scim-url");
    let token = text_by_id(page, "scim-token");
    assert!(url.starts_with(&format!("{PUBLIC_URL}/scim/v2/")), "{url}");
    let base = url.strip_prefix(PUBLIC_URL).unwrap().to_string();
    let directory = base.rsplit('/').next().unwrap().to_string();

    // The IdP pushes a user with it.
    let push = |token: String| {
        let base = base.clone();
        let app = &app;
        async move {
            app.send(
                Method::POST,
                &format!("{base}/Users"),
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("u{}@example.org", uuid::Uuid::now_v7().simple()),
                    "active": true
                })),
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await
        }
    };
    assert_eq!(push(token.clone()).await.status, StatusCode::CREATED);

    let r = browse(
        &app,
        Method::GET,
        "/console/directories",
        Some(&session),
        None,
    )
    .await;
    let page = html(&r);
    assert!(!page.contains(&token), "the token is shown once");
    assert!(page.contains(&url), "{page}");
    assert!(page.contains("<dt>Users</dt><dd>1</dd>"), "{page}");
    assert!(page.contains("<dt>Groups</dt><dd>0</dd>"), "{page}");
    assert!(!page.contains("<dt>Last request</dt><dd>never"), "{page}");

    // A new token; the old one works until it is revoked.
    let r = post_form(
        &app,
        &format!("/console/directories/{directory}/rotate"),
        &session,
        &format!("csrf={csrf}"),
    )
    .await;
    let fresh = text_by_id(html(&r), "scim-token");
    assert_ne!(fresh, token);
    assert_eq!(push(token.clone()).await.status, StatusCode::CREATED);
    let old_id = idbridge::service::admin::list_directory_tokens(
        &app.store,
        &Caller::operator(app.org_scope()),
        &directory,
    )
    .await
    .unwrap()[0]
        .id
        .clone();
    let r = post_form(
        &app,
        &format!("/console/directories/{directory}/tokens/{old_id}/revoke"),
        &session,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(push(token).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(push(fresh).await.status, StatusCode::CREATED);
    // Without the session's CSRF token, nothing is made.
    let r = post_form(&app, "/console/directories", &session, "csrf=x&name=Forged").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_directory_page_shows_the_last_failed_scim_requests_newest_first_ten_at_most() {
    let app = TestApp::new().await;
    let user = |name: &str| json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name});
    assert_eq!(
        app.post("/Users", user("ada@acme.example")).await.status,
        StatusCode::CREATED
    );
    app.post("/Users", user("ada@acme.example"))
        .await
        .assert_error(409, Some("uniqueness"));
    app.get("/Users?filter=userName%20zz%20%22x%22")
        .await
        .assert_error(400, Some("invalidFilter"));
    app.get("/Users/no-such-user").await.assert_error(404, None);
    // A wrong token is not kept: anyone can send one, and it names no directory it may write to.
    let r = app
        .send(
            Method::GET,
            "/Users",
            None,
            &[("authorization", "Bearer idbs_wrong")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/Users").await.status, StatusCode::OK);

    let (session, _) = session_of(&app, "scim").await;
    let dir = format!("/scim/v2/{}", app.directory_id);
    let r = browse(
        &app,
        Method::GET,
        "/console/directories",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let page = html(&r);
    let rows = [
        format!("<code>GET {dir}/Users/no-such-user</code></td><td>404</td><td></td><td>"),
        format!("<code>GET {dir}/Users</code></td><td>400</td><td>invalidFilter</td><td>"),
        format!("<code>POST {dir}/Users</code></td><td>409</td><td>uniqueness</td><td>"),
    ];
    let at: Vec<usize> = rows
        .iter()
        .map(|row| {
            page.find(row.as_str())
                .unwrap_or_else(|| panic!("{row} not in {page}"))
        })
        .collect();
    assert!(at[0] < at[1] && at[1] < at[2], "newest first: {page}");
    assert!(
        page.contains(
            "<td>409</td><td>uniqueness</td><td>a user with this userName already exists</td>"
        ),
        "the error's detail: {page}"
    );
    assert!(!page.contains("<td>401</td>"), "{page}");
    assert!(!page.contains("idbs_"), "never a token: {page}");

    for i in 0..12 {
        app.get(&format!("/Users/missing-{i}"))
            .await
            .assert_error(404, None);
    }
    let r = browse(
        &app,
        Method::GET,
        "/console/directories",
        Some(&session),
        None,
    )
    .await;
    let page = html(&r);
    assert_eq!(page.matches("<td>404</td>").count(), 10, "{page}");
    assert!(page.contains("/Users/missing-11</code>"), "{page}");
    assert!(page.contains("/Users/missing-2</code>"), "{page}");
    assert!(!page.contains("/Users/missing-1</code>"), "{page}");
    assert!(!page.contains("invalidFilter"), "{page}");
}

#[tokio::test]
async fn the_domains_page_claims_a_domain_and_verifies_it_saying_what_dns_answered() {
    let app = TestApp::without_directory().await;
    let (session, csrf) = session_of(&app, "domains").await;
    let domain = format!("d{}.example", uuid::Uuid::now_v7().simple());
    let r = post_form(
        &app,
        "/console/domains",
        &session,
        &format!("csrf={csrf}&domain={domain}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = browse(&app, Method::GET, "/console/domains", Some(&session), None).await;
    let page = html(&r).to_string();
    let name = text_by_id(&page, "txt-name-0");
    let value = text_by_id(&page, "txt-value-0");
    assert_eq!(name, format!("_idbridge-verification.{domain}"));
    assert!(value.starts_with("idbridge-verification="), "{value}");

    let verify = format!("/console/domains/{domain}/verify");
    let r = post_form(&app, &verify, &session, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(html(&r).contains("found: none"), "{:?}", r.body);

    crate::dns::publish(&name, "something else");
    crate::dns::publish(&name, &value);
    let r = post_form(&app, &verify, &session, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(
        html(&r).contains(&format!("{domain} is verified.")),
        "{:?}",
        r.body
    );

    // A domain that is not one is said on the page.
    let r = post_form(
        &app,
        "/console/domains",
        &session,
        &format!("csrf={csrf}&domain=not%20a%20domain"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("role=\"alert\""), "{:?}", r.body);
}

// ---- people ------------------------------------------------------------------------------------

/// The path of the first link on `page` that starts with `prefix`.
fn link_starting(page: &str, prefix: &str) -> String {
    link_after(page, &format!("href=\"{prefix}"))
}

/// How many sessions of `user` are not revoked.
async fn live_sessions(app: &TestApp, admin: &str, user: &str) -> usize {
    let list = app
        .api_ok(&app.org_path(&format!("/users/{user}/sessions")), admin)
        .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["revoked_reason"].is_null())
        .count()
}

#[tokio::test]
async fn the_people_page_finds_a_person_explains_their_access_and_signs_them_out_everywhere() {
    let app = TestApp::new().await;
    let admin = app.admin_token("org_admin", None).await;
    // Found by the email only: the userName does not contain it.
    let r = app
        .post(
            "/Users",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ada",
                "displayName": "Ada Lovelace",
                "emails": [{"value": "a.lovelace@acme.example", "type": "work"}],
                "active": true
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let scim_ada = r.id();
    app.user("bob@acme.example").await;
    app.group("Engineering", &[&scim_ada]).await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/mappings"),
            &admin,
            Some(json!({
                "description": "Engineers administer",
                "matcher": {"type": "display_name", "display_name": "Engineering"},
                "grant": {"type": "org_role", "role": "org_admin"}
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ada = app.org_user_id(&admin, "ada").await;

    // Another intent's session does not see people.
    let (domains, _) = session_of(&app, "domains").await;
    let r = browse(&app, Method::GET, "/console/people", Some(&domains), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let (session, csrf) = session_of(&app, "mapping").await;
    let r = browse(&app, Method::GET, "/console/mapping", Some(&session), None).await;
    assert!(
        html(&r).contains(
            "<a href=\"/console/mapping\" aria-current=\"page\">Group to role mapping</a>\
             </li><li><a href=\"/console/people\">People</a>"
        ),
        "{:?}",
        r.body
    );
    let r = browse(
        &app,
        Method::GET,
        "/console/people?q=LOVELACE%40acme",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let page = html(&r);
    assert!(
        page.contains("<a href=\"/console/people\" aria-current=\"page\">People</a>"),
        "{page}"
    );
    assert!(page.contains("Ada Lovelace"), "{page}");
    assert!(!page.contains("bob@acme.example"), "{page}");
    let person = link_starting(page, "/console/people/");
    assert_eq!(person, format!("/console/people/{ada}"));

    let r = browse(&app, Method::GET, &person, Some(&session), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let page = html(&r);
    for shown in [
        "<td>Organization</td><td>org_admin</td>",
        "member of group Engineering, by rule “Engineers administer”",
        "<td>test directory</td><td>ada</td><td>yes</td>",
    ] {
        assert!(page.contains(shown), "{shown} not in {page}");
    }
    let r = browse(
        &app,
        Method::GET,
        "/console/people/no-such-person",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    for _ in 0..2 {
        setup::create_session(
            &app.store,
            &app.org_scope(),
            &ada,
            Duration::from_secs(3600),
        )
        .await
        .unwrap();
    }
    // A mapping link reads people; it does not sign them out.
    assert!(!page.contains("Sign out everywhere"), "{page}");
    let sign_out = format!("{person}/sign-out");
    let r = post_form(&app, &sign_out, &session, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(live_sessions(&app, &admin, &ada).await, 2);

    let (session, csrf) = session_of(&app, "people").await;
    let r = browse(&app, Method::GET, &person, Some(&session), None).await;
    assert!(html(&r).contains("Sign out everywhere"), "{:?}", r.body);
    let r = post_form(&app, &sign_out, &session, "csrf=forged").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(&app, &sign_out, &session, "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(live_sessions(&app, &admin, &ada).await, 2);

    let r = post_form(&app, &sign_out, &session, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(
        html(&r).contains("2 sessions of ada ended."),
        "{:?}",
        r.body
    );
    assert_eq!(live_sessions(&app, &admin, &ada).await, 0);
}

/// The grants made by hand of `user`, as the admin API lists them.
async fn grants_of(app: &TestApp, admin: &str, user: &str) -> Vec<Value> {
    let list = app
        .api_ok(&app.org_path(&format!("/users/{user}/grants")), admin)
        .await;
    list["items"].as_array().unwrap().clone()
}

/// A sub-account "EU" with a project "Atlas", made through the admin API: (their ids).
async fn eu_with_atlas(app: &TestApp, admin: &str) -> (String, String) {
    let r = app
        .api(
            Method::POST,
            &app.org_path("/sub-accounts"),
            admin,
            Some(json!({"name": "EU"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let sa = r.id();
    let r = app
        .api(
            Method::POST,
            &app.org_path(&format!("/sub-accounts/{sa}/projects")),
            admin,
            Some(json!({"name": "Atlas"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let project = r.id();
    (sa, project)
}

#[tokio::test]
async fn a_people_link_signs_one_session_out_and_grants_by_hand_what_a_mapping_link_only_reads() {
    let app = TestApp::new().await;
    let admin = app.admin_token("org_admin", None).await;
    let (sa, project) = eu_with_atlas(&app, &admin).await;
    app.user("ada@acme.example").await;
    app.user("bob@acme.example").await;
    let ada = app.org_user_id(&admin, "ada@acme.example").await;
    let bob = app.org_user_id(&admin, "bob@acme.example").await;
    let scope = app.org_scope();
    let life = Duration::from_secs(3600);
    let first = setup::create_session(&app.store, &scope, &ada, life)
        .await
        .unwrap();
    setup::create_session(&app.store, &scope, &ada, life)
        .await
        .unwrap();
    let bobs = setup::create_session(&app.store, &scope, &bob, life)
        .await
        .unwrap();
    let person = format!("/console/people/{ada}");

    let (session, csrf) = session_of(&app, "people").await;
    let r = browse(&app, Method::GET, &person, Some(&session), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let page = html(&r);
    assert_eq!(
        page.matches("<td>no connection (made by the application)</td>")
            .count(),
        2,
        "{page}"
    );
    assert!(
        page.contains("None: this person's access comes from"),
        "{page}"
    );
    let one = format!("{person}/sessions/{}/sign-out", first.id);
    assert!(page.contains(&format!("action=\"{one}\"")), "{page}");

    let r = post_form(&app, &one, &session, "csrf=forged").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(live_sessions(&app, &admin, &ada).await, 2);
    let r = post_form(&app, &one, &session, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    assert_eq!(r.header("location"), Some(person.as_str()));
    assert_eq!(live_sessions(&app, &admin, &ada).await, 1);
    let audit = app
        .api_ok(
            &app.org_path(&format!("/audit?operation=revoke&resource_id={}", first.id)),
            &admin,
        )
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    // Signed out already; and Bob's session is not Ada's to end.
    let r = post_form(&app, &one, &session, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let r = post_form(
        &app,
        &format!("{person}/sessions/{}/sign-out", bobs.id),
        &session,
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(live_sessions(&app, &admin, &bob).await, 1);

    // Grants by hand: bad ones are refused in words and nothing is kept.
    let grants = format!("{person}/grants");
    for (form, said) in [
        (
            "grant=sub_account_role&sub_account=no-such&sub_account_role=admin".to_string(),
            "no sub-account &quot;no-such&quot;",
        ),
        (
            format!("grant=project_role&project={sa}/no-such&project_role=member"),
            "no project &quot;no-such&quot;",
        ),
        (
            "grant=org_role&org_role=org_owner".to_string(),
            "org_owner cannot be granted",
        ),
        (
            format!("grant=sub_account_role&sub_account={sa}&sub_account_role=emperor"),
            "This grant cannot be made",
        ),
        (
            "grant=project_role&project_role=member".to_string(),
            "Choose the project.",
        ),
    ] {
        let r = post_form(&app, &grants, &session, &format!("csrf={csrf}&{form}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{form}: {:?}", r.body);
        assert!(html(&r).contains(said), "{said} not in {:?}", r.body);
    }
    let form = format!("grant=project_role&project={sa}/{project}&project_role=member");
    let r = post_form(&app, &grants, &session, &format!("csrf=forged&{form}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(grants_of(&app, &admin, &ada).await.is_empty());
    let r = post_form(&app, &grants, &session, &format!("csrf={csrf}&{form}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    let made = grants_of(&app, &admin, &ada).await;
    assert_eq!(
        made[0]["grant"],
        json!({"type": "project_role", "sub_account_id": sa, "project_id": project, "role": "member"})
    );
    let r = browse(&app, Method::GET, &person, Some(&session), None).await;
    let page = html(&r);
    assert!(
        page.contains("<td>member of project Atlas in sub-account EU</td>"),
        "{page}"
    );
    assert!(
        page.contains("<td>Project "),
        "the grant is in the access too: {page}"
    );
    let remove = link_after(page, &format!("action=\"{person}/grants/"));

    // A mapping link sees the same, and can change none of it.
    let (mapping, mapping_csrf) = session_of(&app, "mapping").await;
    let r = browse(&app, Method::GET, &person, Some(&mapping), None).await;
    let page = html(&r);
    assert!(
        page.contains("<td>member of project Atlas in sub-account EU</td>"),
        "{page}"
    );
    assert!(
        page.contains("Your link lets you see people, not change them."),
        "{page}"
    );
    assert!(
        !page.contains("method=\"post\" action=\"/console/people"),
        "{page}"
    );
    let second = app
        .api_ok(&app.org_path(&format!("/users/{ada}/sessions")), &admin)
        .await["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["revoked_reason"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for (path, form) in [
        (
            format!("{person}/sessions/{second}/sign-out"),
            String::new(),
        ),
        (format!("{person}/sign-out"), String::new()),
        (grants.clone(), format!("&{form}")),
        (remove.clone(), String::new()),
    ] {
        let r = post_form(&app, &path, &mapping, &format!("csrf={mapping_csrf}{form}")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {:?}", r.body);
    }
    assert_eq!(live_sessions(&app, &admin, &ada).await, 1);
    assert_eq!(grants_of(&app, &admin, &ada).await.len(), 1);

    let r = post_form(&app, &remove, &session, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    assert!(grants_of(&app, &admin, &ada).await.is_empty());
    let r = post_form(&app, &remove, &session, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
}

// ---- activity ----------------------------------------------------------------------------------

#[tokio::test]
async fn the_activity_page_lists_the_access_events_and_the_audit_log_filtered() {
    let app = TestApp::new().await;
    let admin = app.admin_token("org_admin", None).await;
    let scim_ada = app.user("ada@acme.example").await;
    app.group("Engineering", &[&scim_ada]).await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/mappings"),
            &admin,
            Some(json!({
                "matcher": {"type": "display_name", "display_name": "Engineering"},
                "grant": {"type": "org_role", "role": "org_admin"}
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    let (mapping, _) = session_of(&app, "mapping").await;
    let r = browse(&app, Method::GET, "/console/activity", Some(&mapping), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let (session, _) = session_of(&app, "activity").await;
    let r = browse(&app, Method::GET, "/console/activity", Some(&session), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let page = html(&r);
    // Newest first: the grant the rule made, then Ada's provisioning before it.
    let granted = page.find("<td>access.granted</td><td>ada@acme.example</td>");
    let provisioned = page.find("<td>user.provisioned</td><td>ada@acme.example</td>");
    assert!(granted.is_some() && granted < provisioned, "{page}");
    for shown in [
        "<td>user.provisioned</td><td>ada@acme.example</td>",
        // The change in words, as the mapping page's preview says it.
        "<td>access.granted</td><td>ada@acme.example</td><td>organization role: nothing → org_admin</td>",
        "<td>create MappingRule</td>",
        "<td>open ConsoleSession</td>",
    ] {
        assert!(page.contains(shown), "{shown} not in {page}");
    }

    let r = browse(
        &app,
        Method::GET,
        "/console/activity?event=access.granted&operation=&resource=MappingRule",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let page = html(&r);
    assert!(
        page.contains("<td>access.granted</td><td>ada@acme.example</td>"),
        "{page}"
    );
    assert!(
        page.contains("<option value=\"access.granted\" selected>"),
        "{page}"
    );
    assert!(page.contains("<td>create MappingRule</td>"), "{page}");
    assert!(!page.contains("<td>user.provisioned</td>"), "{page}");
    assert!(!page.contains("ConsoleSession"), "{page}");

    let r = browse(
        &app,
        Method::GET,
        "/console/activity?event=access.lost",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("is not an event type"), "{:?}", r.body);
    let r = browse(
        &app,
        Method::GET,
        "/console/activity?audit_before=soon",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// A busy organization sees its latest activity first, and pages back to the older.
#[tokio::test]
async fn the_activity_page_shows_the_latest_two_hundred_and_links_to_the_older() {
    let app = TestApp::new().await;
    for i in 0..203 {
        app.user(&format!("p{i:03}@acme.example")).await;
    }
    let (session, _) = session_of(&app, "activity").await;
    let get = |path: String| {
        let (app, session) = (&app, &session);
        async move {
            let r = browse(app, Method::GET, &path, Some(session), None).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            html(&r).to_string()
        }
    };
    let row = |i: usize| format!("<td>user.provisioned</td><td>p{i:03}@acme.example</td>");
    let page = get("/console/activity?event=user.provisioned".into()).await;
    assert!(page.find(&row(202)) < page.find(&row(201)), "{page}");
    assert!(page.contains(&row(3)), "{page}");
    assert!(!page.contains(&row(2)), "two hundred shown: {page}");
    let at = page
        .find("Older access changes")
        .expect("a link to the older");
    let href = page[..at].rsplit("href=\"").next().unwrap();
    let href = href[..href.find('"').unwrap()].replace("&amp;", "&");
    assert!(href.contains("event=user.provisioned"), "{href}");
    let older = get(href).await;
    for i in 0..3 {
        assert!(older.contains(&row(i)), "{older}");
    }
    assert!(!older.contains(&row(3)), "{older}");
    assert!(!older.contains("Older access changes"), "{older}");
}

// ---- mapping -----------------------------------------------------------------------------------

/// The value of the first `name` attribute's input after `after` on `page`, unescaped.
fn input_value(page: &str, after: &str) -> String {
    let at = page
        .find(after)
        .unwrap_or_else(|| panic!("no {after} in {page}"));
    let at = at + page[at..].find("value=\"").unwrap() + 7;
    page[at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn the_mapping_page_previews_a_rule_saves_it_lists_its_reach_and_deletes_it() {
    let app = TestApp::new().await;
    let admin = app.admin_token("org_admin", None).await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/sub-accounts"),
            &admin,
            Some(json!({"name": "EU"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let sa = r.id();
    let scim_ada = app.user("ada@acme.example").await;
    app.user("bob@acme.example").await;
    app.group("Engineering", &[&scim_ada]).await;
    app.group("Sales", &[]).await;
    let ada = app.org_user_id(&admin, "ada@acme.example").await;
    assert_eq!(
        crate::sso::role_in(&app, &admin, &ada, &sa).await,
        Value::Null
    );

    let (session, csrf) = session_of(&app, "mapping").await;
    let r = browse(
        &app,
        Method::GET,
        "/console/mapping?q=engin",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let page = html(&r);
    assert!(page.contains("No rule yet"), "{page}");
    assert!(
        page.contains("Engineering (SCIM group from test directory)"),
        "{page}"
    );
    assert!(!page.contains("Sales (SCIM group"), "{page}");
    let group = input_value(page, "name=\"group\"");
    let rule_form = format!(
        "group={}&grant=sub_account_role&sub_account={sa}&sub_account_role=admin\
         &org_role=org_viewer&email_api=none&description=Engineers+run+EU",
        enc(&group)
    );

    let r = post_form(
        &app,
        "/console/mapping/preview",
        &session,
        &format!("csrf=forged&{rule_form}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(
        &app,
        "/console/mapping/preview",
        &session,
        &format!("csrf={csrf}&grant=org_role&org_role=org_admin"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("Choose the IdP group"), "{:?}", r.body);

    let r = post_form(
        &app,
        "/console/mapping/preview",
        &session,
        &format!("csrf={csrf}&{rule_form}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let preview = html(&r);
    assert!(
        preview.contains(
            "<td>ada@acme.example</td><td>gains: role in sub-account EU: nothing → admin</td>"
        ),
        "{preview}"
    );
    assert!(!preview.contains("bob@acme.example"), "{preview}");
    // A preview saves nothing.
    let rules = app.api_ok(&app.org_path("/mappings"), &admin).await;
    assert_eq!(rules["items"], json!([]), "{rules}");
    assert_eq!(
        crate::sso::role_in(&app, &admin, &ada, &sa).await,
        Value::Null
    );

    let rule = input_value(preview, "name=\"rule\"");
    let r = post_form(
        &app,
        "/console/mapping/rules",
        &session,
        &format!("csrf={csrf}&rule={}", enc(&rule)),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    assert_eq!(r.header("location"), Some("/console/mapping"));
    assert_eq!(crate::sso::role_in(&app, &admin, &ada, &sa).await, "admin");

    let r = browse(&app, Method::GET, "/console/mapping", Some(&session), None).await;
    let page = html(&r);
    assert!(
        page.contains("<td>Engineers run EU</td><td>group Engineering</td><td>admin in sub-account EU</td><td class=\"reach\">1</td>"),
        "{page}"
    );
    let delete = link_after(page, "action=\"/console/mapping/rules/");
    let r = post_form(&app, &delete, &session, "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(crate::sso::role_in(&app, &admin, &ada, &sa).await, "admin");
    let r = post_form(&app, &delete, &session, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    assert_eq!(
        crate::sso::role_in(&app, &admin, &ada, &sa).await,
        Value::Null
    );
    let r = browse(&app, Method::GET, "/console/mapping", Some(&session), None).await;
    assert!(html(&r).contains("No rule yet"), "{:?}", r.body);
}

#[tokio::test]
async fn the_mapping_page_grants_a_project_role_and_sets_the_default_role_after_their_previews() {
    let app = TestApp::new().await;
    let admin = app.admin_token("org_admin", None).await;
    let (sa, project) = eu_with_atlas(&app, &admin).await;
    let scim_ada = app.user("ada@acme.example").await;
    app.user("bob@acme.example").await;
    app.group("Engineering", &[&scim_ada]).await;
    let bob = app.org_user_id(&admin, "bob@acme.example").await;

    let (session, csrf) = session_of(&app, "mapping").await;
    let r = browse(
        &app,
        Method::GET,
        "/console/mapping?q=engin",
        Some(&session),
        None,
    )
    .await;
    let page = html(&r);
    assert!(
        page.contains(&format!(
            "<option value=\"{sa}/{project}\">Atlas in EU</option>"
        )),
        "{page}"
    );
    assert!(
        page.contains("Everyone whose groups match no rule gets <strong>nothing</strong>"),
        "{page}"
    );
    let group = input_value(page, "name=\"group\"");
    let rule_form = |project_field: &str, role: &str| {
        format!(
            "csrf={csrf}&group={}&grant=project_role&project={project_field}&project_role={role}",
            enc(&group)
        )
    };
    for (form, said) in [
        (
            rule_form(&format!("{sa}/no-such"), "admin"),
            "no project &quot;no-such&quot;",
        ),
        (
            rule_form(&format!("{sa}/{project}"), "owner"),
            "This rule cannot be made",
        ),
    ] {
        let r = post_form(&app, "/console/mapping/preview", &session, &form).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{form}: {:?}", r.body);
        assert!(html(&r).contains(said), "{said} not in {:?}", r.body);
    }
    let r = post_form(
        &app,
        "/console/mapping/preview",
        &session,
        &rule_form(&format!("{sa}/{project}"), "admin"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let preview = html(&r);
    assert!(
        preview.contains(
            "<td>ada@acme.example</td><td>gains: project Atlas in sub-account EU: nothing → admin</td>"
        ),
        "{preview}"
    );
    let rule = input_value(preview, "name=\"rule\"");
    let r = post_form(
        &app,
        "/console/mapping/rules",
        &session,
        &format!("csrf={csrf}&rule={}", enc(&rule)),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    let rules = app.api_ok(&app.org_path("/mappings"), &admin).await;
    assert_eq!(
        rules["items"][0]["grant"],
        json!({"type": "project_role", "sub_account_id": sa, "project_id": project, "role": "admin"})
    );

    // The default role: previewed (Bob matches no rule, Ada does), then saved.
    let r = post_form(
        &app,
        "/console/mapping/default-role/preview",
        &session,
        &format!("csrf={csrf}&default_role=emperor"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        html(&r).contains("&quot;emperor&quot; is not a role"),
        "{:?}",
        r.body
    );
    let r = post_form(
        &app,
        "/console/mapping/default-role/preview",
        &session,
        &format!("csrf={csrf}&default_role=member"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let preview = html(&r);
    assert!(
        preview.contains(
            "<td>bob@acme.example</td><td>gains: role in every sub-account: nothing → member</td>"
        ),
        "{preview}"
    );
    assert!(!preview.contains("<td>ada@acme.example</td>"), "{preview}");
    let org = app.api_ok(&app.org_path(""), &admin).await;
    assert_eq!(
        org["default_role"],
        Value::Null,
        "a preview changes nothing"
    );
    let save = format!(
        "default_role={}",
        input_value(preview, "name=\"default_role\"")
    );
    let r = post_form(
        &app,
        "/console/mapping/default-role",
        &session,
        &format!("csrf=forged&{save}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (people, people_csrf) = session_of(&app, "people").await;
    let r = post_form(
        &app,
        "/console/mapping/default-role",
        &people,
        &format!("csrf={people_csrf}&{save}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        crate::sso::role_in(&app, &admin, &bob, &sa).await,
        Value::Null
    );
    let r = post_form(
        &app,
        "/console/mapping/default-role",
        &session,
        &format!("csrf={csrf}&{save}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    let org = app.api_ok(&app.org_path(""), &admin).await;
    assert_eq!(org["default_role"], "member");
    assert_eq!(crate::sso::role_in(&app, &admin, &bob, &sa).await, "member");
    let r = browse(&app, Method::GET, "/console/mapping", Some(&session), None).await;
    assert!(
        html(&r).contains(
            "Everyone whose groups match no rule gets <strong>member</strong> in every sub-account."
        ),
        "{:?}",
        r.body
    );
}

/// The attribute value that starts at `prefix` (`attr="…`) on `page`.
fn link_after(page: &str, prefix: &str) -> String {
    let at = page
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {page}"));
    let at = at + page[at..].find('"').unwrap() + 1;
    page[at..].split('"').next().unwrap().to_string()
}

/// The connections of the app's organization, as the admin API lists them.
async fn connections(app: &TestApp) -> Vec<Value> {
    let admin = app.admin_token("org_admin", None).await;
    let listed = app.api_ok(&app.org_path("/sso/connections"), &admin).await;
    listed["items"]
        .as_array()
        .or_else(|| listed.as_array())
        .cloned()
        .unwrap_or_else(|| panic!("{listed}"))
}

/// The Entra ID (OIDC) wizard gives our redirect URI first, in the order of Entra's screens,
/// and a refused form says why, keeps what was typed but the secret, and makes nothing.
#[tokio::test]
async fn the_entra_oidc_wizard_gives_the_redirect_uri_first_and_a_refused_form_keeps_all_but_the_secret()
 {
    let app = TestApp::new().await;
    let (session, csrf) = session_of(&app, "sso").await;
    let r = browse(&app, Method::GET, "/console/sso", Some(&session), None).await;
    let page = html(&r);
    assert!(page.contains("Microsoft Entra ID (OIDC)"), "{page}");
    assert!(page.contains("Another OpenID Connect provider"), "{page}");

    let r = post_form(
        &app,
        "/console/sso",
        &session,
        &format!("csrf={csrf}&idp=entra-oidc"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let wizard = r.header("location").unwrap().to_string();
    assert_eq!(wizard, "/console/sso/oidc?idp=entra-oidc");
    let r = browse(&app, Method::GET, &wizard, Some(&session), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r).to_string();
    assert_eq!(
        wizard_value(&page, "Redirect URI (Web)"),
        format!("{PUBLIC_URL}/sso/oidc/callback")
    );
    // Entra's order: the app registration and its redirect URI, its secret, then the issuer.
    let at = |s: &str| page.find(s).unwrap_or_else(|| panic!("no {s} in {page}"));
    assert!(at("App registrations") < at("Redirect URI (Web)"));
    assert!(at("Redirect URI (Web)") < at("Certificates &amp; secrets"));
    assert!(at("Certificates &amp; secrets") < at("login.microsoftonline.com/{tenant}/v2.0"));
    assert!(page.contains("Token configuration") && page.contains("overage"));
    assert!(page.contains("Application (client) ID"), "{page}");
    assert!(
        !page.contains("/test\""),
        "no test before a connection: {page}"
    );
    assert!(
        page.contains("type=\"password\" id=\"client_secret\""),
        "{page}"
    );

    // Nothing given.
    let r = post_form(
        &app,
        "/console/sso/oidc",
        &session,
        &format!("csrf={csrf}&idp=entra-oidc&issuer=&client_id=&client_secret="),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        html(&r).contains("Give the issuer URL, the client ID and the client secret."),
        "{:?}",
        r.body
    );
    // No secret.
    let r = post_form(
        &app,
        "/console/sso/oidc",
        &session,
        &format!(
            "csrf={csrf}&idp=entra-oidc&issuer=https%3A%2F%2Flogin.example.test%2Ft%2Fv2.0&client_id=app-1"
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(html(&r).contains("Give the client secret."), "{:?}", r.body);
    // An issuer that is not https: refused, with what was typed kept, except the secret.
    let r = post_form(
        &app,
        "/console/sso/oidc",
        &session,
        &format!(
            "csrf={csrf}&idp=entra-oidc&issuer=http%3A%2F%2Flogin.example.test%2Ft%2Fv2.0\
             &client_id=app-1&client_secret=typed-secret-value"
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let page = html(&r);
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(page.contains("only https"), "{page}");
    assert!(
        page.contains("value=\"http://login.example.test/t/v2.0\""),
        "{page}"
    );
    assert!(page.contains("value=\"app-1\""), "{page}");
    assert!(!page.contains("typed-secret-value"), "{page}");
    assert!(page.contains("Redirect URI (Web)"), "still Entra's wizard");
    // A form from elsewhere is refused.
    let r = post_form(
        &app,
        "/console/sso/oidc",
        &session,
        "csrf=0000&idp=oidc&issuer=https%3A%2F%2Fa.test&client_id=a&client_secret=b",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(connections(&app).await, Vec::<Value>::new());
}

/// An issuer whose discovery document cannot be read is said on the page; nothing is made.
#[tokio::test]
async fn the_oidc_wizard_says_when_the_issuers_discovery_fails() {
    let app = TestApp::new().await.reaching_fakes();
    let (session, csrf) = session_of(&app, "sso").await;
    // A port nothing listens on.
    let issuer = format!("http://127.0.0.1:{}", crate::interop::free_port());
    let form = format!(
        "csrf={csrf}&idp=oidc&issuer={}&client_id=idbridge&client_secret=s3cret-typed&scopes=openid+groups",
        urlencoding(&issuer)
    );
    let r = post_form(&app, "/console/sso/oidc", &session, &form).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    let page = html(&r);
    assert!(page.contains("discovery failed"), "{page}");
    assert!(page.contains(&format!("value=\"{issuer}\"")), "{page}");
    assert!(page.contains("value=\"openid groups\""), "{page}");
    assert!(!page.contains("s3cret-typed"), "{page}");
    assert_eq!(connections(&app).await, Vec::<Value>::new());
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A browser with a console session of an `sso` portal link, and its CSRF token.
async fn sso_console(
    base: &str,
    platform: &str,
    org: &crate::interop::Org,
) -> (reqwest::Client, String) {
    let path = format!("{}/portal-links", org.id);
    let made = crate::interop::api(base, platform, &path, json!({"intent": "sso"})).await;
    let b = crate::interop::browser();
    b.get(made["url"].as_str().unwrap()).send().await.unwrap();
    let page = text_of(&b, &format!("{base}/console/sso")).await;
    let csrf = csrf_of(&page);
    (b, csrf)
}

/// The generic OIDC wizard against the OpenID provider of `tests/interop`: the redirect URI the
/// page gives is the one the provider accepts, the details make the connection (its secret kept
/// sealed, never shown), and the test sign-in shows the subject, email and groups that came back.
#[tokio::test]
async fn the_oidc_wizard_sets_up_a_provider_and_its_test_sign_in_shows_subject_email_and_groups() {
    use crate::interop::*;
    if !available() {
        return;
    }
    let Served {
        base,
        org,
        platform,
        _store,
        _dir,
    } = served().await;
    let (b, csrf) = sso_console(&base, &platform, &org).await;
    let r = b
        .post(format!("{base}/console/sso"))
        .form(&[("csrf", csrf.as_str()), ("idp", "oidc")])
        .send()
        .await
        .unwrap();
    let first = location(&base, &r);
    assert_eq!(first, format!("{base}/console/sso/oidc?idp=oidc"));
    let page = text_of(&b, &first).await;
    let redirect_uri = wizard_value(&page, "Redirect URI");
    assert_eq!(redirect_uri, format!("{base}/sso/oidc/callback"));

    let secret = "the-client-secret-of-idbridge";
    let accounts = json!({"alice": {"email": "alice@example.org", "name": "Alice Example",
                                    "groups": ["Engineering", "Admins"]}});
    let idp = oidc_idp(&redirect_uri, secret, &accounts).await;
    let r = b
        .post(format!("{base}/console/sso/oidc"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("idp", "oidc"),
            ("issuer", idp.url.as_str()),
            ("client_id", "idbridge"),
            ("client_secret", secret),
            ("scopes", "openid email profile groups"),
            ("groups_claim", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let wizard_url = location(&base, &r);
    let id = wizard_url
        .trim_start_matches(&format!("{base}/console/sso/"))
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let conn = org_get(&base, &org, &format!("/sso/connections/{id}")).await;
    assert_eq!(conn["kind"], "oidc", "{conn}");
    assert_eq!(conn["has_secret"], true, "{conn}");
    assert_eq!(conn["config"]["issuer"], idp.url.as_str(), "{conn}");
    assert!(!conn.to_string().contains(secret), "{conn}");
    let page = text_of(&b, &wizard_url).await;
    assert!(page.contains("value=\"idbridge\""), "{page}");
    assert!(!page.contains(secret), "{page}");
    assert!(
        page.contains(&format!("/console/sso/{id}/test\"")),
        "{page}"
    );

    // Saving again with the secret left blank keeps the stored one: the test below needs it.
    let r = b
        .post(format!("{base}/console/sso/{id}/oidc"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("idp", "oidc"),
            ("issuer", idp.url.as_str()),
            ("client_id", "idbridge"),
            ("client_secret", ""),
            ("scopes", "openid email profile groups"),
            ("groups_claim", "groups"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&base, &r), wizard_url);

    let test = |b: reqwest::Client| {
        let (base, id) = (base.clone(), id.clone());
        async move {
            let mut url = format!("{base}/console/sso/{id}/test");
            loop {
                let r = b.get(&url).send().await.unwrap();
                if url.starts_with(&format!("{base}/sso/oidc/callback")) {
                    assert_eq!(r.status(), 303);
                    assert!(r.headers().get("set-cookie").is_none(), "no session");
                    let result = location(&url, &r);
                    assert!(
                        result.contains(&format!("/console/sso/{id}/tests/")),
                        "{result}"
                    );
                    return text_of(&b, &result).await;
                }
                assert!(r.status().is_redirection(), "{url}: {}", r.status());
                url = past_login(&b, location(&url, &r), "alice").await;
            }
        }
    };
    // The connection does not create users: the page says why, with what came back.
    let page = test(b.clone()).await;
    assert!(page.contains("did not work"), "{page}");
    assert!(
        page.contains("<span class=\"value\">alice</span>"),
        "{page}"
    );
    assert!(page.contains("alice@example.org"), "{page}");
    assert!(page.contains("Alice Example"), "{page}");
    assert!(
        page.contains("<li><span class=\"value\">Engineering</span></li>")
            && page.contains("<li><span class=\"value\">Admins</span></li>"),
        "{page}"
    );
    create_users_just_in_time(&base, &org, &id).await;
    let page = test(b.clone()).await;
    assert!(page.contains("The test sign-in worked"), "{page}");
    assert!(page.contains("It would create the user"), "{page}");
    assert!(page.contains("org_viewer"), "{page}");
}

/// The sign-in page asks for a work email, and says plainly when no sign-in can start from it.
#[tokio::test]
async fn the_console_sign_in_page_says_when_no_organization_signs_in_an_address() {
    let app = TestApp::new().await;
    let r = browse(&app, Method::GET, "/console/sign-in", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = html(&r);
    assert!(
        page.contains("<label for=\"email\">Work email address</label>"),
        "{page}"
    );
    assert!(page.contains("action=\"/console/sign-in/start\""), "{page}");
    // An organization without a ready connection says so rather than listing nothing.
    let r = browse(
        &app,
        Method::GET,
        &format!("/console/sign-in?org={}", app.org_id),
        None,
        None,
    )
    .await;
    assert!(
        html(&r).contains("no single sign-on connection ready"),
        "{:?}",
        r.body
    );

    for (query, status, said) in [
        (
            "email=someone%40nowhere.example.test",
            404,
            "No organization signs in people",
        ),
        ("email=", 400, "Give your work email address."),
        ("connection=no-such-connection", 404, "does not exist"),
    ] {
        let r = browse(
            &app,
            Method::GET,
            &format!("/console/sign-in/start?{query}"),
            None,
            None,
        )
        .await;
        assert_eq!(r.status.as_u16(), status, "{query}");
        assert!(html(&r).contains(said), "{query}: {:?}", r.body);
        assert!(r.header("set-cookie").is_none(), "{query}");
    }
}

/// Follows a console sign-in from `start` through the OpenID provider as `login`, to the answer
/// of our callback.
async fn console_sign_in(
    b: &reqwest::Client,
    base: &str,
    start: &str,
    login: &str,
) -> reqwest::Response {
    use crate::interop::*;
    let mut url = start.to_string();
    loop {
        let r = b.get(&url).send().await.unwrap();
        if url.starts_with(&format!("{base}/sso/oidc/callback")) {
            return r;
        }
        assert!(r.status().is_redirection(), "{url}: {}", r.status());
        url = past_login(b, location(&url, &r), login).await;
    }
}

/// The organization's admin signs in to the console through its own OIDC provider and reaches
/// every page; a viewer reads but cannot change; a member is refused and gets nothing; SCIM
/// deactivating the admin ends their console session at their next request.
#[tokio::test]
async fn an_admin_signs_in_to_the_console_through_the_organizations_sso_until_scim_deactivates_them()
 {
    use crate::interop::*;
    if !available() {
        return;
    }
    let Served {
        base,
        org,
        _store,
        _dir,
        ..
    } = served().await;
    let o = |p: &str| format!("{}{p}", org.id);
    // The IdP's `IT` group makes organization admins; `Admins` (of the interop organization)
    // makes viewers; `Engineering` gives a sub-account only.
    api(
        &base,
        &org.admin,
        &o("/mappings"),
        json!({"matcher": {"type": "claim", "value": "IT"},
               "grant": {"type": "org_role", "role": "org_admin"}}),
    )
    .await;
    let secret = "console-sign-in-secret";
    let accounts = json!({
        "carol": {"email": "carol@example.org", "name": "Carol", "groups": ["IT"]},
        "vic": {"email": "vic@example.org", "name": "Vic", "groups": ["Admins"]},
        "dave": {"email": "dave@example.org", "name": "Dave", "groups": ["Engineering"]},
    });
    let idp = oidc_idp(&format!("{base}/sso/oidc/callback"), secret, &accounts).await;
    let conn = api(
        &base,
        &org.admin,
        &o("/sso/connections"),
        json!({"name": "Company SSO",
               "oidc": {"issuer": idp.url, "client_id": "idbridge", "client_secret": secret,
                        "scopes": ["openid", "email", "profile", "groups"]}}),
    )
    .await;
    let conn_id = conn["id"].as_str().unwrap().to_string();
    // A SCIM directory provisions the people: only they may sign in.
    let dir = api(&base, &org.admin, &o("/directories"), json!({"name": "HR"})).await;
    let scim = format!(
        "{base}/scim/v2/{}",
        dir["directory"]["id"].as_str().unwrap()
    );
    let scim_token = dir["token"]["token"].as_str().unwrap().to_string();
    let mut scim_ids = std::collections::HashMap::new();
    for name in ["carol", "vic", "dave"] {
        let r = reqwest::Client::new()
            .post(format!("{scim}/Users"))
            .bearer_auth(&scim_token)
            .header("content-type", "application/scim+json")
            .body(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                       "userName": format!("{name}@example.org"), "active": true,
                       "emails": [{"value": format!("{name}@example.org"), "primary": true}]})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        scim_ids.insert(name, body["id"].as_str().unwrap().to_string());
    }

    // The organization's sign-in page offers its connection.
    let page = text_of(
        &browser(),
        &format!("{base}/console/sign-in?org={}", org.id),
    )
    .await;
    assert!(
        page.contains(&format!("/console/sign-in/start?connection={conn_id}")),
        "{page}"
    );
    assert!(page.contains("Sign in with Company SSO"), "{page}");

    // The admin, by their email's verified domain.
    let carol = browser();
    let start = format!("{base}/console/sign-in/start?email=carol%40example.org");
    let r = console_sign_in(&carol, &base, &start, "carol").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&base, &r), format!("{base}/console/sso"));
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("idbridge_console=") && cookie.contains("Max-Age=3600"),
        "{cookie}"
    );
    for (path, h1) in [
        ("/console/sso", "Single sign-on"),
        ("/console/directories", "Directory sync (SCIM)"),
        ("/console/domains", "Domains"),
        ("/console/mapping", "Group to role mapping"),
        ("/console/people", "People"),
        ("/console/activity", "Activity"),
    ] {
        let r = carol.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let page = r.text().await.unwrap();
        assert!(page.contains(&format!("<h1>{h1}</h1>")), "{path}: {page}");
        assert!(page.contains("You signed in as an admin"), "{path}");
    }
    // An admin changes things: a directory made from the console.
    let page = text_of(&carol, &format!("{base}/console/directories")).await;
    let r = carol
        .post(format!("{base}/console/directories"))
        .form(&[("csrf", csrf_of(&page).as_str()), ("name", "Second")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let activity = text_of(&carol, &format!("{base}/console/activity")).await;
    assert!(activity.contains("console.sign_in"), "{activity}");

    // A viewer reads, and may not change anything.
    let vic = browser();
    let start = format!("{base}/console/sign-in/start?connection={conn_id}");
    let r = console_sign_in(&vic, &base, &start, "vic").await;
    assert_eq!(r.status(), 303);
    let page = text_of(&vic, &format!("{base}/console/domains")).await;
    assert!(page.contains("You signed in as a viewer"), "{page}");
    // The pages show a viewer no form that would answer 403: only reading, and signing out.
    for (path, form) in [
        ("/console/domains", "action=\"/console/domains\""),
        ("/console/directories", "action=\"/console/directories\""),
        ("/console/sso", "action=\"/console/sso\""),
        ("/console/mapping", "/delete\""),
    ] {
        let viewer = text_of(&vic, &format!("{base}{path}")).await;
        assert!(!viewer.contains(form), "{path}: {viewer}");
        assert!(viewer.contains("action=\"/console/sign-out\""), "{path}");
        let admin = text_of(&carol, &format!("{base}{path}")).await;
        assert!(admin.contains(form), "{path}: the admin has it: {admin}");
    }
    let r = vic
        .post(format!("{base}/console/domains"))
        .form(&[
            ("csrf", csrf_of(&page).as_str()),
            ("domain", "vic.example.org"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // A member gets a page saying so, and no session.
    let dave = browser();
    let r = console_sign_in(&dave, &base, &start, "dave").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    let page = r.text().await.unwrap();
    assert!(page.contains("You have no access to the console"), "{page}");
    assert!(page.contains("dave@example.org"), "{page}");
    let r = dave
        .get(format!("{base}/console/sso"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let audit = org_audit(&base, &org).await;
    assert!(audit.contains("console_no_access"), "{audit}");

    // The directory deactivates the admin: their console session ends at the next request.
    let r = reqwest::Client::new()
        .patch(format!("{scim}/Users/{}", scim_ids["carol"]))
        .bearer_auth(&scim_token)
        .header("content-type", "application/scim+json")
        .body(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "replace", "path": "active", "value": false}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = carol
        .get(format!("{base}/console/sso"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The viewer's session is untouched, until an admin signs them out everywhere.
    let r = vic.get(format!("{base}/console/sso")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let users = org_get(&base, &org, "/users?limit=100").await;
    let vic_id = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u.to_string().contains("vic@example.org"))
        .unwrap_or_else(|| panic!("{users}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    api(
        &base,
        &org.admin,
        &o(&format!("/users/{vic_id}/sessions/revoke")),
        json!({}),
    )
    .await;
    let r = vic.get(format!("{base}/console/sso")).send().await.unwrap();
    let status = r.status();
    assert_eq!(status, 401, "{}", r.text().await.unwrap_or_default());
}

/// The upgrade that lets a sign-in open a console session rebuilds the SQLite table: the
/// sessions portal links opened, and their test results, are all still there after it.
#[tokio::test]
async fn console_sessions_and_their_test_results_survive_the_upgrade_to_signed_in_sessions() {
    use crate::sso::{sqlite_migrated_below, upgraded};
    let (_dir, url, pool) = sqlite_migrated_below(17).await;
    let token = "idbc_an-open-session-from-before";
    for sql in [
        "INSERT INTO organizations (id, name, name_ci, created_at) VALUES ('o1', 'Acme', 'acme', 1)"
            .to_string(),
        "INSERT INTO portal_links (id, org_id, token_hash, intent, created_by, created_at, \
         expires_at, used_at) VALUES ('l1', 'o1', 'h', 'sso', 'platform-token:p', 1, 2, 2)"
            .to_string(),
        format!(
            "INSERT INTO console_sessions (id, org_id, link_id, token_hash, intent, created_at, \
             expires_at) VALUES ('s1', 'o1', 'l1', '{}', 'sso', 2, 9000000000000000)",
            idbridge::store::directory::hash_token(token)
        ),
        "INSERT INTO console_tests (id, session_id, connection_id, result, created_at) \
         VALUES ('t1', 's1', 'c1', '{\"ok\": true}', 3)"
            .to_string(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    let store = upgraded(&url, pool).await;
    let session = store.console_session(token).await.unwrap().expect("kept");
    assert_eq!(session.link_id.as_deref(), Some("l1"));
    assert_eq!(session.org_user_id, None);
    assert_eq!(session.intent, "sso");
    let (conn, result) = store.console_test("s1", "t1").await.unwrap().expect("kept");
    assert_eq!((conn.as_str(), result), ("c1", json!({"ok": true})));
    // The session still opens the console of its link.
    let s = console_svc::authenticate(&store, token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.intents(), [Intent::Sso]);
}
