//! What single sign-on keeps: connections and verified domains (per organization, behind an
//! [`OrgScope`]), sign-ins in flight, the SAML replay cache, sessions, and the OpenID provider's
//! clients, codes, access tokens and signing keys.
//!
//! The sign-in path reads connections by id without a scope: a connection id in a URL is public,
//! and what it leads to is one organization's IdP, whose answer is then verified. Secrets (client
//! secrets, signing keys) pass through [`super::secrets::SecretBox`] on the way in and out; the
//! tables never hold them in clear. Tokens, codes and states are stored as SHA-256 hashes.

use crate::domain::access::ConnectionKind;
use crate::domain::ids::OrgUserId;
use serde_json::Value;
use sqlx::AssertSqlSafe;

use super::admin::OrgScope;
use super::directory::{NewToken, hash_token, mint_token};
use super::sql::{Bind, CHUNK, SqlBuilder};
use super::{Store, StoreError, StoreResult, Tx, new_id, on_read, on_tx};
use crate::sso::connection::missing_settings;

fn parse_json(s: &str) -> StoreResult<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("stored value: {e}")))
}

// ---- connections -------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub org_id: String,
    pub kind: ConnectionKind,
    pub name: String,
    /// The settings, without secrets.
    pub config: Value,
    /// Whether a client secret is stored (it is never returned).
    pub has_secret: bool,
    /// Just-in-time provisioning: a first sign-in creates the user (when no SCIM directory
    /// manages the organization).
    pub jit: bool,
    pub enabled: bool,
    /// Whether the organization's owner may sign in through it; only the owner sets it.
    pub signs_in_owner: bool,
    /// Whether it signs in users of domains the organization has not verified. Users of a verified
    /// domain routed to another connection never sign in through it.
    pub allow_other_domains: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Connection {
    /// Whether the connection has what a sign-in needs (see [`missing_settings`]).
    pub fn is_complete(&self) -> bool {
        missing_settings(self.kind, &self.config).is_empty()
    }
}

const CONNECTION_COLUMNS: &str = "SELECT id, org_id, kind, name, config, secret IS NOT NULL AS has_secret, jit, enabled, created_at, updated_at, signs_in_owner, allow_other_domains FROM sso_connections";

/// A row of `sso_connections` as stored: the kind and the settings still text.
#[derive(sqlx::FromRow)]
struct ConnectionRow {
    id: String,
    org_id: String,
    kind: String,
    name: String,
    config: String,
    has_secret: bool,
    jit: bool,
    enabled: bool,
    created_at: i64,
    updated_at: i64,
    signs_in_owner: bool,
    allow_other_domains: bool,
}

fn connection_from(r: ConnectionRow) -> StoreResult<Connection> {
    Ok(Connection {
        id: r.id,
        org_id: r.org_id,
        kind: r
            .kind
            .parse()
            .map_err(|e: crate::domain::access::ParseError| StoreError::Invalid(e.to_string()))?,
        name: r.name,
        config: parse_json(&r.config)?,
        has_secret: r.has_secret,
        jit: r.jit,
        enabled: r.enabled,
        created_at: r.created_at,
        updated_at: r.updated_at,
        signs_in_owner: r.signs_in_owner,
        allow_other_domains: r.allow_other_domains,
    })
}

/// A connection as the admin writes it.
#[derive(Debug, Clone)]
pub struct ConnectionWrite<'a> {
    pub kind: ConnectionKind,
    pub name: &'a str,
    pub config: &'a Value,
    /// The secret sealed by [`Store::seal_connection_secret`]. `Some(None)` removes it; `None`
    /// keeps what is stored (on update).
    pub secret: Option<Option<&'a str>>,
    pub jit: bool,
    pub enabled: bool,
    pub signs_in_owner: bool,
    pub allow_other_domains: bool,
}

fn secret_context(connection_id: &str) -> String {
    format!("sso_connections.secret:{connection_id}")
}

/// Inserts a connection under `id`, minted by the service, which sealed its secret under it.
pub async fn insert_connection(
    tx: &mut Tx,
    scope: &OrgScope,
    id: &str,
    w: &ConnectionWrite<'_>,
) -> StoreResult<Connection> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sso_connections (id, org_id, kind, name, config, secret, jit, enabled, created_at, updated_at, signs_in_owner, allow_other_domains) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)")
        .bind(id).bind(scope.org_id()).bind(w.kind.as_str()).bind(w.name).bind(w.config.to_string())
        .bind(w.secret.flatten()).bind(w.jit).bind(w.enabled).bind(now).bind(w.signs_in_owner).bind(w.allow_other_domains).execute(&mut *c).await?.rows_affected());
    connection_in(tx, scope, id).await
}

/// Rewrites a connection's settings (its kind stays what it is: the service refuses a change).
pub async fn update_connection(
    tx: &mut Tx,
    scope: &OrgScope,
    id: &str,
    w: &ConnectionWrite<'_>,
) -> StoreResult<Connection> {
    let now = tx.now();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE sso_connections SET name = $3, config = $4, jit = $5, enabled = $6, updated_at = $7, \
         signs_in_owner = $8, allow_other_domains = $9 WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(id).bind(w.name).bind(w.config.to_string()).bind(w.jit)
        .bind(w.enabled).bind(now).bind(w.signs_in_owner).bind(w.allow_other_domains).execute(&mut *c).await?.rows_affected());
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    if let Some(sealed) = w.secret {
        on_tx!(tx, c => sqlx::query(
            "UPDATE sso_connections SET secret = $3 WHERE org_id = $1 AND id = $2")
            .bind(scope.org_id()).bind(id).bind(sealed).execute(&mut *c).await?.rows_affected());
    }
    connection_in(tx, scope, id).await
}

impl Store {
    /// A connection's client secret sealed at rest under its id.
    pub fn seal_connection_secret(&self, id: &str, secret: &str) -> StoreResult<String> {
        self.secrets()?
            .seal(&secret_context(id), secret.as_bytes())
            .map_err(|e| StoreError::Invalid(e.to_string()))
    }

    pub async fn list_connections(&self, scope: &OrgScope) -> StoreResult<Vec<Connection>> {
        let sql = format!("{CONNECTION_COLUMNS} WHERE org_id = $1 ORDER BY id");
        on_read!(self, c => sqlx::query_as::<_, ConnectionRow>(sqlx::AssertSqlSafe(sql))
            .bind(scope.org_id()).fetch_all(c).await?.into_iter().map(connection_from).collect())
    }

    pub async fn get_connection(&self, scope: &OrgScope, id: &str) -> StoreResult<Connection> {
        let sql = format!("{CONNECTION_COLUMNS} WHERE org_id = $1 AND id = $2");
        on_read!(self, c => sqlx::query_as::<_, ConnectionRow>(sqlx::AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(id).fetch_optional(c).await?.map(connection_from))
        .ok_or(StoreError::NotFound)?
    }

    /// The sign-in path's read: a connection by its public id, enabled or not.
    pub async fn connection_by_id(&self, id: &str) -> StoreResult<Connection> {
        let sql = format!("{CONNECTION_COLUMNS} WHERE id = $1");
        on_read!(self, c => sqlx::query_as::<_, ConnectionRow>(sqlx::AssertSqlSafe(sql)).bind(id)
            .fetch_optional(c).await?.map(connection_from))
        .ok_or(StoreError::NotFound)?
    }

    /// The OIDC client secret in clear, for the code exchange.
    pub async fn connection_secret(&self, id: &str) -> StoreResult<Option<String>> {
        let sealed: Option<Option<String>> = on_read!(self, c => sqlx::query_scalar(
            "SELECT secret FROM sso_connections WHERE id = $1")
            .bind(id).fetch_optional(c).await?);
        let Some(Some(sealed)) = sealed else {
            return Ok(None);
        };
        let clear = self
            .secrets()?
            .open(&secret_context(id), &sealed)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        String::from_utf8(clear)
            .map(Some)
            .map_err(|_| StoreError::Invalid("stored secret is not UTF-8".into()))
    }

    /// The connection that signs in users of an organization: the first enabled one that is
    /// complete (a SAML connection still waiting for its IdP's details signs nobody in).
    pub async fn connection_for_org(&self, org_id: &str) -> StoreResult<Option<Connection>> {
        let sql = format!("{CONNECTION_COLUMNS} WHERE org_id = $1 AND enabled ORDER BY id");
        let all: Vec<Connection> = on_read!(self, c => sqlx::query_as::<_, ConnectionRow>(sqlx::AssertSqlSafe(sql))
            .bind(org_id).fetch_all(c).await?.into_iter().map(connection_from)
            .collect::<StoreResult<_>>())?;
        Ok(all.into_iter().find(Connection::is_complete))
    }

    /// Home-realm discovery: the connection for an email address's domain, if an organization
    /// verified that domain (its own connection for the domain, or the organization's).
    pub async fn connection_for_email(&self, email: &str) -> StoreResult<Option<Connection>> {
        let Some(domain) = email_domain(email) else {
            return Ok(None);
        };
        #[derive(sqlx::FromRow)]
        struct Route {
            org_id: String,
            connection_id: Option<String>,
        }
        let route = on_read!(self, c => sqlx::query_as::<_, Route>(
            "SELECT org_id, connection_id FROM org_domains WHERE domain = $1 AND verified_at IS NOT NULL")
            .bind(&domain).fetch_optional(c).await?);
        match route {
            None => Ok(None),
            Some(Route {
                connection_id: Some(connection_id),
                ..
            }) => match self.connection_by_id(&connection_id).await {
                Ok(conn) if conn.enabled && conn.is_complete() => Ok(Some(conn)),
                Ok(_) | Err(StoreError::NotFound) => Ok(None),
                Err(e) => Err(e),
            },
            Some(Route {
                org_id,
                connection_id: None,
            }) => self.connection_for_org(&org_id).await,
        }
    }

    /// The organization that verified an email address's domain.
    pub async fn org_for_email(&self, email: &str) -> StoreResult<Option<String>> {
        let Some(domain) = email_domain(email) else {
            return Ok(None);
        };
        Ok(on_read!(self, c => sqlx::query_scalar(
            "SELECT org_id FROM org_domains WHERE domain = $1 AND verified_at IS NOT NULL")
            .bind(&domain).fetch_optional(c).await?))
    }
}

/// The organization's connection `id`, read in the transaction.
pub async fn connection_in(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<Connection> {
    let sql = format!("{CONNECTION_COLUMNS} WHERE id = $1 AND org_id = $2");
    on_tx!(tx, c => sqlx::query_as::<_, ConnectionRow>(sqlx::AssertSqlSafe(sql))
        .bind(id).bind(scope.org_id()).fetch_optional(&mut *c).await?.map(connection_from))
    .ok_or(StoreError::NotFound)?
}

/// The lower-cased domain of an address, when it has one.
pub fn email_domain(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty() && !domain.contains(char::is_whitespace))
        .then(|| domain.to_ascii_lowercase())
}

// ---- domains -----------------------------------------------------------------------------------

/// Where an organization proves it controls a domain: a TXT record under this name...
pub const VERIFICATION_LABEL: &str = "_idbridge-verification";
/// ...whose text is this prefix followed by the claim's token.
pub const VERIFICATION_PREFIX: &str = "idbridge-verification=";

/// An organization's claim on an email domain. Only a verified claim routes sign-ins; one
/// organization at most holds a verified claim on a domain.
#[derive(Debug, Clone)]
pub struct Domain {
    pub domain: String,
    /// The connection users of this domain sign in with; none means the organization's first
    /// enabled connection.
    pub connection_id: Option<String>,
    pub verified: bool,
    pub verified_at: Option<i64>,
    /// The DNS record that proves the organization controls the domain.
    pub verification: DomainVerification,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct DomainVerification {
    /// Always `TXT`.
    pub record_type: &'static str,
    /// `_idbridge-verification.<domain>`
    pub name: String,
    /// `idbridge-verification=<token>`
    pub value: String,
}

/// A row of `org_domains` as stored.
#[derive(sqlx::FromRow)]
struct DomainRow {
    domain: String,
    connection_id: Option<String>,
    verification_token: String,
    verified_at: Option<i64>,
    created_at: i64,
}

impl Domain {
    fn from_row(r: DomainRow) -> Self {
        Domain {
            verification: DomainVerification {
                record_type: "TXT",
                name: format!("{VERIFICATION_LABEL}.{}", r.domain),
                value: format!("{VERIFICATION_PREFIX}{}", r.verification_token),
            },
            domain: r.domain,
            connection_id: r.connection_id,
            verified: r.verified_at.is_some(),
            verified_at: r.verified_at,
            created_at: r.created_at,
        }
    }
}

const DOMAIN_COLUMNS: &str =
    "SELECT domain, connection_id, verification_token, verified_at, created_at FROM org_domains";

/// A domain name as we keep it: lower case, no trailing dot, LDH labels (RFC 1123 §2.1).
pub fn normalize_domain(domain: &str) -> StoreResult<String> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid {
        Ok(domain)
    } else {
        Err(StoreError::Invalid(format!(
            "{domain:?} is not a domain name (letters, digits and '-' in dot-separated labels)"
        )))
    }
}

/// The organization that holds a verified claim on `domain`, if one does.
pub async fn domain_verified_by(tx: &mut Tx, domain: &str) -> StoreResult<Option<String>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT org_id FROM org_domains WHERE domain = $1 AND verified_at IS NOT NULL")
        .bind(domain).fetch_optional(&mut *c).await?))
}

/// Claims a domain (already normalized by [`normalize_domain`]) with its verification token,
/// verified from `verified_at` if given.
pub async fn insert_domain(
    tx: &mut Tx,
    scope: &OrgScope,
    domain: &str,
    connection_id: Option<&str>,
    token: &str,
    verified_at: Option<i64>,
) -> StoreResult<Domain> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO org_domains (org_id, domain, connection_id, verification_token, verified_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(scope.org_id()).bind(domain).bind(connection_id).bind(token)
        .bind(verified_at).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))
    // The organization's own earlier claim, or (racing the service's check) another's verified
    // one: the key or the index refuses, and nothing tells which, so the message says neither.
    .map_err(|e| StoreError::on_unique(e, &format!("domain {domain}")))?;
    domain_in(tx, scope, domain).await
}

/// Marks the organization's claim verified from now; a conflict when another organization
/// verified the domain first.
pub async fn set_domain_verified(
    tx: &mut Tx,
    scope: &OrgScope,
    domain: &str,
) -> StoreResult<Domain> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query(
        "UPDATE org_domains SET verified_at = $3 WHERE org_id = $1 AND domain = $2")
        .bind(scope.org_id()).bind(domain).bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected()))
    .map_err(|e| match StoreError::on_unique(e, "") {
        StoreError::Conflict(_) => verified_elsewhere(domain),
        e => e,
    })?;
    domain_in(tx, scope, domain).await
}

/// Points the organization's claim on `domain` at one of its connections (`None`: its first).
pub async fn set_domain_connection(
    tx: &mut Tx,
    scope: &OrgScope,
    domain: &str,
    connection_id: Option<&str>,
) -> StoreResult<Domain> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE org_domains SET connection_id = $3 WHERE org_id = $1 AND domain = $2")
        .bind(scope.org_id()).bind(domain).bind(connection_id)
        .execute(&mut *c).await?.rows_affected());
    domain_in(tx, scope, domain).await
}

pub async fn delete_domain(tx: &mut Tx, scope: &OrgScope, domain: &str) -> StoreResult<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "DELETE FROM org_domains WHERE org_id = $1 AND domain = $2")
        .bind(scope.org_id()).bind(domain).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

impl Store {
    pub async fn domain(&self, scope: &OrgScope, domain: &str) -> StoreResult<Domain> {
        let sql = format!("{DOMAIN_COLUMNS} WHERE org_id = $1 AND domain = $2");
        on_read!(self, c => sqlx::query_as::<_, DomainRow>(sqlx::AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(domain.to_ascii_lowercase())
            .fetch_optional(c).await?.map(Domain::from_row))
        .ok_or(StoreError::NotFound)
    }

    pub async fn list_domains(&self, scope: &OrgScope) -> StoreResult<Vec<Domain>> {
        let sql = format!("{DOMAIN_COLUMNS} WHERE org_id = $1 ORDER BY domain");
        Ok(
            on_read!(self, c => sqlx::query_as::<_, DomainRow>(sqlx::AssertSqlSafe(sql))
            .bind(scope.org_id()).fetch_all(c).await?.into_iter().map(Domain::from_row).collect()),
        )
    }
}

pub fn verified_elsewhere(domain: &str) -> StoreError {
    StoreError::Conflict(format!(
        "a verified claim on {domain} by another organization"
    ))
}

/// The organization's claim on `domain`, read in the transaction.
pub async fn domain_in(tx: &mut Tx, scope: &OrgScope, domain: &str) -> StoreResult<Domain> {
    let sql = format!("{DOMAIN_COLUMNS} WHERE org_id = $1 AND domain = $2");
    on_tx!(tx, c => sqlx::query_as::<_, DomainRow>(sqlx::AssertSqlSafe(sql))
        .bind(scope.org_id()).bind(domain).fetch_optional(&mut *c).await?.map(Domain::from_row))
    .ok_or(StoreError::NotFound)
}

// ---- sign-ins in flight and the replay cache ----------------------------------------------------

/// Keeps what the callback will need under the hash of `state`, until `expires_at`.
pub async fn put_flow(
    tx: &mut Tx,
    state: &str,
    connection_id: &str,
    data: &Value,
    expires_at: i64,
) -> StoreResult<()> {
    let now = tx.now();
    // Abandoned sign-ins go here rather than in a sweeper: every replica does a little.
    on_tx!(tx, c => sqlx::query("DELETE FROM sso_flows WHERE expires_at < $1")
        .bind(now).execute(&mut *c).await?.rows_affected());
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sso_flows (state_hash, connection_id, data, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(hash_token(state)).bind(connection_id).bind(data.to_string()).bind(expires_at)
        .execute(&mut *c).await?.rows_affected());
    Ok(())
}

/// A sign-in in flight, as taken from `sso_flows`.
#[derive(sqlx::FromRow)]
struct FlowRow {
    connection_id: String,
    data: String,
    expires_at: i64,
}

/// Takes a sign-in in flight, (connection id, data): the first caller gets it, every later one (a
/// replayed callback, the same callback on another replica) gets `None`, as does an expired one.
pub async fn take_flow(tx: &mut Tx, state: &str) -> StoreResult<Option<(String, Value)>> {
    let now = tx.now();
    let row = on_tx!(tx, c => sqlx::query_as::<_, FlowRow>(
        "DELETE FROM sso_flows WHERE state_hash = $1 RETURNING connection_id, data, expires_at")
        .bind(hash_token(state)).fetch_optional(&mut *c).await?);
    match row {
        Some(r) if r.expires_at >= now => Ok(Some((r.connection_id, parse_json(&r.data)?))),
        _ => Ok(None),
    }
}

impl Store {
    /// The connection of a sign-in in flight, without taking it: who presents a state must prove
    /// it is the browser that started the sign-in before the sign-in is spent.
    pub async fn flow_connection(&self, state: &str) -> StoreResult<Option<String>> {
        Ok(on_read!(self, c => sqlx::query_scalar(
            "SELECT connection_id FROM sso_flows WHERE state_hash = $1 AND expires_at >= $2")
            .bind(hash_token(state)).bind(self.now()).fetch_optional(c).await?))
    }
}

/// Records an assertion id; false when it was seen before and has not expired (a replay).
pub async fn remember_assertion(
    tx: &mut Tx,
    connection_id: &str,
    assertion_id: &str,
    until: i64,
) -> StoreResult<bool> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query("DELETE FROM saml_replay WHERE expires_at < $1")
        .bind(now).execute(&mut *c).await?.rows_affected());
    let n = on_tx!(tx, c => sqlx::query(
        "INSERT INTO saml_replay (connection_id, assertion_id, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (connection_id, assertion_id) DO NOTHING")
        .bind(connection_id).bind(assertion_id).bind(until).execute(&mut *c).await?.rows_affected());
    Ok(n == 1)
}

// ---- the sign-in's writes --------------------------------------------------------------------

/// An organization user as the sign-in sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SignInUser {
    #[sqlx(try_from = "String")]
    pub id: OrgUserId,
    pub active: bool,
    /// SCIM users of any directory linked to this person.
    pub scim_links: i64,
}

pub async fn find_sign_in_user(
    tx: &mut Tx,
    org_id: &str,
    user_key: &str,
) -> StoreResult<Option<SignInUser>> {
    Ok(on_tx!(tx, c => sqlx::query_as::<_, SignInUser>(
        "SELECT u.id, u.active, \
                (SELECT COUNT(*) FROM scim_users s WHERE s.org_user_id = u.id) AS scim_links \
         FROM org_users u WHERE u.org_id = $1 AND u.user_key = $2")
        .bind(org_id).bind(user_key).fetch_optional(&mut *c).await?))
}

/// What the organization says of an email domain at sign-in: whether it verified the domain,
/// and the connection it routed the domain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainStanding {
    /// Not verified by the organization (perhaps by another one, which does not bind this one).
    Unverified,
    /// Verified, and not routed to a connection.
    Verified,
    /// Verified and routed to this connection.
    RoutedTo(String),
}

pub async fn domain_standing(
    tx: &mut Tx,
    org_id: &str,
    domain: &str,
) -> StoreResult<DomainStanding> {
    let row: Option<Option<String>> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT connection_id FROM org_domains WHERE org_id = $1 AND domain = $2 AND verified_at IS NOT NULL")
        .bind(org_id).bind(domain).fetch_optional(&mut *c).await?);
    Ok(match row {
        None => DomainStanding::Unverified,
        Some(None) => DomainStanding::Verified,
        Some(Some(conn)) => DomainStanding::RoutedTo(conn),
    })
}

/// Whether any SCIM directory provisions this organization: then SCIM, not sign-ins, decides
/// who exists.
pub async fn org_has_directory(tx: &mut Tx, org_id: &str) -> StoreResult<bool> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM directories WHERE org_id = $1")
        .bind(org_id).fetch_one(&mut *c).await?);
    Ok(n > 0)
}

/// Deletes a connection of the organization; NotFound when it has no such connection.
pub async fn delete_connection(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<()> {
    let n = on_tx!(tx, c => sqlx::query(
        "DELETE FROM sso_connections WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(id).execute(&mut *c).await?.rows_affected());
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The users whose claim values came through this connection.
pub async fn users_with_claims_from(
    tx: &mut Tx,
    org_id: &str,
    connection_id: &str,
) -> StoreResult<Vec<OrgUserId>> {
    let ids: Vec<String> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT DISTINCT org_user_id FROM org_user_claims WHERE org_id = $1 AND connection_id = $2")
        .bind(org_id).bind(connection_id).fetch_all(&mut *c).await?);
    Ok(ids.into_iter().map(OrgUserId::new).collect())
}

/// A group-claim value of a user's last sign-in, as stored.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    value: String,
    connection_id: Option<String>,
}

/// Replaces the group-claim values of the user's last sign-in, and the connection they came
/// through (rules bound to a connection match only its claims).
pub async fn replace_claims(
    tx: &mut Tx,
    org_id: &str,
    org_user_id: &str,
    connection_id: &str,
    values: &[String],
) -> StoreResult<bool> {
    let before = on_tx!(tx, c => sqlx::query_as::<_, ClaimRow>(
        "SELECT value, connection_id FROM org_user_claims WHERE org_user_id = $1 ORDER BY value")
        .bind(org_user_id).fetch_all(&mut *c).await?);
    let mut after: Vec<String> = values.to_vec();
    after.sort();
    after.dedup();
    let same = before.len() == after.len()
        && before
            .iter()
            .zip(&after)
            .all(|(r, a)| r.value == *a && r.connection_id.as_deref() == Some(connection_id));
    if same {
        return Ok(false);
    }
    on_tx!(tx, c => sqlx::query("DELETE FROM org_user_claims WHERE org_user_id = $1")
        .bind(org_user_id).execute(&mut *c).await?.rows_affected());
    for value in &after {
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO org_user_claims (org_user_id, org_id, value, connection_id) \
             VALUES ($1, $2, $3, $4)")
            .bind(org_user_id).bind(org_id).bind(value).bind(connection_id)
            .execute(&mut *c).await?.rows_affected());
    }
    Ok(true)
}

/// The longest group-claim value kept as seen: group names and ids are short, and a longer value
/// is more likely noise than a group an admin would pick.
pub const MAX_CLAIM_SEEN_BYTES: usize = 256;
/// How many distinct values one connection keeps; the least recently seen make room.
pub const MAX_CLAIMS_SEEN: i64 = 1000;
/// A value seen again refreshes its `last_seen_at` only this long after the last refresh, so that
/// repeated sign-ins do not rewrite the same rows.
const CLAIM_SEEN_REFRESH_MICROS: i64 = 3_600_000_000;

/// Records the group-claim values a sign-in through `connection_id` brought, for the admins who
/// pick what a mapping rule matches; bounded in length and count (see the constants).
pub async fn record_claims_seen(
    tx: &mut Tx,
    org_id: &str,
    connection_id: &str,
    values: &[String],
    now: i64,
) -> StoreResult<()> {
    // Sorted, so two sign-ins writing the same values take their row locks in one order.
    let mut values: Vec<&str> = values
        .iter()
        .map(String::as_str)
        .filter(|v| !v.is_empty() && v.len() <= MAX_CLAIM_SEEN_BYTES)
        .collect();
    values.sort_unstable();
    values.dedup();
    values.truncate(MAX_CLAIMS_SEEN as usize);
    if values.is_empty() {
        return Ok(());
    }
    for chunk in values.chunks(CHUNK) {
        let mut b = SqlBuilder::new(
            "INSERT INTO group_claims_seen (connection_id, org_id, value, first_seen_at, last_seen_at) VALUES ",
        );
        for (i, v) in chunk.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.push("(")
                .bind_text(connection_id)
                .push(", ")
                .bind_text(org_id);
            b.push(", ").bind_text(*v).push(", ").bind(Bind::Int(now));
            b.push(", ").bind(Bind::Int(now)).push(")");
        }
        b.push(
            " ON CONFLICT (connection_id, value) DO UPDATE SET last_seen_at = excluded.last_seen_at \
             WHERE group_claims_seen.last_seen_at < ",
        )
        .bind(Bind::Int(now - CLAIM_SEEN_REFRESH_MICROS));
        on_tx!(tx, c => b.query()?.execute(&mut *c).await?.rows_affected());
    }
    let kept: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM group_claims_seen WHERE connection_id = $1")
        .bind(connection_id).fetch_one(&mut *c).await?);
    if kept > MAX_CLAIMS_SEEN {
        on_tx!(tx, c => sqlx::query(
            "DELETE FROM group_claims_seen WHERE connection_id = $1 AND value IN \
             (SELECT value FROM group_claims_seen WHERE connection_id = $1 \
              ORDER BY last_seen_at, value LIMIT $2)")
            .bind(connection_id).bind(kept - MAX_CLAIMS_SEEN).execute(&mut *c).await?.rows_affected());
    }
    Ok(())
}

/// A group-claim value a sign-in brought through one of the organization's connections.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimSeen {
    pub value: String,
    pub connection_id: String,
    pub connection_name: String,
    pub first_seen_at: i64,
    /// Exact to the hour: a value seen again is not rewritten more often.
    pub last_seen_at: i64,
}

impl Store {
    /// Up to `limit` claim values seen at the organization's sign-ins that contain `search` (ASCII
    /// letters without case), by value; all of them when `search` is `None`.
    pub async fn search_claims_seen(
        &self,
        scope: &OrgScope,
        search: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ClaimSeen>> {
        let value = self.backend().ascii_lower("s.value");
        let sql = format!(
            "SELECT s.value AS value, s.connection_id AS connection_id, c.name AS connection_name, \
             s.first_seen_at AS first_seen_at, s.last_seen_at AS last_seen_at \
             FROM group_claims_seen s JOIN sso_connections c ON c.id = s.connection_id \
             WHERE s.org_id = $1 AND (CAST($2 AS TEXT) IS NULL OR {value} LIKE $2 ESCAPE '\\') \
             ORDER BY s.value, s.connection_id LIMIT $3"
        );
        let pattern = search.map(|t| super::admin::contains_pattern(&crate::domain::fold_key(t)));
        Ok(
            on_read!(self, c => sqlx::query_as::<_, ClaimSeen>(AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(&pattern).bind(limit).fetch_all(c).await?),
        )
    }
}

/// Fills in the email of a user the sign-in knows better than the store.
pub async fn set_email(tx: &mut Tx, org_user_id: &str, email: &str) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE org_users SET email = $2 WHERE id = $1 AND (email IS NULL OR email <> $2)")
        .bind(org_user_id).bind(email).execute(&mut *c).await?.rows_affected());
    Ok(())
}

/// Opens a session; the token is for the cookie, its hash is stored.
pub async fn insert_session(
    tx: &mut Tx,
    org_id: &str,
    org_user_id: &str,
    connection_id: &str,
    absolute: std::time::Duration,
) -> StoreResult<NewToken> {
    let token = NewToken {
        id: new_id(),
        token: mint_token("idbs_"),
    };
    let now = tx.now();
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sessions (id, org_id, org_user_id, token_hash, created_at, last_seen_at, expires_at, connection_id) \
         VALUES ($1, $2, $3, $4, $5, $5, $6, $7)")
        .bind(&token.id).bind(org_id).bind(org_user_id).bind(hash_token(&token.token))
        .bind(now).bind(now + absolute.as_micros() as i64).bind(connection_id)
        .execute(&mut *c).await?.rows_affected());
    Ok(token)
}

// ---- sessions ----------------------------------------------------------------------------------

/// A live session and its user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveSession {
    pub id: String,
    pub org_id: String,
    pub org_user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A session not revoked, with what tells whether it is still live.
#[derive(sqlx::FromRow)]
struct SessionRow {
    #[sqlx(flatten)]
    session: LiveSession,
    last_seen_at: i64,
    /// Whether its user is active.
    active: bool,
}

/// The columns of [`SessionRow`], over `sessions s` and its user `u`.
const SESSION_COLUMNS: &str = "SELECT s.id AS id, s.org_id AS org_id, s.org_user_id AS org_user_id, \
     s.created_at AS created_at, s.last_seen_at AS last_seen_at, s.expires_at AS expires_at, \
     u.active AS active FROM sessions s JOIN org_users u ON u.id = s.org_user_id";

impl Store {
    /// The session behind a cookie, if it is neither revoked, past its absolute lifetime, nor
    /// idle for longer than `idle`; its last use is refreshed (at most once a minute, so that a
    /// busy user does not write on every request).
    pub async fn live_session(
        &self,
        token: &str,
        idle: std::time::Duration,
    ) -> StoreResult<Option<LiveSession>> {
        let now = self.now();
        let sql = format!("{SESSION_COLUMNS} WHERE s.token_hash = $1 AND s.revoked_at IS NULL");
        let row = on_read!(self, c => sqlx::query_as::<_, SessionRow>(AssertSqlSafe(sql))
            .bind(hash_token(token)).fetch_optional(c).await?);
        let Some(SessionRow {
            session,
            last_seen_at: last_seen,
            active,
        }) = row
        else {
            return Ok(None);
        };
        if !active || now >= session.expires_at || now - last_seen > idle.as_micros() as i64 {
            return Ok(None);
        }
        if now - last_seen > 60_000_000 {
            let mut tx = self.begin().await?;
            on_tx!(&mut tx, c => sqlx::query("UPDATE sessions SET last_seen_at = $2 WHERE id = $1")
                .bind(&session.id).bind(now).execute(&mut *c).await?.rows_affected());
            tx.commit().await?;
        }
        Ok(Some(session))
    }

    /// Whether a session is still good for issuing tokens (the token endpoint, userinfo).
    pub async fn session_is_live(
        &self,
        session_id: &str,
        idle: std::time::Duration,
    ) -> StoreResult<Option<LiveSession>> {
        let now = self.now();
        let sql = format!("{SESSION_COLUMNS} WHERE s.id = $1 AND s.revoked_at IS NULL");
        let row = on_read!(self, c => sqlx::query_as::<_, SessionRow>(AssertSqlSafe(sql))
            .bind(session_id).fetch_optional(c).await?);
        Ok(row.and_then(|r| {
            (r.active
                && now < r.session.expires_at
                && now - r.last_seen_at <= idle.as_micros() as i64)
                .then_some(r.session)
        }))
    }
}

/// Revokes one of the organization's sessions by an admin; false when there is no such session
/// still live.
pub async fn revoke_session(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<bool> {
    let now = tx.now();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE sessions SET revoked_at = $3, revoked_reason = 'admin' \
         WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL")
        .bind(scope.org_id()).bind(id).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

/// Revokes every session of one person of the organization that is not revoked yet, and their
/// console if they signed in to it; returns how many sessions.
pub async fn revoke_user_sessions(
    tx: &mut Tx,
    scope: &OrgScope,
    user_id: &str,
) -> StoreResult<u64> {
    let now = tx.now();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE sessions SET revoked_at = $3, revoked_reason = 'admin' \
         WHERE org_id = $1 AND org_user_id = $2 AND revoked_at IS NULL")
        .bind(scope.org_id()).bind(user_id).bind(now).execute(&mut *c).await?.rows_affected());
    super::console::end_user_console_sessions(tx, user_id, now).await?;
    Ok(n)
}

/// Signs a session out (the user's own logout).
pub async fn end_session(tx: &mut Tx, token: &str) -> StoreResult<()> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query(
        "UPDATE sessions SET revoked_at = $2, revoked_reason = 'logout' \
         WHERE token_hash = $1 AND revoked_at IS NULL")
        .bind(hash_token(token)).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(())
}

// ---- OpenID provider: clients ------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Client {
    /// The `client_id`.
    pub id: String,
    /// The organization whose users it signs in; none for the operator's clients, which sign in
    /// users of any organization.
    pub org_id: Option<String>,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub secret_hash: String,
}

/// A row of `oauth_clients` as stored: the redirect URIs still JSON text.
#[derive(sqlx::FromRow)]
struct ClientRow {
    id: String,
    org_id: Option<String>,
    name: String,
    redirect_uris: String,
    secret_hash: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

fn client_from(r: ClientRow) -> StoreResult<Client> {
    Ok(Client {
        id: r.id,
        org_id: r.org_id,
        name: r.name,
        redirect_uris: serde_json::from_str(&r.redirect_uris)
            .map_err(|e| StoreError::Invalid(format!("stored value: {e}")))?,
        secret_hash: r.secret_hash,
        created_at: r.created_at,
        revoked_at: r.revoked_at,
    })
}

const CLIENT_COLUMNS: &str = "SELECT id, org_id, name, redirect_uris, secret_hash, created_at, revoked_at FROM oauth_clients";

/// Registers a client under `id` with the hash of `secret` (both minted by the service); `scope`
/// none for the operator's clients, which sign in users of any organization.
pub async fn insert_client(
    tx: &mut Tx,
    scope: Option<&OrgScope>,
    id: &str,
    secret: &str,
    name: &str,
    redirect_uris: &[String],
) -> StoreResult<Client> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO oauth_clients (id, org_id, name, redirect_uris, secret_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id).bind(scope.map(OrgScope::org_id)).bind(name)
        .bind(serde_json::to_string(redirect_uris).unwrap_or_default())
        .bind(hash_token(secret)).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(Client {
        id: id.to_string(),
        org_id: scope.map(|s| s.org_id().to_string()),
        name: name.to_string(),
        redirect_uris: redirect_uris.to_vec(),
        created_at: now,
        revoked_at: None,
        secret_hash: String::new(),
    })
}

/// Revokes a client of the organization (of the operator's with `scope` none) and the tokens it
/// holds; false when there is no such client still live.
pub async fn revoke_client(tx: &mut Tx, scope: Option<&OrgScope>, id: &str) -> StoreResult<bool> {
    let now = tx.now();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE oauth_clients SET revoked_at = $3 WHERE id = $1 AND revoked_at IS NULL \
         AND COALESCE(org_id, '') = COALESCE($2, '')")
        .bind(id).bind(scope.map(OrgScope::org_id)).bind(now)
        .execute(&mut *c).await?.rows_affected());
    if n == 0 {
        return Ok(false);
    }
    on_tx!(tx, c => sqlx::query("DELETE FROM oauth_tokens WHERE client_id = $1")
        .bind(id).execute(&mut *c).await?.rows_affected());
    Ok(true)
}

impl Store {
    pub async fn list_clients(&self, scope: Option<&OrgScope>) -> StoreResult<Vec<Client>> {
        let rows: Vec<ClientRow> = match scope {
            Some(s) => {
                let sql = format!("{CLIENT_COLUMNS} WHERE org_id = $1 ORDER BY id");
                on_read!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(s.org_id()).fetch_all(c).await?)
            }
            None => {
                let sql = format!("{CLIENT_COLUMNS} WHERE org_id IS NULL ORDER BY id");
                on_read!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(c).await?)
            }
        };
        rows.into_iter().map(client_from).collect()
    }

    /// A client that is not revoked, by `client_id`.
    pub async fn client(&self, id: &str) -> StoreResult<Option<Client>> {
        let sql = format!("{CLIENT_COLUMNS} WHERE id = $1 AND revoked_at IS NULL");
        let row: Option<ClientRow> = on_read!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id).fetch_optional(c).await?);
        row.map(client_from).transpose()
    }
}

// ---- OpenID provider: codes, tokens, keys ------------------------------------------------------

/// Keeps an authorization code (minted by the service) for a session until `expires_at`; single
/// use, and only its hash is stored.
pub async fn put_code(
    tx: &mut Tx,
    code: &str,
    client_id: &str,
    session_id: &str,
    data: &Value,
    expires_at: i64,
) -> StoreResult<()> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query("DELETE FROM oauth_codes WHERE expires_at < $1")
        .bind(now).execute(&mut *c).await?.rows_affected());
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO oauth_codes (code_hash, client_id, session_id, data, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(hash_token(code)).bind(client_id).bind(session_id).bind(data.to_string())
        .bind(expires_at).execute(&mut *c).await?.rows_affected());
    Ok(())
}

/// What a code was issued for.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub client_id: String,
    pub session_id: String,
    pub data: Value,
}

/// An authorization code as taken from `oauth_codes`.
#[derive(sqlx::FromRow)]
struct CodeRow {
    client_id: String,
    session_id: String,
    data: String,
    expires_at: i64,
}

/// Takes a code, once, on any replica. RFC 6749 §4.1.2: a code used twice may have been stolen,
/// so its second use also revokes the access tokens that client holds for the session (the
/// caller commits even when this finds nothing, or the revocation is lost).
pub async fn take_code(tx: &mut Tx, code: &str) -> StoreResult<Option<CodeGrant>> {
    let now = tx.now();
    let hash = hash_token(code);
    // A used code stays, under another key, until the sweep of expired codes, so that its
    // second use is recognized rather than taken for an unknown code.
    let used = format!("used:{hash}");
    let row = on_tx!(tx, c => sqlx::query_as::<_, CodeRow>(
        "UPDATE oauth_codes SET code_hash = $2 WHERE code_hash = $1 \
         RETURNING client_id, session_id, data, expires_at")
        .bind(&hash).bind(&used).fetch_optional(&mut *c).await?);
    let Some(row) = row else {
        #[derive(sqlx::FromRow)]
        struct Spent {
            client_id: String,
            session_id: String,
        }
        let replayed = on_tx!(tx, c => sqlx::query_as::<_, Spent>(
            "SELECT client_id, session_id FROM oauth_codes WHERE code_hash = $1")
            .bind(&used).fetch_optional(&mut *c).await?);
        if let Some(Spent {
            client_id: client,
            session_id: session,
        }) = replayed
        {
            tracing::warn!(
                client,
                session,
                "an authorization code was used twice; revoking the access tokens it gave"
            );
            on_tx!(tx, c => sqlx::query(
                "DELETE FROM oauth_tokens WHERE client_id = $1 AND session_id = $2")
                .bind(&client).bind(&session).execute(&mut *c).await?.rows_affected());
        }
        return Ok(None);
    };
    if row.expires_at < now {
        return Ok(None);
    }
    Ok(Some(CodeGrant {
        client_id: row.client_id,
        session_id: row.session_id,
        data: parse_json(&row.data)?,
    }))
}

/// Keeps an access token (minted by the service) for a client and session until `expires_at`;
/// only its hash is stored.
pub async fn put_access_token(
    tx: &mut Tx,
    token: &str,
    client_id: &str,
    session_id: &str,
    scope: &str,
    expires_at: i64,
) -> StoreResult<()> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query("DELETE FROM oauth_tokens WHERE expires_at < $1")
        .bind(now).execute(&mut *c).await?.rows_affected());
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO oauth_tokens (token_hash, client_id, session_id, scope, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(hash_token(token)).bind(client_id).bind(session_id).bind(scope).bind(expires_at)
        .execute(&mut *c).await?.rows_affected());
    Ok(())
}

/// What an access token was issued for, and until when.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenGrant {
    pub session_id: String,
    pub scope: String,
    pub expires_at: i64,
}

/// What the id_token says of a user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenSubject {
    pub user_name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// The effective access the mapping last computed (JSON).
    pub access: String,
}

impl Store {
    /// What an unexpired access token was issued for.
    pub async fn access_token(&self, token: &str) -> StoreResult<Option<TokenGrant>> {
        let grant = on_read!(self, c => sqlx::query_as::<_, TokenGrant>(
            "SELECT session_id, scope, expires_at FROM oauth_tokens WHERE token_hash = $1")
            .bind(hash_token(token)).fetch_optional(c).await?);
        Ok(grant.filter(|g| g.expires_at > self.now()))
    }

    /// What the id_token says of the user `org_user_id`.
    pub async fn token_subject(&self, org_user_id: &str) -> StoreResult<TokenSubject> {
        on_read!(self, c => sqlx::query_as::<_, TokenSubject>(
            "SELECT user_name, display_name, email, access FROM org_users WHERE id = $1")
            .bind(org_user_id).fetch_optional(c).await?)
        .ok_or(StoreError::NotFound)
    }

    /// The ids of an organization's sub-accounts, in order, for the token's `accounts`.
    pub async fn sub_account_ids(&self, org_id: &str) -> StoreResult<Vec<String>> {
        Ok(on_read!(self, c => sqlx::query_scalar(
            "SELECT id FROM sub_accounts WHERE org_id = $1 ORDER BY id")
            .bind(org_id).fetch_all(c).await?))
    }
}

/// One of our id_token signing keys.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub kid: String,
    /// PKCS#8 PEM, in clear (unsealed on the way out).
    pub private_pem: Vec<u8>,
    pub public_jwk: Value,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

fn key_context(kid: &str) -> String {
    format!("signing_keys.private_key:{kid}")
}

/// Stores a new signing key (its private half sealed by [`Store::seal_signing_key`]), which
/// becomes the one that signs; with `retire_others`, the keys before it stop signing (they stay
/// published until their tokens expire).
pub async fn insert_signing_key(
    tx: &mut Tx,
    kid: &str,
    sealed_private: &str,
    public_jwk: &Value,
    retire_others: bool,
) -> StoreResult<()> {
    let now = tx.now();
    if retire_others {
        on_tx!(tx, c => sqlx::query(
            "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(now).execute(&mut *c).await?.rows_affected());
    }
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO signing_keys (kid, private_key, public_jwk, created_at) VALUES ($1, $2, $3, $4)")
        .bind(kid).bind(sealed_private).bind(public_jwk.to_string()).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(())
}

impl Store {
    /// A signing key's private half sealed at rest under its kid.
    pub fn seal_signing_key(&self, kid: &str, private_pem: &[u8]) -> StoreResult<String> {
        self.secrets()?
            .seal(&key_context(kid), private_pem)
            .map_err(|e| StoreError::Invalid(e.to_string()))
    }

    /// Keys still published: unretired, or retired less than `keep` ago. Newest first.
    pub async fn signing_keys(&self, keep: std::time::Duration) -> StoreResult<Vec<StoredKey>> {
        let horizon = self.now() - keep.as_micros() as i64;
        /// A signing key as stored: its private half sealed, its public one JSON text.
        #[derive(sqlx::FromRow)]
        struct KeyRow {
            kid: String,
            private_key: String,
            public_jwk: String,
            created_at: i64,
            retired_at: Option<i64>,
        }
        let rows = on_read!(self, c => sqlx::query_as::<_, KeyRow>(
            "SELECT kid, private_key, public_jwk, created_at, retired_at FROM signing_keys \
             WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at DESC, kid")
            .bind(horizon).fetch_all(c).await?);
        let secrets = self.secrets()?;
        rows.into_iter()
            .map(|r| {
                Ok(StoredKey {
                    private_pem: secrets
                        .open(&key_context(&r.kid), &r.private_key)
                        .map_err(|e| StoreError::Invalid(e.to_string()))?,
                    public_jwk: parse_json(&r.public_jwk)?,
                    kid: r.kid,
                    created_at: r.created_at,
                    retired_at: r.retired_at,
                })
            })
            .collect()
    }

    /// The stored (sealed) column, for tests that check nothing secret is in clear.
    #[doc(hidden)]
    pub async fn raw_secret_columns(&self) -> StoreResult<Vec<String>> {
        let mut out: Vec<String> = on_read!(self, c => sqlx::query_scalar(
            "SELECT private_key FROM signing_keys").fetch_all(c).await?);
        let secrets: Vec<Option<String>> = on_read!(self, c => sqlx::query_scalar(
            "SELECT secret FROM sso_connections").fetch_all(c).await?);
        out.extend(secrets.into_iter().flatten());
        let webhooks: Vec<String> = on_read!(self, c => sqlx::query_scalar(
            "SELECT secret FROM webhooks").fetch_all(c).await?);
        out.extend(webhooks);
        Ok(out)
    }
}
