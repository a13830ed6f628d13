//! OpenID Connect 1.0 sign-in as a relying party: the authorization code flow (Core §3.1) with
//! PKCE (RFC 7636, S256), a nonce and a state, for a confidential client. The caller keeps
//! everything between the two legs in its database, so what must survive from [`start`] to
//! [`finish`] comes back as plain strings in [`AuthStart`].
//!
//! - [`OidcConnection`]: one organization's provider and who we are to it, validated once.
//! - [`HttpClient`]: the only way this module talks to a provider, through the service's one
//!   outbound policy ([`crate::net::Outbound`]): an issuer URL is configured by a customer, so
//!   every request it causes goes to an address a customer chose.
//! - [`discover`]: Discovery 1.0 §4 and the JWKS, into a [`Provider`] the caller may cache.
//! - [`start`] / [`finish`]: the two legs of the flow.
//!
//! The protocol work is done by `openidconnect` 4.1.0, with these of its defaults overridden,
//! because each is unsafe for a multi-tenant service:
//! - `Client::id_token_verifier` allows whatever algorithms the discovery document lists
//!   (`HS256` keyed with our client secret, which the IdP also knows, included). The ID token
//!   verifier is built here instead, as a public-client verifier (no shared secret to verify an
//!   HMAC with) pinned to [`ALLOWED_ALGS`].
//! - It reads the wall clock (`Utc::now`) for `exp` and checks nothing about `iat`. Here `now`
//!   comes from the caller and `iat` may not lie in the future.
//! - It does not check `azp` (Core §3.1.3.7 step 5); done here.
//! - It knows nothing of the RFC 9207 `iss` authorization response parameter; done here.
//! - Its HTTP clients follow redirects and read unbounded bodies; [`HttpClient`] replaces them.
//!
//! The crate's own checks that are kept: the discovery document's `issuer` equals the configured
//! issuer exactly, the ID token's `iss` equals it exactly, `aud` contains our client id and no
//! audience we do not trust (so a token with several audiences is refused), `alg: none` is
//! refused, the signature is checked with a key from the provider's JWKS only, the nonce.
//!
//! Keys rotate: a provider cached for long will refuse tokens signed with a new key
//! (`InvalidIdToken("signature: ... No matching key found")`); rediscover on that error and retry
//! the sign-in, not the callback (the code is spent).
//!
//! Errors are for the log. The user should see one generic "sign-in failed" page whatever the
//! variant, so that a probing attacker learns nothing about which check failed.

use std::future::Future;
use std::pin::Pin;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, AsyncHttpClient, AuthType, AuthenticationFlow,
    AuthorizationCode, ClaimsVerificationError, Client, ClientId, ClientSecret, CsrfToken,
    DiscoveryError, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    HttpRequest, HttpResponse, IdTokenFields, IdTokenVerifier, IssuerUrl, LoginHint, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl, RequestTokenError, Scope,
    StandardErrorResponse, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// ID token signature algorithms accepted, whatever the provider advertises: asymmetric only.
/// HMAC would be keyed with the client secret, which the provider (and anyone who reads the
/// connection's configuration) also holds, so it proves nothing about who signed.
pub const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 8] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
];
/// Clock skew allowed on `exp` and `iat`, the same as for SAML.
pub const CLOCK_SKEW: time::Duration = time::Duration::minutes(3);
/// Largest token response read from a provider: a large groups claim stays well under this.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest discovery document or JWKS read; they are a few KiB.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// The claim name used for groups unless the connection says otherwise (Entra, Okta, Keycloak).
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

/// Why a connection's configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("issuer {url:?} is not an absolute http(s) URL without query or fragment")]
    InvalidIssuer { url: String },
    #[error("redirect_uri {url:?} is not an absolute http(s) URL")]
    InvalidRedirectUri { url: String },
    #[error("scope {scope:?} is not a scope token (RFC 6749 §3.3)")]
    InvalidScope { scope: String },
}

/// One organization's OpenID Connect connection: which provider it trusts and who we are to it.
///
/// Built only through [`OidcConnection::new`], so the issuer and redirect URI are absolute URLs
/// and the scopes include `openid`.
#[derive(Debug, Clone)]
pub struct OidcConnection {
    issuer: String,
    client_id: String,
    client_secret: String,
    scopes: Vec<String>,
    groups_claim: String,
    /// Parsed once here, so every later use has a checked URL.
    redirect_uri: RedirectUrl,
}

impl OidcConnection {
    /// `issuer` is compared byte for byte with the discovery document and every ID token, so it
    /// must be written exactly as the provider writes it (trailing slash included or not).
    /// `openid` is added to `scopes` when missing. The groups claim defaults to
    /// [`DEFAULT_GROUPS_CLAIM`]. Only confidential clients are supported: the secret is required.
    pub fn new<S: AsRef<str>>(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        scopes: &[S],
        redirect_uri: &str,
    ) -> Result<OidcConnection, ConfigError> {
        for (field, value) in [
            ("issuer", issuer),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("redirect_uri", redirect_uri),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::Empty { field });
            }
        }
        // Discovery 1.0 §2: the issuer is a URL with no query or fragment components.
        match url::Url::parse(issuer) {
            Ok(url)
                if matches!(url.scheme(), "https" | "http")
                    && url.has_host()
                    && url.query().is_none()
                    && url.fragment().is_none() => {}
            _ => {
                return Err(ConfigError::InvalidIssuer {
                    url: issuer.to_owned(),
                });
            }
        }
        let redirect = match url::Url::parse(redirect_uri) {
            Ok(url) if matches!(url.scheme(), "https" | "http") && url.has_host() => {
                RedirectUrl::from_url(url)
            }
            _ => {
                return Err(ConfigError::InvalidRedirectUri {
                    url: redirect_uri.to_owned(),
                });
            }
        };
        let mut all_scopes = vec!["openid".to_owned()];
        for scope in scopes {
            let scope = scope.as_ref();
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            let valid = !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                return Err(ConfigError::InvalidScope {
                    scope: scope.to_owned(),
                });
            }
            if !all_scopes.iter().any(|s| s == scope) {
                all_scopes.push(scope.to_owned());
            }
        }
        Ok(OidcConnection {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            scopes: all_scopes,
            groups_claim: DEFAULT_GROUPS_CLAIM.to_owned(),
            redirect_uri: redirect,
        })
    }

    /// Read groups from this ID token claim instead of [`DEFAULT_GROUPS_CLAIM`].
    pub fn with_groups_claim(mut self, claim: &str) -> Result<OidcConnection, ConfigError> {
        if claim.trim().is_empty() {
            return Err(ConfigError::Empty {
                field: "groups_claim",
            });
        }
        self.groups_claim = claim.to_owned();
        Ok(self)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    pub fn groups_claim(&self) -> &str {
        &self.groups_claim
    }
    pub fn redirect_uri(&self) -> &str {
        self.redirect_uri.as_str()
    }
}

/// Why a request to a provider was not made or its response not read.
pub type HttpError = crate::net::OutboundError;

/// The HTTP client for everything this module asks a provider: [`crate::net::Outbound`], the
/// service's one outbound policy, with the size bound of each kind of response. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpClient {
    outbound: crate::net::Outbound,
}

impl HttpClient {
    pub fn new(outbound: crate::net::Outbound) -> HttpClient {
        HttpClient { outbound }
    }

    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let url = request.uri().to_string();
        // GETs are the discovery document and the JWKS; the POST is the token response, which
        // carries the groups claim.
        let limit = if request.method() == openidconnect::http::Method::GET {
            MAX_DOCUMENT_BYTES
        } else {
            MAX_BODY_BYTES
        };
        let request = reqwest::Request::try_from(request).map_err(|e| HttpError::InvalidUrl {
            url,
            reason: e.to_string(),
        })?;
        let fetched = self.outbound.fetch(request, limit).await?;
        let mut out = openidconnect::http::Response::new(fetched.body);
        *out.status_mut() = fetched.status;
        *out.headers_mut() = fetched.headers;
        Ok(out)
    }
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

fn error_chain(mut error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    while let Some(source) = error.source() {
        text.push_str(": ");
        text.push_str(&source.to_string());
        error = source;
    }
    text
}

/// Discovery 1.0 §4: where an issuer's configuration is; a terminating `/` of the issuer is
/// removed before the well-known path is appended.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Discovery 1.0 §4.3: the document's `issuer` must be identical to the configured issuer, which
/// every ID token's `iss` is then compared with byte for byte. Says precisely how they differ,
/// since the usual difference is a trailing slash that is hard to see.
pub fn check_discovery_document(configured: &str, document: &[u8]) -> Result<(), String> {
    let value: Value = serde_json::from_slice(document).map_err(|e| {
        let start = String::from_utf8_lossy(&document[..document.len().min(40)]).into_owned();
        format!("the discovery document is not JSON ({e}); it begins {start:?}")
    })?;
    let Some(found) = value.get("issuer").and_then(Value::as_str) else {
        return Err("the discovery document has no issuer".into());
    };
    if found == configured {
        return Ok(());
    }
    let hint = if found.trim_end_matches('/') == configured.trim_end_matches('/') {
        " (trailing slash)"
    } else if found.eq_ignore_ascii_case(configured) {
        " (letter case)"
    } else {
        ""
    };
    Err(format!(
        "issuer mismatch: configured {configured:?} but discovery says {found:?}{hint}"
    ))
}

/// Provider metadata fields `openidconnect` does not know.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExtraProviderMetadata {
    /// RFC 9207 §3.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for ExtraProviderMetadata {}

/// Every ID token claim that `openidconnect` does not model, by name: the groups claim is
/// chosen per connection, so it cannot be a struct field.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct ExtraClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, Value>,
}
impl AdditionalClaims for ExtraClaims {}

type Metadata = ProviderMetadata<
    ExtraProviderMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type TokenResponse = StandardTokenResponse<
    IdTokenFields<
        ExtraClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type RpClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A provider's discovery document and signing keys, as fetched by [`discover`]. Cache it per
/// connection (it is `Clone`); see the module docs on key rotation.
#[derive(Debug, Clone)]
pub struct Provider {
    metadata: Metadata,
}

impl Provider {
    pub fn issuer(&self) -> &str {
        self.metadata.issuer().as_str()
    }
    pub fn authorization_endpoint(&self) -> &str {
        self.metadata.authorization_endpoint().as_str()
    }
    /// RFC 9207 §3: whether every authorization response carries `iss`.
    pub fn iss_parameter_supported(&self) -> bool {
        self.metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            == Some(true)
    }

    fn client(&self, conn: &OidcConnection) -> Result<RpClient, OidcError> {
        let redirect = conn.redirect_uri.clone();
        let client = RpClient::from_provider_metadata(
            self.metadata.clone(),
            ClientId::new(conn.client_id.clone()),
            Some(ClientSecret::new(conn.client_secret.clone())),
        )
        .set_redirect_uri(redirect);
        // RFC 6749 §2.3.1 makes Basic the method every server supports; Discovery 1.0 §3
        // makes it the default when the provider lists none. Use POST only when it is the
        // provider's only secret-based method.
        let auth_type = match self.metadata.token_endpoint_auth_methods_supported() {
            Some(methods)
                if !methods.contains(&CoreClientAuthMethod::ClientSecretBasic)
                    && methods.contains(&CoreClientAuthMethod::ClientSecretPost) =>
            {
                AuthType::RequestBody
            }
            _ => AuthType::BasicAuth,
        };
        Ok(client.set_auth_type(auth_type))
    }
}

/// Why a sign-in failed. For the log only; see the module docs.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("discovery failed: {0}")]
    Discovery(String),
    #[error("discovery document names issuer {found:?}, the connection is for {expected:?}")]
    IssuerMismatch { expected: String, found: String },
    #[error("authorization response iss {found:?} is not the issuer {expected:?} (RFC 9207)")]
    IssParamMismatch { expected: String, found: String },
    #[error("authorization response has no iss, but the provider says it always sends one")]
    IssParamMissing,
    #[error("token request failed: {0}")]
    TokenRequest(String),
    #[error("token response has no id_token")]
    NoIdToken,
    #[error("id_token refused: {0}")]
    InvalidIdToken(String),
    #[error("id_token claim {claim:?} is neither a string nor an array of strings")]
    InvalidGroupsClaim { claim: String },
    #[error("the stored {field} of this flow is empty; the caller lost the flow's state")]
    EmptyFlowState { field: &'static str },
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// Fetches the provider's discovery document (Discovery 1.0 §4) and its JWKS.
pub async fn discover(http: &HttpClient, conn: &OidcConnection) -> Result<Provider, OidcError> {
    let issuer = IssuerUrl::new(conn.issuer.clone())
        .map_err(|e| OidcError::Discovery(format!("issuer: {e}")))?;
    // Discovery 1.0 §4.3: the document's issuer must be identical to the URL discovery was
    // done for. openidconnect checks this and reports it only as text.
    let metadata = Metadata::discover_async(issuer, http)
        .await
        .map_err(|e| match e {
            DiscoveryError::Request(e) => OidcError::Http(e),
            DiscoveryError::Validation(text) => OidcError::IssuerMismatch {
                expected: conn.issuer.clone(),
                found: text
                    .split('`')
                    .nth(1)
                    .map_or_else(|| text.clone(), str::to_owned),
            },
            other => OidcError::Discovery(error_chain(&other)),
        })?;
    if metadata.token_endpoint().is_none() {
        return Err(OidcError::Discovery(
            "the provider has no token_endpoint; the code flow needs one".into(),
        ));
    }
    Ok(Provider { metadata })
}

/// What [`start`] produced: send the browser to `url`, and keep the rest, keyed by `state`,
/// until the callback.
#[derive(Debug, Clone)]
pub struct AuthStart {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// A random value fit to be the `state` of [`start`]: 128 bits, URL-safe.
pub fn new_state() -> String {
    CsrfToken::new_random().secret().clone()
}

/// Builds the authentication request (Core §3.1.2.1) with a fresh nonce and PKCE S256 pair.
///
/// `state` is the caller's: it is the key under which the caller stores this [`AuthStart`], and
/// the callback finds it again by it. It is the CSRF protection of the flow (RFC 6749 §10.12),
/// so it must be unguessable and single-use: use [`new_state`].
pub fn start(
    provider: &Provider,
    conn: &OidcConnection,
    state: &str,
    login_hint: Option<&str>,
) -> AuthStart {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state_token = CsrfToken::new(state.to_owned());
    let client = RpClient::from_provider_metadata(
        provider.metadata.clone(),
        ClientId::new(conn.client_id.clone()),
        None,
    );
    let mut request = client
        .authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            move || state_token,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .set_redirect_uri(std::borrow::Cow::Borrowed(&conn.redirect_uri));
    // openidconnect always adds `openid` itself.
    for scope in conn.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    if let Some(hint) = login_hint {
        request = request.set_login_hint(LoginHint::new(hint.to_owned()));
    }
    let (url, state_token, nonce) = request.url();
    AuthStart {
        url: url.to_string(),
        state: state_token.secret().clone(),
        nonce: nonce.secret().clone(),
        pkce_verifier: verifier.secret().clone(),
    }
}

/// What the provider sent back to the redirect URI. The caller has already looked up the
/// stored [`AuthStart`] by `state` (and deleted it: a state is good for one callback).
#[derive(Debug, Clone, Copy)]
pub struct Callback<'a> {
    pub code: &'a str,
    /// The RFC 9207 `iss` parameter, when present.
    pub iss: Option<&'a str>,
}

/// The authenticated user, from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// `sub`: stable and unique within the issuer only; key users by (issuer, subject).
    pub subject: String,
    pub issuer: String,
    pub email: Option<String>,
    /// Unverified email must not be used to link to an existing account.
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    pub groups: Groups,
}

/// The groups claim of the ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    Present(Vec<String>),
    /// Entra ID's group overage: too many groups for a token, so `_claim_names` names the groups
    /// claim and the values must be fetched from Microsoft Graph. Not the same as "no groups".
    Overage,
    Absent,
}

/// Completes the flow: checks the callback, redeems the code and verifies the ID token.
///
/// `nonce` and `pkce_verifier` are the ones [`start`] returned for this callback's `state`.
/// `now` is the caller's clock, used for `exp` and `iat` with [`CLOCK_SKEW`] either way.
pub async fn finish(
    http: &HttpClient,
    provider: &Provider,
    conn: &OidcConnection,
    cb: Callback<'_>,
    nonce: &str,
    pkce_verifier: &str,
    now: OffsetDateTime,
) -> Result<OidcIdentity, OidcError> {
    // An empty stored value would make the matching check vacuous (a token with `"nonce": ""`).
    for (field, value) in [("nonce", nonce), ("pkce_verifier", pkce_verifier)] {
        if value.is_empty() {
            return Err(OidcError::EmptyFlowState { field });
        }
    }

    // RFC 9207 §2.4: a response whose iss differs from the issuer we sent the user to is a
    // mix-up attack; when the provider advertises iss, a response without it is one too.
    match cb.iss {
        Some(iss) if iss != conn.issuer => {
            return Err(OidcError::IssParamMismatch {
                expected: conn.issuer.clone(),
                found: iss.to_owned(),
            });
        }
        None if provider.iss_parameter_supported() => return Err(OidcError::IssParamMissing),
        _ => {}
    }

    // RFC 6749 §4.1.3 with RFC 7636 §4.5.
    let client = provider.client(conn)?;
    let response = client
        .exchange_code(AuthorizationCode::new(cb.code.to_owned()))
        .map_err(|e| OidcError::Discovery(e.to_string()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
        .request_async(http)
        .await
        .map_err(|e| match e {
            RequestTokenError::Request(e) => OidcError::Http(e),
            // RFC 6749 §5.2: error and error_description, as the provider sent them.
            RequestTokenError::ServerResponse(e) => OidcError::TokenRequest(e.to_string()),
            // The body is not logged: it may hold tokens.
            RequestTokenError::Parse(e, _body) => {
                OidcError::TokenRequest(format!("unreadable token response: {e}"))
            }
            RequestTokenError::Other(text) => OidcError::TokenRequest(text),
        })?;
    let id_token = response
        .extra_fields()
        .id_token()
        .ok_or(OidcError::NoIdToken)?;

    // Core §3.1.3.7. A public-client verifier: it has no secret, so it cannot accept an HMAC.
    let skewed_now = chrono_time(now - CLOCK_SKEW)?;
    let latest_iat = (now + CLOCK_SKEW).unix_timestamp();
    let verifier = IdTokenVerifier::new_public_client(
        ClientId::new(conn.client_id.clone()),
        provider.metadata.issuer().clone(),
        provider.metadata.jwks().clone(),
    )
    .set_allowed_algs(ALLOWED_ALGS)
    // Step 9, exp, against the caller's clock.
    .set_time_fn(move || skewed_now)
    // Step 10: a token issued in the future comes from a broken clock or a forger.
    .set_issue_time_verifier_fn(move |iat| {
        if iat.timestamp() > latest_iat {
            Err(format!("issued in the future ({iat})"))
        } else {
            Ok(())
        }
    });
    let nonce = Nonce::new(nonce.to_owned());
    let claims = id_token
        .claims(&verifier, &nonce)
        .map_err(|e| OidcError::InvalidIdToken(describe(&e)))?;

    // Steps 4-5. Several audiences are already refused (none but ours is trusted), so azp
    // can only be checked for being ours.
    if let Some(azp) = claims.authorized_party()
        && azp.as_str() != conn.client_id
    {
        return Err(OidcError::InvalidIdToken(format!(
            "azp: {:?} is not our client id",
            azp.as_str()
        )));
    }

    let groups = read_groups(&claims.additional_claims().claims, &conn.groups_claim)?;
    Ok(OidcIdentity {
        subject: claims.subject().as_str().to_owned(),
        issuer: conn.issuer.clone(),
        email: claims.email().map(|e| e.as_str().to_owned()),
        email_verified: claims.email_verified(),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned()),
        groups,
    })
}

/// Names the failed check first, so that the log says which one.
fn describe(error: &ClaimsVerificationError) -> String {
    let what = match error {
        ClaimsVerificationError::Expired(_) => "exp/iat",
        ClaimsVerificationError::InvalidAudience(_) => "audience",
        ClaimsVerificationError::InvalidIssuer(_) => "issuer",
        ClaimsVerificationError::InvalidNonce(_) => "nonce",
        ClaimsVerificationError::SignatureVerification(_) => "signature",
        ClaimsVerificationError::Unsupported(_) => "unsupported",
        _ => "claims",
    };
    format!("{what}: {}", error_chain(error))
}

/// openidconnect takes its time as chrono's `DateTime<Utc>`; chrono is not a dependency of this
/// crate, so the value is made through its serde form (RFC 3339), with the type inferred.
fn chrono_time<T: serde::de::DeserializeOwned>(t: OffsetDateTime) -> Result<T, OidcError> {
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| OidcError::InvalidIdToken(format!("clock: {e}")))?;
    serde_json::from_value(Value::String(text))
        .map_err(|e| OidcError::InvalidIdToken(format!("clock: {e}")))
}

fn read_groups(
    claims: &serde_json::Map<String, Value>,
    groups_claim: &str,
) -> Result<Groups, OidcError> {
    let invalid = || OidcError::InvalidGroupsClaim {
        claim: groups_claim.to_owned(),
    };
    match claims.get(groups_claim) {
        Some(Value::String(group)) => Ok(Groups::Present(vec![group.clone()])),
        Some(Value::Array(values)) => values
            .iter()
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect::<Result<_, _>>()
            .map(Groups::Present),
        Some(_) => Err(invalid()),
        // Core §5.6.2: aggregated and distributed claims are announced in _claim_names.
        None if claims
            .get("_claim_names")
            .and_then(Value::as_object)
            .is_some_and(|names| names.contains_key(groups_claim)) =>
        {
            Ok(Groups::Overage)
        }
        None => Ok(Groups::Absent),
    }
}

#[cfg(test)]
mod tests {
    //! Against a real in-process provider: an axum server on 127.0.0.1 that serves discovery,
    //! a JWKS and a token endpoint, and signs ID tokens with an RSA key made for the test.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use axum::extract::{Form, State};
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;
    use serde_json::json;

    use super::*;
    use std::sync::Arc;

    const CLIENT_ID: &str = "client-1";
    const CLIENT_SECRET: &str = "secret-1";
    const REDIRECT_URI: &str = "https://app.example/callback";
    /// iat of every token the fake provider issues; exp is 5 minutes later.
    const T0: i64 = 1_700_000_000;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(T0 + 10).unwrap()
    }

    /// The fake provider listens on 127.0.0.1.
    fn open_client() -> HttpClient {
        HttpClient::new(crate::net::Outbound::new(true, None))
    }

    #[derive(Clone, Copy)]
    enum Signing {
        Rs256,
        Rs384,
        /// HMAC keyed with the client secret, as Core §10.1 allows when a client registers it.
        Hs256,
        None,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum TokenMode {
        Normal,
        /// 307 to an endpoint that would succeed: following it would sign the user in.
        Redirect,
    }

    struct Config {
        discovery_issuer: Option<String>,
        iss_param_supported: bool,
        signing: Signing,
        token_mode: TokenMode,
        tweak: fn(&mut Value),
    }

    impl Default for Config {
        fn default() -> Self {
            Config {
                discovery_issuer: None,
                iss_param_supported: false,
                signing: Signing::Rs256,
                token_mode: TokenMode::Normal,
                tweak: |_| {},
            }
        }
    }

    struct Pending {
        challenge: String,
        nonce: String,
    }

    struct Idp {
        issuer: String,
        key: PKey<Private>,
        config: Config,
        pending: Mutex<HashMap<String, Pending>>,
        verifiers_seen: Mutex<Vec<String>>,
    }

    struct FakeIdp {
        idp: Arc<Idp>,
    }

    impl FakeIdp {
        async fn start(config: Config) -> FakeIdp {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let issuer = format!("http://{}", listener.local_addr().unwrap());
            let idp = Arc::new(Idp {
                issuer,
                key: PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
                config,
                pending: Mutex::new(HashMap::new()),
                verifiers_seen: Mutex::new(Vec::new()),
            });
            let app = Router::new()
                .route("/.well-known/openid-configuration", get(discovery))
                .route("/jwks", get(jwks))
                .route("/token", post(token))
                .route("/token-final", post(token_final))
                .route("/big", get(|| async { vec![b'x'; MAX_BODY_BYTES + 1] }))
                .with_state(idp.clone());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            FakeIdp { idp }
        }

        fn issuer(&self) -> &str {
            &self.idp.issuer
        }

        fn conn(&self) -> OidcConnection {
            OidcConnection::new(
                &self.idp.issuer,
                CLIENT_ID,
                CLIENT_SECRET,
                &["email", "profile"],
                REDIRECT_URI,
            )
            .unwrap()
        }

        /// The provider's half of the authorization endpoint: checks the request a browser
        /// would bring and returns the code it would redirect back with.
        fn authorize(&self, start: &AuthStart) -> String {
            let url = url::Url::parse(&start.url).unwrap();
            assert!(
                url.as_str()
                    .starts_with(&format!("{}/authorize?", self.idp.issuer))
            );
            let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
            assert_eq!(q["response_type"], "code");
            assert_eq!(q["client_id"], CLIENT_ID);
            assert_eq!(q["redirect_uri"], REDIRECT_URI);
            assert_eq!(q["state"], start.state);
            assert_eq!(q["nonce"], start.nonce);
            assert_eq!(q["code_challenge_method"], "S256");
            let scopes: Vec<&str> = q["scope"].split(' ').collect();
            assert!(scopes.contains(&"openid") && scopes.contains(&"email"));
            let code = format!("code-{}", self.idp.pending.lock().unwrap().len());
            self.idp.pending.lock().unwrap().insert(
                code.clone(),
                Pending {
                    challenge: q["code_challenge"].clone(),
                    nonce: q["nonce"].clone(),
                },
            );
            code
        }
    }

    async fn discovery(State(idp): State<Arc<Idp>>) -> Json<Value> {
        let base = &idp.issuer;
        Json(json!({
            "issuer": idp.config.discovery_issuer.clone().unwrap_or_else(|| base.clone()),
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            // A careless provider: a client that trusts this list accepts forgeries.
            "id_token_signing_alg_values_supported": ["RS256", "RS384", "HS256", "none"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "authorization_response_iss_parameter_supported": idp.config.iss_param_supported,
        }))
    }

    async fn jwks(State(idp): State<Arc<Idp>>) -> Json<Value> {
        let rsa = idp.key.rsa().unwrap();
        // No "alg" on the key, as most providers publish it: the token's alg decides.
        Json(json!({"keys": [{
            "kty": "RSA",
            "use": "sig",
            "kid": "k1",
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_vec()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_vec()),
        }]}))
    }

    fn token_error(description: &str) -> Response {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": description})),
        )
            .into_response()
    }

    async fn token(
        state: State<Arc<Idp>>,
        headers: HeaderMap,
        form: Form<HashMap<String, String>>,
    ) -> Response {
        if state.config.token_mode == TokenMode::Redirect {
            return (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, "/token-final")],
            )
                .into_response();
        }
        token_final(state, headers, form).await
    }

    async fn token_final(
        State(idp): State<Arc<Idp>>,
        headers: HeaderMap,
        Form(form): Form<HashMap<String, String>>,
    ) -> Response {
        let basic = format!(
            "Basic {}",
            STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            != Some(&basic)
        {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid_client"})),
            )
                .into_response();
        }
        if form.get("grant_type").map(String::as_str) != Some("authorization_code")
            || form.get("redirect_uri").map(String::as_str) != Some(REDIRECT_URI)
        {
            return token_error("bad grant_type or redirect_uri");
        }
        let Some(pending) = form
            .get("code")
            .and_then(|code| idp.pending.lock().unwrap().remove(code))
        else {
            return token_error("unknown or used code");
        };
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        idp.verifiers_seen.lock().unwrap().push(verifier.clone());
        // RFC 7636 §4.6.
        if URL_SAFE_NO_PAD.encode(openssl::sha::sha256(verifier.as_bytes())) != pending.challenge {
            return token_error("PKCE verification failed");
        }
        let mut claims = json!({
            "iss": idp.issuer,
            "sub": "user-1",
            "aud": CLIENT_ID,
            "iat": T0,
            "exp": T0 + 300,
            "nonce": pending.nonce,
            "email": "ada@example.com",
            "email_verified": true,
            "name": "Ada Lovelace",
            "groups": ["admins", "staff"],
        });
        (idp.config.tweak)(&mut claims);
        Json(json!({
            "access_token": "at-1",
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": sign(&idp.key, idp.config.signing, &claims),
        }))
        .into_response()
    }

    /// A compact JWS (RFC 7515 §7.1), made by hand so that any header can be produced.
    fn sign(key: &PKey<Private>, signing: Signing, claims: &Value) -> String {
        let alg = match signing {
            Signing::Rs256 => "RS256",
            Signing::Rs384 => "RS384",
            Signing::Hs256 => "HS256",
            Signing::None => "none",
        };
        let header = json!({"alg": alg, "typ": "JWT", "kid": "k1"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match signing {
            Signing::Rs256 | Signing::Rs384 => {
                let digest = match signing {
                    Signing::Rs256 => MessageDigest::sha256(),
                    _ => MessageDigest::sha384(),
                };
                let mut signer = Signer::new(digest, key).unwrap();
                signer.update(input.as_bytes()).unwrap();
                signer.sign_to_vec().unwrap()
            }
            Signing::Hs256 => {
                let mac_key = PKey::hmac(CLIENT_SECRET.as_bytes()).unwrap();
                let mut signer = Signer::new(MessageDigest::sha256(), &mac_key).unwrap();
                signer.update(input.as_bytes()).unwrap();
                signer.sign_to_vec().unwrap()
            }
            Signing::None => Vec::new(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The whole flow against `idp`, as the caller would run it, with the `iss` the provider
    /// would put on the callback.
    async fn sign_in(idp: &FakeIdp, now: OffsetDateTime) -> Result<OidcIdentity, OidcError> {
        let http = open_client();
        let conn = idp.conn();
        let provider = discover(&http, &conn).await?;
        let start = start(&provider, &conn, "state-1", Some("ada@example.com"));
        let code = idp.authorize(&start);
        let cb = Callback {
            code: &code,
            iss: Some(idp.issuer()),
        };
        finish(
            &http,
            &provider,
            &conn,
            cb,
            &start.nonce,
            &start.pkce_verifier,
            now,
        )
        .await
    }

    async fn sign_in_with(config: Config) -> Result<OidcIdentity, OidcError> {
        let idp = FakeIdp::start(config).await;
        sign_in(&idp, now()).await
    }

    fn invalid_id_token(result: Result<OidcIdentity, OidcError>, check: &str) -> String {
        match result {
            Err(OidcError::InvalidIdToken(text)) => {
                assert!(
                    text.starts_with(check),
                    "expected a {check} failure, got {text}"
                );
                text
            }
            other => panic!("expected InvalidIdToken({check}), got {other:?}"),
        }
    }

    #[tokio::test]
    async fn happy_path() {
        let idp = FakeIdp::start(Config::default()).await;
        let identity = sign_in(&idp, now()).await.unwrap();
        assert_eq!(
            identity,
            OidcIdentity {
                subject: "user-1".into(),
                issuer: idp.issuer().to_owned(),
                email: Some("ada@example.com".into()),
                email_verified: Some(true),
                name: Some("Ada Lovelace".into()),
                groups: Groups::Present(vec!["admins".into(), "staff".into()]),
            }
        );
    }

    #[tokio::test]
    async fn start_sends_login_hint_scopes_and_the_callers_state() {
        let idp = FakeIdp::start(Config::default()).await;
        let http = open_client();
        let conn = idp.conn();
        let provider = discover(&http, &conn).await.unwrap();
        let state = new_state();
        let started = start(&provider, &conn, &state, Some("ada@example.com"));
        assert_eq!(started.state, state);
        let url = url::Url::parse(&started.url).unwrap();
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["login_hint"], "ada@example.com");
        assert_eq!(q["state"], state);
        assert_eq!(q["scope"], "openid email profile");
        // Two flows never share a nonce or verifier.
        let again = start(&provider, &conn, &state, None);
        assert_ne!(again.nonce, started.nonce);
        assert_ne!(again.pkce_verifier, started.pkce_verifier);
        assert!(!again.url.contains("login_hint"));
    }

    #[tokio::test]
    async fn single_string_groups_is_one_group() {
        let identity = sign_in_with(Config {
            tweak: |c| c["groups"] = json!("admins"),
            ..Config::default()
        })
        .await
        .unwrap();
        assert_eq!(identity.groups, Groups::Present(vec!["admins".into()]));
    }

    #[tokio::test]
    async fn custom_groups_claim_and_absent_groups() {
        let idp = FakeIdp::start(Config {
            tweak: |c| {
                let groups = c.as_object_mut().unwrap().remove("groups").unwrap();
                c["roles"] = groups;
            },
            ..Config::default()
        })
        .await;
        assert_eq!(sign_in(&idp, now()).await.unwrap().groups, Groups::Absent);

        let http = open_client();
        let conn = idp.conn().with_groups_claim("roles").unwrap();
        let provider = discover(&http, &conn).await.unwrap();
        let started = start(&provider, &conn, "s", None);
        let code = idp.authorize(&started);
        let cb = Callback {
            code: &code,
            iss: None,
        };
        let identity = finish(
            &http,
            &provider,
            &conn,
            cb,
            &started.nonce,
            &started.pkce_verifier,
            now(),
        )
        .await
        .unwrap();
        assert_eq!(
            identity.groups,
            Groups::Present(vec!["admins".into(), "staff".into()])
        );
    }

    #[tokio::test]
    async fn non_string_groups_refused() {
        let result = sign_in_with(Config {
            tweak: |c| c["groups"] = json!(["admins", 7]),
            ..Config::default()
        })
        .await;
        assert!(
            matches!(result, Err(OidcError::InvalidGroupsClaim { .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn entra_group_overage() {
        let identity = sign_in_with(Config {
            tweak: |c| {
                c.as_object_mut().unwrap().remove("groups");
                c["_claim_names"] = json!({"groups": "src1"});
                c["_claim_sources"] = json!({"src1": {
                    "endpoint": "https://graph.windows.net/tenant/users/user-1/getMemberObjects"
                }});
            },
            ..Config::default()
        })
        .await
        .unwrap();
        assert_eq!(identity.groups, Groups::Overage);
    }

    #[tokio::test]
    async fn rs384_accepted() {
        // Pinning must not shrink the list to the crate's default of RS256 only.
        let identity = sign_in_with(Config {
            signing: Signing::Rs384,
            ..Config::default()
        })
        .await
        .unwrap();
        assert_eq!(identity.subject, "user-1");
    }

    #[tokio::test]
    async fn hs256_signed_with_client_secret_refused() {
        // The provider advertises HS256, so the crate's own verifier would accept this.
        let text = invalid_id_token(
            sign_in_with(Config {
                signing: Signing::Hs256,
                ..Config::default()
            })
            .await,
            "signature",
        );
        assert!(text.contains("HS256"), "{text}");
    }

    #[tokio::test]
    async fn alg_none_refused() {
        invalid_id_token(
            sign_in_with(Config {
                signing: Signing::None,
                ..Config::default()
            })
            .await,
            "signature",
        );
    }

    #[tokio::test]
    async fn signature_by_another_key_refused() {
        let idp = FakeIdp::start(Config::default()).await;
        let other = FakeIdp::start(Config::default()).await;
        // The provider's discovery and keys, but a token signed by someone else's key.
        let http = open_client();
        let conn = idp.conn();
        let mut provider = discover(&http, &conn).await.unwrap();
        let other_provider = discover(&http, &other.conn()).await.unwrap();
        provider.metadata = provider
            .metadata
            .set_jwks(other_provider.metadata.jwks().clone());
        let started = start(&provider, &conn, "s", None);
        let code = idp.authorize(&started);
        let cb = Callback {
            code: &code,
            iss: None,
        };
        invalid_id_token(
            finish(
                &http,
                &provider,
                &conn,
                cb,
                &started.nonce,
                &started.pkce_verifier,
                now(),
            )
            .await,
            "signature",
        );
    }

    #[tokio::test]
    async fn wrong_issuer_in_id_token_refused() {
        invalid_id_token(
            sign_in_with(Config {
                tweak: |c| c["iss"] = json!("https://evil.example"),
                ..Config::default()
            })
            .await,
            "issuer",
        );
    }

    #[tokio::test]
    async fn wrong_audience_refused() {
        invalid_id_token(
            sign_in_with(Config {
                tweak: |c| c["aud"] = json!("someone-else"),
                ..Config::default()
            })
            .await,
            "audience",
        );
    }

    #[tokio::test]
    async fn extra_untrusted_audience_refused() {
        invalid_id_token(
            sign_in_with(Config {
                tweak: |c| {
                    c["aud"] = json!([CLIENT_ID, "someone-else"]);
                    c["azp"] = json!(CLIENT_ID);
                },
                ..Config::default()
            })
            .await,
            "audience",
        );
    }

    #[tokio::test]
    async fn foreign_azp_refused() {
        invalid_id_token(
            sign_in_with(Config {
                tweak: |c| c["azp"] = json!("someone-else"),
                ..Config::default()
            })
            .await,
            "azp",
        );
    }

    #[tokio::test]
    async fn expired_refused() {
        let idp = FakeIdp::start(Config::default()).await;
        // exp is T0+300; within the skew it still passes, past it it does not.
        let within_skew = OffsetDateTime::from_unix_timestamp(T0 + 300 + 60).unwrap();
        sign_in(&idp, within_skew).await.unwrap();
        let late = OffsetDateTime::from_unix_timestamp(T0 + 3600).unwrap();
        invalid_id_token(sign_in(&idp, late).await, "exp/iat");
    }

    #[tokio::test]
    async fn issued_in_the_future_refused() {
        let idp = FakeIdp::start(Config::default()).await;
        let early = OffsetDateTime::from_unix_timestamp(T0 - 3600).unwrap();
        let text = invalid_id_token(sign_in(&idp, early).await, "exp/iat");
        assert!(text.contains("future"), "{text}");
    }

    #[tokio::test]
    async fn wrong_nonce_refused() {
        invalid_id_token(
            sign_in_with(Config {
                tweak: |c| c["nonce"] = json!("replayed-nonce"),
                ..Config::default()
            })
            .await,
            "nonce",
        );
    }

    #[tokio::test]
    async fn empty_stored_nonce_refused() {
        let idp = FakeIdp::start(Config {
            tweak: |c| c["nonce"] = json!(""),
            ..Config::default()
        })
        .await;
        let http = open_client();
        let conn = idp.conn();
        let provider = discover(&http, &conn).await.unwrap();
        let started = start(&provider, &conn, "s", None);
        let code = idp.authorize(&started);
        let cb = Callback {
            code: &code,
            iss: None,
        };
        let result = finish(
            &http,
            &provider,
            &conn,
            cb,
            "",
            &started.pkce_verifier,
            now(),
        )
        .await;
        assert!(
            matches!(result, Err(OidcError::EmptyFlowState { field: "nonce" })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn missing_nonce_refused() {
        invalid_id_token(
            sign_in_with(Config {
                tweak: |c| {
                    c.as_object_mut().unwrap().remove("nonce");
                },
                ..Config::default()
            })
            .await,
            "nonce",
        );
    }

    #[tokio::test]
    async fn discovery_issuer_mismatch_refused() {
        let idp = FakeIdp::start(Config {
            discovery_issuer: Some("https://evil.example".into()),
            ..Config::default()
        })
        .await;
        match discover(&open_client(), &idp.conn()).await {
            Err(OidcError::IssuerMismatch { expected, found }) => {
                assert_eq!(expected, idp.issuer());
                assert_eq!(found, "https://evil.example");
            }
            other => panic!("expected IssuerMismatch, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn discovery_issuer_trailing_slash_is_a_mismatch() {
        let idp = FakeIdp::start(Config::default()).await;
        let conn = OidcConnection::new(
            &format!("{}/", idp.issuer()),
            CLIENT_ID,
            CLIENT_SECRET,
            &["openid"],
            REDIRECT_URI,
        )
        .unwrap();
        let result = discover(&open_client(), &conn).await;
        assert!(
            matches!(result, Err(OidcError::IssuerMismatch { .. })),
            "{result:?}"
        );
    }

    /// Discovery, start and the provider's code, then `finish` with the given callback `iss`.
    async fn finish_with_iss(idp: &FakeIdp, iss: Option<&str>) -> Result<OidcIdentity, OidcError> {
        let http = open_client();
        let conn = idp.conn();
        let provider = discover(&http, &conn).await.unwrap();
        let started = start(&provider, &conn, "s", None);
        let code = idp.authorize(&started);
        let cb = Callback { code: &code, iss };
        finish(
            &http,
            &provider,
            &conn,
            cb,
            &started.nonce,
            &started.pkce_verifier,
            now(),
        )
        .await
    }

    #[tokio::test]
    async fn iss_parameter_mismatch_refused() {
        let idp = FakeIdp::start(Config::default()).await;
        let result = finish_with_iss(&idp, Some("https://evil.example")).await;
        match result {
            Err(OidcError::IssParamMismatch { expected, found }) => {
                assert_eq!(expected, idp.issuer());
                assert_eq!(found, "https://evil.example");
            }
            other => panic!("expected IssParamMismatch, got {other:?}"),
        }
        // Refused before the code was spent.
        assert!(idp.idp.verifiers_seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn iss_parameter_missing_when_advertised_refused() {
        let idp = FakeIdp::start(Config {
            iss_param_supported: true,
            ..Config::default()
        })
        .await;
        let result = finish_with_iss(&idp, None).await;
        assert!(
            matches!(result, Err(OidcError::IssParamMissing)),
            "{result:?}"
        );
        finish_with_iss(&idp, Some(idp.issuer())).await.unwrap();
    }

    #[tokio::test]
    async fn iss_parameter_optional_when_not_advertised() {
        let idp = FakeIdp::start(Config::default()).await;
        finish_with_iss(&idp, None).await.unwrap();
    }

    #[tokio::test]
    async fn token_endpoint_redirect_not_followed() {
        let result = sign_in_with(Config {
            token_mode: TokenMode::Redirect,
            ..Config::default()
        })
        .await;
        match result {
            Err(OidcError::Http(HttpError::Redirect {
                status, location, ..
            })) => {
                assert_eq!(status, 307);
                assert_eq!(location.as_deref(), Some("/token-final"));
            }
            other => panic!("expected a refused redirect, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn token_error_surfaces_error_and_description() {
        let idp = FakeIdp::start(Config::default()).await;
        let http = open_client();
        let conn = idp.conn();
        let provider = discover(&http, &conn).await.unwrap();
        let started = start(&provider, &conn, "s", None);
        let cb = Callback {
            code: "never-issued",
            iss: None,
        };
        match finish(
            &http,
            &provider,
            &conn,
            cb,
            &started.nonce,
            &started.pkce_verifier,
            now(),
        )
        .await
        {
            Err(OidcError::TokenRequest(text)) => {
                assert!(text.contains("invalid_grant"), "{text}");
                assert!(text.contains("unknown or used code"), "{text}");
            }
            other => panic!("expected TokenRequest, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn pkce_verifier_is_sent_and_checked() {
        let idp = FakeIdp::start(Config::default()).await;
        let http = open_client();
        let conn = idp.conn();
        let provider = discover(&http, &conn).await.unwrap();

        let started = start(&provider, &conn, "s", None);
        let code = idp.authorize(&started);
        let cb = Callback {
            code: &code,
            iss: None,
        };
        finish(
            &http,
            &provider,
            &conn,
            cb,
            &started.nonce,
            &started.pkce_verifier,
            now(),
        )
        .await
        .unwrap();
        let seen = idp.idp.verifiers_seen.lock().unwrap().clone();
        assert_eq!(seen, vec![started.pkce_verifier.clone()]);

        // Another flow's verifier: what an attacker who injected their own code would hold.
        let victim = start(&provider, &conn, "s2", None);
        let code = idp.authorize(&victim);
        let cb = Callback {
            code: &code,
            iss: None,
        };
        match finish(
            &http,
            &provider,
            &conn,
            cb,
            &victim.nonce,
            &started.pkce_verifier,
            now(),
        )
        .await
        {
            Err(OidcError::TokenRequest(text)) => assert!(text.contains("PKCE"), "{text}"),
            other => panic!("expected the PKCE check to fail, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn response_body_limited() {
        let idp = FakeIdp::start(Config::default()).await;
        let http = open_client();
        // No Content-Length: the limit must hold while reading, not only on the header.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let chunked = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0; 4096];
            let _ = socket.read(&mut request).await.unwrap();
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            let chunk = format!("1000\r\n{}\r\n", "x".repeat(4096));
            for _ in 0..=MAX_BODY_BYTES / 4096 {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    return; // the client hung up, as it should
                }
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        });
        for url in [format!("{}/big", idp.issuer()), chunked] {
            let request = openidconnect::http::Request::get(url.as_str())
                .body(Vec::new())
                .unwrap();
            let result = http.call(request).await;
            assert!(
                matches!(result, Err(HttpError::TooLarge { .. })),
                "{url}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn http_issuer_refused_without_allow_private() {
        let idp = FakeIdp::start(Config::default()).await;
        let result = discover(
            &HttpClient::new(crate::net::Outbound::new(false, None)),
            &idp.conn(),
        )
        .await;
        assert!(
            matches!(result, Err(OidcError::Http(HttpError::Insecure { .. }))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn private_addresses_refused_without_allow_private() {
        let http = HttpClient::new(crate::net::Outbound::new(false, None));
        for issuer in [
            "https://127.0.0.1:9",
            "https://[::1]:9",
            "https://169.254.169.254",
            "https://localhost:9",
        ] {
            let conn =
                OidcConnection::new(issuer, CLIENT_ID, CLIENT_SECRET, &["openid"], REDIRECT_URI)
                    .unwrap();
            let result = discover(&http, &conn).await;
            assert!(
                matches!(result, Err(OidcError::Http(HttpError::Refused { .. }))),
                "{issuer}: {result:?}"
            );
        }
    }

    #[test]
    fn discovery_document_issuer_is_compared_exactly_and_the_difference_named() {
        assert_eq!(
            discovery_url("https://idp.example/tenant/"),
            "https://idp.example/tenant/.well-known/openid-configuration"
        );
        let doc = br#"{"issuer": "https://idp.example"}"#;
        assert_eq!(check_discovery_document("https://idp.example", doc), Ok(()));
        assert_eq!(
            check_discovery_document("https://idp.example/", doc).unwrap_err(),
            r#"issuer mismatch: configured "https://idp.example/" but discovery says "https://idp.example" (trailing slash)"#
        );
        let other = check_discovery_document("https://other.example", doc).unwrap_err();
        assert!(other.ends_with(r#"says "https://idp.example""#), "{other}");
        let html = check_discovery_document("https://idp.example", b"<html>").unwrap_err();
        assert!(
            html.contains("not JSON") && html.contains("<html>"),
            "{html}"
        );
        let none = check_discovery_document("https://idp.example", b"{}").unwrap_err();
        assert!(none.contains("no issuer"), "{none}");
    }

    #[test]
    fn connection_validation() {
        let ok =
            OidcConnection::new("https://idp.example", "c", "s", &["email"], REDIRECT_URI).unwrap();
        assert_eq!(ok.scopes(), ["openid", "email"]);
        assert_eq!(ok.groups_claim(), "groups");
        let no_dup = OidcConnection::new(
            "https://idp.example",
            "c",
            "s",
            &["openid", "email"],
            REDIRECT_URI,
        )
        .unwrap();
        assert_eq!(no_dup.scopes(), ["openid", "email"]);
        let err = |issuer: &str, client: &str, scopes: &[&str]| {
            OidcConnection::new(issuer, client, "s", scopes, REDIRECT_URI).unwrap_err()
        };
        assert_eq!(
            err("https://idp.example", " ", &[]),
            ConfigError::Empty { field: "client_id" }
        );
        for bad in [
            "idp.example",
            "/relative",
            "https://idp.example/?a=b",
            "https://idp.example/#f",
            "ftp://idp.example",
        ] {
            assert!(
                matches!(err(bad, "c", &[]), ConfigError::InvalidIssuer { .. }),
                "{bad}"
            );
        }
        assert!(matches!(
            err("https://idp.example", "c", &["a b"]),
            ConfigError::InvalidScope { .. }
        ));
        assert!(matches!(
            OidcConnection::new("https://idp.example", "c", "s", &["openid"], "/cb"),
            Err(ConfigError::InvalidRedirectUri { .. })
        ));
    }
}
