//! End-to-end sign-in with real IdP programs on 127.0.0.1 (tests/interop): an OpenID provider
//! built on `oidc-provider` and a SAML IdP built on `samlify`, signing with a key `openssl` makes
//! for the run. Each test plays the browser with plain HTTP: it starts where a SaaS application
//! would (`/oauth/authorize`), goes through the IdP and back through our callback or ACS, exchanges
//! the code as the application would, and checks the id_token's claims against the mapping.
//!
//! The IdPs need `npm ci` in tests/interop. Without it these tests say so and pass, unless
//! `IDBRIDGE_INTEROP=required` (as `.ci/run` sets), when its absence fails them.

use idbridge::service::setup;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idbridge::store::Store;
use idbridge::store::admin::OrgScope;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::harness::{TestApp, fresh_store};

/// Where the SaaS application receives codes; never contacted, its Location is read.
const SAAS_CALLBACK: &str = "http://127.0.0.1:9/callback";
const INTEROP_DIR: &str = "tests/interop";

pub(crate) fn available() -> bool {
    if Path::new(INTEROP_DIR).join("node_modules").is_dir() {
        return true;
    }
    if std::env::var("IDBRIDGE_INTEROP").as_deref() == Ok("required") {
        panic!(
            "IDBRIDGE_INTEROP=required but {INTEROP_DIR}/node_modules is missing: run npm ci there"
        );
    }
    eprintln!("skipped: the test IdPs are not installed (npm ci in {INTEROP_DIR})");
    false
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running IdP program, stopped when dropped.
pub(crate) struct Idp {
    _child: tokio::process::Child,
    pub(crate) url: String,
}

pub(crate) async fn start_idp(script: &str, env: &[(&str, String)]) -> Idp {
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .current_dir(INTEROP_DIR)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the IdP starts within 30 s")
        .unwrap()
        .expect("the IdP prints its ready line");
    let url = line.strip_prefix("ready ").expect("ready line").to_string();
    Idp { _child: child, url }
}

/// One replica of idbridge on a real port; `public_url` is what the load balancer would show.
pub(crate) async fn serve(store: &Store, listener: tokio::net::TcpListener, public_url: &str) {
    let router = idbridge::http::router(TestApp::state_reaching_fakes(store, public_url));
    tokio::spawn(async move { axum::serve(listener, router).await });
}

pub(crate) async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// The browser: keeps cookies, follows no redirect by itself.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

pub(crate) fn location(base: &str, resp: &reqwest::Response) -> String {
    let loc = resp
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("{} from {base} has no Location", resp.status()))
        .to_str()
        .unwrap();
    url::Url::parse(base)
        .unwrap()
        .join(loc)
        .unwrap()
        .to_string()
}

/// An organization with a SaaS client, a sub-account, and rules on group claims: `Engineering`
/// gives the sub-account's admin role, `Admins` the Org Viewer role.
pub(crate) struct Org {
    pub(crate) id: String,
    pub(crate) admin: String,
    sub_account: String,
    client_id: String,
    client_secret: String,
}

pub(crate) async fn api(base: &str, token: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/orgs/{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

pub(crate) async fn org(store: &Store, base: &str, domain: &str) -> Org {
    let org = setup::create_org(store, &format!("interop-{}", uuid::Uuid::now_v7()))
        .await
        .unwrap();
    let admin = setup::create_admin_token(
        store,
        &OrgScope::for_org(&org.id, "test"),
        "org_owner",
        None,
        "test",
    )
    .await
    .unwrap()
    .token;
    let o = |p: &str| format!("{}{p}", org.id);
    let sa = api(
        base,
        &admin,
        &o("/sub-accounts"),
        json!({"name": "Production"}),
    )
    .await;
    let sub_account = sa["id"].as_str().unwrap().to_string();
    api(base, &admin, &o("/mappings"), json!({
        "matcher": {"type": "claim", "value": "Engineering"},
        "grant": {"type": "sub_account_role", "sub_account": {"one": sub_account}, "role": "admin"},
    }))
    .await;
    api(
        base,
        &admin,
        &o("/mappings"),
        json!({
            "matcher": {"type": "claim", "value": "Admins"},
            "grant": {"type": "org_role", "role": "org_viewer"},
        }),
    )
    .await;
    let client = api(
        base,
        &admin,
        &o("/clients"),
        json!({
            "name": "The SaaS", "redirect_uris": [SAAS_CALLBACK],
        }),
    )
    .await;
    // The organization proves it owns its domain, as an admin would: a TXT record, then verify.
    let claim = api(base, &admin, &o("/domains"), json!({"domain": domain})).await;
    crate::dns::publish(
        claim["verification"]["name"].as_str().unwrap(),
        claim["verification"]["value"].as_str().unwrap(),
    );
    let verified = api(
        base,
        &admin,
        &o(&format!("/domains/{domain}/verify")),
        json!({}),
    )
    .await;
    assert_eq!(verified["verified"], true);
    Org {
        id: org.id,
        sub_account,
        client_id: client["client"]["id"].as_str().unwrap().to_string(),
        client_secret: client["client_secret"].as_str().unwrap().to_string(),
        admin,
    }
}

/// What the SaaS application does: an authorization request with PKCE, and later the exchange.
struct Saas {
    verifier: String,
    state: String,
    nonce: String,
}

impl Saas {
    fn new() -> Saas {
        let r = || URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        Saas {
            verifier: r(),
            state: r(),
            nonce: r(),
        }
    }

    fn authorize_url(&self, base: &str, org: &Org, login_hint: &str) -> String {
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(self.verifier.as_bytes()));
        let mut url = url::Url::parse(&format!("{base}/oauth/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &org.client_id)
            .append_pair("redirect_uri", SAAS_CALLBACK)
            .append_pair("scope", "openid email profile")
            .append_pair("state", &self.state)
            .append_pair("nonce", &self.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("login_hint", login_hint);
        url.to_string()
    }

    /// Checks the callback, exchanges the code, verifies the id_token; returns its claims.
    async fn finish(&self, base: &str, org: &Org, callback: &str) -> Value {
        self.finish_with_tokens(base, org, callback).await.0
    }

    /// [`Saas::finish`], also returning the token response.
    async fn finish_with_tokens(&self, base: &str, org: &Org, callback: &str) -> (Value, Value) {
        let url = url::Url::parse(callback).unwrap();
        assert!(callback.starts_with(SAAS_CALLBACK), "{callback}");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q.get("state"), Some(&self.state), "{callback}");
        assert_eq!(q.get("iss").map(String::as_str), Some(base), "RFC 9207 iss");
        let code = q
            .get("code")
            .unwrap_or_else(|| panic!("no code: {callback}"));
        let r = reqwest::Client::new()
            .post(format!("{base}/oauth/token"))
            .basic_auth(&org.client_id, Some(&org.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", SAAS_CALLBACK),
                ("code_verifier", &self.verifier),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let tokens: Value = r.json().await.unwrap();
        let jwks: Value = reqwest::get(format!("{base}/oauth/jwks"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let claims = idbridge::oauth::token::verify(tokens["id_token"].as_str().unwrap(), &jwks)
            .expect("the id_token verifies with the published keys");
        assert_eq!(claims["iss"], base);
        assert_eq!(claims["aud"], org.client_id.as_str());
        assert_eq!(claims["nonce"], self.nonce.as_str());
        assert_eq!(claims["org"], org.id.as_str());
        // userinfo says the same with the access token.
        let info: Value = reqwest::Client::new()
            .get(format!("{base}/oauth/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], claims["sub"]);
        assert_eq!(info["accounts"], claims["accounts"]);
        (claims, tokens)
    }
}

fn assert_mapped(claims: &Value, org: &Org, email: &str, name: &str) {
    assert_eq!(claims["email"], email, "{claims}");
    assert_eq!(claims["name"], name, "{claims}");
    assert_eq!(claims["org_roles"], json!(["org_viewer"]), "{claims}");
    assert_eq!(
        claims["accounts"],
        json!([{"id": org.sub_account, "role": "admin", "permissions": {}, "projects": {}}]),
        "{claims}"
    );
}

/// The OpenID provider's login form, when `next` is one: one POST signs `login` in and grants
/// consent; returns where the browser goes next.
pub(crate) async fn past_login(browser: &reqwest::Client, next: String, login: &str) -> String {
    if !next.contains("/interaction/") {
        return next;
    }
    let r = browser
        .post(format!("{next}/login"))
        .form(&[("login", login), ("password", "x")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "login: {}", r.status());
    location(&next, &r)
}

/// The OpenID provider of `tests/interop` with one client, `idbridge`, whose secret is `secret`
/// and redirect URI `redirect_uri`, holding `accounts` (id -> claims).
pub(crate) async fn oidc_idp(redirect_uri: &str, secret: &str, accounts: &Value) -> Idp {
    start_idp(
        "oidc-idp.mjs",
        &[
            ("PORT", free_port().to_string()),
            ("CLIENT_ID", "idbridge".into()),
            ("CLIENT_SECRET", secret.into()),
            ("REDIRECT_URI", redirect_uri.into()),
            ("ACCOUNTS", accounts.to_string()),
        ],
    )
    .await
}

/// A GET of the organization's admin API (`path` after `/api/v1/orgs/{org}`), as its admin.
pub(crate) async fn org_get(base: &str, org: &Org, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/orgs/{}{path}", org.id))
        .bearer_auth(&org.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The organization's audit log, as its admin reads it through the API.
pub(crate) async fn org_audit(base: &str, org: &Org) -> String {
    reqwest::Client::new()
        .get(format!("{base}/api/v1/orgs/{}/audit", org.id))
        .bearer_auth(&org.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A real OpenID provider holding `accounts`, and the organization's connection to it; returns the
/// provider and the connection as the admin API shows it.
async fn oidc_connection(
    base: &str,
    org: &Org,
    secret: &str,
    accounts: Value,
    jit: bool,
) -> (Idp, Value) {
    let idp = oidc_idp(&format!("{base}/sso/oidc/callback"), secret, &accounts).await;
    let conn = api(
        base,
        &org.admin,
        &format!("{}/sso/connections", org.id),
        json!({
            "name": "oidc-provider", "jit": jit,
            "oidc": {"issuer": idp.url, "client_id": "idbridge", "client_secret": secret,
                     "scopes": ["openid", "email", "profile", "groups"]},
        }),
    )
    .await;
    (idp, conn)
}

#[tokio::test]
async fn oidc_sign_in_through_oidc_provider_hands_the_mapped_access_to_the_saas() {
    if !available() {
        return;
    }
    let (store, _dir) = fresh_store().await;
    let (listener, base) = listen().await;
    serve(&store, listener, &base).await;
    let org = org(&store, &base, "example.com").await;
    let (_idp, conn) = oidc_connection(
        &base,
        &org,
        "idp-secret-for-idbridge",
        json!({"alice": {"email": "alice@example.com", "name": "Alice Example",
                                 "groups": ["Engineering", "Admins", "Unmapped"]}}),
        true,
    )
    .await;

    // The IdP sends the browser back through a second replica behind the same public URL: the
    // sign-in it did not start finishes there, from what the first one kept in the database.
    let (listener, replica) = listen().await;
    serve(&store, listener, &base).await;

    let saas = Saas::new();
    let browser = browser();
    let mut url = saas.authorize_url(&base, &org, "alice@example.com");
    let callback = loop {
        if url.starts_with(&format!("{base}/sso/oidc/callback")) {
            let our_callback = url.replacen(&base, &replica, 1);
            let r = browser.get(&our_callback).send().await.unwrap();
            assert!(r.status().is_redirection(), "callback: {}", r.status());
            // The same callback again (a replay, or a double click): its state was used.
            let again = browser.get(&our_callback).send().await.unwrap();
            assert_eq!(again.status(), 403, "a used state is refused");
            break location(&our_callback, &r);
        }
        let r = browser.get(&url).send().await.unwrap();
        assert!(
            r.status().is_redirection(),
            "{url}: {} {}",
            r.status(),
            r.text().await.unwrap()
        );
        let next = location(&url, &r);
        if next.starts_with(SAAS_CALLBACK) {
            break next;
        }
        url = past_login(&browser, next, "alice").await;
    };
    let claims = saas.finish(&base, &org, &callback).await;
    assert_mapped(&claims, &org, "alice@example.com", "Alice Example");

    // Signed in: the next application request is answered from our session, without the IdP.
    let again = Saas::new();
    let r = browser
        .get(again.authorize_url(&base, &org, "alice@example.com"))
        .send()
        .await
        .unwrap();
    let callback = location(&base, &r);
    again.finish(&base, &org, &callback).await;

    // Login CSRF: the IdP's answer to a sign-in this browser started (it is still signed in at the
    // IdP), opened by another browser, is refused.
    let start = format!("{base}/sso/{}/start", conn["id"].as_str().unwrap());
    let mut url = start;
    let attackers_callback = loop {
        let r = browser.get(&url).send().await.unwrap();
        let next = location(&url, &r);
        if next.starts_with(&format!("{base}/sso/oidc/callback")) {
            break next;
        }
        url = next;
    };
    let r = self::browser()
        .get(&attackers_callback)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a sign-in finished in another browser");
    let audit = org_audit(&base, &org).await;
    assert!(audit.contains("flow_unbound"), "{audit}");
}

struct SamlSetup {
    store: Store,
    _dir: Option<tempfile::TempDir>,
    base: String,
    org: Org,
    idp: Idp,
    _keys: tempfile::TempDir,
}

/// A key pair for a test IdP, made now by openssl: (dir, key file, certificate file).
pub(crate) fn idp_keys() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let keys = tempfile::tempdir().unwrap();
    let (key, cert) = (keys.path().join("idp.key"), keys.path().join("idp.crt"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-idp",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl makes the IdP's key");
    (keys, key, cert)
}

/// The samlify IdP for connection `conn` (as the admin API shows it), signing bob in.
pub(crate) async fn saml_idp(port: u16, key: &Path, cert: &Path, conn: &Value) -> Idp {
    let encryption_cert = conn["config"]["sp_encryption_certificate"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    start_idp(
        "saml-idp.mjs",
        &[
            ("PORT", port.to_string()),
            ("KEY_FILE", key.display().to_string()),
            ("CERT_FILE", cert.display().to_string()),
            ("SP_ENTITY_ID", conn["endpoints"]["sp_entity_id"].as_str().unwrap().into()),
            ("SP_ACS_URL", conn["endpoints"]["acs_url"].as_str().unwrap().into()),
            ("SP_ENCRYPTION_CERT", encryption_cert),
            (
                "USER",
                json!({"nameId": "bob@example.org", "email": "bob@example.org", "name": "Bob Example",
                       "groups": ["Engineering", "Admins"]})
                .to_string(),
            ),
        ],
    )
    .await
}

/// A SAML connection to a samlify IdP that signs with a key made now by openssl.
async fn saml_setup(idp_initiated: bool, encrypted: bool) -> SamlSetup {
    let (store, dir) = fresh_store().await;
    let (listener, base) = listen().await;
    serve(&store, listener, &base).await;
    let org = org(&store, &base, "example.org").await;
    let (idp, keys) = saml_connection(&base, &org, idp_initiated, encrypted).await;
    SamlSetup {
        store,
        _dir: dir,
        base,
        org,
        idp,
        _keys: keys,
    }
}

/// The organization's SAML connection to a samlify IdP started for it; the IdP's keys live as
/// long as the returned folder.
async fn saml_connection(
    base: &str,
    org: &Org,
    idp_initiated: bool,
    encrypted: bool,
) -> (Idp, tempfile::TempDir) {
    let (keys, key, cert) = idp_keys();
    let idp_port = free_port();
    let idp_url = format!("http://127.0.0.1:{idp_port}");
    let conn = api(base, &org.admin, &format!("{}/sso/connections", org.id), json!({
        "name": "samlify", "jit": true,
        "saml": {"idp_entity_id": format!("{idp_url}/metadata"), "idp_sso_url": format!("{idp_url}/sso"),
                 "idp_certificates": [std::fs::read_to_string(&cert).unwrap()],
                 "idp_initiated": idp_initiated, "encrypted_assertions": encrypted},
    }))
    .await;
    let encryption_cert = conn["config"]["sp_encryption_certificate"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(encryption_cert.is_empty(), !encrypted, "{conn}");
    (saml_idp(idp_port, &key, &cert, &conn).await, keys)
}

/// The auto-posting form the IdP answers with: (action, SAMLResponse, RelayState).
pub(crate) async fn idp_form(resp: reqwest::Response) -> (String, String, Option<String>) {
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    let attr = |after: &str| -> Option<String> {
        let start = html.find(after)? + after.len();
        let end = html[start..].find('"')? + start;
        Some(
            html[start..end]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    (
        attr("action=\"").expect("form action"),
        attr("name=\"SAMLResponse\" value=\"").expect("SAMLResponse"),
        attr("name=\"RelayState\" value=\""),
    )
}

pub(crate) async fn post_acs(
    browser: &reqwest::Client,
    action: &str,
    response: &str,
    relay: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![("SAMLResponse", response)];
    if let Some(r) = relay {
        form.push(("RelayState", r));
    }
    browser.post(action).form(&form).send().await.unwrap()
}

/// One SP-initiated round in `browser`: through `/oauth/authorize` to the IdP's auto-posting form.
async fn saml_round(
    browser: &reqwest::Client,
    s: &SamlSetup,
    saas: &Saas,
) -> (String, String, Option<String>) {
    // prompt=login: through the IdP even when this browser already has a session with us.
    let authorize = saas.authorize_url(&s.base, &s.org, "bob@example.org") + "&prompt=login";
    let to_idp = location(&authorize, &browser.get(&authorize).send().await.unwrap());
    assert!(
        to_idp.starts_with(&format!("{}/sso?SAMLRequest=", s.idp.url)),
        "{to_idp}"
    );
    idp_form(browser.get(&to_idp).send().await.unwrap()).await
}

async fn audit(s: &SamlSetup) -> String {
    org_audit(&s.base, &s.org).await
}

#[tokio::test]
async fn saml_sign_in_through_samlify_hands_the_mapped_access_to_the_saas_and_refuses_unsolicited_responses()
 {
    if !available() {
        return;
    }
    let s = saml_setup(false, false).await;
    let saas = Saas::new();
    let b = browser();
    let (action, response, relay) = saml_round(&b, &s, &saas).await;
    let r = post_acs(&b, &action, &response, relay.as_deref()).await;
    assert!(
        r.status().is_redirection(),
        "ACS: {} {}",
        r.status(),
        r.text().await.unwrap()
    );
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("idbridge_session=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            // http://127.0.0.1 is a secure context to browsers (and to this cookie jar).
            && cookie.contains("Secure"),
        "{cookie}"
    );
    let claims = saas.finish(&s.base, &s.org, &location(&action, &r)).await;
    assert_mapped(&claims, &s.org, "bob@example.org", "Bob Example");

    // A response to one sign-in posted with another sign-in's RelayState: InResponseTo names a
    // request this browser's flow did not send.
    let (_, response_1, _) = saml_round(&b, &s, &Saas::new()).await;
    let (_, _, relay_2) = saml_round(&b, &s, &Saas::new()).await;
    let r = post_acs(&b, &action, &response_1, relay_2.as_deref()).await;
    assert_eq!(r.status(), 403, "InResponseTo of another request");
    assert!(audit(&s).await.contains("InResponseTo"));

    // Login CSRF: an attacker's own answer, delivered by the victim's browser, which did not start
    // that sign-in.
    let attacker = browser();
    let (_, response_3, relay_3) = saml_round(&attacker, &s, &Saas::new()).await;
    let victim = browser();
    let r = post_acs(&victim, &action, &response_3, relay_3.as_deref()).await;
    assert_eq!(r.status(), 403, "a sign-in finished in another browser");
    assert!(r.headers().get("set-cookie").is_none());
    assert!(audit(&s).await.contains("flow_unbound"));

    // The same response again: its request was answered, so it is unsolicited now, and refused.
    let r = post_acs(&b, &action, &response, relay.as_deref()).await;
    assert_eq!(r.status(), 403);
    // Started at the IdP: refused, since this connection does not allow IdP-initiated sign-in.
    let (action, response, relay) = idp_form(
        browser()
            .get(format!("{}/initiate", s.idp.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let r = post_acs(&browser(), &action, &response, relay.as_deref()).await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Sign-in failed") && !page.contains("unsolicited"),
        "{page}"
    );
    assert!(
        audit(&s).await.contains("unsolicited"),
        "the audit says why"
    );
}

#[tokio::test]
async fn saml_idp_initiated_sign_in_when_enabled_and_its_replay_refused_by_another_replica() {
    if !available() {
        return;
    }
    let s = saml_setup(true, false).await;
    let (action, response, relay) = idp_form(
        browser()
            .get(format!("{}/initiate", s.idp.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(relay.is_none());
    let r = post_acs(&browser(), &action, &response, None).await;
    assert_eq!(r.status(), 200, "IdP-initiated sign-in is allowed here");
    assert!(r.headers().get("set-cookie").is_some());
    assert!(r.text().await.unwrap().contains("Signed in"));

    // A second replica on the same database, behind the same public URL.
    let (listener, replica) = listen().await;
    serve(&s.store, listener, &s.base).await;
    let replica_acs = action.replace(&s.base, &replica);
    let r = post_acs(&browser(), &replica_acs, &response, None).await;
    assert_eq!(
        r.status(),
        403,
        "a replayed assertion is refused on the other replica"
    );
    assert!(audit(&s).await.contains("saml_replay"));
}

#[tokio::test]
async fn saml_assertions_encrypted_to_our_key_sign_in_like_plain_ones() {
    if !available() {
        return;
    }
    let s = saml_setup(false, true).await;
    let conns = org_get(&s.base, &s.org, "/sso/connections").await;
    let metadata_url = conns["items"][0]["endpoints"]["sp_metadata_url"]
        .as_str()
        .unwrap();
    let metadata = reqwest::get(metadata_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metadata.contains(r#"use="encryption""#), "{metadata}");

    let saas = Saas::new();
    let b = browser();
    let (action, response, relay) = saml_round(&b, &s, &saas).await;
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&response)
            .unwrap(),
    )
    .unwrap();
    assert!(
        xml.contains("EncryptedAssertion") && !xml.contains("Bob Example"),
        "encrypted"
    );
    let r = post_acs(&b, &action, &response, relay.as_deref()).await;
    assert!(
        r.status().is_redirection(),
        "ACS: {} {}",
        r.status(),
        r.text().await.unwrap()
    );
    let claims = saas.finish(&s.base, &s.org, &location(&action, &r)).await;
    assert_mapped(&claims, &s.org, "bob@example.org", "Bob Example");
}

async fn patch_api(base: &str, token: &str, path: &str, body: Value) -> Value {
    let r = reqwest::Client::new()
        .patch(format!("{base}/api/v1/orgs/{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// The order Okta and Entra ask for: the connection first (our ACS URL and entity id go into the
/// IdP's app), then the IdP's metadata URL, after which the same connection signs users in.
#[tokio::test]
async fn a_saml_connection_made_first_is_finished_by_the_idps_metadata_url_and_signs_in() {
    if !available() {
        return;
    }
    let (store, _dir) = fresh_store().await;
    let (listener, base) = listen().await;
    serve(&store, listener, &base).await;
    let org = org(&store, &base, "example.org").await;
    let conn = api(
        &base,
        &org.admin,
        &format!("{}/sso/connections", org.id),
        json!({"name": "samlify", "jit": true, "saml": {}}),
    )
    .await;
    assert_eq!(conn["status"], "incomplete", "{conn}");
    let id = conn["id"].as_str().unwrap();
    let (_keys, key, cert) = idp_keys();
    let idp_port = free_port();
    let idp = saml_idp(idp_port, &key, &cert, &conn).await;

    // Before the metadata: the page says the connection is not set up.
    let page = browser()
        .get(format!("{base}/sso/{id}/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    assert!(page.text().await.unwrap().contains("not set up yet"));

    let done = patch_api(
        &base,
        &org.admin,
        &format!("{}/sso/connections/{id}", org.id),
        json!({"saml": {"metadata_url": format!("{}/metadata", idp.url)}}),
    )
    .await;
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["jit"], true, "the rest of the connection is kept");

    let s = SamlSetup {
        store,
        _dir: None,
        base,
        org,
        idp,
        _keys: tempfile::tempdir().unwrap(),
    };
    let saas = Saas::new();
    let b = browser();
    let (action, response, relay) = saml_round(&b, &s, &saas).await;
    let r = post_acs(&b, &action, &response, relay.as_deref()).await;
    assert!(r.status().is_redirection(), "ACS: {}", r.status());
    let claims = saas.finish(&s.base, &s.org, &location(&action, &r)).await;
    assert_mapped(&claims, &s.org, "bob@example.org", "Bob Example");
}

/// The SaaS's own callback when it is sent an error: (error, error_description, state, iss).
fn refused(callback: &str) -> (String, String, String, String) {
    assert!(callback.starts_with(SAAS_CALLBACK), "{callback}");
    let q: std::collections::HashMap<_, _> = url::Url::parse(callback)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(!q.contains_key("code"), "{callback}");
    let v = |k: &str| q.get(k).cloned().unwrap_or_default();
    (v("error"), v("error_description"), v("state"), v("iss"))
}

/// A user the organization does not admit, verified by the IdP through a sign-in the SaaS began,
/// goes back to the SaaS with access_denied; an answer that cannot be trusted stays on our page.
#[tokio::test]
async fn a_saml_user_the_organization_refuses_goes_back_to_the_saas_with_access_denied() {
    if !available() {
        return;
    }
    let s = saml_setup(false, false).await;
    let conns = org_get(&s.base, &s.org, "/sso/connections").await;
    let id = conns["items"][0]["id"].as_str().unwrap();
    // No just-in-time users: bob was never provisioned.
    patch_api(
        &s.base,
        &s.org.admin,
        &format!("{}/sso/connections/{id}", s.org.id),
        json!({"jit": false}),
    )
    .await;
    let saas = Saas::new();
    let b = browser();
    let (action, response, relay) = saml_round(&b, &s, &saas).await;
    // Played in another browser first: not bound to it, so the page, and the flow is spent.
    let (_, response_2, relay_2) = saml_round(&b, &s, &Saas::new()).await;
    let r = post_acs(&browser(), &action, &response_2, relay_2.as_deref()).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());

    let r = post_acs(&b, &action, &response, relay.as_deref()).await;
    assert!(r.status().is_redirection(), "ACS: {}", r.status());
    assert!(r.headers().get("set-cookie").is_none(), "no session");
    let (error, description, state, iss) = refused(&location(&action, &r));
    assert_eq!(error, "access_denied");
    assert!(description.contains("not provisioned"), "{description}");
    assert_eq!(state, saas.state);
    assert_eq!(iss, s.base);
    assert!(audit(&s).await.contains("not_provisioned"));

    // The same response again is a replay: the page, not the SaaS.
    let r = post_acs(&b, &action, &response, relay.as_deref()).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("location").is_none());
}

#[tokio::test]
async fn an_oidc_user_the_organization_refuses_goes_back_to_the_saas_with_access_denied() {
    if !available() {
        return;
    }
    let (store, _dir) = fresh_store().await;
    let (listener, base) = listen().await;
    serve(&store, listener, &base).await;
    let org = org(&store, &base, "example.com").await;
    let (_idp, _) = oidc_connection(
        &base,
        &org,
        "idp-secret-for-idbridge",
        json!({"carol": {"email": "carol@example.com", "name": "Carol Example",
                                 "groups": ["Engineering"]}}),
        false,
    )
    .await;
    let saas = Saas::new();
    let browser = browser();
    let mut url = saas.authorize_url(&base, &org, "carol@example.com");
    loop {
        if url.starts_with(&format!("{base}/sso/oidc/callback")) {
            // Without the flow cookie (another browser): the page, and the SaaS hears nothing.
            let r = self::browser().get(&url).send().await.unwrap();
            assert_eq!(r.status(), 403);
            assert!(r.headers().get("location").is_none());
            break;
        }
        let r = browser.get(&url).send().await.unwrap();
        assert!(r.status().is_redirection(), "{url}: {}", r.status());
        let next = location(&url, &r);
        url = past_login(&browser, next, "carol").await;
    }
    // The unbound attempt spent the flow; a fresh round in the right browser.
    let saas = Saas::new();
    let mut url = saas.authorize_url(&base, &org, "carol@example.com") + "&prompt=login";
    let back = loop {
        let r = browser.get(&url).send().await.unwrap();
        assert!(r.status().is_redirection(), "{url}: {}", r.status());
        let next = location(&url, &r);
        if url.starts_with(&format!("{base}/sso/oidc/callback")) {
            assert!(r.headers().get("set-cookie").is_none(), "no session");
            break next;
        }
        url = past_login(&browser, next, "carol").await;
    };
    let (error, description, state, iss) = refused(&back);
    assert_eq!(error, "access_denied");
    assert!(description.contains("not provisioned"), "{description}");
    assert_eq!(state, saas.state);
    assert_eq!(iss, base);
}

// ---- secrets never reach the log ----------------------------------------------------------------

/// `idbridge serve`, the binary, on a new SQLite database with every target logging at trace
/// level; everything it writes to stderr is kept.
struct TracedServer {
    child: tokio::process::Child,
    base: String,
    store: Store,
    log: tokio::task::JoinHandle<String>,
    _dir: tempfile::TempDir,
}

async fn traced_server() -> TracedServer {
    use tokio::io::AsyncReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("traced.db").display());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_idbridge"))
        .arg("serve")
        .env("IDBRIDGE_DATABASE_URL", &db)
        .env("IDBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("IDBRIDGE_PUBLIC_URL", &base)
        .env("IDBRIDGE_LOG", "trace")
        .env_remove("RUST_LOG")
        .env_remove("IDBRIDGE_LOG_FORMAT")
        .env("IDBRIDGE_ALLOW_PRIVATE_URLS", "true")
        .env("IDBRIDGE_DNS_SERVER", crate::dns::server().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve");
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
        .await
        .expect("serve starts within 30 s")
        .unwrap()
        .expect("serve prints where it listens");
    let store = Store::connect(&db, &Default::default()).await.unwrap();
    TracedServer {
        child,
        base,
        store,
        log,
        _dir: dir,
    }
}

impl TracedServer {
    /// Stops the server as a supervisor would; returns all it logged.
    async fn stop(mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        self.child.wait().await.unwrap();
        self.log.await.unwrap()
    }
}

/// The value of a query parameter of `url`.
fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no {name} in {url}"))
        .1
        .into_owned()
}

/// The session cookie's value in a response that set it.
fn session_cookie(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("idbridge_session="))
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

/// A whole working day of the service at trace level (SCIM pushes with a password, the admin
/// API, an OIDC and a SAML sign-in through real IdPs, code exchange and userinfo), then the log
/// is searched for every credential, code, state, nonce, verifier and assertion the day used, as
/// sent and URL-encoded. Ids and request ids may appear; nothing that grants access may.
#[tokio::test]
async fn no_credential_code_state_nonce_or_assertion_reaches_the_log_even_at_trace() {
    if !available() {
        return;
    }
    let server = traced_server().await;
    let base = server.base.clone();
    let mut secrets: Vec<(&str, String)> = Vec::new();

    // Admin API and SCIM.
    let com = org(&server.store, &base, "example.com").await;
    secrets.push(("admin token", com.admin.clone()));
    secrets.push(("client secret", com.client_secret.clone()));
    let directory = api(
        &base,
        &com.admin,
        &format!("{}/directories", com.id),
        json!({"name": "Okta"}),
    )
    .await;
    let dir_id = directory["directory"]["id"].as_str().unwrap();
    let scim_token = directory["token"]["token"].as_str().unwrap().to_string();
    let password = format!("Pw-{}", uuid::Uuid::now_v7().simple());
    let scim = |method: reqwest::Method, path: &str, body: Value| {
        reqwest::Client::new()
            .request(method, format!("{base}/scim/v2/{dir_id}{path}"))
            .bearer_auth(&scim_token)
            .header("content-type", "application/scim+json")
            .body(body.to_string())
            .send()
    };
    let user: Value = scim(
        reqwest::Method::POST,
        "/Users",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "alice@example.com", "password": password, "active": true,
            "emails": [{"value": "alice@example.com", "primary": true}],
        }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let group = scim(
        reqwest::Method::POST,
        "/Groups",
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineering", "members": [{"value": user["id"]}],
        }),
    )
    .await
    .unwrap();
    assert_eq!(group.status(), 201);
    secrets.push(("SCIM token", scim_token.clone()));
    secrets.push(("SCIM password", password.clone()));

    // OIDC sign-in through a real provider, started by the SaaS.
    let idp_secret = format!("idp-secret-{}", uuid::Uuid::now_v7().simple());
    let (idp, _) = oidc_connection(
        &base,
        &com,
        &idp_secret,
        json!({"alice": {"email": "alice@example.com", "name": "Alice Example",
                                 "groups": ["Engineering"]}}),
        true,
    )
    .await;
    secrets.push(("IdP client secret", idp_secret.clone()));
    let saas = Saas::new();
    let browser = browser();
    let mut url = saas.authorize_url(&base, &com, "alice@example.com");
    let saas_callback = loop {
        let r = browser.get(&url).send().await.unwrap();
        assert!(r.status().is_redirection(), "{url}: {}", r.status());
        if url.starts_with(&format!("{base}/sso/oidc/callback")) {
            secrets.push(("code from the IdP", query_param(&url, "code")));
            secrets.push(("session cookie (OIDC)", session_cookie(&r)));
            break location(&url, &r);
        }
        let next = location(&url, &r);
        if next.starts_with(&idp.url) && next.contains("/auth?") {
            for name in ["state", "nonce", "code_challenge"] {
                secrets.push(("sent to the IdP", query_param(&next, name)));
            }
        }
        url = past_login(&browser, next, "alice").await;
    };
    secrets.push(("our code (OIDC)", query_param(&saas_callback, "code")));
    let (_, tokens) = saas.finish_with_tokens(&base, &com, &saas_callback).await;
    for (what, value) in [
        ("SaaS state", &saas.state),
        ("SaaS nonce", &saas.nonce),
        ("SaaS verifier", &saas.verifier),
    ] {
        secrets.push((what, value.clone()));
    }
    secrets.push((
        "access token",
        tokens["access_token"].as_str().unwrap().into(),
    ));
    let id_token = tokens["id_token"].as_str().unwrap();
    secrets.push(("id_token", id_token.into()));
    secrets.push((
        "id_token signature",
        id_token.rsplit('.').next().unwrap().into(),
    ));

    // SAML sign-in through a real IdP, for a second organization on the same server.
    let org_saml = org(&server.store, &base, "example.org").await;
    secrets.push(("admin token", org_saml.admin.clone()));
    let (saml_idp, _keys) = saml_connection(&base, &org_saml, false, false).await;
    let saas = Saas::new();
    let authorize = saas.authorize_url(&base, &org_saml, "bob@example.org") + "&prompt=login";
    let to_idp = location(&authorize, &browser.get(&authorize).send().await.unwrap());
    assert!(to_idp.starts_with(&saml_idp.url), "{to_idp}");
    let (action, response, relay) = idp_form(browser.get(&to_idp).send().await.unwrap()).await;
    let r = post_acs(&browser, &action, &response, relay.as_deref()).await;
    assert!(r.status().is_redirection(), "ACS: {}", r.status());
    secrets.push(("session cookie (SAML)", session_cookie(&r)));
    let saas_callback = location(&action, &r);
    secrets.push(("our code (SAML)", query_param(&saas_callback, "code")));
    let (_, tokens) = saas
        .finish_with_tokens(&base, &org_saml, &saas_callback)
        .await;
    secrets.push((
        "access token",
        tokens["access_token"].as_str().unwrap().into(),
    ));
    secrets.push(("SAMLResponse", response.clone()));
    secrets.push(("RelayState", relay.expect("SP-initiated: a RelayState")));
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&response)
            .unwrap(),
    )
    .unwrap();
    let signature = xml
        .split("SignatureValue>")
        .nth(1)
        .expect("a signed response")
        .trim_end_matches("</ds:")
        .trim_end_matches('<')
        .trim();
    secrets.push(("assertion signature", signature.to_string()));

    let log = server.stop().await;
    assert!(
        log.contains("TRACE") && log.contains("DEBUG"),
        "the server logged at trace level"
    );
    for route in [
        "/scim/v2/{directory}/Users",
        "/sso/oidc/callback",
        "/oauth/token",
    ] {
        assert!(log.contains(route), "the log has the request to {route}");
    }
    let leaked: Vec<_> = secrets
        .iter()
        .filter(|(_, s)| {
            assert!(s.len() >= 16, "a secret long enough not to match by chance");
            log.contains(s.as_str()) || log.contains(&crate::harness::enc(s))
        })
        .map(|(what, _)| *what)
        .collect();
    assert!(leaked.is_empty(), "in the trace log: {leaked:?}");
}

/// The console's sign-in through a SAML connection, as an organization whose IdP speaks only
/// SAML has it: the IdP's group attribute makes the person an admin, they reach the console with
/// that role, and the same answer posted again, from another browser, opens nothing.
#[tokio::test]
async fn an_admin_signs_in_to_the_console_through_a_saml_connection() {
    if !available() {
        return;
    }
    let s = saml_setup(false, false).await;
    // bob's `Admins` group, an attribute of the signed assertion, makes organization admins.
    api(
        &s.base,
        &s.org.admin,
        &format!("{}/mappings", s.org.id),
        json!({"matcher": {"type": "claim", "value": "Admins"},
               "grant": {"type": "org_role", "role": "org_admin"}}),
    )
    .await;
    let conns = org_get(&s.base, &s.org, "/sso/connections").await;
    let conn_id = conns["items"][0]["id"].as_str().unwrap().to_string();

    let b = browser();
    let start = format!("{}/console/sign-in/start?connection={conn_id}", s.base);
    let to_idp = location(&start, &b.get(&start).send().await.unwrap());
    assert!(
        to_idp.starts_with(&format!("{}/sso?SAMLRequest=", s.idp.url)),
        "{to_idp}"
    );
    let (action, response, relay) = idp_form(b.get(&to_idp).send().await.unwrap()).await;
    let r = post_acs(&b, &action, &response, relay.as_deref()).await;
    assert_eq!(r.status(), 303, "{:?}", r.headers());
    assert_eq!(location(&s.base, &r), format!("{}/console/sso", s.base));
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("idbridge_console="), "{cookie}");
    for path in ["/console/sso", "/console/people"] {
        let r = b.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let page = r.text().await.unwrap();
        assert!(page.contains("You signed in as an admin"), "{path}: {page}");
    }
    let people = b
        .get(format!("{}/console/people?q=bob", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(people.contains("bob@example.org"), "{people}");

    // The same answer again, from a browser that started nothing: refused, and no session.
    let other = browser();
    let r = post_acs(&other, &action, &response, relay.as_deref()).await;
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    let r = other
        .get(format!("{}/console/sso", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(audit(&s).await.contains("console.sign_in"));
}
