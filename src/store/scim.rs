//! SCIM Users, Groups and membership rows. Every function takes a [`DirectoryScope`] and binds its
//! directory id, so one directory's token can never reach another's resources.

use crate::domain::ids::OrgUserId;
use serde_json::Value;
use sqlx::{AssertSqlSafe, FromRow};

use super::sql::{Bind, CHUNK, Compiler, SqlBuilder, Table, push_list, sort_expr};
use super::{Backend, DirectoryScope, Store, StoreError, StoreResult, Tx, on_read, on_tx};
use crate::scim::error::ScimResult;
use crate::scim::filter::{AttrPath, Filter};
use crate::scim::schema::{GROUP, USER};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    /// The stored document: normalised attributes without id, meta and groups.
    pub data: Value,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// The stored document without id, meta and members.
    pub data: Value,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct Member {
    pub value: String,
    #[sqlx(rename = "member_type")]
    pub r#type: String,
    pub display: Option<String>,
}

/// A user's group, for the read-only `groups` attribute.
#[derive(Debug, Clone, PartialEq, FromRow)]
pub struct UserGroup {
    pub user_id: String,
    pub group_id: String,
    pub display: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Ascending,
    Descending,
}

/// Where a page starts: RFC 7644 §3.4.2.4 index, or an RFC 9865 keyset position.
#[derive(Debug, Clone, PartialEq)]
pub enum PageStart {
    Index(u64),
    /// Rows after this id in id order; the empty string starts at the beginning.
    After(String),
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub sort_order: SortOrder,
    pub start: PageStart,
    pub count: u64,
    /// Whether totalResults is wanted. `count` is the LIMIT, so a caller that probes for a next
    /// page asks for one row more than it shows.
    pub want_total: bool,
}

pub struct Page<T> {
    pub items: Vec<T>,
    pub total: Option<i64>,
}

// Unqualified, so the same lists serve SELECT and RETURNING (which takes no table alias).
const USER_COLS: &str =
    "id, user_name, external_id, display_name, active, data, version, created_at, updated_at";
const GROUP_COLS: &str = "id, display_name, external_id, data, version, created_at, updated_at";

fn parse_data(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Object(Default::default()))
}

/// A user as `scim_users` keeps it ([`USER_COLS`]): its document is JSON text.
#[derive(FromRow)]
struct UserRow {
    id: String,
    user_name: String,
    external_id: Option<String>,
    display_name: Option<String>,
    active: bool,
    data: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

/// The SELECT and joins of a user with one row per group it belongs to (one row with NULL group
/// columns when it belongs to none); the caller adds the WHERE clause on `u`.
macro_rules! user_with_groups_select {
    () => {
        "SELECT u.id, u.user_name, u.external_id, u.display_name, u.active, u.data, u.version, \
         u.created_at, u.updated_at, g.id AS group_id, g.display_name AS group_display \
         FROM scim_users u \
         LEFT JOIN scim_group_members m ON m.directory_id = u.directory_id AND m.member_id = u.id \
         LEFT JOIN scim_groups g ON g.id = m.group_id "
    };
}

/// Which unique key of a directory's users a one-user read goes by.
#[derive(Clone, Copy)]
enum UserKey {
    Id,
    /// `user_name_ci`, the folded `userName`.
    NameCi,
}

/// A user's row with one of its groups, or none (a user in no group has one row of these).
#[derive(FromRow)]
struct UserWithGroupRow {
    #[sqlx(flatten)]
    user: UserRow,
    group_id: Option<String>,
    group_display: Option<String>,
}

impl From<UserRow> for UserRecord {
    fn from(r: UserRow) -> Self {
        UserRecord {
            id: r.id,
            user_name: r.user_name,
            external_id: r.external_id,
            display_name: r.display_name,
            active: r.active,
            data: parse_data(&r.data),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A group as `scim_groups` keeps it ([`GROUP_COLS`]).
#[derive(FromRow)]
struct GroupRow {
    id: String,
    display_name: String,
    external_id: Option<String>,
    data: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<GroupRow> for GroupRecord {
    fn from(r: GroupRow) -> Self {
        GroupRecord {
            id: r.id,
            display_name: r.display_name,
            external_id: r.external_id,
            data: parse_data(&r.data),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

// ---- users -------------------------------------------------------------------------------------

/// Inserts a user as the SCIM face of organization user `org_user_id`.
pub async fn insert_user(
    tx: &mut Tx,
    scope: &DirectoryScope,
    u: &UserRecord,
    org_user_id: &str,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO scim_users (id, directory_id, user_name, user_name_ci, external_id, display_name, \
         active, data, version, created_at, updated_at, org_user_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(&u.id).bind(scope.directory_id()).bind(&u.user_name).bind(crate::domain::fold_key(&u.user_name))
        .bind(&u.external_id).bind(&u.display_name).bind(u.active).bind(u.data.to_string())
        .bind(u.version).bind(u.created_at).bind(u.updated_at).bind(org_user_id)
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(|e| StoreError::on_unique(e, "a user with this userName"))?;
    count_users(tx, scope, 1).await
}

/// Creates a user linked to the organization user (the person) of its userName, made inactive when
/// there is none (see [`super::access::link_org_user`]); returns the person and whether it was
/// made here.
///
/// On SQLite both inserts go in one call, the user taking the person's id from the row the first
/// made or found: there is no other writer to race. On PostgreSQL the person is found after the
/// insert that may make it, by a statement of its own, which sees a person another transaction
/// committed meanwhile.
pub async fn insert_linked_user(
    tx: &mut Tx,
    scope: &DirectoryScope,
    u: &UserRecord,
) -> StoreResult<(OrgUserId, bool)> {
    if tx.backend() == Backend::Postgres {
        let (person, created) = super::access::link_org_user(
            tx,
            scope.org_id(),
            &u.user_name,
            u.display_name.as_deref(),
            u.created_at,
        )
        .await?;
        insert_user(tx, scope, u, &person).await?;
        return Ok((person, created));
    }
    let new_person = super::new_id();
    // sqlx stops a one-row fetch at the first row: the first INSERT returns none, so both run.
    let person: Option<String> = on_tx!(tx, c => sqlx::query_scalar(concat!(
        super::access::insert_person!(),
        ";\nINSERT INTO scim_users (id, directory_id, user_name, user_name_ci, external_id, display_name, \
         active, data, version, created_at, updated_at, org_user_id) \
         VALUES ($7, $8, $4, $3, $9, $5, $10, $11, $12, $13, $14, \
         (SELECT id FROM org_users WHERE org_id = $2 AND user_key = $3)) RETURNING org_user_id"))
        .bind(&new_person).bind(scope.org_id()).bind(crate::domain::fold_key(&u.user_name))
        .bind(&u.user_name).bind(&u.display_name).bind(u.created_at)
        .bind(&u.id).bind(scope.directory_id()).bind(&u.external_id).bind(u.active)
        .bind(u.data.to_string()).bind(u.version).bind(u.created_at).bind(u.updated_at)
        .fetch_optional(c).await)
    .map_err(|e| StoreError::on_unique(e, "a user with this userName"))?;
    let person = person.ok_or_else(|| StoreError::Invalid("the new user has no person".into()))?;
    count_users(tx, scope, 1).await?;
    let created = person == new_person;
    Ok((OrgUserId::new(person), created))
}

/// How many rows a directory's user count is split in (migration 0017): enough that the creates
/// and deletes running at once seldom pick the same row and wait for each other's commit, few
/// enough that summing them stays a short index range.
const USER_COUNT_SLOTS: i64 = 64;

/// Adds `delta` to the directory's user count, in the transaction that creates or deletes the user,
/// so that an unfiltered list's totalResults is a sum of a few rows rather than a COUNT.
/// Deletions are counted apart too: they move the positions of a list (see page_marks.rs).
async fn count_users(tx: &mut Tx, scope: &DirectoryScope, delta: i64) -> StoreResult<()> {
    let slot: i64 = rand::random_range(0..USER_COUNT_SLOTS);
    let deleted = (-delta).max(0);
    // Only lists, outside the write, read the count.
    tx.defer(|b| {
        b.push("INSERT INTO scim_user_counts (directory_id, slot, n, deleted) VALUES (")
            .bind_text(scope.directory_id())
            .push(", ")
            .bind(Bind::Int(slot))
            .push(", ")
            .bind(Bind::Int(delta))
            .push(", ")
            .bind(Bind::Int(deleted))
            .push(
                ") ON CONFLICT (directory_id, slot) DO UPDATE SET n = scim_user_counts.n + excluded.n, \
                 deleted = scim_user_counts.deleted + excluded.deleted",
            );
    })
    .await
}

/// Reads a user and takes its row lock (PostgreSQL) by bumping the version first, so concurrent
/// read-modify-writes of one user queue instead of losing each other's changes. Returns the record
/// with the new version.
pub async fn lock_user(
    tx: &mut Tx,
    scope: &DirectoryScope,
    id: &str,
) -> StoreResult<Option<UserRecord>> {
    let sql = format!(
        "UPDATE scim_users SET version = version + 1 WHERE id = $1 AND directory_id = $2 \
         RETURNING {USER_COLS}"
    );
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql)).bind(id).bind(scope.directory_id())
        .fetch_optional(c).await?.map(UserRecord::from)),
    )
}

/// Writes back a user read with [`lock_user`]; `u.version` is the version that lock returned.
/// Returns the organization user (the person) it is linked to, if any.
pub async fn update_user(
    tx: &mut Tx,
    scope: &DirectoryScope,
    u: &UserRecord,
) -> StoreResult<Option<OrgUserId>> {
    let person: Option<Option<String>> = on_tx!(tx, c => sqlx::query_scalar(
        "UPDATE scim_users SET user_name = $1, user_name_ci = $2, external_id = $3, display_name = $4, \
         active = $5, data = $6, version = $7, updated_at = $8 WHERE id = $9 AND directory_id = $10 \
         RETURNING org_user_id")
        .bind(&u.user_name).bind(crate::domain::fold_key(&u.user_name)).bind(&u.external_id).bind(&u.display_name)
        .bind(u.active).bind(u.data.to_string()).bind(u.version).bind(u.updated_at)
        .bind(&u.id).bind(scope.directory_id())
        .fetch_optional(c).await)
    .map_err(|e| StoreError::on_unique(e, "a user with this userName"))?;
    Ok(person.flatten().map(OrgUserId::new))
}

/// Deletes a user and its memberships. Returns the organization user it was linked to, if any,
/// or `None` when there was no such user.
pub async fn delete_user(
    tx: &mut Tx,
    scope: &DirectoryScope,
    id: &str,
) -> StoreResult<Option<Option<OrgUserId>>> {
    let deleted: Option<Option<String>> = on_tx!(tx, c => sqlx::query_scalar(
        "DELETE FROM scim_users WHERE id = $1 AND directory_id = $2 RETURNING org_user_id")
        .bind(id).bind(scope.directory_id()).fetch_optional(&mut *c).await?);
    let Some(org_user) = deleted else {
        return Ok(None);
    };
    // Memberships are read through their user's row, which is gone: none of them counts for the
    // rest of the transaction, so they can go with the commit.
    tx.defer(|b| {
        b.push("DELETE FROM scim_group_members WHERE member_id = ")
            .bind_text(id)
            .push(" AND directory_id = ")
            .bind_text(scope.directory_id());
    })
    .await?;
    count_users(tx, scope, -1).await?;
    Ok(Some(org_user.map(OrgUserId::new)))
}

impl Store {
    pub async fn get_user(
        &self,
        scope: &DirectoryScope,
        id: &str,
    ) -> StoreResult<Option<UserRecord>> {
        let sql =
            format!("SELECT {USER_COLS} FROM scim_users u WHERE u.id = $1 AND u.directory_id = $2");
        Ok(
            on_read!(self, c => sqlx::query_as::<_, UserRow>(AssertSqlSafe(sql)).bind(id).bind(scope.directory_id())
            .fetch_optional(c).await?.map(UserRecord::from)),
        )
    }

    /// A user and the groups it belongs to (directly), in one query: what a GET of a user answers
    /// with, in one round trip rather than two.
    pub async fn get_user_with_groups(
        &self,
        scope: &DirectoryScope,
        id: &str,
    ) -> StoreResult<Option<(UserRecord, Vec<UserGroup>)>> {
        self.user_with_groups(UserKey::Id, scope, id).await
    }

    /// The user whose `userName` folds to `user_name_ci` ([`crate::domain::fold_key`]; unique in
    /// a directory), with its groups, in one query: what a lookup by `userName eq` answers with.
    pub async fn user_by_name_with_groups(
        &self,
        scope: &DirectoryScope,
        user_name_ci: &str,
    ) -> StoreResult<Option<(UserRecord, Vec<UserGroup>)>> {
        self.user_with_groups(UserKey::NameCi, scope, user_name_ci)
            .await
    }

    async fn user_with_groups(
        &self,
        key: UserKey,
        scope: &DirectoryScope,
        value: &str,
    ) -> StoreResult<Option<(UserRecord, Vec<UserGroup>)>> {
        let sql = match key {
            UserKey::Id => concat!(
                user_with_groups_select!(),
                "WHERE u.id = $1 AND u.directory_id = $2 ORDER BY g.id"
            ),
            UserKey::NameCi => concat!(
                user_with_groups_select!(),
                "WHERE u.user_name_ci = $1 AND u.directory_id = $2 ORDER BY g.id"
            ),
        };
        let rows = on_read!(self, c => sqlx::query_as::<_, UserWithGroupRow>(sql)
            .bind(value).bind(scope.directory_id()).fetch_all(c).await?);
        let mut rows = rows.into_iter();
        let Some(first) = rows.next() else {
            return Ok(None);
        };
        let mut groups = Vec::new();
        let user_id = first.user.id.clone();
        let mut push = |group_id: Option<String>, display: Option<String>| {
            if let (Some(group_id), Some(display)) = (group_id, display) {
                groups.push(UserGroup {
                    user_id: user_id.clone(),
                    group_id,
                    display,
                });
            }
        };
        push(first.group_id, first.group_display);
        for r in rows {
            push(r.group_id, r.group_display);
        }
        Ok(Some((UserRecord::from(first.user), groups)))
    }

    /// The total for a page: a short page read from an index proves it (offset + rows, no more
    /// rows beyond), which spares the COUNT query for every lookup that finds a user or none.
    async fn total_for(
        &self,
        q: &ListQuery,
        rows: usize,
        count: Option<SqlBuilder>,
    ) -> StoreResult<Option<i64>> {
        if !q.want_total {
            return Ok(None);
        }
        match q.start {
            PageStart::Index(i) if (rows as u64) < q.count && (rows > 0 || i <= 1) => {
                Ok(Some((i.max(1) - 1 + rows as u64) as i64))
            }
            _ => self.count(count).await,
        }
    }

    /// The SQL of a list of the directory's users; see [`ListSql`].
    pub fn users_query(&self, scope: &DirectoryScope, q: &ListQuery) -> ScimResult<ListSql> {
        build_list(self.backend(), Table::Users, scope, q)
    }

    /// Reads a page of users with the SQL [`Store::users_query`] made for `q`.
    pub async fn list_users(&self, sql: ListSql, q: &ListQuery) -> StoreResult<Page<UserRecord>> {
        debug_assert_eq!(sql.table, Table::Users);
        let ListSql {
            page,
            count,
            by_position,
            ..
        } = sql;
        let ((directory_id, start), count) = match (by_position, count) {
            (Some(at), Some(count)) => (at, count),
            (_, count) => {
                let items = self.read_users(page).await?;
                let total = self.total_for(q, items.len(), count).await?;
                return Ok(Page { items, total });
            }
        };
        // The total and the deletions first: a mark made before a deletion no longer holds.
        let UserCounts { total, deleted } = on_read!(self, c => count.query()?
            .try_map(|r| UserCounts::from_row(&r)).fetch_one(c).await?);
        let page = match self.page_marks.get(&directory_id, start, deleted) {
            Some(after) if start > 1 => {
                let mut b = SqlBuilder::new(&format!(
                    "SELECT {USER_COLS} FROM scim_users u WHERE u.directory_id = "
                ));
                b.bind_text(directory_id.clone())
                    .push(" AND u.id > ")
                    .bind_text(after)
                    .push(" ORDER BY u.id LIMIT ")
                    .bind(Bind::Int(q.count as i64));
                b
            }
            _ => page,
        };
        let items = self.read_users(page).await?;
        // The page's end, and one row before it: a caller that probes for a next page reads one
        // row more than it shows, and asks next for the position after what it showed.
        for (i, u) in items.iter().enumerate().rev().take(2) {
            self.page_marks
                .put(&directory_id, start + i as u64 + 1, &u.id, deleted);
        }
        Ok(Page {
            items,
            total: Some(total),
        })
    }

    async fn read_users(&self, page: SqlBuilder) -> StoreResult<Vec<UserRecord>> {
        Ok(on_read!(self, c => page.query()?
            .try_map(|r| UserRow::from_row(&r)).fetch_all(c).await?
            .into_iter().map(UserRecord::from).collect()))
    }

    /// The groups each of `user_ids` belongs to (directly), for the `groups` attribute.
    pub async fn groups_of_users(
        &self,
        scope: &DirectoryScope,
        user_ids: &[String],
    ) -> StoreResult<Vec<UserGroup>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut b = SqlBuilder::new(
            "SELECT m.member_id AS user_id, g.id AS group_id, g.display_name AS display \
             FROM scim_group_members m \
             JOIN scim_groups g ON g.id = m.group_id WHERE m.directory_id = ",
        );
        b.bind_text(scope.directory_id())
            .push(" AND m.member_id IN (");
        for (i, id) in user_ids.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.bind_text(id.clone());
        }
        b.push(") ORDER BY g.id");
        Ok(on_read!(self, c => b.query()?
            .try_map(|r| UserGroup::from_row(&r)).fetch_all(c).await?))
    }
}

// ---- groups ------------------------------------------------------------------------------------

pub async fn insert_group(tx: &mut Tx, scope: &DirectoryScope, g: &GroupRecord) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO scim_groups (id, directory_id, display_name, display_name_ci, external_id, data, \
         version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&g.id).bind(scope.directory_id()).bind(&g.display_name).bind(g.display_name.to_lowercase())
        .bind(&g.external_id).bind(g.data.to_string()).bind(g.version).bind(g.created_at).bind(g.updated_at)
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Reads a group and takes its row lock; see [`lock_user`].
pub async fn lock_group(
    tx: &mut Tx,
    scope: &DirectoryScope,
    id: &str,
) -> StoreResult<Option<GroupRecord>> {
    let sql = format!(
        "UPDATE scim_groups SET version = version + 1 WHERE id = $1 AND directory_id = $2 \
         RETURNING {GROUP_COLS}"
    );
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, GroupRow>(AssertSqlSafe(sql)).bind(id).bind(scope.directory_id())
        .fetch_optional(c).await?.map(GroupRecord::from)),
    )
}

/// Bumps a group's version and lastModified and returns it, for a change of its members only:
/// one statement instead of [`lock_group`] and [`update_group`], and the document is not rewritten.
/// Takes the same row lock as [`lock_group`].
pub async fn touch_group(
    tx: &mut Tx,
    scope: &DirectoryScope,
    id: &str,
    now: i64,
) -> StoreResult<Option<GroupRecord>> {
    let sql = format!(
        "UPDATE scim_groups SET version = version + 1, updated_at = $3 \
         WHERE id = $1 AND directory_id = $2 RETURNING {GROUP_COLS}"
    );
    Ok(
        on_tx!(tx, c => sqlx::query_as::<_, GroupRow>(AssertSqlSafe(sql)).bind(id).bind(scope.directory_id()).bind(now)
        .fetch_optional(c).await?.map(GroupRecord::from)),
    )
}

pub async fn update_group(tx: &mut Tx, scope: &DirectoryScope, g: &GroupRecord) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE scim_groups SET display_name = $1, display_name_ci = $2, external_id = $3, data = $4, \
         version = $5, updated_at = $6 WHERE id = $7 AND directory_id = $8")
        .bind(&g.display_name).bind(g.display_name.to_lowercase()).bind(&g.external_id)
        .bind(g.data.to_string()).bind(g.version).bind(g.updated_at)
        .bind(&g.id).bind(scope.directory_id())
        .execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Deletes a group, its member rows, and its own membership in other groups.
pub async fn delete_group(tx: &mut Tx, scope: &DirectoryScope, id: &str) -> StoreResult<bool> {
    Ok(on_tx!(tx, c => {
        sqlx::query("DELETE FROM scim_group_members WHERE group_id = $1 AND directory_id = $2")
            .bind(id).bind(scope.directory_id()).execute(&mut *c).await?;
        let n = sqlx::query("DELETE FROM scim_groups WHERE id = $1 AND directory_id = $2")
            .bind(id).bind(scope.directory_id()).execute(&mut *c).await?.rows_affected();
        if n > 0 {
            sqlx::query("DELETE FROM scim_group_members WHERE member_id = $1 AND directory_id = $2")
                .bind(id).bind(scope.directory_id()).execute(&mut *c).await?;
        }
        n > 0
    }))
}

/// A member to add: its id, and the display name the IdP sent with it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMember {
    pub id: String,
    pub display: Option<String>,
}

/// Adds members to a group; members already present are left as they are. Every id must be a user
/// or group of the same directory. The cost is O(k) in the members added, whatever the group's
/// size. Returns the ids that were not members before, so that only their access is recomputed.
pub async fn add_members(
    tx: &mut Tx,
    scope: &DirectoryScope,
    group_id: &str,
    members: &[NewMember],
) -> StoreResult<Vec<String>> {
    let mut added = Vec::new();
    for members in members.chunks(CHUNK) {
        let chunk: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
        let chunk = chunk.as_slice();
        // Resolve each id to its type inside this directory; unknown ids are refused. On
        // PostgreSQL the rows are share-locked until commit, so a member deleted by a concurrent
        // request (another replica) waits for this one, and its membership cleanup then sees the
        // rows inserted here: no membership outlives its member. SQLite has one writer at a time.
        let lock = match tx.backend() {
            Backend::Postgres => " FOR SHARE",
            Backend::Sqlite => "",
        };
        let mut found: Vec<(String, String)> = Vec::with_capacity(chunk.len());
        for (table, ty) in [("scim_users", "User"), ("scim_groups", "Group")] {
            let mut b = SqlBuilder::new(&format!("SELECT id FROM {table} WHERE directory_id = "));
            b.bind_text(scope.directory_id()).push(" AND id IN (");
            push_list(&mut b, chunk);
            b.push(")").push(lock);
            let ids: Vec<String> = on_tx!(tx, c => b.query_scalar()?.fetch_all(c).await?);
            found.extend(ids.into_iter().map(|id| (id, ty.to_string())));
        }
        let types: std::collections::HashMap<&str, &str> = found
            .iter()
            .map(|(id, ty)| (id.as_str(), ty.as_str()))
            .collect();
        if let Some(missing) = chunk.iter().find(|id| !types.contains_key(id.as_str())) {
            return Err(StoreError::Invalid(format!(
                "member {missing} is not a user or group of this directory"
            )));
        }
        if types.contains_key(group_id) {
            return Err(StoreError::Invalid(
                "a group cannot be a member of itself".into(),
            ));
        }
        let mut ins = SqlBuilder::new(
            "INSERT INTO scim_group_members (group_id, member_id, member_type, display, directory_id) \
             VALUES ",
        );
        for (i, m) in members.iter().enumerate() {
            let ty = types.get(m.id.as_str()).copied().unwrap_or("User");
            if i > 0 {
                ins.push(", ");
            }
            ins.push("(")
                .bind_text(group_id)
                .push(", ")
                .bind_text(m.id.clone())
                .push(", ");
            ins.bind_text(ty).push(", ");
            match &m.display {
                Some(d) => ins.bind_text(d.clone()),
                None => ins.push("NULL"),
            };
            ins.push(", ").bind_text(scope.directory_id()).push(")");
        }
        // RETURNING lists only the rows inserted, not those DO NOTHING skipped.
        ins.push(" ON CONFLICT (group_id, member_id) DO NOTHING RETURNING member_id");
        added.extend(on_tx!(tx, c => ins.query_scalar::<_, String>()?.fetch_all(c).await?));
    }
    Ok(added)
}

/// Removes these members (absent ones are ignored). O(k) in the ids given. Returns the ids that
/// were members.
pub async fn remove_members(
    tx: &mut Tx,
    scope: &DirectoryScope,
    group_id: &str,
    ids: &[String],
) -> StoreResult<Vec<String>> {
    let mut removed = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let mut b = SqlBuilder::new("DELETE FROM scim_group_members WHERE group_id = ");
        b.bind_text(group_id)
            .push(" AND directory_id = ")
            .bind_text(scope.directory_id());
        b.push(" AND member_id IN (");
        push_list(&mut b, chunk);
        b.push(") RETURNING member_id");
        removed.extend(on_tx!(tx, c => b.query_scalar::<_, String>()?.fetch_all(c).await?));
    }
    Ok(removed)
}

pub async fn clear_members(
    tx: &mut Tx,
    scope: &DirectoryScope,
    group_id: &str,
) -> StoreResult<u64> {
    Ok(on_tx!(tx, c => sqlx::query(
        "DELETE FROM scim_group_members WHERE group_id = $1 AND directory_id = $2")
        .bind(group_id).bind(scope.directory_id()).execute(c).await?.rows_affected()))
}

/// A member of a group as [`MEMBER_SELECT`] reads it.
#[derive(FromRow)]
struct MemberRow {
    group_id: String,
    member_id: String,
    member_type: String,
    display: Option<String>,
}

/// A member's type and display name (its own, else its user's or group's), and the joins that
/// name it, up to the directory it must be in.
macro_rules! member_from {
    () => {
        "m.member_type AS member_type, \
         COALESCE(m.display, mu.display_name, mu.user_name, mg.display_name) AS display \
         FROM scim_group_members m \
         LEFT JOIN scim_users mu ON mu.id = m.member_id \
         LEFT JOIN scim_groups mg ON mg.id = m.member_id \
         WHERE m.directory_id = "
    };
}

const MEMBER_SELECT: &str = concat!(
    "SELECT m.group_id AS group_id, m.member_id AS member_id, ",
    member_from!()
);

impl Store {
    pub async fn get_group(
        &self,
        scope: &DirectoryScope,
        id: &str,
    ) -> StoreResult<Option<GroupRecord>> {
        let sql = format!(
            "SELECT {GROUP_COLS} FROM scim_groups g WHERE g.id = $1 AND g.directory_id = $2"
        );
        Ok(
            on_read!(self, c => sqlx::query_as::<_, GroupRow>(AssertSqlSafe(sql)).bind(id).bind(scope.directory_id())
            .fetch_optional(c).await?.map(GroupRecord::from)),
        )
    }

    /// The SQL of a list of the directory's groups; see [`ListSql`].
    pub fn groups_query(&self, scope: &DirectoryScope, q: &ListQuery) -> ScimResult<ListSql> {
        build_list(self.backend(), Table::Groups, scope, q)
    }

    /// Reads a page of groups with the SQL [`Store::groups_query`] made for `q`.
    pub async fn list_groups(&self, sql: ListSql, q: &ListQuery) -> StoreResult<Page<GroupRecord>> {
        debug_assert_eq!(sql.table, Table::Groups);
        let ListSql { page, count, .. } = sql;
        let items: Vec<GroupRecord> = on_read!(self, c => page.query()?
            .try_map(|r| GroupRow::from_row(&r)).fetch_all(c).await?
            .into_iter().map(GroupRecord::from).collect());
        let total = self.total_for(q, items.len(), count).await?;
        Ok(Page { items, total })
    }

    /// The members of one group, in member-id order, as [`Store::members_of_groups`] reads them;
    /// read straight into [`Member`]s, since a group can hold 100,000 of them.
    pub async fn members_of_group(
        &self,
        scope: &DirectoryScope,
        group_id: &str,
    ) -> StoreResult<Vec<Member>> {
        const SQL: &str = concat!(
            "SELECT m.member_id AS value, ",
            member_from!(),
            "$1 AND m.group_id = $2 ORDER BY m.member_id"
        );
        Ok(on_read!(self, c => sqlx::query_as::<_, Member>(SQL)
            .bind(scope.directory_id()).bind(group_id).fetch_all(c).await?))
    }

    /// Members of these groups, in member-id order, with a display name from the member itself.
    pub async fn members_of_groups(
        &self,
        scope: &DirectoryScope,
        group_ids: &[String],
    ) -> StoreResult<Vec<(String, Member)>> {
        if group_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut b = SqlBuilder::new(MEMBER_SELECT);
        b.bind_text(scope.directory_id())
            .push(" AND m.group_id IN (");
        push_list(&mut b, group_ids);
        b.push(") ORDER BY m.group_id, m.member_id");
        Ok(on_read!(self, c => b.query()?
            .try_map(|r| MemberRow::from_row(&r)).fetch_all(c).await?.into_iter()
            .map(|r| (r.group_id, Member { value: r.member_id, r#type: r.member_type, display: r.display }))
            .collect()))
    }

    async fn count(&self, count: Option<SqlBuilder>) -> StoreResult<Option<i64>> {
        let Some(b) = count else { return Ok(None) };
        Ok(Some(
            on_read!(self, c => b.query_scalar()?.fetch_one(c).await?),
        ))
    }
}

/// A list request of one directory turned into SQL: the page query and, when a total is wanted,
/// the count query. Making it is where a filter or `sortBy` that cannot be run is refused, in the
/// protocol's terms (RFC 7644 §3.4.2.2 `invalidFilter`, §3.4.2.3); running it can then fail only
/// as storage does.
/// A directory's user count and its count of deletions, from the slots creates and deletes keep.
#[derive(FromRow)]
struct UserCounts {
    total: i64,
    deleted: i64,
}

pub struct ListSql {
    table: Table,
    page: SqlBuilder,
    count: Option<SqlBuilder>,
    /// An unfiltered user list paged by position: its directory and start, to read the page after
    /// a mark when one holds (see page_marks.rs).
    by_position: Option<(String, u64)>,
}

fn build_list(
    backend: Backend,
    table: Table,
    scope: &DirectoryScope,
    q: &ListQuery,
) -> ScimResult<ListSql> {
    let (name, cols, rt) = match table {
        Table::Users => ("scim_users u", USER_COLS, &USER),
        Table::Groups => ("scim_groups g", GROUP_COLS, &GROUP),
    };
    let a = table.alias();
    let compiler = Compiler { backend, table, rt };
    let where_clause = |b: &mut SqlBuilder| -> ScimResult<()> {
        b.push(" WHERE ")
            .push(a)
            .push(".directory_id = ")
            .bind_text(scope.directory_id());
        if let Some(f) = &q.filter {
            b.push(" AND ");
            compiler.compile(f, b)?;
        }
        Ok(())
    };
    let count = match (q.want_total, table, &q.filter) {
        (false, _, _) => None,
        // Creates and deletes keep this sum (migration 0017): a COUNT of a large directory is a
        // walk of all its index entries for every page.
        (true, Table::Users, None) => {
            let mut c = SqlBuilder::new(
                "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS total, \
                 CAST(COALESCE(SUM(deleted), 0) AS BIGINT) AS deleted \
                 FROM scim_user_counts WHERE directory_id = ",
            );
            c.bind_text(scope.directory_id());
            Some(c)
        }
        (true, _, _) => {
            let mut c = SqlBuilder::new(&format!("SELECT COUNT(*) FROM {name}"));
            where_clause(&mut c)?;
            Some(c)
        }
    };
    // A page far into the list skips its OFFSET over the ids alone (the index on directory and
    // id holds them) and reads only its own rows: the page query on its own would read every row
    // it skips.
    let deferred = matches!(q.start, PageStart::Index(i) if i > 1) && q.sort_by.is_none();
    let mut b = if deferred {
        let mut b = SqlBuilder::new(&format!(
            "SELECT {cols} FROM {} p WHERE p.id IN (SELECT {a}.id FROM {name}",
            table.name()
        ));
        where_clause(&mut b)?;
        b
    } else {
        let mut b = SqlBuilder::new(&format!("SELECT {cols} FROM {name}"));
        where_clause(&mut b)?;
        b
    };
    let dir = match q.sort_order {
        SortOrder::Ascending => " ASC",
        SortOrder::Descending => " DESC",
    };
    if let PageStart::After(id) = &q.start
        && !id.is_empty()
    {
        b.push(" AND ").push(a).push(".id > ").bind_text(id.clone());
    }
    b.push(" ORDER BY ");
    if let Some(path) = &q.sort_by {
        let expr = sort_expr(backend, table, rt, path, &mut b)?;
        b.push(&expr).push(dir).push(", ");
    }
    b.push(a)
        .push(".id")
        .push(if q.sort_by.is_some() { " ASC" } else { dir });
    b.push(" LIMIT ").bind(Bind::Int(q.count as i64));
    if let PageStart::Index(i) = q.start {
        b.push(" OFFSET ")
            .bind(Bind::Int(i.saturating_sub(1) as i64));
    }
    if deferred {
        b.push(") ORDER BY p.id").push(dir);
    }
    let by_position = match (table, &q.filter, &q.sort_by, q.sort_order, q.start.clone()) {
        (Table::Users, None, None, SortOrder::Ascending, PageStart::Index(i)) if q.want_total => {
            Some((scope.directory_id().to_string(), i.max(1)))
        }
        _ => None,
    };
    Ok(ListSql {
        table,
        page: b,
        count,
        by_position,
    })
}
