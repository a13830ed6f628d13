//! The admin API's views of stored records: what the API returns and the OpenAPI document names
//! (`Serialize`, `ToSchema`), each made from its record in `store/` with `From`. A view keeps the
//! name the API has always given it, so its schema's name does not change with the record's.

use serde::Serialize;
use serde_json::Value;

use crate::domain::access::ConnectionKind;
use crate::mapping::rule::Source;
use crate::mapping::{Grant, GroupMatcher};
use crate::store::admin as db;
use crate::store::directory as dir_db;
use crate::store::sso as sso_db;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrgDetails {
    pub id: String,
    pub name: String,
    pub seat_limit: Option<i64>,
    /// Active users, each counted once however many directories and sub-accounts they reach.
    pub seats_used: i64,
    pub owner_user_id: Option<String>,
    pub default_role: Option<String>,
    /// The SaaS's own key for the organization (set through the platform API), unique across
    /// the deployment; null when none was given.
    pub external_key: Option<String>,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<db::OrgDetails> for OrgDetails {
    fn from(r: db::OrgDetails) -> Self {
        OrgDetails {
            id: r.id,
            name: r.name,
            seat_limit: r.seat_limit,
            seats_used: r.seats_used,
            owner_user_id: r.owner_user_id,
            default_role: r.default_role,
            external_key: r.external_key,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubAccount {
    pub id: String,
    pub name: String,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<db::SubAccount> for SubAccount {
    fn from(r: db::SubAccount) -> Self {
        SubAccount {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: String,
    pub sub_account_id: String,
    pub name: String,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<db::Project> for Project {
    fn from(r: db::Project) -> Self {
        Project {
            id: r.id,
            sub_account_id: r.sub_account_id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleRecord {
    pub id: String,
    pub description: Option<String>,
    pub matcher: GroupMatcher,
    pub grant: Grant,
    /// The directory or connection whose groups or claims the rule matches.
    pub source: Source,
    pub created_by: String,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl From<db::RuleRecord> for RuleRecord {
    fn from(r: db::RuleRecord) -> Self {
        RuleRecord {
            id: r.id,
            description: r.description,
            matcher: r.matcher,
            grant: r.grant,
            source: r.source,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GrantRecord {
    pub id: String,
    pub user_id: String,
    pub grant: Grant,
    /// The one sub-account the grant is in; none for organization-wide grants.
    pub sub_account_id: Option<String>,
    pub granted_by: String,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<db::GrantRecord> for GrantRecord {
    fn from(r: db::GrantRecord) -> Self {
        GrantRecord {
            id: r.id,
            user_id: r.user_id,
            grant: r.grant,
            sub_account_id: r.sub_account_id,
            granted_by: r.granted_by,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrgUser {
    pub id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    pub active: bool,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl From<db::OrgUser> for OrgUser {
    fn from(r: db::OrgUser) -> Self {
        OrgUser {
            id: r.id,
            user_name: r.user_name,
            display_name: r.display_name,
            active: r.active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// One SCIM user of an organization user: who provisioned it, and whether it is active.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LinkedScimUser {
    pub directory_id: String,
    pub directory_name: String,
    /// The SCIM id in that directory.
    pub id: String,
    pub user_name: String,
    pub active: bool,
}

impl From<db::LinkedScimUser> for LinkedScimUser {
    fn from(r: db::LinkedScimUser) -> Self {
        LinkedScimUser {
            directory_id: r.directory_id,
            directory_name: r.directory_name,
            id: r.id,
            user_name: r.user_name,
            active: r.active,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrgGroup {
    pub id: String,
    pub directory_id: String,
    pub display_name: String,
    pub external_id: Option<String>,
}

impl From<db::OrgGroup> for OrgGroup {
    fn from(r: db::OrgGroup) -> Self {
        OrgGroup {
            id: r.id,
            directory_id: r.directory_id,
            display_name: r.display_name,
            external_id: r.external_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AdminTokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub sub_account_id: Option<String>,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// Null: never expires.
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
    /// When the token last authenticated a request, to the minute; null if never.
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
}

impl From<db::AdminTokenInfo> for AdminTokenInfo {
    fn from(r: db::AdminTokenInfo) -> Self {
        AdminTokenInfo {
            id: r.id,
            name: r.name,
            role: r.role,
            sub_account_id: r.sub_account_id,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub user_id: String,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: i64,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: i64,
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// The SSO connection the person signed in through; none for a session made otherwise.
    pub connection_id: Option<String>,
}

impl From<db::SessionInfo> for SessionInfo {
    fn from(r: db::SessionInfo) -> Self {
        SessionInfo {
            id: r.id,
            user_id: r.user_id,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            revoked_reason: r.revoked_reason,
            connection_id: r.connection_id,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    pub id: String,
    pub url: String,
    /// The last event sequence number delivered.
    pub delivered_seq: i64,
    pub attempts: i64,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<db::WebhookInfo> for WebhookInfo {
    fn from(r: db::WebhookInfo) -> Self {
        WebhookInfo {
            id: r.id,
            url: r.url,
            delivered_seq: r.delivered_seq,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_error: r.last_error,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Connection {
    pub id: String,
    pub org_id: String,
    #[schema(value_type = String)]
    pub kind: ConnectionKind,
    pub name: String,
    /// The settings, without secrets.
    #[schema(value_type = Object)]
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
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
}

impl From<sso_db::Connection> for Connection {
    fn from(r: sso_db::Connection) -> Self {
        Connection {
            id: r.id,
            org_id: r.org_id,
            kind: r.kind,
            name: r.name,
            config: r.config,
            has_secret: r.has_secret,
            jit: r.jit,
            enabled: r.enabled,
            signs_in_owner: r.signs_in_owner,
            allow_other_domains: r.allow_other_domains,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// An organization's claim on an email domain. Only a verified claim routes sign-ins; one
/// organization at most holds a verified claim on a domain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Domain {
    pub domain: String,
    /// The connection users of this domain sign in with; none means the organization's first
    /// enabled connection.
    pub connection_id: Option<String>,
    pub verified: bool,
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub verified_at: Option<i64>,
    /// The DNS record that proves the organization controls the domain.
    pub verification: DomainVerification,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<sso_db::Domain> for Domain {
    fn from(r: sso_db::Domain) -> Self {
        Domain {
            domain: r.domain,
            connection_id: r.connection_id,
            verified: r.verified,
            verified_at: r.verified_at,
            verification: r.verification.into(),
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DomainVerification {
    /// Always `TXT`.
    pub record_type: &'static str,
    /// `_idbridge-verification.<domain>`
    pub name: String,
    /// `idbridge-verification=<token>`
    pub value: String,
}

impl From<sso_db::DomainVerification> for DomainVerification {
    fn from(r: sso_db::DomainVerification) -> Self {
        DomainVerification {
            record_type: r.record_type,
            name: r.name,
            value: r.value,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Client {
    /// The `client_id`.
    pub id: String,
    /// The organization whose users it signs in; none for the operator's clients, which sign in
    /// users of any organization.
    pub org_id: Option<String>,
    pub name: String,
    pub redirect_uris: Vec<String>,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
}

impl From<sso_db::Client> for Client {
    fn from(r: sso_db::Client) -> Self {
        Client {
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            redirect_uris: r.redirect_uris,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DirectoryRecord {
    pub id: String,
    pub org_id: String,
    pub name: String,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<dir_db::DirectoryRecord> for DirectoryRecord {
    fn from(r: dir_db::DirectoryRecord) -> Self {
        DirectoryRecord {
            id: r.id,
            org_id: r.org_id,
            name: r.name,
            created_at: r.created_at,
        }
    }
}

/// A freshly minted token: the secret is returned once and only its hash is stored.
#[derive(Serialize, utoipa::ToSchema)]
pub struct NewToken {
    pub id: String,
    pub token: String,
}

/// The secret stays out of logs: only the id is shown.
impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl From<dir_db::NewToken> for NewToken {
    fn from(r: dir_db::NewToken) -> Self {
        NewToken {
            id: r.id,
            token: r.token,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
    /// When the token last authenticated a request, to the minute; null if never.
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
}

impl From<dir_db::TokenInfo> for TokenInfo {
    fn from(r: dir_db::TokenInfo) -> Self {
        TokenInfo {
            id: r.id,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    pub seq: i64,
    pub id: String,
    #[serde(rename = "type")]
    pub ty: String,
    pub user_id: Option<String>,
    pub data: Value,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
}

impl From<crate::store::access::EventRecord> for EventRecord {
    fn from(r: crate::store::access::EventRecord) -> Self {
        EventRecord {
            seq: r.seq,
            id: r.id,
            ty: r.ty,
            user_id: r.user_id,
            data: r.data,
            at: r.at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlatformTokenInfo {
    pub id: String,
    pub name: String,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// Null: never expires.
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<i64>,
    /// When the token last authenticated a request, to the minute; null if never.
    #[serde(with = "crate::store::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
}

impl From<crate::store::platform::PlatformTokenInfo> for PlatformTokenInfo {
    fn from(r: crate::store::platform::PlatformTokenInfo) -> Self {
        PlatformTokenInfo {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub directory_id: Option<String>,
    pub actor: String,
    pub operation: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub detail: Option<String>,
    #[serde(with = "crate::store::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
}

impl From<crate::store::audit::AuditEntry> for AuditEntry {
    fn from(r: crate::store::audit::AuditEntry) -> Self {
        AuditEntry {
            seq: r.seq,
            directory_id: r.directory_id,
            actor: r.actor,
            operation: r.operation,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            detail: r.detail,
            at: r.at,
        }
    }
}
