//! idbridge as an OpenID provider to the SaaS: the authorization request (OpenID Connect Core
//! §3.1.2, code flow with PKCE S256 only), the code it hands out, the code's exchange at the
//! token endpoint (§3.1.3), the id_token and userinfo claims, and the signing key each replica
//! caches and the CLI rotates. JWS, JWKS and PKCE themselves are [`crate::oauth::token`].

use std::sync::PoisonError;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::oauth::token::{self, SigningKey};
use crate::service::{SsoCtx as Ctx, micros};
use crate::store::directory::mint_token;
use crate::store::sso::{self as db, Connection, LiveSession};
use crate::store::{Store, StoreError};

/// RFC 6749 §4.1.2 recommends at most 10 minutes; a browser redirect needs seconds.
const CODE_TTL: Duration = Duration::from_secs(60);
const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
pub const ID_TOKEN_TTL: Duration = Duration::from_secs(600);
/// A retired signing key stays in the JWKS this long: past every token it signed.
pub const RETIRED_KEY_PUBLISHED: Duration = Duration::from_secs(600 + 3600);
/// How long a replica signs with the key it read before reading again: a rotation made on another
/// replica is picked up within this, and tokens signed meanwhile with the previous key still verify
/// (it stays published).
const SIGNER_TTL: Duration = Duration::from_secs(60);

/// Our current id_token signing key, parsed, and when it was read: one a replica.
pub type Signer = std::sync::Mutex<Option<(Instant, SigningKey)>>;

/// OpenID Connect Discovery 1.0 §3.
pub fn discovery_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "jwks_uri": format!("{issuer}/oauth/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "azp", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "email", "name", "org", "org_roles", "accounts"],
        "authorization_response_iss_parameter_supported": true,
    })
}

// ---- the authorization request -----------------------------------------------------------------

/// The authorization request as the client sends it (§3.1.2.1), and idbridge's `org` and
/// `connection`.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub login_hint: Option<String>,
    pub org: Option<String>,
    /// The connection to sign in with, one of the organization's (an idbridge extension for an
    /// application that knows which IdP its user belongs to).
    pub connection: Option<String>,
    pub prompt: Option<String>,
}

/// A checked authorization request: what the code will be issued for, kept with the sign-in it
/// waits on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthzRequest {
    pub client_id: String,
    /// One of the client's registered URIs, exactly.
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// S256 (RFC 7636 §4.2).
    pub code_challenge: String,
    pub scope: String,
}

/// An error for the client, sent back to its (verified) redirect URI: RFC 6749 §4.1.2.1.
#[derive(Debug)]
pub struct AuthzError {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub error: &'static str,
    pub description: &'static str,
}

impl AuthzError {
    /// The client's redirect URI with the error, its state and the issuer (RFC 9207 §2); `None`
    /// when the URI does not parse.
    pub fn url(&self, issuer: &str) -> Option<String> {
        let mut url = url::Url::parse(&self.redirect_uri).ok()?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("error", self.error);
            q.append_pair("error_description", self.description);
            if let Some(st) = &self.state {
                q.append_pair("state", st);
            }
            q.append_pair("iss", issuer);
        }
        Some(url.into())
    }
}

/// Where an authorization request goes next.
#[derive(Debug)]
pub enum Authorize {
    /// Until the client and its redirect URI are verified, errors go to the user, never to a URI
    /// (§3.1.2.6: an open redirector otherwise).
    Fail { code: &'static str, reason: String },
    /// Back to the client with an error.
    Error(AuthzError),
    /// Back to the client with a code: the browser's session is of the organization already.
    Code(String),
    /// To the organization's IdP first.
    SignIn {
        connection: Box<Connection>,
        authz: AuthzRequest,
        login_hint: Option<String>,
    },
}

/// The session a browser's cookie names, if it is live.
async fn current_session(ctx: Ctx<'_>, token: Option<&str>) -> Option<LiveSession> {
    ctx.store
        .live_session(token?, ctx.session_idle)
        .await
        .ok()
        .flatten()
}

/// The authorization endpoint (OpenID Connect Core §3.1.2): code flow with PKCE S256 only.
/// `session_token` is the browser's session cookie.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn authorize(ctx: Ctx<'_>, p: AuthorizeParams, session_token: Option<&str>) -> Authorize {
    let fail = |code, reason: String| Authorize::Fail { code, reason };
    let client = match p.client_id.as_deref() {
        Some(id) => match ctx.store.client(id).await {
            Ok(Some(c)) => c,
            Ok(None) => return fail("unknown_client", format!("client_id {id:?}")),
            Err(e) => return fail("store", e.to_string()),
        },
        None => return fail("unknown_client", "no client_id".into()),
    };
    let Some(redirect_uri) = p
        .redirect_uri
        .as_deref()
        .filter(|r| client.redirect_uris.iter().any(|u| u == r))
    else {
        return fail(
            "redirect_uri_mismatch",
            format!("client {} redirect_uri {:?}", client.id, p.redirect_uri),
        );
    };
    let err = |error, description| {
        Authorize::Error(AuthzError {
            redirect_uri: redirect_uri.to_string(),
            state: p.state.clone(),
            error,
            description,
        })
    };
    if p.response_type.as_deref() != Some("code") {
        return err(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let scope = p.scope.clone().unwrap_or_default();
    if !scope.split(' ').any(|v| v == "openid") {
        return err("invalid_scope", "the openid scope is required");
    }
    let Some(code_challenge) = p
        .code_challenge
        .clone()
        .filter(|c| token::valid_pkce_challenge(c))
        .filter(|_| p.code_challenge_method.as_deref() == Some("S256"))
    else {
        return err(
            "invalid_request",
            "PKCE with code_challenge_method=S256 is required",
        );
    };
    if p.state.as_ref().is_some_and(|st| st.len() > 1024)
        || p.nonce.as_ref().is_some_and(|n| n.len() > 1024)
    {
        return err(
            "invalid_request",
            "state and nonce are limited to 1024 bytes",
        );
    }
    // Which organization: the one named, the one whose domain the hint is in, or the client's own.
    let hinted = match p.login_hint.as_deref() {
        Some(hint) => match ctx.store.org_for_email(hint).await {
            Ok(o) => o,
            Err(e) => return fail("store", e.to_string()),
        },
        None => None,
    };
    let named = match p.connection.as_deref() {
        Some(id) => match ctx.store.connection_by_id(id).await {
            Ok(c) => Some(c),
            Err(StoreError::NotFound) => {
                return err("invalid_request", "connection names no connection");
            }
            Err(e) => return fail("store", e.to_string()),
        },
        None => None,
    };
    if let Some(c) = &named {
        if client.org_id.as_ref().is_some_and(|o| *o != c.org_id)
            || p.org.as_ref().is_some_and(|o| *o != c.org_id)
        {
            return err(
                "invalid_request",
                "connection is not a connection of this client's organization",
            );
        }
        if !c.enabled || !c.is_complete() {
            return err(
                "access_denied",
                "the connection is disabled or not set up yet",
            );
        }
    }
    let org = named
        .as_ref()
        .map(|c| c.org_id.clone())
        .or(p.org.clone())
        .or(hinted)
        .or(client.org_id.clone());
    let Some(org) = org else {
        return err(
            "invalid_request",
            "login_hint (an email of a verified domain) or org is required",
        );
    };
    if client.org_id.as_ref().is_some_and(|o| *o != org) {
        return err(
            "access_denied",
            "this client signs in users of another organization",
        );
    }
    let authz = AuthzRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_string(),
        state: p.state.clone(),
        nonce: p.nonce.clone(),
        code_challenge,
        scope,
    };
    let prompt = p.prompt.as_deref().unwrap_or("");
    if prompt.split(' ').all(|v| v != "login")
        && let Some(session) = current_session(ctx, session_token).await
        && session.org_id == org
    {
        return match issue_code(ctx, &session.id, session.created_at, &authz).await {
            Ok(url) => Authorize::Code(url),
            Err(e) => fail("store", e.to_string()),
        };
    }
    if prompt.split(' ').any(|v| v == "none") {
        return err("login_required", "the user is not signed in");
    }
    let sign_in = |connection: Connection| Authorize::SignIn {
        connection: Box::new(connection),
        authz: authz.clone(),
        login_hint: p.login_hint.clone(),
    };
    if let Some(conn) = named {
        return sign_in(conn);
    }
    let conn = match p.login_hint.as_deref() {
        Some(hint) => ctx.store.connection_for_email(hint).await,
        None => Ok(None),
    };
    let conn = match conn {
        Ok(Some(c)) if c.org_id == org => Ok(Some(c)),
        Ok(_) => ctx.store.connection_for_org(&org).await,
        Err(e) => Err(e),
    };
    match conn {
        Ok(Some(conn)) => sign_in(conn),
        Ok(None) => err(
            "access_denied",
            "the organization has no enabled SSO connection",
        ),
        Err(e) => fail("store", e.to_string()),
    }
}

/// What an authorization code stands for until it is exchanged.
#[derive(Debug, Serialize, Deserialize)]
struct CodeRecord {
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: String,
    scope: String,
    /// Seconds since the epoch (the id_token's `auth_time`).
    auth_time: i64,
}

/// A code for a signed-in session (§3.1.2.5): the client's redirect URI with the code, its state
/// and the issuer (RFC 9207 §2). `signed_in_at` is the session's start, in microseconds.
#[tracing::instrument(level = "debug", skip_all, fields(session_id = session_id))]
pub async fn issue_code(
    ctx: Ctx<'_>,
    session_id: &str,
    signed_in_at: i64,
    authz: &AuthzRequest,
) -> Result<String, StoreError> {
    let record = CodeRecord {
        redirect_uri: authz.redirect_uri.clone(),
        nonce: authz.nonce.clone(),
        code_challenge: authz.code_challenge.clone(),
        scope: authz.scope.clone(),
        auth_time: signed_in_at / 1_000_000,
    };
    let data =
        serde_json::to_value(&record).map_err(|e| StoreError::Invalid(format!("code: {e}")))?;
    let code = mint_token("idbac_");
    let mut tx = ctx.store.begin().await?;
    let expires_at = tx.now() + micros(CODE_TTL);
    db::put_code(
        &mut tx,
        &code,
        &authz.client_id,
        session_id,
        &data,
        expires_at,
    )
    .await?;
    tx.commit().await?;
    let mut url = url::Url::parse(&authz.redirect_uri)
        .map_err(|e| StoreError::Invalid(format!("redirect_uri: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(st) = &authz.state {
            q.append_pair("state", st);
        }
        q.append_pair("iss", ctx.public_url);
    }
    Ok(url.into())
}

// ---- the token endpoint ------------------------------------------------------------------------

/// The token request's form (RFC 6749 §4.1.3, with client_secret_post's credentials).
#[derive(Debug, Default, Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// RFC 6749 §5.2.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    InvalidClient(&'static str),
    UnsupportedGrantType,
    InvalidRequest(&'static str),
    InvalidGrant(&'static str),
    /// Ours; logged where it happened.
    Server,
}

impl TokenError {
    pub fn error(&self) -> &'static str {
        match self {
            TokenError::InvalidClient(_) => "invalid_client",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidGrant(_) => "invalid_grant",
            TokenError::Server => "server_error",
        }
    }

    pub fn description(&self) -> &'static str {
        match self {
            TokenError::InvalidClient(d)
            | TokenError::InvalidRequest(d)
            | TokenError::InvalidGrant(d) => d,
            TokenError::UnsupportedGrantType => "only authorization_code is supported",
            TokenError::Server => "internal error",
        }
    }
}

/// Takes a code in a transaction committed whether the code was live or not: a replayed code's
/// revocation of the tokens it gave must stick.
async fn take_code(store: &Store, code: &str) -> Result<Option<db::CodeGrant>, StoreError> {
    let mut tx = store.begin().await?;
    let grant = db::take_code(&mut tx, code).await?;
    tx.commit().await?;
    Ok(grant)
}

fn server_error(e: impl std::fmt::Display) -> TokenError {
    tracing::error!(error = %e, "token endpoint");
    TokenError::Server
}

/// The token endpoint (OpenID Connect Core §3.1.3): a code for an access token and an id_token.
/// `basic` is the client's HTTP Basic credentials, if it sent them.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn exchange_code(
    ctx: Ctx<'_>,
    basic: Option<(String, String)>,
    f: TokenRequest,
) -> Result<Value, TokenError> {
    // RFC 6749 §2.3.1: Basic, or the form's client_id and client_secret; not both.
    let (client_id, secret) = match (basic, f.client_id.as_deref(), f.client_secret.as_deref()) {
        (Some(b), None, None) => b,
        (Some(b), Some(id), None) if id == b.0 => b,
        (None, Some(id), Some(secret)) => (id.to_string(), secret.to_string()),
        _ => {
            return Err(TokenError::InvalidClient(
                "client authentication is required (client_secret_basic or client_secret_post)",
            ));
        }
    };
    let client = match ctx.store.client(&client_id).await.map_err(server_error)? {
        Some(c)
            if openssl::memcmp::eq(
                c.secret_hash.as_bytes(),
                crate::store::directory::hash_token(&secret).as_bytes(),
            ) =>
        {
            c
        }
        _ => return Err(TokenError::InvalidClient("unknown client or wrong secret")),
    };
    if f.grant_type.as_deref() != Some("authorization_code") {
        return Err(TokenError::UnsupportedGrantType);
    }
    let Some(code) = f.code.as_deref() else {
        return Err(TokenError::InvalidRequest("code is required"));
    };
    let Some(db::CodeGrant {
        client_id: code_client,
        session_id,
        data,
    }) = take_code(ctx.store, code).await.map_err(server_error)?
    else {
        return Err(TokenError::InvalidGrant(
            "the code is unknown, used or expired",
        ));
    };
    if code_client != client.id {
        return Err(TokenError::InvalidGrant(
            "the code was issued to another client",
        ));
    }
    let record: CodeRecord = serde_json::from_value(data).map_err(server_error)?;
    if f.redirect_uri.as_deref() != Some(record.redirect_uri.as_str()) {
        return Err(TokenError::InvalidGrant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !f
        .code_verifier
        .as_deref()
        .is_some_and(|v| token::pkce_s256_matches(v, &record.code_challenge))
    {
        return Err(TokenError::InvalidGrant(
            "code_verifier does not match the code_challenge",
        ));
    }
    let Some(session) = ctx
        .store
        .session_is_live(&session_id, ctx.session_idle)
        .await
        .map_err(server_error)?
    else {
        return Err(TokenError::InvalidGrant("the session has ended"));
    };
    mint_tokens(ctx, &client.id, &session, &record)
        .await
        .map_err(server_error)
}

async fn mint_tokens(
    ctx: Ctx<'_>,
    client_id: &str,
    session: &LiveSession,
    record: &CodeRecord,
) -> Result<Value, String> {
    let now = ctx.store.now();
    let access_expires = (now + micros(ACCESS_TOKEN_TTL)).min(session.expires_at);
    let scope = record.scope.as_str();
    let access_token = mint_token("idbat_");
    let stored = async {
        let mut tx = ctx.store.begin().await?;
        db::put_access_token(
            &mut tx,
            &access_token,
            client_id,
            &session.id,
            scope,
            access_expires,
        )
        .await?;
        tx.commit().await
    };
    stored.await.map_err(|e| e.to_string())?;
    let mut claims = user_claims(ctx.store, &session.org_id, &session.org_user_id)
        .await
        .map_err(|e| e.to_string())?;
    let iat = now / 1_000_000;
    let extra = json!({
        "iss": ctx.public_url,
        "aud": client_id,
        "azp": client_id,
        "iat": iat,
        "exp": iat + ID_TOKEN_TTL.as_secs() as i64,
        "auth_time": record.auth_time,
        "at_hash": token::at_hash(&access_token),
        "sid": session.id,
    });
    if let (Some(c), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        c.extend(extra);
        if let Some(nonce) = &record.nonce {
            c.insert("nonce".into(), json!(nonce));
        }
    }
    let key = signing_key(ctx).await?;
    let id_token = key.sign(&claims).map_err(|e| e.to_string())?;
    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": (access_expires - now) / 1_000_000,
        "id_token": id_token,
        "scope": scope,
    }))
}

// ---- userinfo ----------------------------------------------------------------------------------

/// Why userinfo answers no claims.
#[derive(Debug, PartialEq, Eq)]
pub enum UserinfoError {
    /// RFC 6750 §3.1 `invalid_token`: unknown, expired, or its session ended.
    InvalidToken,
    /// Ours; logged.
    Server,
}

/// The UserInfo endpoint (OpenID Connect Core §5.3): the same claims as the id_token's, current.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn userinfo(ctx: Ctx<'_>, access_token: &str) -> Result<Value, UserinfoError> {
    let server = |e: StoreError| {
        tracing::error!(error = %e, "userinfo");
        UserinfoError::Server
    };
    let Some(grant) = ctx.store.access_token(access_token).await.map_err(server)? else {
        return Err(UserinfoError::InvalidToken);
    };
    let Some(session) = ctx
        .store
        .session_is_live(&grant.session_id, ctx.session_idle)
        .await
        .map_err(server)?
    else {
        return Err(UserinfoError::InvalidToken);
    };
    user_claims(ctx.store, &session.org_id, &session.org_user_id)
        .await
        .map_err(server)
}

// ---- signing keys ------------------------------------------------------------------------------

/// The key that signs now, made on first use. Parsing and checking a key costs milliseconds, far
/// more than a signature, so each replica keeps the current one for a while.
async fn signing_key(ctx: Ctx<'_>) -> Result<SigningKey, String> {
    // A cache poisoned by a panic elsewhere still holds a whole value: keep using it.
    if let Some((at, key)) = ctx
        .signer
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        && at.elapsed() < SIGNER_TTL
    {
        return Ok(key.clone());
    }
    let key = load_signing_key(ctx.store).await?;
    *ctx.signer.lock().unwrap_or_else(PoisonError::into_inner) =
        Some((Instant::now(), key.clone()));
    Ok(key)
}

async fn load_signing_key(store: &Store) -> Result<SigningKey, String> {
    let keys = store
        .signing_keys(RETIRED_KEY_PUBLISHED)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(k) = keys.iter().find(|k| k.retired_at.is_none()) {
        return SigningKey::from_pem(&k.kid, &k.private_pem).map_err(|e| e.to_string());
    }
    rotate_signing_key(store, false).await
}

/// Makes a new signing key; with `retire`, the current ones stop signing (and stay published
/// until their tokens have expired).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn rotate_signing_key(store: &Store, retire: bool) -> Result<SigningKey, String> {
    let key = SigningKey::generate().map_err(|e| e.to_string())?;
    let stored = async {
        let sealed = store.seal_signing_key(&key.kid, key.private_pem())?;
        let mut tx = store.begin().await?;
        db::insert_signing_key(&mut tx, &key.kid, &sealed, &key.public_jwk(), retire).await?;
        tx.commit().await
    };
    stored.await.map_err(|e| e.to_string())?;
    Ok(key)
}

/// The JWKS (RFC 7517 §5): the key that signs now, made if there is none yet, and the retired
/// ones whose tokens may still be in use. Errors are logged.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn jwks(ctx: Ctx<'_>) -> Result<Value, ()> {
    if let Err(e) = signing_key(ctx).await {
        tracing::error!(error = %e, "signing key");
        return Err(());
    }
    match ctx.store.signing_keys(RETIRED_KEY_PUBLISHED).await {
        Ok(keys) => {
            let public: Vec<Value> = keys.into_iter().map(|k| k.public_jwk).collect();
            Ok(token::jwks(&public))
        }
        Err(e) => {
            tracing::error!(error = %e, "jwks");
            Err(())
        }
    }
}

// ---- claims ------------------------------------------------------------------------------------

/// What idbridge says of a signed-in user to the SaaS (id_token and userinfo): who they are, their
/// organization roles, and their access in each sub-account where they have any, from the
/// effective access the mapping last computed.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = org_id, org_user_id = org_user_id))]
pub async fn user_claims(
    store: &Store,
    org_id: &str,
    org_user_id: &str,
) -> Result<serde_json::Value, StoreError> {
    use crate::mapping::EffectiveAccess;
    let subject = store.token_subject(org_user_id).await?;
    let access: EffectiveAccess = serde_json::from_str(&subject.access).unwrap_or_default();
    let org_roles: Vec<_> = access.org_roles().keys().collect();
    let accounts: Vec<serde_json::Value> = store
        .sub_account_ids(org_id)
        .await?
        .into_iter()
        .filter_map(|id| {
            let a = access.for_sub_account(&id);
            (a.role.is_some() || !a.features.is_empty() || !a.projects.is_empty()).then(|| {
                serde_json::json!({
                    "id": id,
                    "role": a.role,
                    "permissions": a.features,
                    "projects": a.projects,
                })
            })
        })
        .collect();
    Ok(serde_json::json!({
        "sub": org_user_id,
        "email": subject.email.unwrap_or_else(|| subject.user_name.clone()),
        "name": subject.display_name.unwrap_or(subject.user_name),
        "org": org_id,
        "org_roles": org_roles,
        "accounts": accounts,
    }))
}
