//! Listing and searching (RFC 7644 §3.4.2, §3.4.3) with index pagination and RFC 9865 cursors:
//! a request (see [`crate::scim::list`]) planned into a store query, run, and rendered.

use serde_json::Value;

use super::resources::{Needs, render_group, render_user};
use super::{Ctx, Kind};
use crate::domain::fold_key;
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::filter::{self, AttrPath, CompOp, CompValue, Filter};
use crate::scim::list::{
    Cursor, DEFAULT_COUNT, ListRequest, decode_cursor, encode_cursor, invalid_cursor, list_response,
};
use crate::scim::resource;
use crate::scim::schema::{GROUP, ResourceType, USER};
use crate::store::scim::{ListQuery, Member, PageStart, SortOrder, UserGroup, UserRecord};

/// What of a user or group a list request needs loaded, from its projection.
pub fn needs(req: &ListRequest) -> Needs {
    Needs::from_projection(
        req.attributes.as_deref(),
        req.excluded_attributes.as_deref(),
    )
}

/// The parsed, validated form of a list request for one resource type.
struct Plan {
    query: ListQuery,
    cursor_mode: bool,
    start_index: u64,
}

fn parse(req: &ListRequest, rt: &ResourceType) -> ScimResult<Option<Filter>> {
    req.filter
        .as_deref()
        .map(|f| filter::parse_filter(f, rt))
        .transpose()
}

fn plan(
    req: &ListRequest,
    filter: Option<Filter>,
    rt: &ResourceType,
    max_results: u64,
) -> ScimResult<Plan> {
    let sort_by: Option<AttrPath> = match req.sort_by.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            filter::parse_path(s, rt)
                .map_err(|e| ScimError::invalid_value(e.detail))?
                .attr,
        ),
    };
    let sort_order = match req
        .sort_order
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("ascending") | Some("") => SortOrder::Ascending,
        Some("descending") => SortOrder::Descending,
        Some(other) => {
            return Err(ScimError::invalid_value(format!(
                "sortOrder must be ascending or descending, not {other:?}"
            )));
        }
    };
    // RFC 7644 §3.4.2.4: a negative count is 0; a page never exceeds maxResults.
    let count = req
        .count
        .map(|c| c.max(0) as u64)
        .unwrap_or(DEFAULT_COUNT)
        .min(max_results);
    // Unsorted ascending lists page by keyset on the id; anything sorted pages by position.
    let keyset = sort_by.is_none() && sort_order == SortOrder::Ascending;
    let (start, cursor_mode, start_index) = match &req.cursor {
        Some(c) => {
            if req.start_index.is_some() {
                return Err(invalid_cursor("cursor and startIndex cannot be combined"));
            }
            let position = if c.is_empty() {
                None
            } else {
                Some(decode_cursor(c)?)
            };
            match (position, keyset) {
                (None, true) => (PageStart::After(String::new()), true, 1),
                (None, false) => (PageStart::Index(1), true, 1),
                (Some(Cursor::After(id)), true) => (PageStart::After(id), true, 1),
                (Some(Cursor::Offset(n)), false) => (PageStart::Index(n), true, n),
                _ => {
                    return Err(invalid_cursor(
                        "the cursor belongs to a differently sorted list",
                    ));
                }
            }
        }
        None => {
            // RFC 7644 §3.4.2.4: values below 1 are interpreted as 1.
            let i = req.start_index.unwrap_or(1).max(1) as u64;
            (PageStart::Index(i), false, i)
        }
    };
    let query = ListQuery {
        filter,
        sort_by,
        sort_order,
        start,
        count: count + 1,
        want_total: true,
    };
    Ok(Plan {
        query,
        cursor_mode,
        start_index,
    })
}

fn next_cursor(plan: &Plan, more: bool, last_id: Option<&str>, page_len: usize) -> Option<String> {
    if !plan.cursor_mode || !more {
        return None;
    }
    Some(encode_cursor(&match (&plan.query.start, last_id) {
        (PageStart::After(_), Some(id)) => Cursor::After(id.to_string()),
        (PageStart::Index(i), _) => Cursor::Offset(i + page_len as u64),
        (PageStart::After(_), None) => return None,
    }))
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %ctx.scope.org_id(), directory_id = %ctx.scope.directory_id(), resource = ?kind))]
pub async fn list(ctx: &Ctx<'_>, kind: Kind, req: &ListRequest) -> ScimResult<Value> {
    let filter = parse(req, kind.rt())?;
    match kind {
        Kind::User => list_users_filtered(ctx, req, filter).await,
        Kind::Group => list_groups_filtered(ctx, req, filter).await,
    }
}

async fn list_users_filtered(
    ctx: &Ctx<'_>,
    req: &ListRequest,
    filter: Option<Filter>,
) -> ScimResult<Value> {
    let plan = plan(req, filter, &USER, ctx.sizes.page_size)?;
    let needs = needs(req);
    if let Some(name) = user_name_lookup(&plan) {
        return lookup_user_name(ctx, req, &plan, needs, &name).await;
    }
    let sql = ctx.store.users_query(ctx.scope, &plan.query)?;
    let page = ctx.store.list_users(sql, &plan.query).await?;
    let want = plan.query.count as usize - 1;
    let more = page.items.len() > want;
    let mut items = page.items;
    items.truncate(want);
    let groups = if needs.groups && !items.is_empty() {
        let ids: Vec<String> = items.iter().map(|u| u.id.clone()).collect();
        let mut groups = ctx.store.groups_of_users(ctx.scope, &ids).await?;
        // Each user's groups side by side (a stable sort keeps their order), so that each
        // user is handed its own rather than searching the page's.
        groups.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        Some(groups)
    } else {
        None
    };
    let next = next_cursor(
        &plan,
        more,
        items.last().map(|u| u.id.as_str()),
        items.len(),
    );
    let resources = items
        .into_iter()
        .map(|u| {
            let mine = groups.as_deref().map(|g| {
                let start = g.partition_point(|x| x.user_id < u.id);
                let end = start + g[start..].partition_point(|x| x.user_id == u.id);
                &g[start..end]
            });
            listed_user(ctx, req, u, mine)
        })
        .collect();
    Ok(list_response(
        page.total.unwrap_or(0),
        plan.start_index,
        resources,
        plan.cursor_mode,
        next,
    ))
}

/// A user as a list shows it: rendered with `groups` (when the request needs them), then projected.
fn listed_user(
    ctx: &Ctx<'_>,
    req: &ListRequest,
    u: UserRecord,
    groups: Option<&[UserGroup]>,
) -> Value {
    resource::project_into(
        render_user(ctx, u, groups).body,
        &USER,
        req.attributes.as_deref(),
        req.excluded_attributes.as_deref(),
    )
}

/// The folded name of a lookup by `filter=userName eq "..."` on the first page without a cursor:
/// what Okta and Entra send before they create or link a user, once per user of an import.
fn user_name_lookup(plan: &Plan) -> Option<String> {
    if plan.cursor_mode || plan.query.start != PageStart::Index(1) {
        return None;
    }
    match &plan.query.filter {
        Some(Filter::Compare(path, CompOp::Eq, CompValue::Str(name)))
            if path.urn.is_none() && path.sub.is_none() && path.name == "userName" =>
        {
            Some(fold_key(name))
        }
        _ => None,
    }
}

/// A `userName eq` lookup in one query, user and groups together, where the general list reads
/// the page and then its users' groups. `userName` is unique in a directory (case-insensitively,
/// RFC 7643 §4.1.1), so the answer is that user or none, and its total is exact.
async fn lookup_user_name(
    ctx: &Ctx<'_>,
    req: &ListRequest,
    plan: &Plan,
    needs: Needs,
    user_name_ci: &str,
) -> ScimResult<Value> {
    let found = ctx
        .store
        .user_by_name_with_groups(ctx.scope, user_name_ci)
        .await?;
    let total = i64::from(found.is_some());
    // A page of `count=0` holds no resources, only the total (RFC 7644 §3.4.2.4).
    let shown = plan.query.count > 1;
    let resources = found
        .filter(|_| shown)
        .map(|(u, groups)| listed_user(ctx, req, u, needs.groups.then_some(groups.as_slice())))
        .into_iter()
        .collect();
    Ok(list_response(total, 1, resources, false, None))
}

async fn list_groups_filtered(
    ctx: &Ctx<'_>,
    req: &ListRequest,
    filter: Option<Filter>,
) -> ScimResult<Value> {
    let plan = plan(req, filter, &GROUP, ctx.sizes.page_size)?;
    let needs = needs(req);
    let sql = ctx.store.groups_query(ctx.scope, &plan.query)?;
    let page = ctx.store.list_groups(sql, &plan.query).await?;
    let want = plan.query.count as usize - 1;
    let more = page.items.len() > want;
    let items = &page.items[..page.items.len().min(want)];
    let members = if needs.members && !items.is_empty() {
        let ids: Vec<String> = items.iter().map(|g| g.id.clone()).collect();
        ctx.store.members_of_groups(ctx.scope, &ids).await?
    } else {
        Vec::new()
    };
    let mut by_group: std::collections::HashMap<&str, Vec<&Member>> = Default::default();
    for (gid, m) in &members {
        by_group.entry(gid.as_str()).or_default().push(m);
    }
    let resources = items
        .iter()
        .map(|g| {
            let mine = by_group
                .get(g.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let r = render_group(ctx, g, needs.members.then_some(mine));
            resource::project_into(
                r.body,
                &GROUP,
                req.attributes.as_deref(),
                req.excluded_attributes.as_deref(),
            )
        })
        .collect();
    let next = next_cursor(
        &plan,
        more,
        items.last().map(|g| g.id.as_str()),
        items.len(),
    );
    Ok(list_response(
        page.total.unwrap_or(0),
        plan.start_index,
        resources,
        plan.cursor_mode,
        next,
    ))
}

/// RFC 7644 §3.4.3 at the root: Users then Groups, as one sequence. A filter that names an
/// attribute only one type has applies to that type alone.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %ctx.scope.org_id(), directory_id = %ctx.scope.directory_id()))]
pub async fn search_root(ctx: &Ctx<'_>, req: &ListRequest) -> ScimResult<Value> {
    if req.cursor.is_some() {
        return Err(invalid_cursor(
            "cursor pagination is offered per resource type, not at the root",
        ));
    }
    // Per type, conditions on attributes the type lacks are false; None: nothing of it can match.
    let (users_filter, groups_filter) = match req.filter.as_deref() {
        None => (Some(None), Some(None)),
        Some(f) => {
            let mut per_type = filter::parse_filter_multi(f, &[&USER, &GROUP])?.into_iter();
            (
                per_type.next().flatten().map(Some),
                per_type.next().flatten().map(Some),
            )
        }
    };
    let start = req.start_index.unwrap_or(1).max(1);
    let count = req
        .count
        .map(|c| c.max(0))
        .unwrap_or(DEFAULT_COUNT as i64)
        .min(ctx.sizes.page_size as i64);
    let mut resources = Vec::new();
    let mut total = 0i64;
    let mut skip = start - 1;
    let mut room = count;
    for (type_filter, is_users) in [(users_filter, true), (groups_filter, false)] {
        let Some(f) = type_filter else { continue };
        let mut r = req.clone();
        r.start_index = Some(skip + 1);
        r.count = Some(room);
        let page = if is_users {
            list_users_filtered(ctx, &r, f).await?
        } else {
            list_groups_filtered(ctx, &r, f).await?
        };
        let t = page["totalResults"].as_i64().unwrap_or(0);
        total += t;
        if let Some(items) = page["Resources"].as_array() {
            room -= items.len() as i64;
            resources.extend(items.iter().cloned());
        }
        skip = (skip - t).max(0);
    }
    Ok(list_response(total, start as u64, resources, false, None))
}
