//! Single sign-on over HTTP, without a real IdP: connections, domains and clients through the
//! admin API; home-realm discovery; idbridge as an OpenID provider for the SaaS (authorize, token,
//! userinfo, JWKS) with sessions opened by `service::sign_in::sign_in`, which is what an IdP's verified
//! answer leads to; and the rules that decide who may sign in.

use idbridge::service::setup;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use idbridge::service::sign_in::{SignInError, SignedIn, sign_in};
use idbridge::sso::identity::{GroupClaim, SsoIdentity};
use idbridge::store::admin::OrgScope;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{PUBLIC_URL, Resp, TestApp, assert_patched, enc, patch};

const IDP_SECRET: &str = "idp-client-secret-5f0c2e9a";
const IDP_SSO_URL: &str = "https://idp.example.test/saml/sso";
const REDIRECT_URI: &str = "https://app.example.test/callback";
const VERIFIER: &str = "a-code-verifier-of-at-least-forty-three-characters-0123456789";
const HOUR: Duration = Duration::from_secs(3600);

// ---- helpers ------------------------------------------------------------------------------------

async fn get(app: &TestApp, uri: &str, cookie: Option<&str>) -> Resp {
    let mut req = Request::builder().method(Method::GET).uri(uri);
    if let Some(token) = cookie {
        req = req.header("cookie", format!("idbridge_session={token}"));
    }
    app.send_raw(req.body(Body::empty()).unwrap()).await
}

fn basic(client_id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)))
    )
}

/// POST /oauth/token, form-encoded, with this Authorization header.
async fn token_request(app: &TestApp, auth: &str, form: &[(&str, &str)]) -> Resp {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/oauth/token")
        .header("authorization", auth)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .unwrap();
    app.send_raw(req).await
}

async fn userinfo(app: &TestApp, access_token: &str) -> Resp {
    let req = Request::builder()
        .uri("/oauth/userinfo")
        .header("authorization", format!("Bearer {access_token}"))
        .body(Body::empty())
        .unwrap();
    app.send_raw(req).await
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// `/oauth/authorize` with these parameters.
fn authorize_uri(params: &[(&str, &str)]) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    format!("/oauth/authorize?{q}")
}

/// A well-formed code request of `client_id`, plus (or overriding) `extra`.
fn code_request<'a>(client_id: &'a str, extra: &[(&'a str, &'a str)]) -> String {
    let challenge = challenge(VERIFIER);
    let mut params: Vec<(&str, &str)> = vec![
        ("client_id", client_id),
        ("redirect_uri", REDIRECT_URI),
        ("response_type", "code"),
        ("scope", "openid email"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(name, _)| name != k);
        params.push((k, v));
    }
    authorize_uri(&params)
}

/// The Location of a 303, parsed.
#[track_caller]
fn redirected(r: &Resp) -> url::Url {
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
    url::Url::parse(r.header("location").expect("a Location")).unwrap()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The generic failure page: no redirect, no reason.
#[track_caller]
fn assert_failure_page(r: &Resp) {
    assert!(
        r.status == StatusCode::FORBIDDEN || r.status == StatusCode::BAD_REQUEST,
        "{r:?}"
    );
    assert!(r.header("location").is_none(), "{r:?}");
    let page = r.body.as_str().expect("an HTML page");
    assert!(page.contains("Sign-in failed"), "{page}");
    assert!(page.contains("reference"), "{page}");
}

async fn create(app: &TestApp, token: &str, suffix: &str, body: Value) -> Value {
    let r = app
        .api(Method::POST, &app.org_path(suffix), token, Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "POST {suffix}: {}", r.body);
    r.body
}

/// These tests sign in people of example domains no organization verifies.
fn oidc_input(jit: bool) -> Value {
    json!({
        "name": "Okta",
        "jit": jit,
        "allow_other_domains": true,
        "oidc": {
            "issuer": crate::harness::fake_issuer(),
            "client_id": "idbridge-at-idp",
            "client_secret": IDP_SECRET
        }
    })
}

fn idp_certificate() -> String {
    std::fs::read_to_string("fixtures/saml/keys/idp-rsa.crt").unwrap()
}

fn saml_input(certificates: Value) -> Value {
    json!({
        "name": "Entra",
        "saml": {
            "idp_entity_id": "https://idp.example.test/entity",
            "idp_sso_url": IDP_SSO_URL,
            "idp_certificates": certificates
        }
    })
}

/// An OIDC connection made over the admin API, read back from the store for `sign_in`.
pub(crate) async fn connection(
    app: &TestApp,
    token: &str,
    jit: bool,
) -> idbridge::store::sso::Connection {
    let id = create(app, token, "/sso/connections", oidc_input(jit)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let scope = OrgScope::for_org(&app.org_id, "test");
    app.store.get_connection(&scope, &id).await.unwrap()
}

fn identity(email: &str, groups: GroupClaim) -> SsoIdentity {
    SsoIdentity {
        subject: format!("idp|{email}"),
        email: Some(email.to_string()),
        email_verified: Some(true),
        name: Some("Ada Lovelace".into()),
        groups,
    }
}

pub(crate) fn groups(values: &[&str]) -> GroupClaim {
    GroupClaim::Values(values.iter().map(|v| v.to_string()).collect())
}

pub(crate) async fn sign_in_as(
    app: &TestApp,
    conn: &idbridge::store::sso::Connection,
    email: &str,
    claim: GroupClaim,
) -> Result<SignedIn, SignInError> {
    sign_in(&app.store, conn, &identity(email, claim), HOUR).await
}

/// Registers an application of the organization: (client_id, secret).
async fn client(app: &TestApp, token: &str) -> (String, String) {
    let created = create(
        app,
        token,
        "/clients",
        json!({ "name": "SaaS", "redirect_uris": [REDIRECT_URI] }),
    )
    .await;
    (
        created["client"]["id"].as_str().unwrap().to_string(),
        created["client_secret"].as_str().unwrap().to_string(),
    )
}

async fn sub_account(app: &TestApp, token: &str, name: &str) -> String {
    create(app, token, "/sub-accounts", json!({ "name": name })).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A rule: whoever the IdP says is in `claim` gets `role` in `sa`.
async fn claim_rule(app: &TestApp, token: &str, claim: &str, sa: &str, role: &str) {
    create(
        app,
        token,
        "/mappings",
        json!({
            "matcher": { "type": "claim", "value": claim },
            "grant": { "type": "sub_account_role", "sub_account": { "one": sa }, "role": role }
        }),
    )
    .await;
}

/// The user's role in a sub-account, as the admin API shows it; null when they have none there.
pub(crate) async fn role_in(app: &TestApp, token: &str, user: &str, sa: &str) -> Value {
    let view = app
        .api_ok(&app.org_path(&format!("/users/{user}/access")), token)
        .await;
    view["sub_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == sa)
        .map_or(Value::Null, |s| s["role"].clone())
}

/// A second organization on the same database, and an owner token of it.
async fn other_org(app: &TestApp) -> (String, String) {
    let org = setup::create_org(&app.store, &format!("other-{}", uuid::Uuid::now_v7()))
        .await
        .unwrap();
    let token = setup::create_admin_token(
        &app.store,
        &OrgScope::for_org(&org.id, "test"),
        "org_owner",
        None,
        "t",
    )
    .await
    .unwrap()
    .token;
    (org.id, token)
}

/// A code for the signed-in session, the way a browser with the cookie gets one.
async fn code_for(app: &TestApp, client_id: &str, session_token: &str) -> String {
    let r = get(app, &code_request(client_id, &[]), Some(session_token)).await;
    let to = redirected(&r);
    assert!(to.as_str().starts_with(REDIRECT_URI), "{to}");
    param(&to, "code").expect("a code")
}

fn exchange<'a>(code: &'a str, verifier: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", verifier),
    ]
}

// ---- discovery ----------------------------------------------------------------------------------

#[tokio::test]
async fn discovery_names_our_issuer_and_endpoints_and_jwks_has_one_rsa_key() {
    let app = TestApp::without_directory().await;
    let r = get(&app, "/.well-known/openid-configuration", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let d = &r.body;
    assert_eq!(d["issuer"], PUBLIC_URL);
    assert_eq!(
        d["authorization_endpoint"],
        format!("{PUBLIC_URL}/oauth/authorize")
    );
    assert_eq!(d["token_endpoint"], format!("{PUBLIC_URL}/oauth/token"));
    assert_eq!(
        d["userinfo_endpoint"],
        format!("{PUBLIC_URL}/oauth/userinfo")
    );
    assert_eq!(d["jwks_uri"], format!("{PUBLIC_URL}/oauth/jwks"));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);

    let jwks = get(&app, "/oauth/jwks", None).await;
    assert_eq!(jwks.status, StatusCode::OK, "{}", jwks.body);
    let keys = jwks.body["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{}", jwks.body);
    assert_eq!(keys[0]["kty"], "RSA");
    assert!(
        keys[0]["kid"].as_str().is_some_and(|k| !k.is_empty()),
        "{}",
        jwks.body
    );
    assert!(keys[0].get("d").is_none(), "a private part: {}", jwks.body);
    // Asked again (or by another replica), the same key: it is made once and stored.
    let again = app.replica(PUBLIC_URL);
    let req = Request::builder()
        .uri("/oauth/jwks")
        .body(Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(again, req).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let other: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(other, jwks.body);
}

// ---- connections --------------------------------------------------------------------------------

#[tokio::test]
async fn oidc_connection_keeps_its_client_secret_sealed_and_never_shows_it() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let created = create(&app, &admin, "/sso/connections", oidc_input(true)).await;
    assert_eq!(created["kind"], "oidc");
    assert_eq!(created["has_secret"], true, "{created}");
    assert_eq!(
        created["endpoints"]["redirect_uri"],
        format!("{PUBLIC_URL}/sso/oidc/callback")
    );
    assert!(!created.to_string().contains(IDP_SECRET), "{created}");
    let id = created["id"].as_str().unwrap();
    for shown in [
        app.api_ok(&app.org_path("/sso/connections"), &admin).await,
        app.api_ok(&app.org_path(&format!("/sso/connections/{id}")), &admin)
            .await,
    ] {
        assert!(!shown.to_string().contains(IDP_SECRET), "{shown}");
    }
    let stored = app.store.raw_secret_columns().await.unwrap();
    assert!(!stored.is_empty());
    assert!(
        stored.iter().all(|s| !s.contains(IDP_SECRET)),
        "the secret is stored in clear: {stored:?}"
    );
    // ... and it is still there for the code exchange.
    assert_eq!(
        app.store.connection_secret(id).await.unwrap().as_deref(),
        Some(IDP_SECRET)
    );

    let mut without_secret = oidc_input(false);
    without_secret["oidc"]
        .as_object_mut()
        .unwrap()
        .remove("client_secret");
    app.api(
        Method::POST,
        &app.org_path("/sso/connections"),
        &admin,
        Some(without_secret),
    )
    .await
    .assert_problem(400);
}

/// OIDC Discovery 1.0 §4.3: the configured issuer must be the discovery document's, byte for
/// byte, or every sign-in would fail on the ID token's `iss`; so it is checked when the
/// connection is made or its settings change, and the error says how they differ.
#[tokio::test]
async fn an_oidc_connection_is_checked_against_its_discovery_document_when_made_or_changed() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let path = app.org_path("/sso/connections");
    let fake = crate::harness::fake_issuer();
    let input = |issuer: &str| {
        let mut body = oidc_input(false);
        body["oidc"]["issuer"] = json!(issuer);
        body
    };
    let refused = |r: Resp| {
        r.assert_problem(400);
        r.body["detail"].as_str().unwrap().to_string()
    };

    let slash = format!("{fake}/tenant/");
    let detail = refused(
        app.api(Method::POST, &path, &admin, Some(input(&slash)))
            .await,
    );
    assert_eq!(
        detail,
        format!(
            "oidc.issuer: issuer mismatch: configured \"{fake}/tenant/\" but discovery says \
             \"{fake}/tenant\" (trailing slash)"
        )
    );
    let not_json = format!("{fake}/not-json");
    let detail = refused(
        app.api(Method::POST, &path, &admin, Some(input(&not_json)))
            .await,
    );
    assert!(detail.contains("not JSON"), "{detail}");
    let missing = format!("{fake}/missing");
    let detail = refused(
        app.api(Method::POST, &path, &admin, Some(input(&missing)))
            .await,
    );
    assert!(detail.contains("answered 404"), "{detail}");
    // Nothing listens on a port just freed.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let detail = refused(
        app.api(Method::POST, &path, &admin, Some(input(&closed)))
            .await,
    );
    assert!(
        detail.starts_with(&format!(
            "oidc.issuer: discovery failed: request to {closed}"
        )),
        "{detail}"
    );
    assert_eq!(app.api_ok(&path, &admin).await["items"], json!([]));

    let good = format!("{fake}/tenant");
    let created = create(&app, &admin, "/sso/connections", input(&good)).await;
    let one = app.org_path(&format!(
        "/sso/connections/{}",
        created["id"].as_str().unwrap()
    ));
    let change = |issuer: &str| json!({"oidc": {"issuer": issuer, "client_id": "idbridge-at-idp"}});
    let detail = refused(
        app.api(Method::PATCH, &one, &admin, Some(change(&slash)))
            .await,
    );
    assert!(detail.contains("(trailing slash)"), "{detail}");
    assert_eq!(
        app.api_ok(&one, &admin).await["config"]["issuer"],
        good.as_str()
    );
    let other = format!("{fake}/other");
    let r = app
        .api(Method::PATCH, &one, &admin, Some(change(&other)))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.api_ok(&one, &admin).await["config"]["issuer"],
        other.as_str()
    );
}

#[tokio::test]
async fn saml_connection_needs_a_usable_certificate_and_publishes_sp_metadata() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    let path = app.org_path("/sso/connections");
    for certificates in [json!([]), json!(["garbage"])] {
        app.api(
            Method::POST,
            &path,
            &admin,
            Some(saml_input(certificates.clone())),
        )
        .await
        .assert_problem(400);
    }
    assert_eq!(
        app.api_ok(&path, &admin).await["items"],
        json!([]),
        "a refused connection is not stored"
    );

    let created = create(
        &app,
        &admin,
        "/sso/connections",
        saml_input(json!([idp_certificate()])),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let entity = format!("{PUBLIC_URL}/sso/saml/{id}");
    let acs = format!("{entity}/acs");
    assert_eq!(created["kind"], "saml");
    assert_eq!(created["endpoints"]["sp_entity_id"], entity);
    assert_eq!(created["endpoints"]["acs_url"], acs);
    let metadata_url = created["endpoints"]["sp_metadata_url"].as_str().unwrap();
    assert_eq!(metadata_url, format!("{entity}/metadata"));

    let md = get(&app, metadata_url.strip_prefix(PUBLIC_URL).unwrap(), None).await;
    assert_eq!(md.status, StatusCode::OK, "{md:?}");
    assert_eq!(
        md.header("content-type"),
        Some("application/samlmetadata+xml")
    );
    let xml = md.body.as_str().expect("XML");
    assert!(xml.contains(&format!("entityID=\"{entity}\"")), "{xml}");
    assert!(xml.contains(&format!("Location=\"{acs}\"")), "{xml}");

    let unknown = get(&app, "/sso/saml/no-such-connection/metadata", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_the_organizations_managers_touch_its_connections() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let viewer = app.admin_token("org_viewer", None).await;
    let path = app.org_path("/sso/connections");
    app.api(Method::POST, &path, &viewer, Some(oidc_input(true)))
        .await
        .assert_problem(403);
    let id = create(&app, &admin, "/sso/connections", oidc_input(true)).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A viewer reads, without the secret.
    let listed = app.api_ok(&path, &viewer).await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(!listed.to_string().contains(IDP_SECRET));
    app.api(
        Method::DELETE,
        &app.org_path(&format!("/sso/connections/{id}")),
        &viewer,
        None,
    )
    .await
    .assert_problem(403);

    let (_, stranger) = other_org(&app).await;
    app.api(Method::POST, &path, &stranger, Some(oidc_input(true)))
        .await
        .assert_problem(404);
    app.api(Method::GET, &path, &stranger, None)
        .await
        .assert_problem(404);
    app.api(
        Method::DELETE,
        &app.org_path(&format!("/sso/connections/{id}")),
        &stranger,
        None,
    )
    .await
    .assert_problem(404);
    assert_eq!(
        app.api_ok(&path, &admin).await["items"][0]["id"],
        id.as_str()
    );
}

// ---- domains and home-realm discovery -----------------------------------------------------------

/// A domain no other test publishes records for (the test DNS server is shared).
fn unique_domain() -> String {
    format!("d{}.example", uuid::Uuid::now_v7().simple())
}

async fn verify(app: &TestApp, org: &str, token: &str, domain: &str) -> Resp {
    app.api(
        Method::POST,
        &format!("/api/v1/orgs/{org}/domains/{domain}/verify"),
        token,
        None,
    )
    .await
}

#[tokio::test]
async fn a_domain_sends_its_users_to_the_idp_only_once_dns_proves_the_organization_owns_it() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    let conn = create(
        &app,
        &admin,
        "/sso/connections",
        saml_input(json!([idp_certificate()])),
    )
    .await;
    let domain = unique_domain();
    let claim = create(
        &app,
        &admin,
        "/domains",
        json!({ "domain": domain.to_uppercase() }),
    )
    .await;
    assert_eq!(claim["domain"], domain.as_str());
    assert_eq!(claim["verified"], false);
    let record = &claim["verification"];
    assert_eq!(record["record_type"], "TXT");
    assert_eq!(
        record["name"],
        format!("_idbridge-verification.{domain}").as_str()
    );
    let value = record["value"].as_str().unwrap().to_string();
    assert!(value.starts_with("idbridge-verification="), "{value}");
    let record_name = record["name"].as_str().unwrap().to_string();
    let start = format!("/sso/start?email=someone%40{}", domain.to_uppercase());

    // Claimed, not proven: the domain routes nobody yet.
    let r = get(&app, &start, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    assert_failure_page(&r);

    // Anyone may claim a domain nobody verified; their claims do not disturb each other.
    let (other_id, other) = other_org(&app).await;
    let rival = app
        .api(
            Method::POST,
            &format!("/api/v1/orgs/{other_id}/domains"),
            &other,
            Some(json!({ "domain": domain })),
        )
        .await;
    assert_eq!(rival.status, StatusCode::CREATED, "{}", rival.body);
    let rival_value = rival.body["verification"]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rival_value, value, "each claim has a token of its own");

    // No record yet, then someone else's record: the admin is told what to publish.
    let r = verify(&app, &app.org_id, &admin, &domain).await;
    r.assert_problem(409);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains(&record_name) && detail.contains(&value),
        "{detail}"
    );
    assert!(detail.contains("found: none"), "{detail}");
    crate::dns::publish(&record_name, &rival_value);
    let r = verify(&app, &app.org_id, &admin, &domain).await;
    r.assert_problem(409);
    assert!(r.body["detail"].as_str().unwrap().contains(&rival_value));
    assert_eq!(
        app.api_ok(&app.org_path("/domains"), &admin).await["items"][0]["verified"],
        false
    );

    // The organization's own record proves it; verifying again changes nothing.
    crate::dns::publish(&record_name, &value);
    let r = verify(&app, &app.org_id, &admin, &domain).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["verified"], true);
    let at = r.body["verified_at"].as_str().unwrap().to_string();
    assert!(at.ends_with('Z'), "{at}");
    let again = verify(&app, &app.org_id, &admin, &domain).await;
    assert_eq!(again.body["verified_at"].as_str(), Some(at.as_str()));

    // The rival's own record cannot win it now, and no third organization may claim it.
    let r = verify(&app, &other_id, &other, &domain).await;
    r.assert_problem(409);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("another organization"),
        "{}",
        r.body
    );
    let (third_id, third) = other_org(&app).await;
    app.api(
        Method::POST,
        &format!("/api/v1/orgs/{third_id}/domains"),
        &third,
        Some(json!({ "domain": domain })),
    )
    .await
    .assert_problem(409);

    let r = get(&app, &start, None).await;
    let to = redirected(&r);
    assert!(to.as_str().starts_with(IDP_SSO_URL), "{to}");
    assert!(
        param(&to, "SAMLRequest").is_some_and(|v| !v.is_empty()),
        "{to}"
    );
    assert!(
        param(&to, "RelayState").is_some_and(|v| !v.is_empty()),
        "{to}"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));

    let audit = app
        .api_ok(&app.org_path("/audit"), &admin)
        .await
        .to_string();
    assert!(audit.contains("verify"), "{audit}");

    // The request names our entity id: the IdP answers to this connection's ACS.
    let deflated = STANDARD.decode(param(&to, "SAMLRequest").unwrap()).unwrap();
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::DeflateDecoder::new(deflated.as_slice()),
        &mut xml,
    )
    .unwrap();
    let id = conn["id"].as_str().unwrap();
    assert!(
        xml.contains(&format!("{PUBLIC_URL}/sso/saml/{id}/acs")),
        "{xml}"
    );
}

/// Every claim of a domain leaves its record at the same name until someone removes it, so the
/// answer can outgrow a 512-byte DNS message; the organization's own record is still found.
#[tokio::test]
async fn a_domain_is_verified_among_many_records_at_its_name() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    let domain = unique_domain();
    let claim = create(&app, &admin, "/domains", json!({ "domain": domain })).await;
    let name = claim["verification"]["name"].as_str().unwrap();
    for n in 0..12 {
        crate::dns::publish(
            name,
            &format!("idbridge-verification=an-earlier-claim-that-nobody-removed-{n:02}"),
        );
    }
    crate::dns::publish(name, claim["verification"]["value"].as_str().unwrap());
    let r = verify(&app, &app.org_id, &admin, &domain).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["verified"], true);
}

#[tokio::test]
async fn domain_verification_says_when_dns_fails_and_needs_a_manager() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    let viewer = app.admin_token("org_viewer", None).await;
    let domain = format!("{}.servfail.test", uuid::Uuid::now_v7().simple());
    create(&app, &admin, "/domains", json!({ "domain": domain })).await;

    verify(&app, &app.org_id, &viewer, &domain)
        .await
        .assert_problem(403);
    let r = verify(&app, &app.org_id, &admin, &domain).await;
    r.assert_problem(503);
    assert!(
        r.body["detail"].as_str().unwrap().contains("try again"),
        "{}",
        r.body
    );
    verify(&app, &app.org_id, &admin, "not-claimed.example")
        .await
        .assert_problem(404);
    assert_eq!(
        app.api_ok(&app.org_path("/domains"), &admin).await["items"][0]["verified"],
        false
    );
}

/// Domains declared before verification existed keep routing their users after the upgrade.
/// A SQLite database as an earlier version left it: the migrations before `version` applied.
pub(crate) async fn sqlite_migrated_below(
    version: i64,
) -> (tempfile::TempDir, String, sqlx::SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let mut before = sqlx::migrate::Migrator::new(std::path::Path::new("migrations/sqlite"))
        .await
        .unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    (dir, url, pool)
}

/// The store of this version opened on `url` once the old version's `pool` is closed.
pub(crate) async fn upgraded(url: &str, pool: sqlx::SqlitePool) -> idbridge::store::Store {
    pool.close().await;
    let store = idbridge::store::Store::connect(url, &Default::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test]
async fn domains_declared_before_verification_stay_verified_after_the_upgrade() {
    let (_dir, url, pool) = sqlite_migrated_below(6).await;
    sqlx::query("INSERT INTO organizations (id, name, name_ci, created_at) VALUES ('o1', 'Acme', 'acme', 1)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO org_domains (domain, org_id, connection_id, created_at) \
         VALUES ('acme.example', 'o1', NULL, 7)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let store = upgraded(&url, pool).await;
    let scope = OrgScope::for_org("o1", "test");
    let domains = store.list_domains(&scope).await.unwrap();
    assert_eq!(domains.len(), 1);
    assert_eq!(domains[0].domain, "acme.example");
    assert!(domains[0].verified);
    assert_eq!(domains[0].verified_at, Some(7));
    assert!(
        store
            .org_for_email("someone@acme.example")
            .await
            .unwrap()
            .is_some_and(|o| o == "o1")
    );
}

#[tokio::test]
async fn an_unknown_domain_gets_the_generic_failure_page() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    create(&app, &admin, "/sso/connections", oidc_input(true)).await;
    create(&app, &admin, "/domains", json!({ "domain": "example.com" })).await;
    for uri in [
        "/sso/start?email=someone%40unknown.example",
        "/sso/start",
        "/sso/no-such-connection/start",
    ] {
        let r = get(&app, uri, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}: {r:?}");
        assert_failure_page(&r);
        let page = r.body.as_str().unwrap().to_lowercase();
        for word in ["domain", "unknown", "organization", "connection"] {
            assert!(!page.contains(word), "{uri} reveals {word:?}: {page}");
        }
    }
}

// ---- the authorization endpoint -----------------------------------------------------------------

#[tokio::test]
async fn an_organizations_client_secret_is_shown_once() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    let (id, secret) = client(&app, &admin).await;
    assert!(id.starts_with("idbc_") && !secret.is_empty());
    let listed = app.api_ok(&app.org_path("/clients"), &admin).await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert_eq!(listed["items"][0]["redirect_uris"], json!([REDIRECT_URI]));
    assert!(!listed.to_string().contains(&secret), "{listed}");
    assert!(listed["items"][0].get("secret_hash").is_none(), "{listed}");

    let r = app
        .api(
            Method::POST,
            &app.org_path("/clients"),
            &admin,
            Some(json!({ "name": "SaaS", "redirect_uris": ["http://app.example.test/cb"] })),
        )
        .await;
    r.assert_problem(400);

    // A revoked client can no longer ask for codes.
    let r = app
        .api(
            Method::DELETE,
            &app.org_path(&format!("/clients/{id}")),
            &admin,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_failure_page(&get(&app, &code_request(&id, &[]), None).await);
    let r = token_request(
        &app,
        &basic(&id, &secret),
        &exchange("idbac_whatever", VERIFIER),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

#[tokio::test]
async fn authorize_shows_a_page_rather_than_redirect_until_client_and_uri_are_known() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    let (client_id, _) = client(&app, &admin).await;
    for uri in [
        code_request("idbc_unknown", &[]),
        authorize_uri(&[("redirect_uri", REDIRECT_URI), ("response_type", "code")]),
        code_request(
            &client_id,
            &[("redirect_uri", "https://attacker.example/callback")],
        ),
        code_request(&client_id, &[("redirect_uri", "https://app.example.test/")]),
    ] {
        let r = get(&app, &uri, None).await;
        assert_failure_page(&r);
    }
}

#[tokio::test]
async fn authorize_errors_go_back_to_the_client_with_its_state_and_our_issuer() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    let (client_id, _) = client(&app, &admin).await;
    let operator = idbridge::service::admin::register_client(
        &app.store,
        None,
        "operator app",
        &[REDIRECT_URI.to_string()],
    )
    .await
    .unwrap()
    .0
    .id;
    let cases: Vec<(String, &str)> = vec![
        (
            code_request(&client_id, &[("code_challenge_method", "plain")]),
            "invalid_request",
        ),
        (
            code_request(&client_id, &[("code_challenge", "")]),
            "invalid_request",
        ),
        (
            authorize_uri(&[
                ("client_id", &client_id),
                ("redirect_uri", REDIRECT_URI),
                ("response_type", "code"),
                ("scope", "openid"),
                ("state", "st-123"),
            ]),
            "invalid_request",
        ),
        (
            code_request(&client_id, &[("response_type", "token")]),
            "unsupported_response_type",
        ),
        (
            code_request(&client_id, &[("scope", "email")]),
            "invalid_scope",
        ),
        (code_request(&operator, &[]), "invalid_request"),
        (
            code_request(&client_id, &[("prompt", "none")]),
            "login_required",
        ),
        // A client of the organization does not sign in another organization's users.
        (
            code_request(&client_id, &[("org", "another-org")]),
            "access_denied",
        ),
    ];
    for (uri, error) in cases {
        let r = get(&app, &uri, None).await;
        let to = redirected(&r);
        assert!(to.as_str().starts_with(REDIRECT_URI), "{uri}: {to}");
        assert_eq!(param(&to, "error").as_deref(), Some(error), "{uri}: {to}");
        assert_eq!(
            param(&to, "state").as_deref(),
            Some("st-123"),
            "{uri}: {to}"
        );
        assert_eq!(
            param(&to, "iss").as_deref(),
            Some(PUBLIC_URL),
            "{uri}: {to}"
        );
        assert!(param(&to, "code").is_none(), "{uri}: {to}");
    }
}

// ---- the code flow, end to end without an IdP ---------------------------------------------------

/// An organization without directory, a JIT connection, a client, and a rule that makes
/// "Engineering" (a group claim) admin of the sub-account "Marketing".
struct Op {
    app: TestApp,
    owner: String,
    conn: idbridge::store::sso::Connection,
    client_id: String,
    secret: String,
    sa: String,
}

async fn op() -> Op {
    let app = TestApp::without_directory().await.reaching_fakes();
    let owner = app.admin_token("org_owner", None).await;
    let sa = sub_account(&app, &owner, "Marketing").await;
    claim_rule(&app, &owner, "Engineering", &sa, "admin").await;
    let conn = connection(&app, &owner, true).await;
    let (client_id, secret) = client(&app, &owner).await;
    Op {
        app,
        owner,
        conn,
        client_id,
        secret,
        sa,
    }
}

#[tokio::test]
async fn the_code_gives_a_signed_id_token_with_the_users_organization_and_access() {
    let Op {
        app,
        conn,
        client_id,
        secret,
        sa,
        ..
    } = op().await;
    let signed = sign_in_as(&app, &conn, "ada@example.com", groups(&["Engineering"]))
        .await
        .unwrap();
    assert!(signed.created);

    let r = get(
        &app,
        &code_request(&client_id, &[]),
        Some(&signed.session_token),
    )
    .await;
    let to = redirected(&r);
    assert_eq!(to.path(), "/callback");
    assert_eq!(param(&to, "state").as_deref(), Some("st-123"));
    assert_eq!(param(&to, "iss").as_deref(), Some(PUBLIC_URL));
    let code = param(&to, "code").expect("a code");

    let r = token_request(
        &app,
        &basic(&client_id, &secret),
        &exchange(&code, VERIFIER),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.body["token_type"], "Bearer");
    let access_token = r.body["access_token"].as_str().unwrap().to_string();
    let id_token = r.body["id_token"].as_str().unwrap();

    let jwks = get(&app, "/oauth/jwks", None).await.body;
    let claims = idbridge::oauth::token::verify(id_token, &jwks).expect("signed by our key");
    assert_eq!(claims["iss"], PUBLIC_URL);
    assert_eq!(claims["aud"], client_id.as_str());
    assert_eq!(claims["sub"], signed.org_user_id.as_str());
    assert_eq!(claims["email"], "ada@example.com");
    assert_eq!(claims["nonce"], "n-456");
    assert_eq!(claims["sid"], signed.session_id.as_str());
    assert_eq!(
        claims["at_hash"],
        idbridge::oauth::token::at_hash(&access_token)
    );
    assert_eq!(claims["org"], app.org_id.as_str());
    assert!(claims["org_roles"].is_array(), "{claims}");
    assert_eq!(
        claims["accounts"],
        json!([{ "id": sa, "role": "admin", "permissions": {}, "projects": {} }]),
        "{claims}"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(exp > now && exp <= now + 3600, "{claims}");

    // Another key set does not verify it.
    let foreign = idbridge::oauth::token::SigningKey::generate().unwrap();
    let foreign_jwks = idbridge::oauth::token::jwks(&[foreign.public_jwk()]);
    assert!(idbridge::oauth::token::verify(id_token, &foreign_jwks).is_err());

    let info = userinfo(&app, &access_token).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_eq!(info.body["sub"], claims["sub"]);
    assert_eq!(info.body["org"], claims["org"]);
    assert_eq!(info.body["accounts"], claims["accounts"]);
    let bad = userinfo(&app, "idbat_not-a-token").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.header("www-authenticate").is_some());
}

#[tokio::test]
async fn a_code_works_once_for_its_client_secret_and_verifier() {
    let Op {
        app,
        owner,
        conn,
        client_id,
        secret,
        ..
    } = op().await;
    let signed = sign_in_as(&app, &conn, "ada@example.com", GroupClaim::Absent)
        .await
        .unwrap();
    let auth = basic(&client_id, &secret);

    // A wrong secret: 401 with a challenge, and the code is not spent.
    let code = code_for(&app, &client_id, &signed.session_token).await;
    let r = token_request(
        &app,
        &basic(&client_id, "idbcs_wrong"),
        &exchange(&code, VERIFIER),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.body["error"], "invalid_client");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic"))
    );

    // Basic for one client and a form client_id naming another: refused as ambiguous.
    let mut mixed = exchange(&code, VERIFIER).to_vec();
    mixed.push(("client_id", "idbc_someone_else"));
    let r = token_request(&app, &auth, &mixed).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.body["error"], "invalid_client");

    let r = token_request(&app, &auth, &exchange(&code, VERIFIER)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let access_token = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(userinfo(&app, &access_token).await.status, StatusCode::OK);
    let again = token_request(&app, &auth, &exchange(&code, VERIFIER)).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert_eq!(again.body["error"], "invalid_grant");
    // RFC 6749 §4.1.2: a code used twice may have been stolen; what the first use gave stops
    // working.
    assert_eq!(
        userinfo(&app, &access_token).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A code is bound to the client it was issued to and to the redirect_uri it was sent to.
    let (other_client, other_secret) = client(&app, &owner).await;
    let code = code_for(&app, &client_id, &signed.session_token).await;
    let r = token_request(
        &app,
        &basic(&other_client, &other_secret),
        &exchange(&code, VERIFIER),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"], "invalid_grant");
    let code = code_for(&app, &client_id, &signed.session_token).await;
    let mut form = exchange(&code, VERIFIER);
    form[2].1 = "https://app.example.test/other";
    let r = token_request(&app, &auth, &form).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"], "invalid_grant");

    let code = code_for(&app, &client_id, &signed.session_token).await;
    let other_verifier = "another-code-verifier-of-at-least-forty-three-characters-01";
    let r = token_request(&app, &auth, &exchange(&code, other_verifier)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"], "invalid_grant");

    // The client secret in the form works as well as in Basic.
    let code = code_for(&app, &client_id, &signed.session_token).await;
    let mut form = exchange(&code, VERIFIER).to_vec();
    form.extend([
        ("client_id", client_id.as_str()),
        ("client_secret", secret.as_str()),
    ]);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/oauth/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&form)
                .finish(),
        ))
        .unwrap();
    let r = app.send_raw(req).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_revoked_session_ends_userinfo_and_the_codes_issued_for_it() {
    let Op {
        app,
        owner,
        conn,
        client_id,
        secret,
        ..
    } = op().await;
    let signed = sign_in_as(&app, &conn, "ada@example.com", GroupClaim::Absent)
        .await
        .unwrap();
    let auth = basic(&client_id, &secret);
    let code = code_for(&app, &client_id, &signed.session_token).await;
    let r = token_request(&app, &auth, &exchange(&code, VERIFIER)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let access_token = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(userinfo(&app, &access_token).await.status, StatusCode::OK);
    let pending = code_for(&app, &client_id, &signed.session_token).await;

    let sessions = app
        .api_ok(
            &app.org_path(&format!("/users/{}/sessions", signed.org_user_id)),
            &owner,
        )
        .await;
    assert_eq!(sessions["items"][0]["id"], signed.session_id.as_str());
    let r = app
        .api(
            Method::DELETE,
            &app.org_path(&format!("/sessions/{}", signed.session_id)),
            &owner,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    let info = userinfo(&app, &access_token).await;
    assert_eq!(info.status, StatusCode::UNAUTHORIZED);
    assert!(info.header("www-authenticate").is_some());
    let r = token_request(&app, &auth, &exchange(&pending, VERIFIER)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"], "invalid_grant");
    // The cookie no longer signs in: a silent request says so.
    let r = get(
        &app,
        &code_request(&client_id, &[("prompt", "none")]),
        Some(&signed.session_token),
    )
    .await;
    assert_eq!(
        param(&redirected(&r), "error").as_deref(),
        Some("login_required")
    );
}

// ---- who may sign in ----------------------------------------------------------------------------

#[tokio::test]
async fn with_a_scim_directory_only_provisioned_active_users_sign_in() {
    let app = TestApp::new().await.reaching_fakes();
    let owner = app.admin_token("org_owner", None).await;
    // JIT on, which a directory overrides.
    let conn = connection(&app, &owner, true).await;
    let err = sign_in_as(&app, &conn, "nobody@example.com", GroupClaim::Absent)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_provisioned");

    let scim_user = app.user("ada@example.com").await;
    let signed = sign_in_as(&app, &conn, "Ada@Example.com", GroupClaim::Absent)
        .await
        .unwrap();
    assert!(!signed.created);
    assert_eq!(
        signed.org_user_id,
        app.org_user_id(&owner, "ada@example.com").await
    );
    assert!(
        app.store
            .live_session(&signed.session_token, HOUR)
            .await
            .unwrap()
            .is_some()
    );

    assert_patched(
        &app.patch(
            &format!("/Users/{scim_user}"),
            patch(json!([{ "op": "replace", "path": "active", "value": false }])),
        )
        .await,
    );
    let err = sign_in_as(&app, &conn, "ada@example.com", GroupClaim::Absent)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "deprovisioned");
    assert!(
        app.store
            .live_session(&signed.session_token, HOUR)
            .await
            .unwrap()
            .is_none()
    );
    let sessions = app
        .api_ok(
            &app.org_path(&format!("/users/{}/sessions", signed.org_user_id)),
            &owner,
        )
        .await;
    assert_eq!(sessions["items"].as_array().unwrap().len(), 1, "{sessions}");
    assert!(sessions["items"][0]["revoked_at"].is_string(), "{sessions}");
}

#[tokio::test]
async fn without_a_directory_only_a_jit_connection_creates_users() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let owner = app.admin_token("org_owner", None).await;
    let no_jit = connection(&app, &owner, false).await;
    let err = sign_in_as(&app, &no_jit, "ada@example.com", GroupClaim::Absent)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_provisioned");
    let users = app.api_ok(&app.org_path("/users"), &owner).await;
    assert_eq!(users["items"], json!([]), "{users}");

    let jit = connection(&app, &owner, true).await;
    let mut unverified = identity("ada@example.com", GroupClaim::Absent);
    unverified.email_verified = Some(false);
    let err = sign_in(&app.store, &jit, &unverified, HOUR)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "email_not_verified");
    let mut no_email = identity("ada@example.com", GroupClaim::Absent);
    no_email.email = None;
    let err = sign_in(&app.store, &jit, &no_email, HOUR)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "no_email");

    let signed = sign_in_as(&app, &jit, "ada@example.com", GroupClaim::Absent)
        .await
        .unwrap();
    assert!(signed.created);
    let users = app.api_ok(&app.org_path("/users"), &owner).await;
    let items = users["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{users}");
    assert_eq!(items[0]["id"], signed.org_user_id.as_str());
    assert_eq!(items[0]["user_name"], "ada@example.com");
    assert_eq!(items[0]["active"], true);

    // The second sign-in finds the same user, even through the connection without JIT.
    let again = sign_in_as(&app, &no_jit, "ADA@example.com", GroupClaim::Absent)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.org_user_id, signed.org_user_id);

    // A disabled connection signs nobody in.
    let r = app
        .api(
            Method::PATCH,
            &app.org_path(&format!("/sso/connections/{}", jit.id)),
            &owner,
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let disabled = app
        .store
        .get_connection(&OrgScope::for_org(&app.org_id, "test"), &jit.id)
        .await
        .unwrap();
    let err = sign_in_as(&app, &disabled, "ada@example.com", GroupClaim::Absent)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "connection_disabled");
}

#[tokio::test]
async fn group_claims_drive_access_and_an_overage_keeps_the_last_ones() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let owner = app.admin_token("org_owner", None).await;
    let sa = sub_account(&app, &owner, "Marketing").await;
    claim_rule(&app, &owner, "Engineering", &sa, "admin").await;
    let conn = connection(&app, &owner, true).await;

    let user = sign_in_as(&app, &conn, "ada@example.com", groups(&["Engineering"]))
        .await
        .unwrap()
        .org_user_id;
    assert_eq!(role_in(&app, &owner, &user, &sa).await, "admin");

    sign_in_as(&app, &conn, "ada@example.com", GroupClaim::Overage)
        .await
        .unwrap();
    assert_eq!(role_in(&app, &owner, &user, &sa).await, "admin");
    sign_in_as(&app, &conn, "ada@example.com", GroupClaim::Absent)
        .await
        .unwrap();
    assert_eq!(role_in(&app, &owner, &user, &sa).await, "admin");

    // The IdP says the user left the group: the access goes with it.
    sign_in_as(&app, &conn, "ada@example.com", groups(&["Sales"]))
        .await
        .unwrap();
    assert_eq!(role_in(&app, &owner, &user, &sa).await, Value::Null);
}

// ---- sessions -----------------------------------------------------------------------------------

#[tokio::test]
async fn a_session_ends_when_idle_and_at_logout() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let owner = app.admin_token("org_owner", None).await;
    let conn = connection(&app, &owner, true).await;
    let signed = sign_in_as(&app, &conn, "ada@example.com", GroupClaim::Absent)
        .await
        .unwrap();
    let live = app
        .store
        .live_session(&signed.session_token, HOUR)
        .await
        .unwrap()
        .expect("live");
    assert_eq!(live.id, signed.session_id);
    assert_eq!(live.org_id, app.org_id);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        app.store
            .live_session(&signed.session_token, Duration::from_millis(5))
            .await
            .unwrap()
            .is_none(),
        "idle for longer than the idle timeout"
    );
    assert!(
        app.store
            .live_session("idbs_not-a-session", HOUR)
            .await
            .unwrap()
            .is_none()
    );

    // A GET only asks: an image tag on any page must not sign the user out.
    let r = get(&app, "/sso/logout", Some(&signed.session_token)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("set-cookie").is_none(), "{r:?}");
    assert!(r.body.as_str().unwrap().contains("method=post"), "{r:?}");
    let live = |app: &TestApp| {
        let (store, token) = (app.store.clone(), signed.session_token.clone());
        async move { store.live_session(&token, HOUR).await.unwrap().is_some() }
    };
    assert!(live(&app).await);

    // Another site's form posting here is refused; the user's own click is not.
    let post = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/sso/logout")
            .header(
                "cookie",
                format!("idbridge_session={}", signed.session_token),
            );
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(f) = fetch_site {
            req = req.header("sec-fetch-site", f);
        }
        req.body(Body::empty()).unwrap()
    };
    for (origin, site) in [
        (Some("https://evil.example.test"), None),
        (None, Some("cross-site")),
    ] {
        let r = app.send_raw(post(origin, site)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{origin:?} {site:?}");
        assert!(r.header("set-cookie").is_none());
        assert!(live(&app).await, "{origin:?} {site:?}");
    }
    let r = app
        .send_raw(post(Some(PUBLIC_URL), Some("same-origin")))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.header("set-cookie").expect("the cookie is cleared");
    assert!(
        cookie.starts_with("idbridge_session=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
    assert!(
        app.store
            .live_session(&signed.session_token, HOUR)
            .await
            .unwrap()
            .is_none()
    );
}

/// The ACS reads at most 1 MiB of form; a SAMLResponse that decodes past the validator's limit is
/// refused with the generic page, and neither reaches the XML parser.
#[tokio::test]
async fn the_acs_bounds_what_it_reads() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    // IdP-initiated allowed, so that the response itself is what is refused.
    let mut input = saml_input(json!([idp_certificate()]));
    input["saml"]["idp_initiated"] = json!(true);
    let created = create(&app, &admin, "/sso/connections", input).await;
    let acs = format!("/sso/saml/{}/acs", created["id"].as_str().unwrap());
    let post = |body: String| {
        Request::builder()
            .method(Method::POST)
            .uri(&acs)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap()
    };
    let huge = format!("SAMLResponse={}", "A".repeat(1024 * 1024 + 1));
    let r = app.send_raw(post(huge)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Under the form limit but over the decoded-response limit (256 KiB).
    let big = STANDARD.encode(vec![b'<'; 300 * 1024]);
    let r = app
        .send_raw(post(format!("SAMLResponse={}", enc(&big))))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let audit = app
        .api_ok(&app.org_path("/audit?resource_type=SsoConnection"), &admin)
        .await
        .to_string();
    assert!(audit.contains("limit"), "{audit}");
}

// ---- set-up in the order the IdP asks for it ----------------------------------------------------

/// The base64 body of the test IdP's certificate, as metadata carries it and IdP pages show it.
fn bare_certificate() -> String {
    idp_certificate()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

#[tokio::test]
async fn a_saml_connection_made_before_the_idp_details_is_incomplete_until_a_patch_gives_them() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    let (client_id, _) = client(&app, &admin).await;
    let created = create(
        &app,
        &admin,
        "/sso/connections",
        json!({ "name": "Okta", "saml": {} }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["status"], "incomplete", "{created}");
    assert_eq!(
        created["missing"],
        json!(["idp_entity_id", "idp_sso_url", "idp_certificates"])
    );
    let entity = format!("{PUBLIC_URL}/sso/saml/{id}");
    assert_eq!(created["endpoints"]["sp_entity_id"], entity);
    assert_eq!(created["endpoints"]["acs_url"], format!("{entity}/acs"));
    assert_eq!(
        created["endpoints"]["sp_metadata_url"],
        format!("{entity}/metadata")
    );
    // What the IdP's admin pastes into Okta or Entra is served already.
    let md = get(&app, &format!("/sso/saml/{id}/metadata"), None).await;
    assert_eq!(md.status, StatusCode::OK, "{md:?}");
    assert!(md.body.as_str().unwrap().contains(&format!("{entity}/acs")));

    // It signs nobody in, says why on the page, and is not the one the organization's sign-in picks.
    let r = get(&app, &format!("/sso/{id}/start"), None).await;
    assert_failure_page(&r);
    let page = r.body.as_str().unwrap();
    assert!(
        page.contains("not set up yet") && page.contains("idp_certificates"),
        "{page}"
    );
    let r = get(
        &app,
        &code_request(&client_id, &[("org", app.org_id.as_str())]),
        None,
    )
    .await;
    let to = redirected(&r);
    assert_eq!(
        param(&to, "error").as_deref(),
        Some("access_denied"),
        "{to}"
    );
    let acs = app
        .send_raw(
            Request::builder()
                .method(Method::POST)
                .uri(format!("/sso/saml/{id}/acs"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("SAMLResponse=PHg%2B"))
                .unwrap(),
        )
        .await;
    assert_failure_page(&acs);
    assert!(acs.body.as_str().unwrap().contains("not set up yet"));

    // The IdP's details come later, the certificate as the bare base64 its page shows; a PATCH
    // merges them into what is stored.
    let path = app.org_path(&format!("/sso/connections/{id}"));
    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin,
            Some(
                json!({ "saml": { "idp_entity_id": "https://idp.example.test/entity",
                                   "idp_sso_url": IDP_SSO_URL } }),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["missing"], json!(["idp_certificates"]));
    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({ "saml": { "idp_certificates": ["not a certificate"] } })),
        )
        .await;
    r.assert_problem(400);
    assert!(
        r.body["detail"].as_str().unwrap().contains("base64"),
        "{}",
        r.body
    );
    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({ "saml": { "idp_certificates": [bare_certificate()] } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "complete", "{}", r.body);
    assert_eq!(r.body["missing"], json!([]));
    assert_eq!(
        r.body["config"]["idp_sso_url"], IDP_SSO_URL,
        "merged, not replaced"
    );
    assert!(
        r.body["config"]["idp_certificates"][0]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    // A switch alone keeps the IdP's details.
    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({ "saml": { "idp_initiated": true } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "complete", "{}", r.body);
    assert_eq!(r.body["config"]["idp_initiated"], true);

    let r = get(&app, &format!("/sso/{id}/start"), None).await;
    assert!(redirected(&r).as_str().starts_with(IDP_SSO_URL));
}

#[tokio::test]
async fn a_saml_certificate_is_accepted_as_pem_or_the_base64_of_metadata_and_nothing_else() {
    let app = TestApp::without_directory().await;
    let admin = app.admin_token("org_admin", None).await;
    let path = app.org_path("/sso/connections");
    // Wrapped the way metadata wraps it.
    let wrapped: String = bare_certificate()
        .as_bytes()
        .chunks(76)
        .map(|c| format!("\n      {}", std::str::from_utf8(c).unwrap()))
        .collect();
    for cert in [idp_certificate(), bare_certificate(), wrapped] {
        let created = create(&app, &admin, "/sso/connections", saml_input(json!([cert]))).await;
        assert_eq!(created["status"], "complete", "{created}");
    }
    for cert in [
        "bm90IGEgY2VydGlmaWNhdGU=",
        "-----BEGIN CERTIFICATE-----\nxyz\n-----END CERTIFICATE-----",
    ] {
        let r = app
            .api(Method::POST, &path, &admin, Some(saml_input(json!([cert]))))
            .await;
        r.assert_problem(400);
        assert!(
            r.body["detail"].as_str().unwrap().contains("certificate"),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn a_verified_domain_moves_to_another_connection_of_its_organization_only() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let first = create(&app, &admin, "/sso/connections", oidc_input(false)).await;
    let second = create(
        &app,
        &admin,
        "/sso/connections",
        saml_input(json!([idp_certificate()])),
    )
    .await;
    let pending = create(
        &app,
        &admin,
        "/sso/connections",
        json!({ "name": "later", "saml": {} }),
    )
    .await;
    let domain = unique_domain();
    let claim = create(
        &app,
        &admin,
        "/domains",
        json!({ "domain": domain, "connection_id": first["id"] }),
    )
    .await;
    crate::dns::publish(
        claim["verification"]["name"].as_str().unwrap(),
        claim["verification"]["value"].as_str().unwrap(),
    );
    assert_eq!(
        verify(&app, &app.org_id, &admin, &domain).await.body["verified"],
        true
    );

    let path = app.org_path(&format!("/domains/{domain}"));
    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({ "connection_id": second["id"] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["connection_id"], second["id"]);
    assert_eq!(r.body["verified"], true, "no new TXT record needed");
    // The domain's users now go to the SAML IdP.
    let r = get(&app, &format!("/sso/start?email=ada%40{domain}"), None).await;
    assert!(redirected(&r).as_str().starts_with(IDP_SSO_URL), "{r:?}");

    // Not to another organization's connection, not to one still waiting for its IdP.
    let (other_id, other) = other_org(&app).await;
    let theirs = app
        .api(
            Method::POST,
            &format!("/api/v1/orgs/{other_id}/sso/connections"),
            &other,
            Some(oidc_input(false)),
        )
        .await
        .body;
    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({ "connection_id": theirs["id"] })),
        )
        .await;
    r.assert_problem(400);
    app.api(
        Method::PATCH,
        &path,
        &admin,
        Some(json!({ "connection_id": pending["id"] })),
    )
    .await
    .assert_problem(409);
    // Nor may the other organization move our domain.
    app.api(
        Method::PATCH,
        &format!("/api/v1/orgs/{other_id}/domains/{domain}"),
        &other,
        Some(json!({ "connection_id": theirs["id"] })),
    )
    .await
    .assert_problem(404);
    let listed = app.api_ok(&app.org_path("/domains"), &admin).await;
    assert_eq!(listed["items"][0]["connection_id"], second["id"]);
    let audit = app
        .api_ok(&app.org_path("/audit"), &admin)
        .await
        .to_string();
    assert!(audit.contains("move"), "{audit}");
}

#[tokio::test]
async fn authorize_signs_in_through_the_connection_the_application_names() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let (client_id, _) = client(&app, &admin).await;
    create(&app, &admin, "/sso/connections", oidc_input(false)).await;
    let saml = create(
        &app,
        &admin,
        "/sso/connections",
        saml_input(json!([idp_certificate()])),
    )
    .await;
    let saml_id = saml["id"].as_str().unwrap();
    let r = get(
        &app,
        &code_request(&client_id, &[("connection", saml_id)]),
        None,
    )
    .await;
    let to = redirected(&r);
    assert!(to.as_str().starts_with(IDP_SSO_URL), "{to}");

    let (other_id, other) = other_org(&app).await;
    let theirs = app
        .api(
            Method::POST,
            &format!("/api/v1/orgs/{other_id}/sso/connections"),
            &other,
            Some(saml_input(json!([idp_certificate()]))),
        )
        .await
        .body;
    let theirs = theirs["id"].as_str().unwrap();
    for (connection, error) in [
        (theirs, "invalid_request"),
        ("no-such-connection", "invalid_request"),
    ] {
        let r = get(
            &app,
            &code_request(&client_id, &[("connection", connection)]),
            None,
        )
        .await;
        let to = redirected(&r);
        assert!(to.as_str().starts_with(REDIRECT_URI), "{to}");
        assert_eq!(param(&to, "error").as_deref(), Some(error), "{to}");
        assert_eq!(param(&to, "state").as_deref(), Some("st-123"));
    }
}

/// `Kate` written with U+212A KELVIN SIGN lowercases to `kate` under Unicode rules; Okta and
/// Entra compare names ASCII case-insensitively, so it is someone else and must reach nobody's
/// account: not by sign-in, not by a SCIM filter, not by merging a SCIM user into her.
#[tokio::test]
async fn a_look_alike_name_is_another_person_everywhere() {
    let app = TestApp::new().await.reaching_fakes();
    let owner = app.admin_token("org_owner", None).await;
    let conn = connection(&app, &owner, true).await;
    app.user("kate@example.com").await;
    let kate = app.org_user_id(&owner, "kate@example.com").await;
    let look_alike = "\u{212A}ate@example.com";

    // ASCII case still does not matter.
    let signed = sign_in_as(&app, &conn, "KATE@Example.com", GroupClaim::Absent)
        .await
        .unwrap();
    assert_eq!(signed.org_user_id, kate);
    let err = sign_in_as(&app, &conn, look_alike, GroupClaim::Absent)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_provisioned");

    let found = |name: &str| format!("/Users?filter={}", enc(&format!("userName eq \"{name}\"")));
    let hits = |v: Value| v["totalResults"].as_u64().unwrap();
    assert_eq!(
        hits(crate::harness::get_ok(&app, &found("KATE@example.com")).await),
        1
    );
    assert_eq!(
        hits(crate::harness::get_ok(&app, &found(look_alike)).await),
        0
    );

    // The directory may hold both; they are two people, and Kate's record is untouched.
    app.user(look_alike).await;
    assert_ne!(app.org_user_id(&owner, look_alike).await, kate);
    let users = app
        .api_ok(
            &app.org_path(&format!("/users?email={}", enc("kate@example.com"))),
            &owner,
        )
        .await;
    let items = users["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{users}");
    assert_eq!(items[0]["id"], kate.as_str());
}

/// Keys stored by earlier versions folded Unicode case; the upgrade refolds them, so a look-alike
/// provisioned before it stops answering to the real name.
#[tokio::test]
async fn look_alike_keys_stored_before_the_upgrade_are_refolded() {
    use idbridge::store::admin::UserQuery;
    let (_dir, url, pool) = sqlite_migrated_below(8).await;
    sqlx::query("INSERT INTO organizations (id, name, name_ci, created_at) VALUES ('o1', 'Acme', 'acme', 1)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO org_users (id, org_id, user_key, user_name, active, created_at, updated_at) \
         VALUES ('u1', 'o1', 'kate@example.com', ?, TRUE, 1, 1)",
    )
    .bind("\u{212A}ate@example.com")
    .execute(&pool)
    .await
    .unwrap();
    let store = upgraded(&url, pool).await;
    let scope = OrgScope::for_org("o1", "test");
    let find = |name: &str| UserQuery {
        user_name: Some(name.to_string()),
        ..Default::default()
    };
    let found = |q| {
        let store = &store;
        let scope = &scope;
        async move { store.find_org_users(scope, &q, "", 10).await.unwrap() }
    };
    assert!(found(find("kate@example.com")).await.is_empty());
    let look_alike = found(find("\u{212A}ATE@example.com")).await;
    assert_eq!(look_alike.len(), 1);
    assert_eq!(look_alike[0].id, "u1");
}

/// Whoever sees a RelayState or an OIDC state (in a referrer, a proxy log) and presents it without
/// the browser's flow cookie gets the failure page, and the sign-in stays open for the browser
/// that started it, which then finishes it (here, with an answer refused on its own merits).
#[tokio::test]
async fn a_stolen_state_cannot_cancel_the_sign_in_it_names() {
    let app = TestApp::without_directory().await.reaching_fakes();
    let admin = app.admin_token("org_admin", None).await;
    let created = create(
        &app,
        &admin,
        "/sso/connections",
        saml_input(json!([idp_certificate()])),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let start = get(&app, &format!("/sso/{id}/start"), None).await;
    let relay = param(&redirected(&start), "RelayState").expect("a RelayState");
    let cookie = start
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let acs = |cookie: Option<&str>| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("/sso/saml/{id}/acs"))
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.body(Body::from(format!(
            "SAMLResponse={}&RelayState={}",
            enc(&STANDARD.encode("<not-a-response/>")),
            enc(&relay)
        )))
        .unwrap()
    };
    assert_failure_page(&app.send_raw(acs(None)).await);
    assert_eq!(
        app.store.flow_connection(&relay).await.unwrap().as_deref(),
        Some(id)
    );
    assert_failure_page(&app.send_raw(acs(Some(&cookie))).await);
    assert_eq!(app.store.flow_connection(&relay).await.unwrap(), None);

    // The OIDC callback, for a sign-in in flight on an OIDC connection.
    let oidc = connection(&app, &admin, false).await;
    let state = "a-state-of-a-sign-in-in-flight-0123456789";
    let later = app.store.now() + 600_000_000;
    let mut tx = app.store.begin().await.unwrap();
    idbridge::store::sso::put_flow(&mut tx, state, &oidc.id, &json!({}), later)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let callback = format!("/sso/oidc/callback?state={state}&code=stolen");
    assert_failure_page(&get(&app, &callback, None).await);
    assert_eq!(
        app.store.flow_connection(state).await.unwrap().as_deref(),
        Some(oidc.id.as_str())
    );
}

/// Every page idbridge shows a browser refuses to be framed (clickjacking a sign-out or a sign-in
/// page), runs nothing it did not ship, and sends no Referer with its URL (which can hold a state).
#[tokio::test]
async fn pages_refuse_frames_scripts_and_referrers() {
    let app = TestApp::without_directory().await;
    for uri in [
        "/sso/start?email=someone%40unknown.example",
        "/sso/logout",
        "/api/v1/docs",
    ] {
        let r = get(&app, uri, None).await;
        assert!(
            r.header("content-type").unwrap().starts_with("text/html"),
            "{uri}"
        );
        let csp = r.header("content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{uri}: {csp}");
        }
        assert!(!csp.contains("script-src"), "{uri}: {csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{uri}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{uri}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{uri}");
    }
    let json = get(&app, "/.well-known/openid-configuration", None).await;
    assert_eq!(json.header("x-content-type-options"), Some("nosniff"));
}

/// Ownership changes only by transfer: an admin's connection (to an IdP the admin controls) never
/// signs anyone in as the owner, an admin cannot mark a connection as the owner's, and a connection
/// the owner marked is the owner's alone to change or delete.
#[tokio::test]
async fn no_role_below_owner_gets_the_owners_sign_in() {
    let app = TestApp::new().await.reaching_fakes();
    let owner_token = app.admin_token("org_owner", None).await;
    let admin = app.admin_token("org_admin", None).await;
    app.user("boss@example.com").await;
    app.user("staff@example.com").await;
    let boss = app.org_user_id(&owner_token, "boss@example.com").await;
    let r = app
        .api(
            Method::POST,
            &app.org_path("/owner"),
            &owner_token,
            Some(json!({ "user_id": boss })),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);

    let mut marked = oidc_input(false);
    marked["signs_in_owner"] = json!(true);
    let r = app
        .api(
            Method::POST,
            &app.org_path("/sso/connections"),
            &admin,
            Some(marked.clone()),
        )
        .await;
    r.assert_problem(403);

    let admins = create(&app, &admin, "/sso/connections", oidc_input(false)).await;
    assert_eq!(admins["signs_in_owner"], false);
    let admins_id = admins["id"].as_str().unwrap();
    let scope = OrgScope::for_org(&app.org_id, "test");
    let conn = app.store.get_connection(&scope, admins_id).await.unwrap();
    let err = sign_in_as(&app, &conn, "boss@example.com", GroupClaim::Absent)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "owner_connection");
    assert!(err.refusal().is_some());
    sign_in_as(&app, &conn, "staff@example.com", GroupClaim::Absent)
        .await
        .unwrap();
    let path = app.org_path(&format!("/sso/connections/{admins_id}"));
    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({ "signs_in_owner": true })),
        )
        .await;
    r.assert_problem(403);

    // The owner's own connection signs the owner in, and only the owner touches it.
    let owners = create(&app, &owner_token, "/sso/connections", marked).await;
    let owners_id = owners["id"].as_str().unwrap();
    let conn = app.store.get_connection(&scope, owners_id).await.unwrap();
    let signed = sign_in_as(&app, &conn, "boss@example.com", GroupClaim::Absent)
        .await
        .unwrap();
    assert_eq!(signed.org_user_id, boss);
    let path = app.org_path(&format!("/sso/connections/{owners_id}"));
    let r = app
        .api(
            Method::PATCH,
            &path,
            &admin,
            Some(json!({ "name": "Mine now" })),
        )
        .await;
    r.assert_problem(403);
    app.api(Method::DELETE, &path, &admin, None)
        .await
        .assert_problem(403);
    let r = app
        .api(
            Method::PATCH,
            &path,
            &owner_token,
            Some(json!({ "name": "Owner's IdP" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
