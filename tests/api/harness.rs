use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use idbridge::app::AppState;
use idbridge::net::Outbound;
use idbridge::service::setup;
use idbridge::store::admin::OrgScope;
use idbridge::store::secrets::SecretBox;
use idbridge::store::{Store, StoreOptions};
use serde_json::Value;
use tower::ServiceExt;

pub const PUBLIC_URL: &str = "https://idbridge.test";
/// The token `/metrics` asks for in every test replica.
pub const METRICS_TOKEN: &str = "metrics-token-for-the-tests";

pub struct TestApp {
    pub router: Router,
    pub store: Store,
    pub org_id: String,
    pub directory_id: String,
    pub token: String,
    /// The SCIM base path of the directory, without host.
    pub base: String,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Asserts an RFC 7644 §3.12 error with this status and scimType.
    #[track_caller]
    pub fn assert_error(&self, status: u16, scim_type: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status.to_string(), "{}", self.body);
        match scim_type {
            Some(t) => assert_eq!(self.body["scimType"], t, "{}", self.body),
            None => assert!(self.body.get("scimType").is_none(), "{}", self.body),
        }
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.body
        );
    }
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .expect("response has an id")
            .to_string()
    }
}

/// A fresh database on the backend under test.
pub async fn fresh_store() -> (Store, Option<tempfile::TempDir>) {
    let (url, dir) = fresh_database().await;
    let store = connect(&url, &StoreOptions::default()).await;
    store.migrate().await.expect("migrate");
    (store, dir)
}

/// The URL of a fresh, empty database on the backend under test (not yet migrated): what a
/// second replica is given to connect to the same database as the first.
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    match std::env::var("IDBRIDGE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => (pg_schema(&url).await, None),
        _ => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}", dir.path().join("test.db").display());
            (url, Some(dir))
        }
    }
}

/// One replica's store on the database at `url`, with a key of its own for sealed secrets.
pub async fn connect(url: &str, opts: &StoreOptions) -> Store {
    let opts = StoreOptions {
        max_connections: if url.starts_with("postgres") {
            8
        } else {
            opts.max_connections
        },
        ..opts.clone()
    };
    Store::connect(url, &opts)
        .await
        .expect("connect")
        .with_secrets(SecretBox::generate())
        // Runs with the system's time until a test moves it forward (`TestApp::advance`).
        .with_clock(idbridge::store::Clock::adjustable())
}

/// A schema of its own in the shared test database, empty; returns the URL that works in it.
/// Schemas of earlier runs older than an hour are dropped first, so the database does not grow
/// without bound.
pub async fn pg_schema(url: &str) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect postgres");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let old: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'idbt\\_%'")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for s in old {
        let ts: i64 = s
            .split('_')
            .nth(1)
            .and_then(|t| t.parse().ok())
            .unwrap_or(now);
        if now - ts > 3600 {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{s}\" CASCADE"
            )))
            .execute(&mut conn)
            .await;
        }
    }
    let schema = format!("idbt_{now}_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut conn)
        .await
        .expect("create schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options[search_path]={schema}")
}

impl TestApp {
    /// Moves the service's clock forward (every store `connect` made shares it only if given it).
    pub fn advance(&self, by: std::time::Duration) {
        assert!(
            self.store.clock().advance(by),
            "the test store's clock is adjustable"
        );
    }

    pub async fn new() -> TestApp {
        let (store, dir) = fresh_store().await;
        Self::with_store(store, dir).await
    }

    pub async fn with_store(store: Store, dir: Option<tempfile::TempDir>) -> TestApp {
        Self::build(store, dir, PUBLIC_URL, true).await
    }

    /// An organization no SCIM directory provisions (users come from sign-ins), on a fresh
    /// database. `directory_id`, `token` and `base` are empty.
    pub async fn without_directory() -> TestApp {
        let (store, dir) = fresh_store().await;
        Self::build(store, dir, PUBLIC_URL, false).await
    }

    pub async fn build(
        store: Store,
        dir: Option<tempfile::TempDir>,
        public_url: &str,
        with_directory: bool,
    ) -> TestApp {
        let org = setup::create_org(&store, &format!("org-{}", uuid::Uuid::now_v7()))
            .await
            .expect("org");
        let (directory_id, token) = if with_directory {
            let (directory, token) = setup::create_directory(
                &store,
                &OrgScope::for_org(&org.id, "test"),
                "test directory",
            )
            .await
            .expect("dir");
            (directory.id, token.token)
        } else {
            (String::new(), String::new())
        };
        let router = idbridge::http::router(Self::state(&store, public_url));
        TestApp {
            router,
            store,
            org_id: org.id,
            base: format!("/scim/v2/{directory_id}"),
            directory_id,
            token,
            _dir: dir,
        }
    }

    /// The state of one replica on this database. Outbound requests follow the production
    /// policy (public addresses only), with names resolved by the tests' DNS server.
    pub fn state(store: &Store, public_url: &str) -> AppState {
        let mut state = AppState::new(store.clone(), public_url);
        state.dns.server = Some(crate::dns::server());
        state.outbound = Outbound::new(false, state.dns.server);
        state.metrics_token = Some(METRICS_TOKEN.into());
        // Tests drive the service faster than any IdP; `with_rates` sets limits where tested.
        state.rate = std::sync::Arc::new(idbridge::rate::RateLimits::new(
            &idbridge::rate::RateConfig::OFF,
        ));
        state
    }

    /// A replica's state whose outbound requests may reach the local fakes (webhook receivers,
    /// IdPs, discovery documents on 127.0.0.1): `IDBRIDGE_ALLOW_PRIVATE_URLS`.
    pub fn state_reaching_fakes(store: &Store, public_url: &str) -> AppState {
        let mut state = Self::state(store, public_url);
        state.outbound = Outbound::new(true, state.dns.server);
        state
    }

    /// This app, with outbound requests allowed to reach local fakes.
    pub fn reaching_fakes(mut self) -> TestApp {
        self.router = idbridge::http::router(Self::state_reaching_fakes(&self.store, PUBLIC_URL));
        self
    }

    /// This app with these rate limits instead of the defaults.
    pub fn with_rates(mut self, rates: idbridge::rate::RateConfig) -> TestApp {
        let mut state = Self::state(&self.store, PUBLIC_URL);
        state.rate = std::sync::Arc::new(idbridge::rate::RateLimits::new(&rates));
        self.router = idbridge::http::router(state);
        self
    }

    /// This app with these request sizes instead of the defaults.
    pub fn with_sizes(mut self, sizes: idbridge::domain::limits::Sizes) -> TestApp {
        let mut state = Self::state(&self.store, PUBLIC_URL);
        state.sizes = sizes;
        self.router = idbridge::http::router(state);
        self
    }

    /// Another replica: its own router (and caches) on the same database.
    pub fn replica(&self, public_url: &str) -> Router {
        idbridge::http::router(Self::state(&self.store, public_url))
    }

    /// A second directory (in a new organization) on the same database and router.
    pub async fn other_directory(&self) -> (String, String) {
        let org = setup::create_org(&self.store, &format!("other-{}", uuid::Uuid::now_v7()))
            .await
            .unwrap();
        let (d, t) =
            setup::create_directory(&self.store, &OrgScope::for_org(&org.id, "test"), "other")
                .await
                .unwrap();
        (d.id, t.token)
    }

    /// Sends a request to `path` (relative to the directory's SCIM base when it starts with '/'
    /// and not with "/scim" or a well-known root path).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let uri = if path.starts_with("/scim/")
            || path.starts_with("/api/")
            || path.starts_with("/healthz")
            || path.starts_with("/readyz")
            || path.starts_with("/metrics")
        {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        };
        let mut req = Request::builder().method(method).uri(uri);
        let has_auth = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"));
        if !has_auth {
            let token = if path.starts_with("/metrics") {
                METRICS_TOKEN
            } else {
                &self.token
            };
            req = req.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/scim+json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send_raw(req).await
    }

    pub async fn send_raw(&self, req: Request<Body>) -> Resp {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, &[]).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(Method::POST, path, Some(body), &[]).await
    }
    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PUT, path, Some(body), &[]).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(Method::PATCH, path, Some(body), &[]).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// Creates a user with this userName and returns its id.
    pub async fn user(&self, user_name: &str) -> String {
        let r = self
            .post(
                "/Users",
                serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": user_name,
                    "name": {"givenName": "Given", "familyName": "Family"},
                    "emails": [{"value": user_name, "type": "work", "primary": true}],
                    "active": true
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    /// Creates a group with these member ids and returns its id.
    pub async fn group(&self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members
            .iter()
            .map(|m| serde_json::json!({"value": m}))
            .collect();
        let r = self
            .post(
                "/Groups",
                serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": name,
                    "members": members
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    /// Member ids of a group, sorted.
    pub async fn member_ids(&self, group_id: &str) -> Vec<String> {
        let r = self.get(&format!("/Groups/{group_id}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let mut ids: Vec<String> = r.body["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }
}

// ---- admin API --------------------------------------------------------------------------------

impl TestApp {
    /// This organization's scope, for store calls made with the operator's authority.
    pub fn org_scope(&self) -> OrgScope {
        OrgScope::for_org(&self.org_id, "test")
    }

    /// Mints an admin token of this organization with this role.
    pub async fn admin_token(&self, role: &str, sub_account: Option<&str>) -> String {
        setup::create_admin_token(&self.store, &self.org_scope(), role, sub_account, "test")
            .await
            .expect("admin token")
            .token
    }

    /// `/api/v1/orgs/{this org}{suffix}`.
    pub fn org_path(&self, suffix: &str) -> String {
        format!("/api/v1/orgs/{}{suffix}", self.org_id)
    }

    /// An admin API request with this token.
    pub async fn api(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Resp {
        let auth = format!("Bearer {token}");
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", auth);
        let req = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                req.body(Body::from(b.to_string()))
            }
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send_raw(req).await
    }

    /// The organization user behind a SCIM userName, found through the admin API.
    pub async fn org_user_id(&self, token: &str, user_name: &str) -> String {
        let users = self
            .api_ok(&self.org_path("/users?limit=1000"), token)
            .await;
        users["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["user_name"] == user_name)
            .unwrap_or_else(|| panic!("no organization user {user_name}: {users}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// GET on the admin API, asserting 200.
    pub async fn api_ok(&self, path: &str, token: &str) -> Value {
        let r = self.api(Method::GET, path, token, None).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
        r.body
    }
}

impl Resp {
    /// Asserts an RFC 9457 problem with this status.
    #[track_caller]
    pub fn assert_problem(&self, status: u16) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        assert_eq!(self.body["status"], status, "{}", self.body);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.body
        );
    }
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---- helpers shared by the dialect suites -------------------------------------------------

/// A PatchOp message with these operations.
pub fn patch(ops: Value) -> Value {
    serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

/// RFC 7644 §3.5.2: a successful PATCH answers 200 with the resource or 204 without a body.
#[track_caller]
pub fn assert_patched(r: &Resp) {
    assert!(
        r.status == StatusCode::OK || r.status == StatusCode::NO_CONTENT,
        "PATCH -> {}: {}",
        r.status,
        r.body
    );
}

pub async fn get_ok(app: &TestApp, path: &str) -> Value {
    let r = app.get(path).await;
    assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
    r.body
}

pub fn resources(list: &Value) -> Vec<Value> {
    match list.get("Resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => panic!("Resources is not an array: {other}"),
    }
}

pub fn ids(list: &Value) -> Vec<String> {
    resources(list)
        .iter()
        .map(|r| r["id"].as_str().expect("resource id").to_string())
        .collect()
}

/// The issuer of a fake OpenID provider on 127.0.0.1 that serves only discovery (Discovery 1.0
/// §4) and an empty JWKS, for tests that need a connection that passes the check on creation.
/// Any path is an issuer: `{issuer}/.well-known/openid-configuration` names the issuer it was
/// asked for (without a trailing slash); under `/not-json` it answers HTML, under `/missing` 404.
pub fn fake_issuer() -> String {
    format!("http://{}", fake_provider())
}

fn fake_provider() -> std::net::SocketAddr {
    static ADDR: std::sync::OnceLock<std::net::SocketAddr> = std::sync::OnceLock::new();
    *ADDR.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake provider");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        // Its own thread and runtime: each test's runtime ends with the test.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new().fallback(move |uri: axum::http::Uri| async move {
                    discovery_answer(addr, uri.path())
                });
                axum::serve(listener, app).await.unwrap();
            });
        });
        addr
    })
}

fn discovery_answer(addr: std::net::SocketAddr, path: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(prefix) = path.strip_suffix("/.well-known/openid-configuration") else {
        if path.ends_with("/jwks") {
            return axum::Json(serde_json::json!({"keys": []})).into_response();
        }
        return StatusCode::NOT_FOUND.into_response();
    };
    if prefix.starts_with("/missing") {
        return StatusCode::NOT_FOUND.into_response();
    }
    if prefix.starts_with("/not-json") {
        return axum::response::Html("<html>sign in</html>").into_response();
    }
    axum::Json(discovery_document(&format!("http://{addr}{prefix}"))).into_response()
}

/// An OpenID provider's discovery document (OpenID Connect Discovery 1.0 §3) at `issuer`, with its
/// endpoints below it.
pub fn discovery_document(issuer: &str) -> Value {
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
}

// ---- a fake OpenID provider ---------------------------------------------------------------------

/// Just enough of an OpenID provider on 127.0.0.1 for a sign-in to be verified: discovery, its
/// key, and a token endpoint that answers any code with an ID token for the user [`OidcIdp::set_user`]
/// names (`ada@example.com` until then), bound to the nonce [`oidc_sign_in`] hands it (the
/// browser's part is played by the test). Connections to it need an app [`TestApp::reaching_fakes`].
pub struct OidcIdp {
    pub issuer: String,
    nonce: std::sync::Arc<std::sync::Mutex<String>>,
    user: std::sync::Arc<std::sync::Mutex<Value>>,
}

impl OidcIdp {
    pub async fn start() -> OidcIdp {
        use axum::routing::{get, post};
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use serde_json::json;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let key =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let nonce = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let user = std::sync::Arc::new(std::sync::Mutex::new(
            json!({"email": "ada@example.com", "email_verified": true}),
        ));
        let rsa = key.rsa().unwrap();
        let jwks = json!({"keys": [{
            "kty": "RSA", "use": "sig", "kid": "k1",
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        }]});
        let discovery = discovery_document(&issuer);
        let (iss, n, u) = (issuer.clone(), nonce.clone(), user.clone());
        let token = move || {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let mut claims = json!({
                "iss": iss, "aud": "idbridge-at-idp", "iat": now, "exp": now + 300,
                "nonce": *n.lock().unwrap(),
            });
            let user = u.lock().unwrap().clone();
            claims["sub"] = json!(format!("sub-{}", user["email"].as_str().unwrap_or("x")));
            for (k, v) in user.as_object().unwrap() {
                claims[k] = v.clone();
            }
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD
                    .encode(json!({"alg": "RS256", "typ": "JWT", "kid": "k1"}).to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let mut signer =
                openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
            signer.update(input.as_bytes()).unwrap();
            let jws = format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(signer.sign_to_vec().unwrap())
            );
            async move {
                axum::Json(json!({"access_token": "at", "token_type": "Bearer", "id_token": jws}))
            }
        };
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(discovery) }),
            )
            .route("/jwks", get(move || async move { axum::Json(jwks) }))
            .route("/token", post(token));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        OidcIdp {
            issuer,
            nonce,
            user,
        }
    }

    /// The claims (besides iss, sub, aud, times and nonce) of the next ID tokens: `email`,
    /// `email_verified`, `groups`...
    /// The nonce of the next ID tokens: the one of the sign-in a test started by hand.
    pub fn set_nonce(&self, nonce: &str) {
        *self.nonce.lock().unwrap() = nonce.to_string();
    }

    pub fn set_user(&self, claims: Value) {
        *self.user.lock().unwrap() = claims;
    }
}

/// Starts a sign-in at this connection and comes back to the callback as the browser would; the
/// callback's answer (its `set-cookie` holds the session when it succeeded).
pub async fn oidc_sign_in(app: &TestApp, idp: &OidcIdp, connection: &str) -> Resp {
    let start = app
        .send_raw(
            Request::builder()
                .uri(format!("/sso/{connection}/start"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let location = url::Url::parse(start.header("location").expect("redirect to the IdP")).unwrap();
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    *idp.nonce.lock().unwrap() = param("nonce");
    let cookie = start
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    let callback = Request::builder()
        .uri(format!(
            "/sso/oidc/callback?code=c1&state={}",
            enc(&param("state"))
        ))
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap();
    app.send_raw(callback).await
}

/// The PKCE verifier of the code requests tests make.
pub const VERIFIER: &str = "a-code-verifier-of-at-least-forty-three-characters-0123456789";

/// The query of a code request of `client_id` with [`VERIFIER`]'s challenge, plus `extra`.
pub fn code_request_query(client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
    use base64::Engine;
    use sha2::Digest;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(VERIFIER.as_bytes()));
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("state", "st"),
            ("nonce", "n"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .extend_pairs(extra)
        .finish()
}

/// A code request of `client_id` (plus `extra` parameters) that must not show a sign-in page, from
/// a browser with this session cookie: with a live session it answers a code, without one
/// `login_required`. The Location it redirects to.
pub async fn silent_authorize(
    app: &TestApp,
    client_id: &str,
    redirect_uri: &str,
    extra: &[(&str, &str)],
    session: &str,
) -> url::Url {
    let mut extra = extra.to_vec();
    extra.insert(0, ("prompt", "none"));
    let q = code_request_query(client_id, redirect_uri, &extra);
    let req = Request::builder()
        .uri(format!("/oauth/authorize?{q}"))
        .header("cookie", format!("idbridge_session={session}"))
        .body(Body::empty())
        .unwrap();
    let r = app.send_raw(req).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:?}");
    url::Url::parse(r.header("location").unwrap()).unwrap()
}

pub fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
