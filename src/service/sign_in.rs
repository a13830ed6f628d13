//! Sign-in with the organization's IdP, from start to session: the redirect to the IdP (SAML
//! AuthnRequest or OIDC authentication request), the checks of its answer (the flow it answers,
//! the browser that started it, the assertion's or ID token's verification, SAML replay), and
//! what a verified identity does: find (or, just in time, create) the organization user, feed the
//! groups the IdP sent into the same mapping engine as SCIM, and open a session, in one
//! transaction. The protocols themselves are in [`crate::sso`]; cookies and pages are the HTTP
//! layer's.
//!
//! Everything a sign-in needs between two requests (state, nonce, PKCE verifier, SAML request id,
//! the SaaS's own authorization request) is a [`Flow`] in the database, so any replica can finish
//! what another started.
//!
//! SCIM is the source of truth when a directory provisions the organization: a sign-in never
//! creates a user there, and never reactivates one SCIM deactivated or deleted.

use crate::domain::audit::{AuditOp, AuditResource};
use crate::domain::ids::OrgUserId;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::domain::access::ConnectionKind;
use crate::rate::{Limit, RateLimits};
use crate::service::oauth::AuthzRequest;
use crate::service::provision::{Provision, ProvisionError};
use crate::service::{SsoCtx as Ctx, micros};
use crate::sso::connection::{SamlSettings, Settings, missing_settings};
use crate::sso::identity::{self, GroupClaim, SsoIdentity};
use crate::sso::oidc::{self, Callback, HttpClient, OidcConnection, Provider};
use crate::sso::saml::{self, sp};
use crate::store::audit::{Actor, record_as};
use crate::store::sso::{self as db, Connection};
use crate::store::{Store, StoreError};

/// How long a sign-in may take at the IdP.
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// Discovery documents are re-read after this long when a sign-in starts; the callback always
/// reads them (and the keys) afresh.
const PROVIDER_TTL: Duration = Duration::from_secs(300);

/// IdP discovery documents and keys, per replica: nothing here is needed for correctness, only
/// to spare the IdP.
#[derive(Default)]
pub struct Providers {
    cache: Mutex<HashMap<(String, i64), (Instant, Provider)>>,
}

/// A sign-in in flight, kept under the hash of its state until the IdP answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct Flow {
    #[serde(flatten)]
    pub check: FlowCheck,
    /// The SaaS application's authorization request this sign-in serves, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authz: Option<AuthzRequest>,
    /// The console session whose test sign-in this is: its answer is shown to that admin and
    /// signs no one in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
    /// A sign-in to the console: its answer opens a console session when the person's role
    /// allows, and no session of the application.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub console: bool,
}

/// What the IdP's answer is checked against.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FlowCheck {
    /// SAML Core §3.2.2: the Response is `InResponseTo` this request.
    Saml { saml_request_id: String },
    /// OIDC Core §3.1.2.1 and RFC 7636: the ID token's nonce and the code's PKCE verifier.
    Oidc {
        nonce: String,
        pkce_verifier: String,
    },
}

/// A sign-in that could not go on. The user sees one generic page whatever failed; [`report`]
/// logs and audits exactly why, under a reference the page shows.
#[derive(Debug)]
pub struct Failure {
    pub connection: Option<Connection>,
    /// A short code for the audit log and metrics.
    pub code: &'static str,
    pub reason: String,
    /// Said on the page: a set-up problem, nothing an attacker could learn from.
    pub setup: Option<String>,
    /// The database could not be reached: nothing is wrong with the sign-in, and trying again
    /// in a moment may work.
    pub unavailable: bool,
    /// The console session whose test sign-in failed, when the answer was one.
    pub test: Option<String>,
}

impl Failure {
    pub fn new(
        conn: Option<&Connection>,
        code: &'static str,
        reason: impl std::fmt::Display,
    ) -> Self {
        Failure {
            connection: conn.cloned(),
            code,
            reason: reason.to_string(),
            setup: None,
            unavailable: false,
            test: None,
        }
    }

    /// This failure, of the test sign-in `test` names if any.
    pub fn in_test(self, test: &Option<String>) -> Self {
        Failure {
            test: test.clone(),
            ..self
        }
    }

    /// The store failed: `unavailable` when the database could not be reached.
    pub fn store(conn: Option<&Connection>, e: &StoreError) -> Self {
        let unavailable = e.is_unavailable();
        let code = if unavailable { "unavailable" } else { "store" };
        Failure {
            unavailable,
            ..Failure::new(conn, code, e)
        }
    }

    /// A verified sign-in the organization did not complete.
    pub fn sign_in(conn: &Connection, e: &SignInError) -> Self {
        let unavailable = e.is_unavailable();
        let code = if unavailable { "unavailable" } else { e.code() };
        Failure {
            unavailable,
            ..Failure::new(Some(conn), code, e)
        }
    }

    /// A connection still waiting for its IdP's details: said plainly on the page, since the
    /// admin finishing the set-up is who will try it first.
    fn incomplete(conn: &Connection, missing: &[&str]) -> Self {
        let reason = format!(
            "the SAML connection is incomplete: the IdP's {} have not been given yet",
            missing.join(", ")
        );
        let setup = format!(
            "This sign-in connection is not set up yet: {reason}. Ask your administrator to \
             finish setting it up with the identity provider's metadata."
        );
        Failure {
            setup: Some(setup),
            ..Failure::new(Some(conn), "connection_incomplete", reason)
        }
    }
}

/// Logs why a sign-in failed, counts it, audits it when the connection is known; returns the
/// reference the log line has. Connection ids are public, so anyone can make failures: each
/// connection writes at most its allowance of audit rows (`limits`), and the rest are logged and
/// counted in `idbridge_sign_in_audit_skipped_total` without a database write.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn report(store: &Store, limits: &RateLimits, failure: &Failure) -> String {
    let reference = crate::store::new_id();
    let connection = failure.connection.as_ref().map(|c| c.id.as_str());
    tracing::warn!(reference, code = failure.code, connection, reason = %failure.reason, "sign-in failed");
    metrics::counter!("idbridge_sso_failures_total", "reason" => failure.code.to_string())
        .increment(1);
    if let Some(conn) = &failure.connection {
        if limits.check(Limit::FailureAudit, &conn.id).is_ok() {
            let detail = format!("{} (reference {reference})", failure.reason);
            record_failure(store, conn, failure.code, &detail).await;
        } else {
            metrics::counter!("idbridge_sign_in_audit_skipped_total").increment(1);
        }
    }
    reference
}

// ---- starting a sign-in ------------------------------------------------------------------------

/// Where to send the browser, and the state its flow cookie must carry.
#[derive(Debug)]
pub struct Started {
    pub url: String,
    pub flow_state: String,
    /// The IdP answers with a cross-site POST (SAML), which the flow cookie must survive.
    pub cross_site_post: bool,
}

/// Home-realm discovery: the connection of the organization that verified the address's domain.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn start_by_email(ctx: Ctx<'_>, email: Option<&str>) -> Result<Started, Failure> {
    let Some(email) = email.filter(|e| e.len() <= 320) else {
        return Err(Failure::new(
            None,
            "no_email",
            "/sso/start without an email",
        ));
    };
    match ctx.store.connection_for_email(email).await {
        Ok(Some(conn)) => start(ctx, &conn, None, Some(email)).await,
        Ok(None) => Err(Failure::new(
            None,
            "unknown_domain",
            format!("no organization verified the domain of {email:?}"),
        )),
        Err(e) => Err(Failure::store(None, &e)),
    }
}

/// A sign-in through the connection `id` names, if it is enabled.
#[tracing::instrument(level = "debug", skip_all, fields(connection_id = id))]
pub async fn start_with(ctx: Ctx<'_>, id: &str) -> Result<Started, Failure> {
    match ctx.store.connection_by_id(id).await {
        Ok(conn) if conn.enabled => start(ctx, &conn, None, None).await,
        Ok(conn) => Err(Failure::new(
            Some(&conn),
            "connection_disabled",
            "connection is disabled",
        )),
        Err(e) => Err(Failure::new(
            None,
            "unknown_connection",
            format!("connection {id:?}: {e}"),
        )),
    }
}

/// Which connection a console sign-in asks for.
#[derive(Debug, Clone, Copy)]
pub enum ConsoleIdp<'a> {
    /// One the organization's page picked.
    Named(&'a str),
    /// The one of the email's verified domain.
    ForEmail(&'a str),
}

/// The connection a console sign-in starts at, if it is ready (enabled, its settings complete):
/// a named connection that cannot be read counts as none.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn console_connection(
    ctx: Ctx<'_>,
    idp: ConsoleIdp<'_>,
) -> Result<Option<Connection>, StoreError> {
    match idp {
        ConsoleIdp::Named(id) => Ok(ctx
            .store
            .connection_by_id(id)
            .await
            .ok()
            .filter(|c| c.enabled && c.is_complete())),
        ConsoleIdp::ForEmail(email) => ctx.store.connection_for_email(email).await,
    }
}

/// Our entity id and ACS URL for a SAML connection.
fn saml_endpoints(public_url: &str, conn_id: &str) -> (String, String) {
    let base = format!("{public_url}/sso/saml/{conn_id}");
    (base.clone(), format!("{base}/acs"))
}

fn saml_settings(
    public_url: &str,
    conn: &Connection,
) -> Result<(SamlSettings, saml::SamlConnection), String> {
    let settings = Settings::read_saml(conn.kind, &conn.config).map_err(|e| e.to_string())?;
    let (entity, acs) = saml_endpoints(public_url, &conn.id);
    let validator = settings
        .connection(&entity, &acs)
        .map_err(|e| format!("connection settings: {e}"))?;
    Ok((settings, validator))
}

/// Starts a sign-in at the IdP, keeping what the answer will be checked against.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %conn.org_id, connection_id = %conn.id))]
pub async fn start(
    ctx: Ctx<'_>,
    conn: &Connection,
    authz: Option<AuthzRequest>,
    login_hint: Option<&str>,
) -> Result<Started, Failure> {
    start_flow(ctx, conn, authz, login_hint, None, false).await
}

/// Starts a sign-in to the console through `conn` (enabled and complete, as for any sign-in).
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %conn.org_id, connection_id = %conn.id))]
pub async fn start_console(
    ctx: Ctx<'_>,
    conn: &Connection,
    login_hint: Option<&str>,
) -> Result<Started, Failure> {
    if !conn.enabled {
        return Err(Failure::new(
            Some(conn),
            "connection_disabled",
            "connection is disabled",
        ));
    }
    start_flow(ctx, conn, None, login_hint, None, true).await
}

/// Starts the console's test sign-in through `conn` for the console session `console_session`:
/// the real sign-in at the IdP, whose answer [`test_sign_in`] then admits without committing.
/// A disabled connection can be tested, so that it is tried before anyone is sent to it.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %conn.org_id, connection_id = %conn.id))]
pub async fn start_test(
    ctx: Ctx<'_>,
    conn: &Connection,
    console_session: &str,
) -> Result<Started, Failure> {
    start_flow(
        ctx,
        conn,
        None,
        None,
        Some(console_session.to_string()),
        false,
    )
    .await
}

async fn start_flow(
    ctx: Ctx<'_>,
    conn: &Connection,
    authz: Option<AuthzRequest>,
    login_hint: Option<&str>,
    test: Option<String>,
    console: bool,
) -> Result<Started, Failure> {
    let flow_state = crate::store::directory::mint_token("");
    let expires = ctx.store.now() + micros(FLOW_TTL);
    let missing = missing_settings(conn.kind, &conn.config);
    if !missing.is_empty() {
        return Err(Failure::incomplete(conn, &missing));
    }
    let fail = |code, reason| Failure::new(Some(conn), code, reason);
    let (url, check) = match conn.kind {
        ConnectionKind::Saml => {
            let (settings, validator) =
                saml_settings(ctx.public_url, conn).map_err(|e| fail("connection_invalid", e))?;
            let request_id = sp::new_request_id().map_err(|e| fail("internal", e.to_string()))?;
            let request = sp::AuthnRequest::for_connection(
                &validator,
                &request_id,
                &settings.idp_sso_url,
                ctx.store.clock().now(),
            );
            let url = request
                .redirect_url(Some(&flow_state))
                .map_err(|e| fail("connection_invalid", e.to_string()))?;
            (
                url.to_string(),
                FlowCheck::Saml {
                    saml_request_id: request_id,
                },
            )
        }
        ConnectionKind::Oidc => start_oidc(ctx, conn, &flow_state, login_hint)
            .await
            .map_err(|e| fail("idp_unreachable", e))?,
    };
    let flow = Flow {
        check,
        authz,
        test,
        console,
    };
    let data = serde_json::to_value(&flow).map_err(|e| fail("internal", e.to_string()))?;
    put_flow(ctx.store, &flow_state, &conn.id, &data, expires)
        .await
        .map_err(|e| Failure::store(Some(conn), &e))?;
    Ok(Started {
        url,
        flow_state,
        cross_site_post: conn.kind == ConnectionKind::Saml,
    })
}

// ---- the OIDC relying party: the connection, discovery, start ----------------------------------

fn http(ctx: Ctx<'_>) -> HttpClient {
    HttpClient::new(ctx.outbound.clone())
}

async fn oidc_connection(ctx: Ctx<'_>, conn: &Connection) -> Result<OidcConnection, String> {
    let settings = Settings::read_oidc(conn.kind, &conn.config).map_err(|e| e.to_string())?;
    let secret = ctx
        .store
        .connection_secret(&conn.id)
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let redirect = format!("{}/sso/oidc/callback", ctx.public_url);
    OidcConnection::new(
        &settings.issuer,
        &settings.client_id,
        &secret,
        &settings.scopes,
        &redirect,
    )
    .and_then(|c| c.with_groups_claim(&settings.groups_claim))
    .map_err(|e| e.to_string())
}

async fn provider(
    ctx: Ctx<'_>,
    conn: &Connection,
    oidc_conn: &OidcConnection,
    fresh: bool,
) -> Result<Provider, String> {
    // Keyed by the connection's version, so an edited issuer is never served from the cache.
    let key = (conn.id.clone(), conn.updated_at);
    if !fresh
        && let Some((at, p)) = ctx
            .providers
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        && at.elapsed() < PROVIDER_TTL
    {
        return Ok(p.clone());
    }
    let p = oidc::discover(&http(ctx), oidc_conn)
        .await
        .map_err(|e| e.to_string())?;
    ctx.providers
        .cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, (Instant::now(), p.clone()));
    Ok(p)
}

/// The redirect to the IdP and what to keep for the callback.
async fn start_oidc(
    ctx: Ctx<'_>,
    conn: &Connection,
    flow_state: &str,
    login_hint: Option<&str>,
) -> Result<(String, FlowCheck), String> {
    let oidc_conn = oidc_connection(ctx, conn).await?;
    let p = provider(ctx, conn, &oidc_conn, false).await?;
    let started = oidc::start(&p, &oidc_conn, flow_state, login_hint);
    Ok((
        started.url,
        FlowCheck::Oidc {
            nonce: started.nonce,
            pkce_verifier: started.pkce_verifier,
        },
    ))
}

// ---- the IdP's answer --------------------------------------------------------------------------

/// An IdP's answer, verified: who signed in, through which connection, for which application.
#[derive(Debug)]
pub struct Verified {
    pub connection: Connection,
    pub identity: SsoIdentity,
    pub authz: Option<AuthzRequest>,
    /// The console session whose test sign-in this answers, if it is one.
    pub test: Option<String>,
    /// A sign-in to the console (see [`Flow::console`]).
    pub console: bool,
}

fn parse_flow(data: serde_json::Value) -> Result<Flow, String> {
    serde_json::from_value(data).map_err(|e| format!("stored flow: {e}"))
}

/// What the assertion consumer service received (SAML Bindings §3.5, HTTP-POST).
#[derive(Debug, Default)]
pub struct SamlAnswer<'a> {
    pub saml_response: Option<&'a str>,
    pub relay_state: Option<&'a str>,
    /// Whether the browser that posted it carries the flow cookie of `relay_state`.
    pub browser_bound: bool,
}

/// Checks a SAML Response posted to the ACS of connection `id`.
#[tracing::instrument(level = "debug", skip_all, fields(connection_id = id))]
pub async fn finish_saml(
    ctx: Ctx<'_>,
    id: &str,
    answer: SamlAnswer<'_>,
) -> Result<Verified, Failure> {
    let conn = match ctx.store.connection_by_id(id).await {
        Ok(c) if c.kind == ConnectionKind::Saml => c,
        Ok(c) => {
            return Err(Failure::new(
                Some(&c),
                "connection_invalid",
                "not a SAML connection",
            ));
        }
        Err(e) => {
            return Err(Failure::new(
                None,
                "unknown_connection",
                format!("connection {id:?}: {e}"),
            ));
        }
    };
    let missing = missing_settings(conn.kind, &conn.config);
    if !missing.is_empty() {
        return Err(Failure::incomplete(&conn, &missing));
    }
    let fail = |code, reason: String| Failure::new(Some(&conn), code, reason);
    let Some(response) = answer.saml_response else {
        return Err(fail("saml_invalid", "no SAMLResponse in the form".into()));
    };
    let (settings, mut validator) =
        saml_settings(ctx.public_url, &conn).map_err(|e| fail("connection_invalid", e))?;
    // Our key for encrypted assertions, sealed with the connection.
    if settings.sp_encryption_certificate.is_some() {
        let key = match ctx.store.connection_secret(&conn.id).await {
            Ok(Some(key)) => key,
            Ok(None) => return Err(fail("connection_invalid", "no SP decryption key".into())),
            Err(e) => return Err(Failure::store(Some(&conn), &e)),
        };
        validator = validator
            .with_decryption_key(key.as_bytes())
            .map_err(|e| fail("connection_invalid", e.to_string()))?;
    }
    // The RelayState we sent names the request this answers. Anything else (none, or an IdP
    // portal's own RelayState) is an unsolicited response, which the validator refuses unless the
    // connection allows IdP-initiated sign-in.
    let mut flow = None;
    if let Some(relay) = answer.relay_state.filter(|r| !r.is_empty()) {
        // The cookie is checked before the sign-in is taken, so that whoever sees a RelayState
        // cannot spend, and so cancel, someone else's sign-in by posting it first.
        match ctx.store.flow_connection(relay).await {
            Ok(Some(_)) if !answer.browser_bound => {
                return Err(fail(
                    "flow_unbound",
                    "the sign-in was started in another browser (no flow cookie)".into(),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(Failure::store(Some(&conn), &e)),
        }
        match take_flow(ctx.store, relay).await {
            Ok(Some((conn_id, data))) if conn_id == conn.id => {
                flow = Some(parse_flow(data).map_err(|e| fail("store", e))?);
            }
            Ok(Some(_)) => {
                return Err(fail(
                    "saml_invalid",
                    "RelayState of another connection".into(),
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(Failure::store(Some(&conn), &e)),
        }
    }
    let test = flow.as_ref().and_then(|f| f.test.clone());
    let console = flow.as_ref().is_some_and(|f| f.console);
    let fail = |code, reason: String| fail(code, reason).in_test(&test);
    let expected = match flow.as_ref().map(|f| &f.check) {
        Some(FlowCheck::Saml { saml_request_id }) => Some(saml_request_id.as_str()),
        _ => None,
    };
    let now = ctx.store.clock().now();
    let assertion = saml::validate_response(response, &validator, expected, now)
        .map_err(|e| fail("saml_invalid", e.to_string()))?;
    // SAML Profiles §4.1.4.5: an assertion is good for one sign-in, on every replica.
    let until = crate::store::micros(assertion.replay_cache_until);
    let fresh = async {
        let mut tx = ctx.store.begin().await?;
        let fresh =
            db::remember_assertion(&mut tx, &conn.id, &assertion.assertion_id, until).await?;
        tx.commit().await?;
        Ok::<bool, StoreError>(fresh)
    }
    .await;
    match fresh {
        Ok(true) => {}
        Ok(false) => {
            return Err(fail(
                "saml_replay",
                format!("assertion {} was already used", assertion.assertion_id),
            ));
        }
        Err(e) => return Err(Failure::store(Some(&conn), &e).in_test(&test)),
    }
    Ok(Verified {
        identity: identity::from_saml(&assertion, &settings),
        authz: flow.and_then(|f| f.authz),
        connection: conn,
        test,
        console,
    })
}

/// What the OIDC callback received (OIDC Core §3.1.2.5, §3.1.2.6; RFC 9207 `iss`).
#[derive(Debug, Default)]
pub struct OidcAnswer<'a> {
    pub code: Option<&'a str>,
    pub state: Option<&'a str>,
    pub iss: Option<&'a str>,
    pub error: Option<&'a str>,
    pub error_description: Option<&'a str>,
    /// Whether the browser carries the flow cookie of `state`.
    pub browser_bound: bool,
}

/// Checks the IdP's answer at the redirect URI every OIDC connection shares; `state` finds the
/// sign-in.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn finish_oidc(ctx: Ctx<'_>, answer: OidcAnswer<'_>) -> Result<Verified, Failure> {
    let Some(flow_state) = answer.state else {
        return Err(Failure::new(None, "oidc_invalid", "callback without state"));
    };
    // The cookie is checked before the sign-in is taken, so that whoever sees a state (in a
    // referrer, a log) cannot spend, and so cancel, someone else's sign-in by presenting it first.
    if !answer.browser_bound {
        let why = "the sign-in was started in another browser (no flow cookie)";
        let conn = match ctx.store.flow_connection(flow_state).await {
            Ok(Some(id)) => ctx.store.connection_by_id(&id).await.ok(),
            _ => None,
        };
        return Err(Failure::new(conn.as_ref(), "flow_unbound", why));
    }
    let (conn_id, data) = match take_flow(ctx.store, flow_state).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Err(Failure::new(
                None,
                "oidc_invalid",
                "unknown, used or expired state",
            ));
        }
        Err(e) => return Err(Failure::store(None, &e)),
    };
    let conn = ctx
        .store
        .connection_by_id(&conn_id)
        .await
        .map_err(|e| Failure::new(None, "unknown_connection", e))?;
    let flow = parse_flow(data).map_err(|e| Failure::new(Some(&conn), "store", e))?;
    let test = flow.test.clone();
    let fail = |code, reason: String| Failure::new(Some(&conn), code, reason).in_test(&test);
    if let Some(error) = answer.error {
        let reason = format!(
            "the IdP answered {error}: {}",
            answer.error_description.unwrap_or("")
        );
        return Err(fail("idp_error", reason));
    }
    let Some(code) = answer.code else {
        return Err(fail("oidc_invalid", "callback without code".into()));
    };
    let oidc_conn = oidc_connection(ctx, &conn)
        .await
        .map_err(|e| fail("connection_invalid", e))?;
    let (nonce, verifier) = match &flow.check {
        FlowCheck::Oidc {
            nonce,
            pkce_verifier,
        } => (nonce.as_str(), pkce_verifier.as_str()),
        FlowCheck::Saml { .. } => ("", ""),
    };
    let cb = Callback {
        code,
        iss: answer.iss,
    };
    // Fresh keys for the check: an IdP that rotated its signing key since the cached discovery
    // must not fail a sign-in whose code can be exchanged only once.
    let p = provider(ctx, &conn, &oidc_conn, true)
        .await
        .map_err(|e| fail("idp_unreachable", e))?;
    let now = ctx.store.clock().now();
    let token = oidc::finish(&http(ctx), &p, &oidc_conn, cb, nonce, verifier, now)
        .await
        .map_err(|e| fail("oidc_invalid", e.to_string()))?;
    Ok(Verified {
        identity: identity::from_oidc(token),
        authz: flow.authz,
        connection: conn,
        test,
        console: flow.console,
    })
}

// ---- SP metadata and signing out ---------------------------------------------------------------

/// Why there is no SP metadata to serve.
#[derive(Debug)]
pub enum MetadataError {
    NotFound,
    /// The stored settings do not read.
    InvalidSettings,
    Internal,
}

/// Our SP metadata for the IdP's admin (SAML Metadata §2.4.4). Served before the IdP's details
/// are known: the IdP's admin needs it to make the app that shows them.
#[tracing::instrument(level = "debug", skip_all, fields(connection_id = id))]
pub async fn sp_metadata(ctx: Ctx<'_>, id: &str) -> Result<String, MetadataError> {
    let conn = match ctx.store.connection_by_id(id).await {
        Ok(c) if c.kind == ConnectionKind::Saml => c,
        _ => return Err(MetadataError::NotFound),
    };
    let settings = Settings::read_saml(conn.kind, &conn.config).map_err(|e| {
        tracing::error!(connection = %conn.id, error = %e, "SAML metadata");
        MetadataError::InvalidSettings
    })?;
    let (entity, acs) = saml_endpoints(ctx.public_url, &conn.id);
    let metadata = sp::SpMetadata {
        entity_id: settings.sp_entity_id.as_deref().unwrap_or(&entity),
        acs_url: &acs,
        signing_certificate: None,
        encryption_certificate: settings
            .sp_encryption_certificate
            .as_deref()
            .map(str::as_bytes),
    };
    metadata.to_xml().map_err(|e| {
        tracing::error!(connection = %conn.id, error = %e, "SAML metadata");
        MetadataError::Internal
    })
}

/// Keeps a sign-in in flight for its callback.
async fn put_flow(
    store: &Store,
    state: &str,
    connection_id: &str,
    data: &serde_json::Value,
    expires_at: i64,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    db::put_flow(&mut tx, state, connection_id, data, expires_at).await?;
    tx.commit().await
}

/// Takes a sign-in in flight, once: (its connection, what it kept).
async fn take_flow(
    store: &Store,
    state: &str,
) -> Result<Option<(String, serde_json::Value)>, StoreError> {
    let mut tx = store.begin().await?;
    let flow = db::take_flow(&mut tx, state).await?;
    tx.commit().await?;
    Ok(flow)
}

/// Ends the session the browser's cookie names.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn sign_out(store: &Store, session_token: &str) {
    let ended = async {
        let mut tx = store.begin().await?;
        db::end_session(&mut tx, session_token).await?;
        tx.commit().await
    };
    if let Err(e) = ended.await {
        tracing::error!(error = %e, "logout");
    }
}

// ---- a verified identity signs in --------------------------------------------------------------

/// Why a verified identity may still not sign in. The user sees a generic page; this is for the
/// log and the audit.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the connection is disabled")]
    Disabled,
    #[error("the IdP sent no email address for subject {0:?}")]
    NoEmail(String),
    #[error("the IdP says the email address {0:?} is not verified")]
    EmailNotVerified(String),
    #[error("{0:?} is not a user of the organization, and {1}")]
    NotProvisioned(String, &'static str),
    #[error("{0:?} is deprovisioned by SCIM; a sign-in does not reactivate them")]
    Deprovisioned(String),
    #[error("{0:?} is inactive")]
    Inactive(String),
    #[error(
        "{0:?} is the organization's owner, who signs in only through a connection the owner marked (signs_in_owner)"
    )]
    OwnerConnection(String),
    #[error(
        "{0:?} is of a domain the organization routed to another connection ({1}); it signs in only there"
    )]
    DomainNotRouted(String, String),
    #[error(
        "{0:?} is of a domain the organization has not verified, and the connection does not allow other domains (allow_other_domains)"
    )]
    DomainNotVerified(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Provision(#[from] ProvisionError),
}

impl SignInError {
    /// The database could not be reached (see [`StoreError::is_unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        match self {
            SignInError::Store(e) | SignInError::Provision(ProvisionError::Store(e)) => {
                e.is_unavailable()
            }
            _ => false,
        }
    }

    /// A short code for the audit log and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SignInError::Disabled => "connection_disabled",
            SignInError::NoEmail(_) => "no_email",
            SignInError::EmailNotVerified(_) => "email_not_verified",
            SignInError::NotProvisioned(..) => "not_provisioned",
            SignInError::Deprovisioned(_) => "deprovisioned",
            SignInError::Inactive(_) => "inactive",
            SignInError::OwnerConnection(_) => "owner_connection",
            SignInError::DomainNotRouted(..) => "domain_not_routed",
            SignInError::DomainNotVerified(_) => "domain_not_verified",
            SignInError::Provision(ProvisionError::SeatLimit(_)) => "seat_limit",
            SignInError::Store(_) | SignInError::Provision(_) => "store",
        }
    }

    /// When the organization refuses a user it knows the identity of: the short description an
    /// application that asked is sent back with (`access_denied`). `None` for failures of ours.
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            SignInError::Disabled => Some("the organization's sign-in connection is disabled"),
            SignInError::NoEmail(_) => Some("the identity provider sent no email address"),
            SignInError::EmailNotVerified(_) => {
                Some("the identity provider says the email address is not verified")
            }
            SignInError::NotProvisioned(..) => {
                Some("the user is not provisioned in the organization")
            }
            SignInError::Deprovisioned(_) | SignInError::Inactive(_) => {
                Some("the user is deactivated in the organization")
            }
            SignInError::OwnerConnection(_) => {
                Some("the organization's owner does not sign in through this connection")
            }
            SignInError::DomainNotRouted(..) | SignInError::DomainNotVerified(_) => {
                Some("the user's email domain does not sign in through this connection")
            }
            SignInError::Provision(ProvisionError::SeatLimit(_)) => {
                Some("the organization has no seat left for the user")
            }
            SignInError::Store(_) | SignInError::Provision(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session_id: String,
    /// For the cookie; only its hash is stored.
    pub session_token: String,
    pub org_id: String,
    pub org_user_id: OrgUserId,
    /// Whether this sign-in created the user.
    pub created: bool,
}

/// Signs a verified identity in through `conn`: one transaction that links or creates the user,
/// stores the group claims, recomputes access, and opens a session.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %conn.org_id, connection_id = %conn.id))]
pub async fn sign_in(
    store: &Store,
    conn: &Connection,
    identity: &SsoIdentity,
    session_lifetime: Duration,
) -> Result<SignedIn, SignInError> {
    if !conn.enabled {
        return Err(SignInError::Disabled);
    }
    let Admitted {
        mut tx,
        email,
        user_id,
        created,
    } = admit(store, conn, identity).await?;
    let org_id = conn.org_id.as_str();
    let actor = format!("sso:{}", conn.id);
    let session = db::insert_session(&mut tx, org_id, &user_id, &conn.id, session_lifetime).await?;
    let who = Actor {
        org_id,
        directory_id: None,
        actor: &actor,
    };
    let detail = serde_json::json!({
        "subject": identity.subject,
        "email": email,
        "created": created,
        "groups": match &identity.groups {
            GroupClaim::Values(v) => serde_json::json!(v.len()),
            GroupClaim::Overage => serde_json::json!("overage"),
            GroupClaim::Absent => serde_json::Value::Null,
        },
    })
    .to_string();
    record_as(
        &mut tx,
        &who,
        AuditOp::SsoSignIn,
        AuditResource::Session,
        Some(&session.id),
        Some(&detail),
    )
    .await?;
    tx.commit().await?;
    Ok(SignedIn {
        session_id: session.id,
        session_token: session.token,
        org_id: org_id.to_string(),
        org_user_id: user_id,
        created,
    })
}

/// What a test sign-in would have done: the user it matched or would create, and the access the
/// mapping gives them, computed in the sign-in's own transaction and then rolled back.
#[derive(Debug, Clone)]
pub struct TestAdmission {
    pub org_user_id: OrgUserId,
    /// Whether the sign-in would have created the user (just in time).
    pub created: bool,
    /// The user's effective access after the sign-in's group claims.
    pub access: serde_json::Value,
}

/// The console's test sign-in: the same admission as [`sign_in`], with every check, in a
/// transaction that is rolled back, so no user, claim, grant, session or audit entry is kept.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %conn.org_id, connection_id = %conn.id))]
pub async fn test_sign_in(
    store: &Store,
    conn: &Connection,
    identity: &SsoIdentity,
) -> Result<TestAdmission, SignInError> {
    let Admitted {
        mut tx,
        user_id,
        created,
        ..
    } = admit(store, conn, identity).await?;
    let access = crate::store::console::user_access(&mut tx, &conn.org_id, &user_id).await?;
    // Dropped without a commit: everything the admission wrote is rolled back.
    drop(tx);
    Ok(TestAdmission {
        org_user_id: user_id,
        created,
        access,
    })
}

/// The console's sign-in: the same admission as [`sign_in`], left open in its transaction for
/// the caller to open a console session in (and commit), or to drop. Returns the transaction, the
/// user and their email.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %conn.org_id, connection_id = %conn.id))]
pub async fn admit_for_console(
    store: &Store,
    conn: &Connection,
    identity: &SsoIdentity,
) -> Result<(crate::store::Tx, OrgUserId, String), SignInError> {
    if !conn.enabled {
        return Err(SignInError::Disabled);
    }
    let Admitted {
        tx, email, user_id, ..
    } = admit(store, conn, identity).await?;
    Ok((tx, user_id, email))
}

/// An admission made and not yet committed.
struct Admitted {
    tx: crate::store::Tx,
    email: String,
    user_id: OrgUserId,
    created: bool,
}

/// Admits a verified identity in a transaction it leaves open: finds or creates the user,
/// stores the group claims and recomputes access.
async fn admit(
    store: &Store,
    conn: &Connection,
    identity: &SsoIdentity,
) -> Result<Admitted, SignInError> {
    let email = identity
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| e.contains('@'))
        .ok_or_else(|| SignInError::NoEmail(identity.subject.clone()))?;
    if identity.email_verified == Some(false) {
        return Err(SignInError::EmailNotVerified(email.to_string()));
    }
    let key = crate::domain::fold_key(email);
    let org_id = conn.org_id.as_str();
    let actor = format!("sso:{}", conn.id);
    let mut tx = store.begin().await?;
    // A connection signs in only the users it is entitled to (see the README's trust model), so
    // that one of the organization's IdPs cannot sign in, or create, the users of another.
    let domain = db::email_domain(email).unwrap_or_default();
    match db::domain_standing(&mut tx, org_id, &domain).await? {
        db::DomainStanding::RoutedTo(routed) if routed != conn.id => {
            return Err(SignInError::DomainNotRouted(email.to_string(), routed));
        }
        db::DomainStanding::Unverified if !conn.allow_other_domains => {
            return Err(SignInError::DomainNotVerified(email.to_string()));
        }
        _ => {}
    }
    let managed_by_scim = db::org_has_directory(&mut tx, org_id).await?;
    let existing = db::find_sign_in_user(&mut tx, org_id, &key).await?;
    let mut p = Provision::new(org_id, &actor);
    // The organization's share lock comes first, as in every other writer, so that a rule
    // change cannot interleave with this recomputation.
    let owner = p.org(&mut tx).await?.owner_user_id.clone();
    // Ownership changes only by transfer: a connection the owner has not marked (one an admin
    // made, pointing at an IdP the admin controls) never signs anyone in as the owner.
    if let Some(user) = &existing
        && owner.as_deref() == Some(user.id.as_str())
        && !conn.signs_in_owner
    {
        return Err(SignInError::OwnerConnection(email.to_string()));
    }
    let (user_id, created) = match existing {
        Some(user) if user.active => (user.id, false),
        // The owner named when the organization was created, before any directory or sign-in
        // brought them: they were admitted by name, so their first sign-in activates them.
        Some(user) if user.scim_links == 0 && owner.as_deref() == Some(user.id.as_str()) => {
            (user.id, false)
        }
        Some(user) if user.scim_links > 0 || managed_by_scim => {
            return Err(SignInError::Deprovisioned(email.to_string()));
        }
        Some(_) => return Err(SignInError::Inactive(email.to_string())),
        None if managed_by_scim => {
            return Err(SignInError::NotProvisioned(
                email.to_string(),
                "a SCIM directory manages the organization",
            ));
        }
        None if !conn.jit => {
            return Err(SignInError::NotProvisioned(
                email.to_string(),
                "the connection does not provision users just in time",
            ));
        }
        None => {
            let (id, created) = crate::store::access::link_org_user(
                &mut tx,
                org_id,
                email,
                identity.name.as_deref(),
                store.now(),
            )
            .await?;
            if created {
                p.created(&id);
            }
            (id, created)
        }
    };
    db::set_email(&mut tx, &user_id, email).await?;
    p.signed_in(&user_id);
    match &identity.groups {
        GroupClaim::Values(values) => {
            db::replace_claims(&mut tx, org_id, &user_id, &conn.id, values).await?;
            // Kept per connection for the admins who pick what a rule matches.
            let now = store.now();
            db::record_claims_seen(&mut tx, org_id, &conn.id, values, now).await?;
        }
        GroupClaim::Overage => tracing::warn!(
            connection = %conn.id, user = %user_id,
            "group overage: the IdP sent a reference instead of the groups; using the user's SCIM groups"
        ),
        GroupClaim::Absent => {}
    }
    p.finish(&mut tx).await?;
    Ok(Admitted {
        tx,
        email: email.to_string(),
        user_id,
        created,
    })
}

/// Writes why a sign-in through `conn` failed to the organization's audit log.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %conn.org_id, connection_id = %conn.id))]
pub async fn record_failure(store: &Store, conn: &Connection, code: &str, reason: &str) {
    let actor = format!("sso:{}", conn.id);
    let detail = serde_json::json!({ "reason": code, "detail": reason }).to_string();
    let result = async {
        let mut tx = store.begin().await?;
        let who = Actor {
            org_id: &conn.org_id,
            directory_id: None,
            actor: &actor,
        };
        record_as(
            &mut tx,
            &who,
            AuditOp::SsoSignInFailed,
            AuditResource::SsoConnection,
            Some(&conn.id),
            Some(&detail),
        )
        .await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not audit a failed sign-in");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A sign-in started before an upgrade is finished after it, on any replica: the flows a
    /// release wrote must read back.
    #[test]
    fn flows_keep_their_stored_shape() {
        let authz = json!({
            "client_id": "c", "redirect_uri": "https://app.example/cb", "state": null,
            "nonce": "n", "code_challenge": "x", "scope": "openid",
        });
        let saml = json!({ "saml_request_id": "_r1", "authz": authz });
        let flow: Flow = serde_json::from_value(saml.clone()).unwrap();
        assert!(
            matches!(&flow.check, FlowCheck::Saml { saml_request_id } if saml_request_id == "_r1")
        );
        assert_eq!(flow.authz.as_ref().unwrap().nonce.as_deref(), Some("n"));
        assert_eq!(serde_json::to_value(&flow).unwrap(), saml);

        let oidc = json!({ "nonce": "n1", "pkce_verifier": "v1" });
        let flow: Flow = serde_json::from_value(oidc.clone()).unwrap();
        assert!(
            matches!(&flow.check, FlowCheck::Oidc { nonce, pkce_verifier } if nonce == "n1" && pkce_verifier == "v1")
        );
        assert!(flow.authz.is_none());
        assert_eq!(serde_json::to_value(&flow).unwrap(), oidc);
    }
}
