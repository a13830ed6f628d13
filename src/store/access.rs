//! The access model's SQL: organization users and their SCIM faces, mapping rules, grants made by
//! hand, the stored effective access, the event outbox and sessions.
//!
//! Locking (PostgreSQL; SQLite has one writer at a time and needs none). Every transaction that
//! recomputes access takes the organization row `FOR KEY SHARE` before it reads rules, then the
//! organization users it recomputes `FOR UPDATE` in id order, and only then reads their groups. A
//! rule change takes the organization row `FOR UPDATE`, which waits for those transactions and
//! blocks new ones, so no recomputation ever runs on rules or memberships older than what it
//! overwrites. Nothing updates the organization row on the way, so it never turns hot; events are
//! numbered apart from the writes (outbox.rs), and only a seat check takes a per-organization
//! turn ([`take_turn`]).

use crate::domain::ids::OrgUserId;
use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use sqlx::{AssertSqlSafe, FromRow};

use super::sql::{Bind, CHUNK, ROWS_CHUNK, SqlBuilder, push_id_set, push_list};
use super::{Backend, StoreError, StoreResult, Tx, on_read, on_tx};
use crate::domain::access::EventType;
use crate::domain::access::SubAccountRole;
use crate::mapping::rule::Source;
use crate::mapping::{GroupMatcher, GroupRef, ManualGrant, MappingRule, OrgSettings};

/// How a transaction holds the organization row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgLock {
    /// Recomputing some users: many may run at once; rule changes wait.
    Share,
    /// Changing rules, settings or the owner: runs alone.
    Exclusive,
    /// A read-only snapshot (a preview): waits for no one and holds no one up.
    None,
}

/// Everything about an organization that the computation of any user's access reads.
#[derive(Debug, Clone)]
pub struct OrgAccess {
    pub owner_user_id: Option<String>,
    pub settings: OrgSettings,
    pub rules: Vec<MappingRule>,
    /// Fixed for the transaction: changing it takes the row exclusively.
    pub seat_limit: Option<i64>,
}

fn lock_suffix(tx: &Tx, lock: OrgLock) -> &'static str {
    match (tx.backend(), lock) {
        (Backend::Sqlite, _) | (_, OrgLock::None) => "",
        // Only the organization's row: its rules are the outer join's nullable side.
        (Backend::Postgres, OrgLock::Share) => " FOR KEY SHARE OF o",
        (Backend::Postgres, OrgLock::Exclusive) => " FOR UPDATE OF o",
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("stored {what}: {e}")))
}

pub fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The organization's row with one of its rules (none: the rule's columns are NULL), in the
/// rules' order.
#[derive(FromRow)]
struct OrgRuleRow {
    owner_user_id: Option<String>,
    default_role: Option<String>,
    seat_limit: Option<i64>,
    rule_id: Option<String>,
    matcher: Option<String>,
    grant_json: Option<String>,
    source: Option<String>,
}

/// Locks the organization row as `lock` says and reads its owner, settings and rules: every
/// provisioning write starts with it.
///
/// One statement where nothing is locked (SQLite's one writer excludes every other). A lock on
/// PostgreSQL takes two: a statement that waited for the row's lock re-reads that row after the
/// wait, but not the rows it joins, so it would miss a rule the transaction it waited for made.
pub async fn load_org(tx: &mut Tx, org_id: &str, lock: OrgLock) -> StoreResult<OrgAccess> {
    let suffix = lock_suffix(tx, lock);
    if !suffix.is_empty() {
        let sql = format!("SELECT 1 FROM organizations o WHERE o.id = $1{suffix}");
        let found = on_tx!(tx, c => sqlx::query(AssertSqlSafe(sql)).bind(org_id)
            .fetch_optional(&mut *c).await?.is_some());
        if !found {
            return Err(StoreError::NotFound);
        }
    }
    let rows = on_tx!(tx, c => sqlx::query_as::<_, OrgRuleRow>(
        "SELECT o.owner_user_id, o.default_role, o.seat_limit, r.id AS rule_id, r.matcher, \
         r.grant_json, r.source FROM organizations o LEFT JOIN mapping_rules r ON r.org_id = o.id \
         WHERE o.id = $1 ORDER BY r.id")
        .bind(org_id).fetch_all(&mut *c).await?);
    let first = rows.first().ok_or(StoreError::NotFound)?;
    let default_role = match &first.default_role {
        Some(r) => Some(
            r.parse::<SubAccountRole>()
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
        ),
        None => None,
    };
    let (owner_user_id, seat_limit) = (first.owner_user_id.clone(), first.seat_limit);
    let mut rules = Vec::with_capacity(rows.len());
    for r in rows {
        let (Some(id), Some(matcher), Some(grant), Some(source)) =
            (r.rule_id, r.matcher, r.grant_json, r.source)
        else {
            continue;
        };
        rules.push(MappingRule {
            id,
            matcher: parse_json(&matcher, "matcher")?,
            grant: parse_json(&grant, "grant")?,
            source: parse_json(&source, "source")?,
        });
    }
    Ok(OrgAccess {
        owner_user_id,
        settings: OrgSettings { default_role },
        rules,
        seat_limit,
    })
}

/// The INSERT that makes a person unless their folded userName already has one: `$1` id, `$2`
/// organization, `$3` folded key, `$4` userName, `$5` displayName, `$6` time. A macro so that
/// the one-call create ([`super::scim::insert_linked_user`]) sends the same statement.
macro_rules! insert_person {
    () => {
        "INSERT INTO org_users (id, org_id, user_key, user_name, display_name, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6) ON CONFLICT (org_id, user_key) DO NOTHING"
    };
}
pub(crate) use insert_person;

/// Finds the organization user with this userName (case-insensitive), creating it inactive when
/// there is none; returns its id and whether it was created. Activation is the recomputation's job,
/// so that the seat count changes in one place.
pub async fn link_org_user(
    tx: &mut Tx,
    org_id: &str,
    user_name: &str,
    display_name: Option<&str>,
    now: i64,
) -> StoreResult<(OrgUserId, bool)> {
    let key = crate::domain::fold_key(user_name);
    let id = super::new_id();
    let created = on_tx!(tx, c => sqlx::query(insert_person!())
        .bind(&id).bind(org_id).bind(&key).bind(user_name).bind(display_name).bind(now)
        .execute(&mut *c).await?.rows_affected())
        == 1;
    if created {
        return Ok((OrgUserId::new(id), true));
    }
    let existing: String = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT id FROM org_users WHERE org_id = $1 AND user_key = $2")
        .bind(org_id).bind(&key).fetch_one(&mut *c).await?);
    Ok((OrgUserId::new(existing), false))
}

/// The organization user with this userName (case-insensitive), if any.
pub async fn find_org_user(
    tx: &mut Tx,
    org_id: &str,
    user_name: &str,
) -> StoreResult<Option<OrgUserId>> {
    let id: Option<String> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT id FROM org_users WHERE org_id = $1 AND user_key = $2")
        .bind(org_id).bind(crate::domain::fold_key(user_name)).fetch_optional(&mut *c).await?);
    Ok(id.map(OrgUserId::new))
}

/// How many SCIM users, in any directory, are this person.
pub async fn scim_links(tx: &mut Tx, org_user_id: &OrgUserId) -> StoreResult<i64> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM scim_users WHERE org_user_id = $1")
        .bind(org_user_id.as_str()).fetch_one(&mut *c).await?))
}

/// Makes a SCIM user the face of another organization user.
pub async fn relink_scim_user(
    tx: &mut Tx,
    directory_id: &str,
    scim_id: &str,
    org_user_id: &OrgUserId,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE scim_users SET org_user_id = $1 WHERE id = $2 AND directory_id = $3")
        .bind(org_user_id.as_str()).bind(scim_id).bind(directory_id).execute(&mut *c).await?.rows_affected());
    Ok(())
}

/// Gives an organization user a new userName, keeping its id (and so its grants made by hand, its
/// sessions and ownership). The email of the last sign-in was the old name, so it is forgotten
/// unless only the case changed; the next sign-in stores the new one.
pub async fn rename_org_user(
    tx: &mut Tx,
    org_id: &str,
    id: &OrgUserId,
    user_name: &str,
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE org_users SET user_key = $1, user_name = $2, updated_at = $3, \
         email = CASE WHEN LOWER(email) = $1 THEN email ELSE NULL END WHERE org_id = $4 AND id = $5")
        .bind(crate::domain::fold_key(user_name)).bind(user_name).bind(now).bind(org_id).bind(id.as_str())
        .execute(&mut *c).await.map(|r| r.rows_affected()))
    .map_err(|e| StoreError::on_unique(e, "a user with this userName"))?;
    Ok(())
}

async fn ids_query(tx: &mut Tx, b: SqlBuilder) -> StoreResult<Vec<OrgUserId>> {
    Ok(on_tx!(tx, c => b.query_scalar::<_, Option<String>>()?
        .fetch_all(&mut *c).await?.into_iter().flatten().map(OrgUserId::new).collect()))
}

/// The organization users behind these SCIM users of one directory.
pub async fn org_users_of_scim_users(
    tx: &mut Tx,
    directory_id: &str,
    scim_ids: &[String],
) -> StoreResult<Vec<OrgUserId>> {
    let mut out = Vec::new();
    for chunk in scim_ids.chunks(CHUNK) {
        let mut b =
            SqlBuilder::new("SELECT DISTINCT org_user_id FROM scim_users WHERE directory_id = ");
        b.bind_text(directory_id).push(" AND id IN (");
        push_list(&mut b, chunk);
        b.push(")");
        out.extend(ids_query(tx, b).await?);
    }
    Ok(out)
}

/// The organization users who are (user) members of a group of one directory.
pub async fn org_users_of_group(
    tx: &mut Tx,
    directory_id: &str,
    group_id: &str,
) -> StoreResult<Vec<OrgUserId>> {
    let mut b = SqlBuilder::new(
        "SELECT DISTINCT su.org_user_id FROM scim_group_members m \
         JOIN scim_users su ON su.id = m.member_id WHERE m.directory_id = ",
    );
    b.bind_text(directory_id)
        .push(" AND m.group_id = ")
        .bind_text(group_id);
    ids_query(tx, b).await
}

/// Every organization user a matcher could match: a superset of those it does match, found through
/// indexes, so that a rule change recomputes only the users it can affect.
pub async fn org_users_matching(
    tx: &mut Tx,
    org_id: &str,
    matcher: &GroupMatcher,
) -> StoreResult<Vec<OrgUserId>> {
    let by_group = |column: &str, value: String| {
        let mut b = SqlBuilder::new(
            "SELECT DISTINCT su.org_user_id FROM scim_groups g \
             JOIN directories d ON d.id = g.directory_id \
             JOIN scim_group_members m ON m.group_id = g.id \
             JOIN scim_users su ON su.id = m.member_id WHERE d.org_id = ",
        );
        b.bind_text(org_id)
            .push(&format!(" AND g.{column} = "))
            .bind_text(value);
        b
    };
    let b = match matcher {
        GroupMatcher::GroupId { group_id } => by_group("id", group_id.clone()),
        GroupMatcher::ExternalId { external_id } => by_group("external_id", external_id.clone()),
        GroupMatcher::DisplayName { display_name } => {
            by_group("display_name_ci", display_name.to_lowercase())
        }
        GroupMatcher::Claim { value } => {
            let mut b =
                SqlBuilder::new("SELECT DISTINCT org_user_id FROM org_user_claims WHERE org_id = ");
            b.bind_text(org_id)
                .push(" AND value = ")
                .bind_text(value.clone());
            b
        }
        GroupMatcher::DirectoryDefault { directory_id } => {
            let mut b = SqlBuilder::new(
                "SELECT DISTINCT su.org_user_id FROM scim_users su \
                 JOIN directories d ON d.id = su.directory_id WHERE d.org_id = ",
            );
            b.bind_text(org_id)
                .push(" AND su.directory_id = ")
                .bind_text(directory_id.clone());
            b
        }
    };
    ids_query(tx, b).await
}

pub async fn group_in_org(tx: &mut Tx, org_id: &str, group_id: &str) -> StoreResult<bool> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM scim_groups g JOIN directories d ON d.id = g.directory_id \
         WHERE d.org_id = $1 AND g.id = $2")
        .bind(org_id).bind(group_id).fetch_one(&mut *c).await?);
    Ok(n > 0)
}

pub async fn directory_in_org(tx: &mut Tx, org_id: &str, directory_id: &str) -> StoreResult<bool> {
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM directories WHERE org_id = $1 AND id = $2")
        .bind(org_id).bind(directory_id).fetch_one(&mut *c).await?);
    Ok(n > 0)
}

/// The ids of the organization's directories, in id order.
pub async fn directory_ids(tx: &mut Tx, org_id: &str) -> StoreResult<Vec<String>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT id FROM directories WHERE org_id = $1 ORDER BY id")
        .bind(org_id).fetch_all(&mut *c).await?))
}

/// The ids of the organization's sign-in connections, in id order.
pub async fn connection_ids(tx: &mut Tx, org_id: &str) -> StoreResult<Vec<String>> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT id FROM sso_connections WHERE org_id = $1 ORDER BY id")
        .bind(org_id).fetch_all(&mut *c).await?))
}

/// Deletes the organization's rules bound to `source`; returns their ids.
pub async fn delete_rules_of_source(
    tx: &mut Tx,
    org_id: &str,
    source: &Source,
) -> StoreResult<Vec<String>> {
    let source = serde_json::to_string(source).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let ids: Vec<String> = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT id FROM mapping_rules WHERE org_id = $1 AND source = $2 ORDER BY id")
        .bind(org_id).bind(&source).fetch_all(&mut *c).await?);
    on_tx!(tx, c => sqlx::query("DELETE FROM mapping_rules WHERE org_id = $1 AND source = $2")
        .bind(org_id).bind(&source).execute(&mut *c).await?.rows_affected());
    Ok(ids)
}

/// Every user of the organization (for a change of the default role, which can reach anyone).
pub async fn all_org_users(tx: &mut Tx, org_id: &str) -> StoreResult<Vec<OrgUserId>> {
    let mut b = SqlBuilder::new("SELECT id FROM org_users WHERE org_id = ");
    b.bind_text(org_id);
    ids_query(tx, b).await
}

/// An organization user as the recomputation sees it.
#[derive(Debug, Clone, FromRow)]
pub struct OrgUserRow {
    #[sqlx(try_from = "String")]
    pub id: OrgUserId,
    pub user_name: String,
    pub active: bool,
    /// The stored effective access (JSON).
    pub access: String,
}

/// Locks organization users of `org_id` for update, in id order so that two transactions never wait
/// on each other in a cycle. Ids of other organizations are ignored.
pub async fn lock_org_users(
    tx: &mut Tx,
    org_id: &str,
    ids: &[OrgUserId],
) -> StoreResult<Vec<OrgUserRow>> {
    let mut sorted: Vec<&OrgUserId> = ids.iter().collect();
    sorted.sort();
    sorted.dedup();
    let lock = match tx.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    if sorted.is_empty() {
        return Ok(Vec::new());
    }
    // One statement however many users: a rule change reaching 10,000 users reads them at once.
    let mut b =
        SqlBuilder::new("SELECT id, user_name, active, access FROM org_users WHERE org_id = ");
    b.bind_text(org_id).push(" AND id IN ");
    push_id_set(&mut b, tx.backend(), &sorted);
    b.push(" ORDER BY id").push(lock);
    Ok(on_tx!(tx, c => b.query()?
        .try_map(|r| OrgUserRow::from_row(&r)).fetch_all(&mut *c).await?))
}

/// What the mapping needs to know of one organization user.
#[derive(Debug, Clone, Default)]
pub struct UserFacts {
    /// How many SCIM users (in any directory) are this person.
    pub scim_links: usize,
    pub any_scim_active: bool,
    /// The directories of the person's active SCIM users.
    pub directory_ids: Vec<String>,
    /// The groups of the person's active SCIM users: a SCIM user deactivated in one directory
    /// stops granting through its groups at once, exactly as if it had been deleted, while the
    /// person may stay active through another directory.
    pub groups: Vec<GroupRef>,
    pub claims: Vec<String>,
    /// The connection whose sign-in brought `claims`.
    pub claims_from: Option<String>,
    pub manual: Vec<ManualGrant>,
}

/// One row of [`user_facts`]: what `a`, `b`, `c`, `n` and `source` hold depends on `kind`.
#[derive(FromRow)]
struct FactRow {
    kind: i32,
    org_user_id: String,
    a: String,
    b: Option<String>,
    c: Option<String>,
    n: i64,
    source: Option<String>,
}

/// Reads the facts of many users in one statement: their SCIM faces, groups, claims and grants
/// made by hand, told apart by the first column.
pub async fn user_facts(
    tx: &mut Tx,
    ids: &[OrgUserId],
) -> StoreResult<HashMap<OrgUserId, UserFacts>> {
    let mut facts = no_facts(ids);
    if ids.is_empty() {
        return Ok(facts);
    }
    let mut b = SqlBuilder::default();
    push_facts(&mut b, tx.backend(), ids);
    let rows = on_tx!(tx, c => b.query()?
        .try_map(|r| FactRow::from_row(&r)).fetch_all(&mut *c).await?);
    for row in rows {
        add_fact(&mut facts, row)?;
    }
    Ok(facts)
}

/// [`lock_org_users`] and [`user_facts`] in one statement, where the rows need no lock: on
/// SQLite, whose one writer excludes every other, and in a read-only snapshot. Every write that
/// provisions reads both.
pub async fn org_users_with_facts(
    tx: &mut Tx,
    org_id: &str,
    ids: &[OrgUserId],
    lock: bool,
) -> StoreResult<(Vec<OrgUserRow>, HashMap<OrgUserId, UserFacts>)> {
    if lock && tx.backend() == Backend::Postgres {
        let rows = lock_org_users(tx, org_id, ids).await?;
        let found: Vec<OrgUserId> = rows.iter().map(|r| r.id.clone()).collect();
        let facts = user_facts(tx, &found).await?;
        return Ok((rows, facts));
    }
    let mut sorted: Vec<OrgUserId> = ids.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.is_empty() {
        return Ok((Vec::new(), HashMap::new()));
    }
    let backend = tx.backend();
    let mut b = SqlBuilder::new(
        "SELECT 0 AS kind, id AS org_user_id, user_name AS a, access AS b, CAST(NULL AS TEXT) AS c, \
         CAST(CASE WHEN active THEN 1 ELSE 0 END AS BIGINT) AS n, CAST(NULL AS TEXT) AS source \
         FROM org_users WHERE org_id = ",
    );
    b.bind_text(org_id).push(" AND id IN ");
    push_id_set(&mut b, backend, &sorted);
    b.push(" UNION ALL ");
    push_facts(&mut b, backend, &sorted);
    let rows = on_tx!(tx, c => b.query()?
        .try_map(|r| FactRow::from_row(&r)).fetch_all(&mut *c).await?);
    let mut users = Vec::new();
    let mut facts = HashMap::new();
    for row in rows {
        if row.kind == 0 {
            facts.insert(
                OrgUserId::new(row.org_user_id.clone()),
                UserFacts::default(),
            );
            users.push(OrgUserRow {
                id: OrgUserId::new(row.org_user_id),
                user_name: row.a,
                active: row.n != 0,
                access: row.b.unwrap_or_default(),
            });
        } else if facts.contains_key(row.org_user_id.as_str()) {
            // Kind 0 sorts first: the facts of ids outside the organization are left out.
            add_fact(&mut facts, row)?;
        }
    }
    // In id order, as the locking read gives them.
    users.sort_by(|a, b| a.id.cmp(&b.id));
    Ok((users, facts))
}

fn no_facts(ids: &[OrgUserId]) -> HashMap<OrgUserId, UserFacts> {
    ids.iter()
        .map(|id| (id.clone(), UserFacts::default()))
        .collect()
}

/// The query of [`user_facts`], appended to `b`.
fn push_facts(b: &mut SqlBuilder, backend: Backend, ids: &[OrgUserId]) {
    b.push(
        "SELECT 1 AS kind, org_user_id, directory_id AS a, CAST(NULL AS TEXT) AS b, \
         CAST(NULL AS TEXT) AS c, CAST(CASE WHEN active THEN 1 ELSE 0 END AS BIGINT) AS n, \
         CAST(NULL AS TEXT) AS source FROM scim_users WHERE org_user_id IN ",
    );
    push_id_set(b, backend, ids);
    b.push(
        " UNION ALL SELECT 2, su.org_user_id, g.id, g.external_id, g.display_name, 0, \
         g.directory_id \
         FROM scim_users su JOIN scim_group_members m ON m.member_id = su.id \
         JOIN scim_groups g ON g.id = m.group_id WHERE su.active AND su.org_user_id IN ",
    );
    push_id_set(b, backend, ids);
    b.push(
        " UNION ALL SELECT 3, org_user_id, value, NULL, NULL, 0, connection_id \
         FROM org_user_claims WHERE org_user_id IN ",
    );
    push_id_set(b, backend, ids);
    b.push(
        " UNION ALL SELECT 4, org_user_id, id, grant_json, granted_by, 0, NULL \
         FROM manual_grants WHERE org_user_id IN ",
    );
    push_id_set(b, backend, ids);
    // Grants in id order, as they were made; the rest in any order.
    b.push(" ORDER BY 1, 3");
}

/// One row of the facts' query, added to its user's facts.
fn add_fact(facts: &mut HashMap<OrgUserId, UserFacts>, row: FactRow) -> StoreResult<()> {
    let FactRow {
        kind,
        org_user_id: user,
        a,
        b,
        c,
        n,
        source,
    } = row;
    let f = facts.entry(OrgUserId::new(user)).or_default();
    match kind {
        1 => {
            f.scim_links += 1;
            f.any_scim_active |= n != 0;
            // Only an active SCIM user speaks for its directory (directory-default rules), as
            // only its groups count: a deactivated one gives nothing.
            if n != 0 && !f.directory_ids.contains(&a) {
                f.directory_ids.push(a);
            }
        }
        2 => f.groups.push(GroupRef {
            id: a,
            external_id: b,
            display_name: c.unwrap_or_default(),
            directory_id: source.unwrap_or_default(),
        }),
        3 => {
            f.claims.push(a);
            f.claims_from = source;
        }
        _ => f.manual.push(ManualGrant {
            id: a,
            grant: parse_json(b.as_deref().unwrap_or("null"), "grant")?,
            granted_by: c.unwrap_or_default(),
        }),
    }
    Ok(())
}

/// The new state of one organization user, for [`update_org_users`].
#[derive(Debug, Clone)]
pub struct UserUpdate {
    pub id: OrgUserId,
    pub active: bool,
    pub access: String,
}

/// Writes many users' status and access in one statement per 100 users, so a rule change that
/// reaches thousands of users does not pay one round trip each.
pub async fn update_org_users(tx: &mut Tx, updates: &[UserUpdate], now: i64) -> StoreResult<()> {
    for chunk in updates.chunks(ROWS_CHUNK) {
        let mut b = SqlBuilder::new("WITH v(id, active, access) AS (VALUES ");
        for (i, u) in chunk.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.push("(").bind_text(u.id.as_str()).push(", ");
            b.bind(Bind::Bool(u.active)).push(", ");
            b.bind_text(u.access.clone()).push(")");
        }
        b.push(") UPDATE org_users SET active = v.active, access = v.access, updated_at = ")
            .bind(Bind::Int(now))
            .push(" FROM v WHERE org_users.id = v.id");
        on_tx!(tx, c => b.query()?.execute(&mut *c).await?.rows_affected());
    }
    Ok(())
}

/// Revokes every live session of a user; returns how many. The hook deprovisioning calls, and
/// where issued tokens are revoked too once there are any.
pub async fn revoke_sessions(
    tx: &mut Tx,
    org_user_id: &OrgUserId,
    reason: &str,
    now: i64,
) -> StoreResult<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
         WHERE org_user_id = $1 AND revoked_at IS NULL")
        .bind(org_user_id.as_str()).bind(now).bind(reason).execute(&mut *c).await?.rows_affected()))
}

/// [`revoke_sessions`], and the console sessions the person opened by signing in: whoever loses
/// access to the application loses the console with it, in the same transaction. Returns the
/// number of application sessions revoked.
pub async fn revoke_all_sessions(
    tx: &mut Tx,
    org_user_id: &OrgUserId,
    reason: &str,
    now: i64,
) -> StoreResult<u64> {
    let n = revoke_sessions(tx, org_user_id, reason, now).await?;
    super::console::end_user_console_sessions(tx, org_user_id, now).await?;
    Ok(n)
}

/// An event waiting for its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEvent {
    #[serde(rename = "type")]
    pub ty: EventType,
    pub org_user_id: Option<OrgUserId>,
    pub data: Value,
}

/// Active users of an organization: its seats in use.
pub async fn seats_used(tx: &mut Tx, org_id: &str) -> StoreResult<i64> {
    Ok(on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM org_users WHERE org_id = $1 AND active")
        .bind(org_id).fetch_one(&mut *c).await?))
}

/// Makes the transactions of one organization that may take seats take turns for their last
/// statements (the seat count), so that two of them cannot both take the last seat. On PostgreSQL
/// that is a transaction-scoped advisory lock per organization, taken last and held through the
/// commit; only organizations with a seat limit pay for it, and only for writes that take seats.
/// Events need no turn (see outbox.rs). SQLite has one writer at a time already.
pub async fn take_turn(tx: &mut Tx, org_id: &str) -> StoreResult<()> {
    if tx.backend() == Backend::Postgres {
        on_tx!(tx, c => sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(org_id).execute(&mut *c).await?.rows_affected());
    }
    Ok(())
}

pub use super::outbox::append_events;

#[derive(Debug, Clone)]
pub struct EventRecord {
    pub seq: i64,
    pub id: String,
    pub ty: String,
    pub user_id: Option<String>,
    pub data: Value,
    pub at: i64,
}

/// A row of `events` as stored, its data still JSON text.
#[derive(FromRow)]
struct EventRow {
    seq: i64,
    id: String,
    #[sqlx(rename = "type")]
    ty: String,
    user_id: Option<String>,
    data: String,
    at: i64,
}

/// Which events to return, after `after` in order; every other field narrows.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub after: i64,
    pub limit: i64,
    pub ty: Option<EventType>,
    pub user_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Only events before this sequence number (the page before one shown newest first).
    pub before: Option<i64>,
    /// Newest first (a page of recent activity), rather than in order from `after`.
    pub newest_first: bool,
}

impl super::Store {
    /// An organization's events after sequence number `after`, in order.
    pub async fn events_after(
        &self,
        scope: &super::admin::OrgScope,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<EventRecord>> {
        let filter = EventFilter {
            after,
            limit,
            ..EventFilter::default()
        };
        self.events_filtered(scope, &filter).await
    }

    /// An organization's events that pass `f`, in order.
    pub async fn events_filtered(
        &self,
        scope: &super::admin::OrgScope,
        f: &EventFilter,
    ) -> StoreResult<Vec<EventRecord>> {
        self.publish_events().await?;
        let mut b = SqlBuilder::new(
            "SELECT seq, id, type, org_user_id AS user_id, data, at FROM events WHERE org_id = ",
        );
        b.bind_text(scope.org_id())
            .push(" AND seq > ")
            .bind(Bind::Int(f.after));
        if let Some(ty) = f.ty {
            b.push(" AND type = ").bind_text(ty.as_str());
        }
        if let Some(u) = &f.user_id {
            b.push(" AND org_user_id = ").bind_text(u.clone());
        }
        if let Some(t) = f.since {
            b.push(" AND at >= ").bind(Bind::Int(t));
        }
        if let Some(t) = f.until {
            b.push(" AND at < ").bind(Bind::Int(t));
        }
        b.seq_page(f.before, f.newest_first, f.limit);
        let rows = on_read!(self, c => b.query()?
            .try_map(|r| EventRow::from_row(&r)).fetch_all(c).await?);
        rows.into_iter()
            .map(|r| {
                Ok(EventRecord {
                    seq: r.seq,
                    id: r.id,
                    ty: r.ty,
                    user_id: r.user_id,
                    data: parse_json(&r.data, "event")?,
                    at: r.at,
                })
            })
            .collect()
    }
}
