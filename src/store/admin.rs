//! What the admin API reads and writes: organization settings, sub-accounts, projects, mapping
//! rules, grants made by hand, organization users, admin tokens, sessions and webhooks.
//!
//! Tenant isolation is structural here too: every function takes an [`OrgScope`], which only
//! [`Store::authenticate_admin`] (or the operator's CLI) makes, and binds its organization id, so a
//! query for another organization's id finds nothing.

use sqlx::{AssertSqlSafe, FromRow};

use super::access::to_json;
use super::auth_cache::{Accepted, AuthCache};
use super::directory::{NewToken, TokenKind, hash_token};
use super::sql::{Bind, SqlBuilder};
use super::{Store, StoreError, StoreResult, Tx, new_id, on_read, on_tx};
use crate::mapping::rule::Source;
use crate::mapping::{Grant, GroupMatcher, SubAccountScope};

/// Proof that a caller acts for one organization, and who they are for the audit log.
#[derive(Debug, Clone)]
pub struct OrgScope {
    org_id: String,
    actor: String,
}

impl OrgScope {
    pub fn org_id(&self) -> &str {
        &self.org_id
    }
    pub fn actor(&self) -> &str {
        &self.actor
    }
    /// For the operator's CLI, the webhook deliverer (acting for a webhook's own organization)
    /// and tests, which act on an organization without a token; requests get theirs only from
    /// [`Store::authenticate_admin`].
    #[doc(hidden)]
    pub fn for_org(org_id: &str, actor: &str) -> OrgScope {
        OrgScope {
            org_id: org_id.into(),
            actor: actor.into(),
        }
    }
    pub fn audit(&self) -> super::audit::Actor<'_> {
        super::audit::Actor {
            org_id: &self.org_id,
            directory_id: None,
            actor: &self.actor,
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("stored value: {e}")))
}

pub fn check_name(name: &str, what: &str) -> StoreResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "{what} name must be 1-200 printable characters"
        )));
    }
    Ok(name.to_string())
}

// ---- organization ------------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
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
    pub created_at: i64,
}

/// The columns of [`OrgDetails`], over `organizations o`.
pub(super) const ORG_COLUMNS: &str = "SELECT o.id, o.name, o.seat_limit, \
     (SELECT COUNT(*) FROM org_users u WHERE u.org_id = o.id AND u.active) AS seats_used, \
     o.owner_user_id, o.default_role, o.external_key, o.created_at FROM organizations o";

impl Store {
    pub async fn org_details(&self, scope: &OrgScope) -> StoreResult<OrgDetails> {
        let sql = format!("{ORG_COLUMNS} WHERE o.id = $1");
        on_read!(self, c => sqlx::query_as::<_, OrgDetails>(AssertSqlSafe(sql))
        .bind(scope.org_id()).fetch_optional(c).await?)
        .ok_or(StoreError::NotFound)
    }
}

pub async fn set_seat_limit(tx: &mut Tx, scope: &OrgScope, limit: Option<i64>) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query("UPDATE organizations SET seat_limit = $2 WHERE id = $1")
        .bind(scope.org_id()).bind(limit).execute(&mut *c).await?.rows_affected());
    Ok(())
}

pub async fn set_default_role(
    tx: &mut Tx,
    scope: &OrgScope,
    role: Option<&str>,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query("UPDATE organizations SET default_role = $2 WHERE id = $1")
        .bind(scope.org_id()).bind(role).execute(&mut *c).await?.rows_affected());
    Ok(())
}

pub async fn set_owner(tx: &mut Tx, scope: &OrgScope, user_id: &str) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query("UPDATE organizations SET owner_user_id = $2 WHERE id = $1")
        .bind(scope.org_id()).bind(user_id).execute(&mut *c).await?.rows_affected());
    Ok(())
}

// ---- sub-accounts and projects -----------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubAccount {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Project {
    pub id: String,
    pub sub_account_id: String,
    pub name: String,
    pub created_at: i64,
}

pub async fn insert_sub_account(
    tx: &mut Tx,
    scope: &OrgScope,
    name: &str,
) -> StoreResult<SubAccount> {
    let now = tx.now();
    let name = check_name(name, "sub-account")?;
    let sa = SubAccount {
        id: new_id(),
        name,
        created_at: now,
    };
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sub_accounts (id, org_id, name, name_ci, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&sa.id).bind(scope.org_id()).bind(&sa.name).bind(sa.name.to_lowercase()).bind(sa.created_at)
        .execute(&mut *c).await.map(|r| r.rows_affected()))
    .map_err(|e| StoreError::on_unique(e, "a sub-account with this name"))?;
    Ok(sa)
}

pub async fn insert_project(
    tx: &mut Tx,
    scope: &OrgScope,
    sub_account_id: &str,
    name: &str,
) -> StoreResult<Project> {
    let now = tx.now();
    let name = check_name(name, "project")?;
    let p = Project {
        id: new_id(),
        sub_account_id: sub_account_id.to_string(),
        name,
        created_at: now,
    };
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO projects (id, org_id, sub_account_id, name, name_ci, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&p.id).bind(scope.org_id()).bind(&p.sub_account_id).bind(&p.name).bind(p.name.to_lowercase())
        .bind(p.created_at).execute(&mut *c).await.map(|r| r.rows_affected()))
    .map_err(|e| StoreError::on_unique(e, "a project with this name in this sub-account"))?;
    Ok(p)
}

pub async fn sub_account_exists(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<bool> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM sub_accounts WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(id).fetch_one(&mut *c).await?);
    Ok(n > 0)
}

pub async fn project_exists(
    tx: &mut Tx,
    scope: &OrgScope,
    sub_account_id: &str,
    project_id: &str,
) -> StoreResult<bool> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM projects WHERE org_id = $1 AND sub_account_id = $2 AND id = $3")
        .bind(scope.org_id()).bind(sub_account_id).bind(project_id).fetch_one(&mut *c).await?);
    Ok(n > 0)
}

/// How many rules and grants made by hand mention an id (a sub-account's or a project's). Ids are
/// UUIDs, so a quoted substring match cannot hit anything else.
pub async fn references(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<i64> {
    let pattern = format!("%\"{id}\"%");
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM mapping_rules WHERE org_id = $1 AND grant_json LIKE $2) + \
                (SELECT COUNT(*) FROM manual_grants WHERE org_id = $1 AND grant_json LIKE $2)")
        .bind(scope.org_id()).bind(&pattern).fetch_one(&mut *c).await?);
    Ok(n)
}

pub async fn delete_sub_account(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<bool> {
    let n = on_tx!(tx, c => sqlx::query("DELETE FROM sub_accounts WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(id).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

pub async fn delete_project(
    tx: &mut Tx,
    scope: &OrgScope,
    sub_account_id: &str,
    id: &str,
) -> StoreResult<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "DELETE FROM projects WHERE org_id = $1 AND sub_account_id = $2 AND id = $3")
        .bind(scope.org_id()).bind(sub_account_id).bind(id).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

impl Store {
    pub async fn list_sub_accounts(&self, scope: &OrgScope) -> StoreResult<Vec<SubAccount>> {
        Ok(on_read!(self, c => sqlx::query_as::<_, SubAccount>(
            "SELECT id, name, created_at FROM sub_accounts WHERE org_id = $1 ORDER BY id")
            .bind(scope.org_id()).fetch_all(c).await?))
    }

    pub async fn get_sub_account(&self, scope: &OrgScope, id: &str) -> StoreResult<SubAccount> {
        on_read!(self, c => sqlx::query_as::<_, SubAccount>(
            "SELECT id, name, created_at FROM sub_accounts WHERE org_id = $1 AND id = $2")
            .bind(scope.org_id()).bind(id).fetch_optional(c).await?)
        .ok_or(StoreError::NotFound)
    }

    pub async fn list_projects(
        &self,
        scope: &OrgScope,
        sub_account_id: &str,
    ) -> StoreResult<Vec<Project>> {
        Ok(on_read!(self, c => sqlx::query_as::<_, Project>(
            "SELECT id, sub_account_id, name, created_at FROM projects \
             WHERE org_id = $1 AND sub_account_id = $2 ORDER BY id")
            .bind(scope.org_id()).bind(sub_account_id).fetch_all(c).await?))
    }
}

// ---- mapping rules -----------------------------------------------------------------------------

/// A mapping rule; its matcher, grant and source are stored as JSON (see [`RuleRow`]).
#[derive(Debug, Clone)]
pub struct RuleRecord {
    pub id: String,
    pub description: Option<String>,
    pub matcher: GroupMatcher,
    pub grant: Grant,
    /// The directory or connection whose groups or claims the rule matches.
    pub source: Source,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const RULE_COLUMNS: &str = "SELECT id, description, matcher, grant_json, created_by, created_at, updated_at, source FROM mapping_rules";

/// A row of `mapping_rules` as stored, its JSON columns still text.
#[derive(sqlx::FromRow)]
struct RuleRow {
    id: String,
    description: Option<String>,
    matcher: String,
    grant_json: String,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    source: String,
}

fn rule_from(r: RuleRow) -> StoreResult<RuleRecord> {
    Ok(RuleRecord {
        id: r.id,
        description: r.description,
        matcher: parse(&r.matcher)?,
        grant: parse(&r.grant_json)?,
        source: parse(&r.source)?,
        created_by: r.created_by,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

pub async fn insert_rule(tx: &mut Tx, scope: &OrgScope, rule: &RuleRecord) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO mapping_rules (id, org_id, description, matcher, grant_json, created_by, created_at, updated_at, source) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&rule.id).bind(scope.org_id()).bind(&rule.description).bind(to_json(&rule.matcher))
        .bind(to_json(&rule.grant)).bind(&rule.created_by).bind(rule.created_at).bind(rule.updated_at)
        .bind(to_json(&rule.source))
        .execute(&mut *c).await?.rows_affected());
    Ok(())
}

pub async fn update_rule(tx: &mut Tx, scope: &OrgScope, rule: &RuleRecord) -> StoreResult<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE mapping_rules SET description = $3, matcher = $4, grant_json = $5, updated_at = $6, \
         source = $7 WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(&rule.id).bind(&rule.description).bind(to_json(&rule.matcher))
        .bind(to_json(&rule.grant)).bind(rule.updated_at).bind(to_json(&rule.source))
        .execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

pub async fn delete_rule(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<bool> {
    let n = on_tx!(tx, c => sqlx::query("DELETE FROM mapping_rules WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(id).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

pub async fn get_rule_tx(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<RuleRecord> {
    let sql = format!("{RULE_COLUMNS} WHERE org_id = $1 AND id = $2");
    let row = on_tx!(tx, c => sqlx::query_as::<_, RuleRow>(AssertSqlSafe(sql))
        .bind(scope.org_id()).bind(id).fetch_optional(&mut *c).await?);
    rule_from(row.ok_or(StoreError::NotFound)?)
}

impl Store {
    pub async fn list_rules(&self, scope: &OrgScope) -> StoreResult<Vec<RuleRecord>> {
        let sql = format!("{RULE_COLUMNS} WHERE org_id = $1 ORDER BY id");
        let rows = on_read!(self, c => sqlx::query_as::<_, RuleRow>(AssertSqlSafe(sql))
            .bind(scope.org_id()).fetch_all(c).await?);
        rows.into_iter().map(rule_from).collect()
    }

    pub async fn get_rule(&self, scope: &OrgScope, id: &str) -> StoreResult<RuleRecord> {
        let sql = format!("{RULE_COLUMNS} WHERE org_id = $1 AND id = $2");
        let row = on_read!(self, c => sqlx::query_as::<_, RuleRow>(AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(id).fetch_optional(c).await?);
        rule_from(row.ok_or(StoreError::NotFound)?)
    }
}

// ---- grants made by hand -----------------------------------------------------------------------

/// A grant made by hand; the grant is stored as JSON (see [`GrantRow`]).
#[derive(Debug, Clone)]
pub struct GrantRecord {
    pub id: String,
    pub user_id: String,
    pub grant: Grant,
    /// The one sub-account the grant is in; none for organization-wide grants.
    pub sub_account_id: Option<String>,
    pub granted_by: String,
    pub created_at: i64,
}

/// The one sub-account a grant is confined to, if any.
pub fn grant_sub_account(grant: &Grant) -> Option<&str> {
    match grant {
        Grant::OrgRole { .. } => None,
        Grant::SubAccountRole { sub_account, .. } | Grant::Features { sub_account, .. } => {
            match sub_account {
                SubAccountScope::All => None,
                SubAccountScope::One(id) => Some(id),
            }
        }
        Grant::ProjectRole { sub_account_id, .. } => Some(sub_account_id),
    }
}

pub async fn insert_grant(tx: &mut Tx, scope: &OrgScope, g: &GrantRecord) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO manual_grants (id, org_id, org_user_id, sub_account_id, grant_json, granted_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(&g.id).bind(scope.org_id()).bind(&g.user_id).bind(&g.sub_account_id)
        .bind(to_json(&g.grant)).bind(&g.granted_by).bind(g.created_at)
        .execute(&mut *c).await?.rows_affected());
    Ok(())
}

/// A row of `manual_grants` as stored, its grant still JSON text.
#[derive(sqlx::FromRow)]
struct GrantRow {
    id: String,
    org_user_id: String,
    sub_account_id: Option<String>,
    grant_json: String,
    granted_by: String,
    created_at: i64,
}

fn grant_from(r: GrantRow) -> StoreResult<GrantRecord> {
    Ok(GrantRecord {
        id: r.id,
        user_id: r.org_user_id,
        sub_account_id: r.sub_account_id,
        grant: parse(&r.grant_json)?,
        granted_by: r.granted_by,
        created_at: r.created_at,
    })
}

const GRANT_COLUMNS: &str =
    "SELECT id, org_user_id, sub_account_id, grant_json, granted_by, created_at FROM manual_grants";

pub async fn get_grant_tx(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<GrantRecord> {
    let sql = format!("{GRANT_COLUMNS} WHERE org_id = $1 AND id = $2");
    let row = on_tx!(tx, c => sqlx::query_as::<_, GrantRow>(AssertSqlSafe(sql))
        .bind(scope.org_id()).bind(id).fetch_optional(&mut *c).await?);
    grant_from(row.ok_or(StoreError::NotFound)?)
}

pub async fn delete_grant(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<bool> {
    let n = on_tx!(tx, c => sqlx::query("DELETE FROM manual_grants WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(id).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

impl Store {
    pub async fn list_grants(
        &self,
        scope: &OrgScope,
        user_id: &str,
    ) -> StoreResult<Vec<GrantRecord>> {
        let sql = format!("{GRANT_COLUMNS} WHERE org_id = $1 AND org_user_id = $2 ORDER BY id");
        let rows = on_read!(self, c => sqlx::query_as::<_, GrantRow>(AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(user_id).fetch_all(c).await?);
        rows.into_iter().map(grant_from).collect()
    }
}

// ---- organization users and groups -------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgUser {
    pub id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// The stored effective access (JSON), resolved per sub-account by the service.
    pub access: String,
}

const USER_COLUMNS: &str =
    "SELECT id, user_name, display_name, active, created_at, updated_at, access FROM org_users";

pub async fn org_user_exists(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<bool> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM org_users WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(id).fetch_one(&mut *c).await?);
    Ok(n > 0)
}

/// Filters of the user list; `None` matches everyone.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub user_name: Option<String>,
    pub email: Option<String>,
    /// A part of the userName, display name or any email (ASCII letters without case).
    pub search: Option<String>,
}

/// A LIKE pattern (with `ESCAPE '\'`) that finds `folded` anywhere, its own `%`, `_` and `\`
/// taken literally; `folded` is already in the case of the column it is compared with.
pub(super) fn contains_pattern(folded: &str) -> String {
    format!("%{}%", super::sql::escape_like(folded))
}

/// One SCIM user of an organization user: who provisioned it, and whether it is active.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkedScimUser {
    pub directory_id: String,
    pub directory_name: String,
    /// The SCIM id in that directory.
    pub id: String,
    pub user_name: String,
    pub active: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgGroup {
    pub id: String,
    pub directory_id: String,
    pub display_name: String,
    pub external_id: Option<String>,
}

/// The columns of [`OrgGroup`], over `scim_groups g`.
const GROUP_COLUMNS: &str = "SELECT g.id AS id, g.directory_id AS directory_id, \
     g.display_name AS display_name, g.external_id AS external_id";

/// A group with its directory's name.
#[derive(sqlx::FromRow)]
struct GroupOf {
    #[sqlx(flatten)]
    group: OrgGroup,
    directory_name: String,
}

/// A group with how many members it has.
#[derive(sqlx::FromRow)]
struct GroupCounted {
    #[sqlx(flatten)]
    group: OrgGroup,
    member_count: i64,
}

impl Store {
    /// A page of the organization's users in id (creation) order after `after`.
    pub async fn list_org_users(
        &self,
        scope: &OrgScope,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<OrgUser>> {
        self.find_org_users(scope, &UserQuery::default(), after, limit)
            .await
    }

    /// A page of the organization's users matching `q` (each filter exact, case-insensitive).
    pub async fn find_org_users(
        &self,
        scope: &OrgScope,
        q: &UserQuery,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<OrgUser>> {
        // An email is the userName (what sign-in and most IdPs use) or any `emails` value of one of
        // the person's SCIM users; the array is read with each backend's JSON functions.
        let backend = self.backend();
        let (emails_from, email_value) = match backend {
            super::Backend::Sqlite => (
                "FROM scim_users s, \
                 json_each(CASE json_type(s.data, '$.emails') WHEN 'array' THEN json_extract(s.data, '$.emails') ELSE '[]' END) e \
                 WHERE s.org_user_id = org_users.id AND e.type = 'object'",
                backend.ascii_lower("json_extract(e.value, '$.value')"),
            ),
            super::Backend::Postgres => (
                "FROM scim_users s, \
                 jsonb_array_elements(CASE jsonb_typeof(s.data::jsonb -> 'emails') WHEN 'array' \
                 THEN s.data::jsonb -> 'emails' ELSE '[]'::jsonb END) AS e(value) \
                 WHERE s.org_user_id = org_users.id",
                backend.ascii_lower("e.value ->> 'value'"),
            ),
        };
        let email_col = backend.ascii_lower("email");
        let name_col = backend.ascii_lower("display_name");
        // A search is a substring match, so it reads every user of the organization (in id order,
        // a page at a time); organizations are thousands of people, not millions.
        let sql = format!(
            "{USER_COLUMNS} WHERE org_id = $1 AND id > $2 \
             AND (CAST($4 AS TEXT) IS NULL OR user_key = $4) \
             AND (CAST($5 AS TEXT) IS NULL OR user_key = $5 OR {email_col} = $5 \
                  OR $5 IN (SELECT {email_value} {emails_from})) \
             AND (CAST($6 AS TEXT) IS NULL OR user_key LIKE $6 ESCAPE '\\' \
                  OR {name_col} LIKE $6 ESCAPE '\\' OR {email_col} LIKE $6 ESCAPE '\\' \
                  OR EXISTS (SELECT 1 {emails_from} AND {email_value} LIKE $6 ESCAPE '\\')) \
             ORDER BY id LIMIT $3"
        );
        let user_name = q.user_name.as_deref().map(crate::domain::fold_key);
        let email = q.email.as_deref().map(crate::domain::fold_key);
        let search = q
            .search
            .as_deref()
            .map(|t| contains_pattern(&crate::domain::fold_key(t)));
        Ok(
            on_read!(self, c => sqlx::query_as::<_, OrgUser>(AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(after).bind(limit).bind(&user_name).bind(&email).bind(&search)
            .fetch_all(c).await?),
        )
    }

    /// The SCIM users that make up an organization user, with their directory.
    pub async fn scim_users_of(
        &self,
        scope: &OrgScope,
        org_user_id: &str,
    ) -> StoreResult<Vec<LinkedScimUser>> {
        Ok(on_read!(self, c => sqlx::query_as::<_, LinkedScimUser>(
            "SELECT d.id AS directory_id, d.name AS directory_name, s.id AS id, \
             s.user_name AS user_name, s.active AS active FROM scim_users s \
             JOIN directories d ON d.id = s.directory_id \
             WHERE d.org_id = $1 AND s.org_user_id = $2 ORDER BY d.id, s.id")
            .bind(scope.org_id()).bind(org_user_id).fetch_all(c).await?))
    }

    /// The group-claim values of the user's last sign-in.
    pub async fn claims_of(&self, scope: &OrgScope, org_user_id: &str) -> StoreResult<Vec<String>> {
        Ok(on_read!(self, c => sqlx::query_scalar(
            "SELECT value FROM org_user_claims WHERE org_id = $1 AND org_user_id = $2 ORDER BY value")
            .bind(scope.org_id()).bind(org_user_id).fetch_all(c).await?))
    }

    pub async fn get_org_user(&self, scope: &OrgScope, id: &str) -> StoreResult<OrgUser> {
        let sql = format!("{USER_COLUMNS} WHERE org_id = $1 AND id = $2");
        on_read!(self, c => sqlx::query_as::<_, OrgUser>(AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(id).fetch_optional(c).await?)
        .ok_or(StoreError::NotFound)
    }

    /// The organization user whose userName (case-insensitive) this is.
    pub async fn find_org_user(&self, scope: &OrgScope, user_name: &str) -> StoreResult<OrgUser> {
        let sql = format!("{USER_COLUMNS} WHERE org_id = $1 AND user_key = $2");
        on_read!(self, c => sqlx::query_as::<_, OrgUser>(AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(crate::domain::fold_key(user_name)).fetch_optional(c).await?)
        .ok_or(StoreError::NotFound)
    }

    /// A page of the groups of every directory of the organization.
    pub async fn list_org_groups(
        &self,
        scope: &OrgScope,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<OrgGroup>> {
        let sql = format!(
            "{GROUP_COLUMNS} FROM scim_groups g JOIN directories d ON d.id = g.directory_id \
             WHERE d.org_id = $1 AND g.id > $2 ORDER BY g.id LIMIT $3"
        );
        Ok(
            on_read!(self, c => sqlx::query_as::<_, OrgGroup>(AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(after).bind(limit).fetch_all(c).await?),
        )
    }

    /// Up to `limit` groups of the organization whose display name (Unicode lower case, as
    /// `display_name` rules compare) or externalId (ASCII letters without case) contains
    /// `search`, by display name, with their directory's name; every group when `search` is
    /// `None`.
    pub async fn search_org_groups(
        &self,
        scope: &OrgScope,
        search: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<(OrgGroup, String)>> {
        let external = self.backend().ascii_lower("g.external_id");
        let sql = format!(
            "{GROUP_COLUMNS}, d.name AS directory_name FROM scim_groups g \
             JOIN directories d ON d.id = g.directory_id \
             WHERE d.org_id = $1 AND (CAST($2 AS TEXT) IS NULL \
                OR g.display_name_ci LIKE $2 ESCAPE '\\' OR {external} LIKE $3 ESCAPE '\\') \
             ORDER BY g.display_name_ci, g.id LIMIT $4"
        );
        let by_name = search.map(|t| contains_pattern(&t.to_lowercase()));
        let by_external = search.map(|t| contains_pattern(&crate::domain::fold_key(t)));
        Ok(
            on_read!(self, c => sqlx::query_as::<_, GroupOf>(AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(&by_name).bind(&by_external).bind(limit)
            .fetch_all(c).await?.into_iter()
            .map(|r| (r.group, r.directory_name))
            .collect()),
        )
    }

    /// One group and how many members it has.
    pub async fn get_org_group(&self, scope: &OrgScope, id: &str) -> StoreResult<(OrgGroup, i64)> {
        let sql = format!(
            "{GROUP_COLUMNS}, \
             (SELECT COUNT(*) FROM scim_group_members m WHERE m.group_id = g.id) AS member_count \
             FROM scim_groups g JOIN directories d ON d.id = g.directory_id \
             WHERE d.org_id = $1 AND g.id = $2"
        );
        on_read!(self, c => sqlx::query_as::<_, GroupCounted>(AssertSqlSafe(sql))
            .bind(scope.org_id()).bind(id).fetch_optional(c).await?
            .map(|r| (r.group, r.member_count)))
        .ok_or(StoreError::NotFound)
    }

    pub async fn list_org_directories(
        &self,
        scope: &OrgScope,
    ) -> StoreResult<Vec<super::directory::DirectoryRecord>> {
        Ok(
            on_read!(self, c => sqlx::query_as::<_, super::directory::DirectoryRecord>(
            "SELECT id, org_id, name, created_at FROM directories WHERE org_id = $1 ORDER BY id")
            .bind(scope.org_id()).fetch_all(c).await?),
        )
    }
}

// ---- admin tokens ------------------------------------------------------------------------------

/// An authenticated admin token: the organization, the role, and for a sub-account admin, the
/// sub-account.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    pub scope: OrgScope,
    pub token_id: String,
    pub role: String,
    pub sub_account_id: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminTokenInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub sub_account_id: Option<String>,
    pub created_at: i64,
    /// Null: never expires.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// When the token last authenticated a request, to the minute; null if never.
    pub last_used_at: Option<i64>,
}

/// The row of an admin token that authenticates a request.
#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    org_id: String,
    role: String,
    sub_account_id: Option<String>,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
}

/// An admin token to store: only its hash is kept. The service checks the role, the name, the
/// expiry and the sub-account, and mints the secret.
pub struct AdminTokenRow<'a> {
    pub token: &'a NewToken,
    pub role: &'a str,
    pub sub_account_id: Option<&'a str>,
    pub name: &'a str,
    /// Microseconds; none: never expires.
    pub expires_at: Option<i64>,
}

pub async fn insert_admin_token(
    tx: &mut Tx,
    scope: &OrgScope,
    t: &AdminTokenRow<'_>,
) -> StoreResult<()> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO admin_tokens (id, org_id, role, sub_account_id, name, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&t.token.id).bind(scope.org_id()).bind(t.role).bind(t.sub_account_id).bind(t.name)
        .bind(hash_token(&t.token.token)).bind(now).bind(t.expires_at).execute(&mut *c).await?.rows_affected());
    Ok(())
}

/// Revokes an active token; false when there is none of this id (or it is already revoked).
pub async fn revoke_admin_token(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<bool> {
    let now = tx.now();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE admin_tokens SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL")
        .bind(scope.org_id()).bind(id).bind(now).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

impl Store {
    pub async fn authenticate_admin(&self, token: &str) -> StoreResult<Option<AdminPrincipal>> {
        if token.len() > 256 || !token.starts_with("idba_") {
            return Ok(None);
        }
        let hash = hash_token(token);
        let key = AuthCache::key(&hash, None);
        let now = self.now();
        if let Some(Accepted::Admin(principal)) = self.auth_cache.get(&key, now) {
            return Ok(Some(principal));
        }
        let generation = self.auth_cache.generation();
        let found = on_read!(self, c => sqlx::query_as::<_, TokenRow>(
        "SELECT id, org_id, role, sub_account_id, last_used_at, expires_at FROM admin_tokens \
         WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)")
        .bind(&hash).bind(now).fetch_optional(c).await?
        .map(|r| (AdminPrincipal {
            scope: OrgScope { org_id: r.org_id, actor: format!("admin-token:{}", r.id) },
            token_id: r.id,
            role: r.role,
            sub_account_id: r.sub_account_id,
        }, r.last_used_at, r.expires_at)));
        let Some((principal, last_used_at, expires_at)) = found else {
            return Ok(None);
        };
        self.note_token_use(TokenKind::Admin, &principal.token_id, last_used_at)
            .await;
        // A token about to expire is kept no longer than it is valid.
        self.auth_cache.put(
            key,
            generation,
            Accepted::Admin(principal.clone()),
            expires_at,
        );
        Ok(Some(principal))
    }

    pub async fn list_admin_tokens(&self, scope: &OrgScope) -> StoreResult<Vec<AdminTokenInfo>> {
        Ok(on_read!(self, c => sqlx::query_as::<_, AdminTokenInfo>(
            "SELECT id, name, role, sub_account_id, created_at, expires_at, revoked_at, last_used_at FROM admin_tokens \
             WHERE org_id = $1 ORDER BY id")
            .bind(scope.org_id()).fetch_all(c).await?))
    }
}

// ---- sessions ----------------------------------------------------------------------------------

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionInfo {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// The SSO connection the person signed in through; none for a session made otherwise.
    pub connection_id: Option<String>,
}

/// Opens a session for a user that ends at `expires_at`; only the hash of the cookie's secret is
/// stored. The service checks that the user exists.
pub async fn insert_session(
    tx: &mut Tx,
    scope: &OrgScope,
    token: &NewToken,
    user_id: &str,
    expires_at: i64,
) -> StoreResult<()> {
    let now = tx.now();
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sessions (id, org_id, org_user_id, token_hash, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $5, $6)")
        .bind(&token.id).bind(scope.org_id()).bind(user_id).bind(hash_token(&token.token))
        .bind(now).bind(expires_at).execute(&mut *c).await?.rows_affected());
    Ok(())
}

impl Store {
    pub async fn list_sessions(
        &self,
        scope: &OrgScope,
        user_id: &str,
    ) -> StoreResult<Vec<SessionInfo>> {
        Ok(on_read!(self, c => sqlx::query_as::<_, SessionInfo>(
            "SELECT id, org_user_id AS user_id, created_at, last_seen_at, expires_at, revoked_at, \
             revoked_reason, connection_id FROM sessions WHERE org_id = $1 AND org_user_id = $2 ORDER BY id")
            .bind(scope.org_id()).bind(user_id).fetch_all(c).await?))
    }
}

// ---- webhooks ----------------------------------------------------------------------------------

fn webhook_secret_context(id: &str) -> String {
    format!("webhooks.secret:{id}")
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookInfo {
    pub id: String,
    pub url: String,
    /// The last event sequence number delivered.
    pub delivered_seq: i64,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// A webhook claimed by one worker for a while.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookJob {
    pub id: String,
    pub org_id: String,
    pub url: String,
    pub secret: String,
    pub delivered_seq: i64,
    pub attempts: i64,
}

/// Webhook deliveries still to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookBacklog {
    pub pending: i64,
    /// When the oldest pending event happened (microseconds); none when nothing is pending.
    pub oldest_at: Option<i64>,
}

/// Registers a webhook, its secret already sealed (see [`Store::seal_webhook_secret`]), that
/// delivers events from the next one on.
pub async fn insert_webhook(
    tx: &mut Tx,
    scope: &OrgScope,
    id: &str,
    url: &str,
    sealed_secret: &str,
) -> StoreResult<WebhookInfo> {
    let now = tx.now();
    let seq: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COALESCE(MAX(seq), 0) FROM events WHERE org_id = $1")
        .bind(scope.org_id()).fetch_one(&mut *c).await?);
    let info = WebhookInfo {
        id: id.to_string(),
        url: url.to_string(),
        delivered_seq: seq,
        attempts: 0,
        next_attempt_at: 0,
        last_error: None,
        created_at: now,
    };
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO webhooks (id, org_id, url, secret, delivered_seq, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&info.id).bind(scope.org_id()).bind(url).bind(sealed_secret).bind(seq).bind(now)
        .execute(&mut *c).await?.rows_affected());
    Ok(info)
}

pub async fn delete_webhook(tx: &mut Tx, scope: &OrgScope, id: &str) -> StoreResult<bool> {
    let n = on_tx!(tx, c => sqlx::query("DELETE FROM webhooks WHERE org_id = $1 AND id = $2")
        .bind(scope.org_id()).bind(id).execute(&mut *c).await?.rows_affected());
    Ok(n > 0)
}

impl Store {
    /// A webhook's signing secret sealed like every secret at rest; the worker opens it to sign
    /// each delivery.
    pub fn seal_webhook_secret(&self, id: &str, secret: &str) -> StoreResult<String> {
        self.secrets()?
            .seal(&webhook_secret_context(id), secret.as_bytes())
            .map_err(|e| StoreError::Invalid(e.to_string()))
    }

    pub async fn list_webhooks(&self, scope: &OrgScope) -> StoreResult<Vec<WebhookInfo>> {
        Ok(on_read!(self, c => sqlx::query_as::<_, WebhookInfo>(
            "SELECT id, url, delivered_seq, attempts, next_attempt_at, last_error, created_at \
             FROM webhooks WHERE org_id = $1 ORDER BY id")
            .bind(scope.org_id()).fetch_all(c).await?))
    }

    // The deliverer's bookkeeping below keeps its own short transactions: it acts for no caller,
    // writes no audit row, and each step must commit before the next delivery is tried.

    /// Claims one webhook that has undelivered events and is due, leasing it to the caller until
    /// `lease_until`. On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets replicas claim different
    /// webhooks at once without waiting on each other; the lease keeps a claimed webhook from a
    /// second worker until it expires (a worker that died mid-delivery is replaced then).
    pub async fn claim_webhook(
        &self,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<Option<WebhookJob>> {
        self.publish_events().await?;
        let mut tx = self.begin().await?;
        let skip = match tx.backend() {
            super::Backend::Postgres => " FOR UPDATE OF w SKIP LOCKED",
            super::Backend::Sqlite => "",
        };
        let sql = format!(
            "SELECT w.id FROM webhooks w \
             WHERE w.next_attempt_at <= $1 AND w.lease_until <= $1 \
             AND EXISTS (SELECT 1 FROM events e WHERE e.org_id = w.org_id AND e.seq > w.delivered_seq) \
             ORDER BY w.next_attempt_at LIMIT 1{skip}"
        );
        let id: Option<String> = on_tx!(&mut tx, c => sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(now).fetch_optional(&mut *c).await?);
        let Some(id) = id else {
            return Ok(None);
        };
        let job = on_tx!(&mut tx, c => sqlx::query_as::<_, WebhookJob>(
            "UPDATE webhooks SET lease_until = $2 WHERE id = $1 \
             RETURNING id, org_id, url, secret, delivered_seq, attempts")
            .bind(&id).bind(lease_until).fetch_one(&mut *c).await?);
        tx.commit().await?;
        let mut job = job;
        // Webhooks made before secrets were sealed hold theirs in clear.
        if job.secret.starts_with("v1:") {
            let clear = self
                .secrets()?
                .open(&webhook_secret_context(&job.id), &job.secret)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            job.secret = String::from_utf8(clear)
                .map_err(|_| StoreError::Invalid("webhook secret is not UTF-8".into()))?;
        }
        Ok(Some(job))
    }

    /// Deliveries not yet made, over every webhook (one an event a webhook has not had), and
    /// when the oldest of their events happened: how far the workers lag.
    pub async fn webhook_backlog(&self) -> StoreResult<WebhookBacklog> {
        self.publish_events().await?;
        Ok(on_read!(self, c => sqlx::query_as::<_, WebhookBacklog>(
            "SELECT COUNT(*) AS pending, MIN(e.at) AS oldest_at FROM webhooks w \
             JOIN events e ON e.org_id = w.org_id AND e.seq > w.delivered_seq")
            .fetch_one(c).await?))
    }

    /// Records that events up to `seq` were delivered and releases the lease.
    pub async fn webhook_delivered(&self, id: &str, seq: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE webhooks SET delivered_seq = $2, attempts = 0, next_attempt_at = 0, lease_until = 0, \
             last_error = NULL WHERE id = $1")
            .bind(id).bind(seq).execute(&mut *c).await?.rows_affected());
        tx.commit().await
    }

    /// Records a failed attempt; the next one is due at `next_attempt_at`.
    pub async fn webhook_failed(
        &self,
        id: &str,
        delivered_seq: i64,
        attempts: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, c => sqlx::query(
            "UPDATE webhooks SET delivered_seq = $2, attempts = $3, next_attempt_at = $4, lease_until = 0, \
             last_error = $5 WHERE id = $1")
            .bind(id).bind(delivered_seq).bind(attempts).bind(next_attempt_at).bind(error)
            .execute(&mut *c).await?.rows_affected());
        tx.commit().await
    }
}

// ---- audit -------------------------------------------------------------------------------------

/// Which audit entries to return; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub operation: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub after: i64,
    /// Only entries before this sequence number (the page before one shown newest first).
    pub before: Option<i64>,
    pub limit: i64,
    /// Newest first (a page of recent activity), rather than in order from `after`.
    pub newest_first: bool,
}

impl Store {
    pub async fn audit_filtered(
        &self,
        scope: &OrgScope,
        f: &AuditFilter,
    ) -> StoreResult<Vec<super::audit::AuditEntry>> {
        let mut b = SqlBuilder::new(
            "SELECT seq, directory_id, actor, operation, resource_type, resource_id, detail, at \
             FROM audit_log WHERE org_id = ",
        );
        b.bind_text(scope.org_id())
            .push(" AND seq > ")
            .bind(Bind::Int(f.after));
        for (column, value) in [
            ("actor", &f.actor),
            ("operation", &f.operation),
            ("resource_type", &f.resource_type),
            ("resource_id", &f.resource_id),
        ] {
            if let Some(v) = value {
                b.push(&format!(" AND {column} = ")).bind_text(v.clone());
            }
        }
        if let Some(t) = f.since {
            b.push(" AND at >= ").bind(Bind::Int(t));
        }
        if let Some(t) = f.until {
            b.push(" AND at < ").bind(Bind::Int(t));
        }
        b.seq_page(f.before, f.newest_first, f.limit);
        Ok(on_read!(self, c => b.query()?
            .try_map(|r| super::audit::AuditEntry::from_row(&r)).fetch_all(c).await?))
    }
}
