//! Create, read, replace, patch and delete of Users and Groups (RFC 7644 §3.3-§3.6).

use crate::domain::audit::{AuditOp, AuditResource};
use crate::domain::ids::OrgUserId;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use super::provision::{self, Provision, ProvisionError};
use super::{Ctx, Kind, Rendered, count_op, precondition_failed};
use crate::domain::access::EventType;
use crate::mapping::GroupRef;
use crate::scim::error::{ScimError, ScimResult};
use crate::scim::patch::{self, MemberChange};
use crate::scim::resource::{self, MemberRef};
use crate::scim::schema::{GROUP, USER};
use crate::scim::version::{etag, if_match_ok};
use crate::store::access as org_db;
use crate::store::scim::{self as db, GroupRecord, Member, NewMember, UserGroup, UserRecord};
use crate::store::{Tx, audit, from_micros, new_id};

fn timestamp(us: i64) -> String {
    from_micros(us).format(&Rfc3339).unwrap_or_default()
}

fn meta(resource_type: &str, created: i64, modified: i64, location: &str, version: i64) -> Value {
    json!({
        "resourceType": resource_type,
        "created": timestamp(created),
        "lastModified": timestamp(modified),
        "location": location,
        "version": etag(version),
    })
}

/// Which expensive read-only attributes a response needs, so that `excludedAttributes=members`
/// never loads a group's members.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    pub groups: bool,
    pub members: bool,
}

impl Needs {
    pub fn from_projection(attributes: Option<&str>, excluded: Option<&str>) -> Needs {
        let names = |s: Option<&str>| -> Vec<String> {
            s.map(|s| {
                s.split(',')
                    .map(|a| a.trim().to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default()
        };
        let attrs = names(attributes);
        let excl = names(excluded);
        let wanted = |attr: &str, core: &str| {
            let is = |a: &String| {
                let a = a
                    .strip_prefix(&core.to_ascii_lowercase())
                    .map(|r| r.trim_start_matches(':'))
                    .unwrap_or(a);
                a == attr || a.starts_with(&format!("{attr}."))
            };
            if attributes.is_some() {
                attrs.iter().any(is)
            } else {
                !excl.iter().any(|a| is(a) && !a.contains('.'))
            }
        };
        Needs {
            groups: wanted("groups", crate::scim::schema::USER_SCHEMA),
            members: wanted("members", crate::scim::schema::GROUP_SCHEMA),
        }
    }
    pub const ALL: Needs = Needs {
        groups: true,
        members: true,
    };
}

// ---- rendering ---------------------------------------------------------------------------------

pub fn render_user(ctx: &Ctx<'_>, u: UserRecord, groups: Option<&[UserGroup]>) -> Rendered {
    let location = format!("{}/Users/{}", ctx.base_url, u.id);
    let mut body = u.data;
    if let Value::Object(m) = &mut body {
        m.insert("id".into(), Value::String(u.id.clone()));
        m.insert(
            "meta".into(),
            meta("User", u.created_at, u.updated_at, &location, u.version),
        );
        if let Some(groups) = groups {
            let list: Vec<Value> = groups
                .iter()
                .filter(|g| g.user_id == u.id)
                .map(|g| {
                    json!({"value": g.group_id, "$ref": format!("{}/Groups/{}", ctx.base_url, g.group_id),
                           "display": g.display, "type": "direct"})
                })
                .collect();
            if !list.is_empty() {
                m.insert("groups".into(), Value::Array(list));
            }
        }
    }
    Rendered {
        body,
        version: u.version,
        location,
    }
}

pub fn render_group(ctx: &Ctx<'_>, g: &GroupRecord, members: Option<&[&Member]>) -> Rendered {
    let location = format!("{}/Groups/{}", ctx.base_url, g.id);
    let mut body = g.data.clone();
    if let Value::Object(m) = &mut body {
        m.insert("id".into(), json!(g.id));
        m.insert(
            "meta".into(),
            meta("Group", g.created_at, g.updated_at, &location, g.version),
        );
        if let Some(members) = members {
            let list: Vec<Value> = members
                .iter()
                .map(|mem| member_json(ctx.base_url, mem))
                .collect();
            if !list.is_empty() {
                m.insert("members".into(), Value::Array(list));
            }
        }
    }
    Rendered {
        body,
        version: g.version,
        location,
    }
}

/// RFC 7643 §4.2: a group's member, with the `$ref` of the user or group it is.
fn member_json(base_url: &str, mem: &Member) -> Value {
    let kind = if mem.r#type == "Group" {
        "Groups"
    } else {
        "Users"
    };
    let mut v = json!({"value": mem.value, "$ref": format!("{base_url}/{kind}/{}", mem.value),
                       "type": mem.r#type});
    if let Some(d) = &mem.display {
        v["display"] = json!(d);
    }
    v
}

/// A group as [`render_group`] renders it, with its members still as rows: the response writes
/// them out as it is sent. A 100,000-member group is 22 MB of JSON; built as one document first,
/// it took several times that in memory on every GET.
pub struct GroupStream {
    /// The group without `members`.
    pub head: Rendered,
    members: Vec<Member>,
    base_url: String,
}

/// Members written per chunk of a [`GroupStream`]: about 200 KB.
const MEMBERS_PER_CHUNK: usize = 1000;

impl GroupStream {
    /// The document `head` (the group as the client gets it, without members) with the members
    /// spliced in before its closing brace, in chunks. No members, no `members` attribute, as in
    /// [`render_group`].
    pub fn into_chunks(self, head: &Value) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
        let mut first = head.to_string().into_bytes();
        let GroupStream {
            members, base_url, ..
        } = self;
        let mut members = members.into_iter();
        if members.as_slice().is_empty() || first.last() != Some(&b'}') {
            members = Vec::new().into_iter();
        } else {
            first.pop();
            if first.len() > 1 {
                first.push(b',');
            }
            first.extend_from_slice(b"\"members\":[");
        }
        let mut head = Some(first);
        let mut wrote_one = false;
        std::iter::from_fn(move || {
            if let Some(h) = head.take() {
                return Some(h);
            }
            if members.as_slice().is_empty() {
                return None;
            }
            let mut buf = Vec::with_capacity(MEMBERS_PER_CHUNK * 224);
            for m in members.by_ref().take(MEMBERS_PER_CHUNK) {
                if wrote_one {
                    buf.push(b',');
                }
                wrote_one = true;
                buf.extend_from_slice(member_json(&base_url, &m).to_string().as_bytes());
            }
            if members.as_slice().is_empty() {
                buf.extend_from_slice(b"]}");
            }
            Some(buf)
        })
    }
}

/// RFC 7644 §3.4.1: a group with all its members, for a GET without a projection; see
/// [`GroupStream`].
/// `unchanged` says whether the client's copy is current (RFC 7232 §3.2): then the answer is the
/// group without members, which are not read.
pub async fn get_group_stream(
    ctx: &Ctx<'_>,
    id: &str,
    unchanged: impl FnOnce(i64) -> bool,
) -> ScimResult<GroupStream> {
    let g = ctx
        .store
        .get_group(ctx.scope, id)
        .await?
        .ok_or_else(|| group_not_found(id))?;
    let members = if unchanged(g.version) {
        Vec::new()
    } else {
        ctx.store.members_of_group(ctx.scope, &g.id).await?
    };
    Ok(GroupStream {
        head: render_group(ctx, &g, None),
        members,
        base_url: ctx.base_url.to_string(),
    })
}

async fn render_user_loaded(ctx: &Ctx<'_>, u: UserRecord, needs: Needs) -> ScimResult<Rendered> {
    let groups = if needs.groups {
        Some(
            ctx.store
                .groups_of_users(ctx.scope, std::slice::from_ref(&u.id))
                .await?,
        )
    } else {
        None
    };
    Ok(render_user(ctx, u, groups.as_deref()))
}

async fn render_group_loaded(ctx: &Ctx<'_>, g: &GroupRecord, needs: Needs) -> ScimResult<Rendered> {
    let members = if needs.members {
        Some(ctx.store.members_of_group(ctx.scope, &g.id).await?)
    } else {
        None
    };
    let refs: Option<Vec<&Member>> = members.as_ref().map(|m| m.iter().collect());
    Ok(render_group(ctx, g, refs.as_deref()))
}

// ---- users -------------------------------------------------------------------------------------

/// The indexed columns of a user, taken from its normalised document.
fn user_columns(id: String, data: Value, version: i64, created: i64, updated: i64) -> UserRecord {
    let s = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
    UserRecord {
        id,
        user_name: s("userName").unwrap_or_default(),
        external_id: s("externalId"),
        display_name: s("displayName"),
        // A user the IdP sent without `active` is active; the document keeps what was sent, so
        // the attribute round-trips (absent stays absent).
        active: data.get("active").and_then(Value::as_bool).unwrap_or(true),
        data,
        version,
        created_at: created,
        updated_at: updated,
    }
}

pub async fn create_user(ctx: &Ctx<'_>, body: &Value) -> ScimResult<Rendered> {
    let data = resource::normalize(body, &USER)?;
    let mut tx = ctx.store.begin().await?;
    let t = tx.now();
    let rec = user_columns(new_id(), data, 1, t, t);
    let (org_user, created) = db::insert_linked_user(&mut tx, ctx.scope, &rec).await?;
    let mut prov = provisioner(ctx);
    if created {
        prov.created(&org_user);
    } else {
        prov.touch([org_user]);
    }
    let mut tx = finish(ctx, tx, prov).await?;
    audit::record(
        &mut tx,
        ctx.scope,
        AuditOp::Create,
        AuditResource::User,
        Some(&rec.id),
        Some(&rec.user_name),
    )
    .await?;
    tx.commit().await?;
    count_op(ctx.scope, AuditResource::User, AuditOp::Create);
    Ok(render_user(ctx, rec, None))
}

pub async fn get_user(ctx: &Ctx<'_>, id: &str, needs: Needs) -> ScimResult<Rendered> {
    if needs.groups {
        let (u, groups) = ctx
            .store
            .get_user_with_groups(ctx.scope, id)
            .await?
            .ok_or_else(|| user_not_found(id))?;
        return Ok(render_user(ctx, u, Some(&groups)));
    }
    let u = ctx
        .store
        .get_user(ctx.scope, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    Ok(render_user(ctx, u, None))
}

fn user_not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("no User with id {id:?}"))
}

fn group_not_found(id: &str) -> ScimError {
    ScimError::not_found(format!("no Group with id {id:?}"))
}

/// Locks the user, checks If-Match against the version before this write, and returns it.
async fn lock_user(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    id: &str,
    if_match: Option<&str>,
) -> ScimResult<UserRecord> {
    let u = db::lock_user(tx, ctx.scope, id)
        .await?
        .ok_or_else(|| user_not_found(id))?;
    if !if_match_ok(if_match, u.version - 1) {
        return Err(precondition_failed());
    }
    Ok(u)
}

/// RFC 7644 §3.5.1: PUT replaces every writable attribute; what is not sent is cleared.
pub async fn replace_user(
    ctx: &Ctx<'_>,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    needs: Needs,
) -> ScimResult<Rendered> {
    let data = resource::normalize(body, &USER)?;
    let mut tx = ctx.store.begin().await?;
    let old = lock_user(ctx, &mut tx, id, if_match).await?;
    let rec = user_columns(old.id.clone(), data, old.version, old.created_at, tx.now());
    let person = db::update_user(&mut tx, ctx.scope, &rec).await?;
    let (mut tx, detail) = user_changed(ctx, tx, &old, &rec, person).await?;
    audit::record(
        &mut tx,
        ctx.scope,
        AuditOp::Replace,
        AuditResource::User,
        Some(id),
        detail.as_deref(),
    )
    .await?;
    tx.commit().await?;
    count_op(ctx.scope, AuditResource::User, AuditOp::Replace);
    render_user_loaded(ctx, rec, needs).await
}

fn active_change(old: &UserRecord, new: &UserRecord) -> Option<&'static str> {
    match (old.active, new.active) {
        (true, false) => Some("deactivated"),
        (false, true) => Some("reactivated"),
        _ => None,
    }
}

pub async fn patch_user(
    ctx: &Ctx<'_>,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    needs: Needs,
) -> ScimResult<Rendered> {
    let ops = patch::parse_patch(body, &USER)?;
    let mut tx = ctx.store.begin().await?;
    let old = lock_user(ctx, &mut tx, id, if_match).await?;
    let data = apply_with_id(&old.data, &old.id, &ops, &USER)?;
    let rec = user_columns(old.id.clone(), data, old.version, old.created_at, tx.now());
    let person = db::update_user(&mut tx, ctx.scope, &rec).await?;
    let (mut tx, detail) = user_changed(ctx, tx, &old, &rec, person).await?;
    audit::record(
        &mut tx,
        ctx.scope,
        AuditOp::Patch,
        AuditResource::User,
        Some(id),
        detail.as_deref(),
    )
    .await?;
    tx.commit().await?;
    count_op(ctx.scope, AuditResource::User, AuditOp::Patch);
    render_user_loaded(ctx, rec, needs).await
}

pub async fn delete_user(ctx: &Ctx<'_>, id: &str, if_match: Option<&str>) -> ScimResult<()> {
    let mut tx = ctx.store.begin().await?;
    if if_match.is_some() {
        lock_user(ctx, &mut tx, id, if_match).await?;
    }
    let Some(org_user) = db::delete_user(&mut tx, ctx.scope, id).await? else {
        return Err(user_not_found(id));
    };
    let mut prov = provisioner(ctx);
    if let Some(u) = &org_user {
        prov.unlinked(u);
    }
    let mut tx = finish(ctx, tx, prov).await?;
    audit::record(
        &mut tx,
        ctx.scope,
        AuditOp::Delete,
        AuditResource::User,
        Some(id),
        None,
    )
    .await?;
    tx.commit().await?;
    count_op(ctx.scope, AuditResource::User, AuditOp::Delete);
    Ok(())
}

// ---- provisioning ------------------------------------------------------------------------------

fn provisioner(ctx: &Ctx<'_>) -> Provision {
    Provision::new(ctx.scope.org_id(), ctx.scope.token_id())
}

/// Recomputes what the write touched, in its transaction. When the write would deprovision the
/// owner, the transaction is dropped (nothing of the write is kept) and the refused attempt is
/// recorded on its own, so admins see it in the audit log and the events.
async fn finish(ctx: &Ctx<'_>, mut tx: Tx, prov: Provision) -> ScimResult<Tx> {
    match prov.finish(&mut tx).await {
        Ok(_) => Ok(tx),
        Err(ProvisionError::OwnerProtected(user_id)) => {
            drop(tx);
            provision::record_owner_refusal(
                ctx.store,
                ctx.scope.org_id(),
                Some(ctx.scope.directory_id()),
                ctx.scope.token_id(),
                &user_id,
            )
            .await;
            Err(ProvisionError::OwnerProtected(user_id).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// A user's update changes access through `active` and through `userName` (which decides the
/// person it is); groups change through Groups, and the directory stays the same. `person` is
/// the organization user the SCIM user is linked to. Returns the transaction and what changed,
/// for the audit log.
async fn user_changed(
    ctx: &Ctx<'_>,
    mut tx: Tx,
    old: &UserRecord,
    new: &UserRecord,
    person: Option<OrgUserId>,
) -> ScimResult<(Tx, Option<String>)> {
    let renamed = old.user_name != new.user_name;
    if old.active == new.active && !renamed {
        return Ok((tx, None));
    }
    let mut prov = provisioner(ctx);
    // The organization's share lock first, as every writer takes it.
    prov.org(&mut tx).await?;
    prov.touch(person.iter().cloned());
    let mut detail: Vec<String> = active_change(old, new)
        .map(str::to_string)
        .into_iter()
        .collect();
    if renamed && let Some(person) = &person {
        detail.push(relink(ctx, &mut tx, &mut prov, old, new, person).await?);
    }
    let tx = finish(ctx, tx, prov).await?;
    Ok((tx, (!detail.is_empty()).then(|| detail.join("; "))))
}

/// RFC 7643 §4.1.1: userName is the person's identifier at the IdP, and SCIM users of every
/// directory with the same userName are the same person. When it changes (Entra's `PATCH replace
/// userName`, Okta's PUT), the SCIM user follows its new name:
/// - to the person who already has it (a merge: one person, one seat);
/// - else, when the old person is also another directory's SCIM user under the old name, to a new
///   person of the new name (a move), leaving the other directory's person as it is;
/// - else the person is renamed in place, keeping its id and so its grants made by hand, sessions
///   and ownership.
///
/// The owner is never merged away: a change that would leave the owner without a SCIM user by
/// merging them into another person is refused. Returns what happened, for the audit log.
async fn relink(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    prov: &mut Provision,
    old: &UserRecord,
    new: &UserRecord,
    from: &OrgUserId,
) -> ScimResult<String> {
    let org_id = ctx.scope.org_id();
    let owner = prov.org(tx).await?.owner_user_id.clone();
    let target = org_db::find_org_user(tx, org_id, &new.user_name).await?;
    // Both people are locked in id order before either is changed, as the recomputation does.
    let mut people = vec![from.clone()];
    people.extend(target.clone());
    org_db::lock_org_users(tx, org_id, &people).await?;
    let shared = org_db::scim_links(tx, from).await? > 1;
    let now = tx.now();
    let (what, operation, to) = match target {
        Some(to) if to == *from => {
            // The same name in another case.
            org_db::rename_org_user(tx, org_id, from, &new.user_name, now).await?;
            (EventType::UserRenamed, AuditOp::Renamed, to)
        }
        Some(to) => {
            if !shared && owner.as_deref() == Some(from.as_str()) {
                return Err(ScimError::mutability(format!(
                    "userName {:?} is another person of the organization: renaming {:?} to it \
                     would merge the organization's owner into them; transfer ownership first",
                    new.user_name, old.user_name
                )));
            }
            org_db::relink_scim_user(tx, ctx.scope.directory_id(), &new.id, &to).await?;
            prov.touch([to.clone()]);
            if shared {
                prov.touch([from.clone()]);
            } else {
                prov.merged(from);
            }
            (EventType::UserMerged, AuditOp::Merged, to)
        }
        None if shared => {
            let (to, created) =
                org_db::link_org_user(tx, org_id, &new.user_name, new.display_name.as_deref(), now)
                    .await?;
            org_db::relink_scim_user(tx, ctx.scope.directory_id(), &new.id, &to).await?;
            if created {
                prov.created(&to);
            } else {
                prov.touch([to.clone()]);
            }
            prov.touch([from.clone()]);
            (EventType::UserMoved, AuditOp::Moved, to)
        }
        None => {
            org_db::rename_org_user(tx, org_id, from, &new.user_name, now).await?;
            (EventType::UserRenamed, AuditOp::Renamed, from.clone())
        }
    };
    prov.event(
        what,
        Some(&to),
        json!({
            "user_id": to,
            "user_name": new.user_name,
            "from_user_id": from,
            "from_user_name": old.user_name,
            "directory_id": ctx.scope.directory_id(),
            "scim_user_id": new.id,
        }),
    );
    let detail = format!("{operation}: {:?} -> {:?}", old.user_name, new.user_name);
    let who = audit::Actor {
        org_id,
        directory_id: Some(ctx.scope.directory_id()),
        actor: ctx.scope.token_id(),
    };
    audit::record_as(
        tx,
        &who,
        operation,
        AuditResource::OrgUser,
        Some(to.as_str()),
        Some(&detail),
    )
    .await?;
    Ok(detail)
}

fn group_ref(directory_id: &str, g: &GroupRecord) -> GroupRef {
    GroupRef {
        id: g.id.clone(),
        external_id: g.external_id.clone(),
        display_name: g.display_name.clone(),
        directory_id: directory_id.to_string(),
    }
}

/// Which members of a group a change can affect. A group no rule matches (before or after) affects
/// nobody; a change of which rules match (a rename) affects every member; otherwise only the
/// members added or removed.
struct GroupImpact {
    mapped: bool,
    rules_changed: bool,
}

async fn group_impact(
    prov: &mut Provision,
    tx: &mut Tx,
    directory_id: &str,
    before: Option<&GroupRecord>,
    after: Option<&GroupRecord>,
) -> ScimResult<GroupImpact> {
    let org = prov.org(tx).await?;
    let matching = |g: Option<&GroupRecord>| {
        g.map(|g| provision::rules_matching(&org.rules, &group_ref(directory_id, g)))
            .unwrap_or_default()
    };
    let (b, a) = (matching(before), matching(after));
    Ok(GroupImpact {
        mapped: !b.is_empty() || !a.is_empty(),
        rules_changed: b != a,
    })
}

async fn touch_members(
    ctx: &Ctx<'_>,
    prov: &mut Provision,
    tx: &mut Tx,
    group_id: &str,
) -> ScimResult<()> {
    let ids = org_db::org_users_of_group(tx, ctx.scope.directory_id(), group_id).await?;
    prov.touch(ids);
    Ok(())
}

async fn touch_scim_users(
    ctx: &Ctx<'_>,
    prov: &mut Provision,
    tx: &mut Tx,
    ids: &[String],
) -> ScimResult<()> {
    let ids = org_db::org_users_of_scim_users(tx, ctx.scope.directory_id(), ids).await?;
    prov.touch(ids);
    Ok(())
}

// ---- groups ------------------------------------------------------------------------------------

fn new_members(refs: Vec<MemberRef>) -> Vec<NewMember> {
    refs.into_iter()
        .map(|m| NewMember {
            id: m.value,
            display: m.display,
        })
        .collect()
}

fn group_columns(id: String, data: Value, version: i64, created: i64, updated: i64) -> GroupRecord {
    let s = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
    GroupRecord {
        id,
        display_name: s("displayName").unwrap_or_default(),
        external_id: s("externalId"),
        data,
        version,
        created_at: created,
        updated_at: updated,
    }
}

pub async fn create_group(ctx: &Ctx<'_>, body: &Value) -> ScimResult<Rendered> {
    let mut data = resource::normalize(body, &GROUP)?;
    let members = new_members(resource::take_members(&mut data));
    let mut tx = ctx.store.begin().await?;
    let t = tx.now();
    let rec = group_columns(new_id(), data, 1, t, t);
    db::insert_group(&mut tx, ctx.scope, &rec).await?;
    db::add_members(&mut tx, ctx.scope, &rec.id, &members).await?;
    let mut prov = provisioner(ctx);
    if group_impact(
        &mut prov,
        &mut tx,
        ctx.scope.directory_id(),
        None,
        Some(&rec),
    )
    .await?
    .mapped
    {
        touch_members(ctx, &mut prov, &mut tx, &rec.id).await?;
    }
    let mut tx = finish(ctx, tx, prov).await?;
    audit::record(
        &mut tx,
        ctx.scope,
        AuditOp::Create,
        AuditResource::Group,
        Some(&rec.id),
        Some(&rec.display_name),
    )
    .await?;
    tx.commit().await?;
    count_op(ctx.scope, AuditResource::Group, AuditOp::Create);
    render_group_loaded(ctx, &rec, Needs::ALL).await
}

pub async fn get_group(ctx: &Ctx<'_>, id: &str, needs: Needs) -> ScimResult<Rendered> {
    let g = ctx
        .store
        .get_group(ctx.scope, id)
        .await?
        .ok_or_else(|| group_not_found(id))?;
    render_group_loaded(ctx, &g, needs).await
}

async fn lock_group(
    ctx: &Ctx<'_>,
    tx: &mut Tx,
    id: &str,
    if_match: Option<&str>,
) -> ScimResult<GroupRecord> {
    let g = db::lock_group(tx, ctx.scope, id)
        .await?
        .ok_or_else(|| group_not_found(id))?;
    if !if_match_ok(if_match, g.version - 1) {
        return Err(precondition_failed());
    }
    Ok(g)
}

pub async fn replace_group(
    ctx: &Ctx<'_>,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    needs: Needs,
) -> ScimResult<Rendered> {
    let mut data = resource::normalize(body, &GROUP)?;
    let members = new_members(resource::take_members(&mut data));
    let mut tx = ctx.store.begin().await?;
    let old = lock_group(ctx, &mut tx, id, if_match).await?;
    let rec = group_columns(old.id.clone(), data, old.version, old.created_at, tx.now());
    let mut prov = provisioner(ctx);
    let mapped = group_impact(
        &mut prov,
        &mut tx,
        ctx.scope.directory_id(),
        Some(&old),
        Some(&rec),
    )
    .await?
    .mapped;
    if mapped {
        touch_members(ctx, &mut prov, &mut tx, id).await?;
    }
    db::update_group(&mut tx, ctx.scope, &rec).await?;
    db::clear_members(&mut tx, ctx.scope, id).await?;
    db::add_members(&mut tx, ctx.scope, id, &members).await?;
    if mapped {
        touch_members(ctx, &mut prov, &mut tx, id).await?;
    }
    let mut tx = finish(ctx, tx, prov).await?;
    audit::record(
        &mut tx,
        ctx.scope,
        AuditOp::Replace,
        AuditResource::Group,
        Some(id),
        None,
    )
    .await?;
    tx.commit().await?;
    count_op(ctx.scope, AuditResource::Group, AuditOp::Replace);
    render_group_loaded(ctx, &rec, needs).await
}

/// RFC 7644 §3.5.2 on a group: document operations on the JSON, member operations as row inserts
/// and deletes in request order, all in one transaction.
pub async fn patch_group(
    ctx: &Ctx<'_>,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    needs: Needs,
) -> ScimResult<Rendered> {
    let ops = patch::parse_patch(body, &GROUP)?;
    let (doc_ops, member_changes) = patch::split_member_ops(ops)?;
    if doc_ops.is_empty() {
        return patch_members(ctx, id, &member_changes, if_match, needs).await;
    }
    let mut tx = ctx.store.begin().await?;
    let old = lock_group(ctx, &mut tx, id, if_match).await?;
    let data = if doc_ops.is_empty() {
        old.data.clone()
    } else {
        apply_with_id(&old.data, &old.id, &doc_ops, &GROUP)?
    };
    let rec = group_columns(old.id.clone(), data, old.version, old.created_at, tx.now());
    let mut prov = provisioner(ctx);
    let impact = group_impact(
        &mut prov,
        &mut tx,
        ctx.scope.directory_id(),
        Some(&old),
        Some(&rec),
    )
    .await?;
    let clears = member_changes
        .iter()
        .any(|c| matches!(c, MemberChange::ClearAll));
    if impact.mapped && (impact.rules_changed || clears) {
        touch_members(ctx, &mut prov, &mut tx, id).await?;
    }
    db::update_group(&mut tx, ctx.scope, &rec).await?;
    let (mut added, mut removed) = (0, 0);
    for change in &member_changes {
        match change {
            MemberChange::ClearAll => removed += db::clear_members(&mut tx, ctx.scope, id).await?,
            MemberChange::Add(refs) => {
                let members = new_members(refs.clone());
                added += db::add_members(&mut tx, ctx.scope, id, &members)
                    .await?
                    .len() as u64;
            }
            MemberChange::Remove(ids) => {
                removed += db::remove_members(&mut tx, ctx.scope, id, ids).await?.len() as u64
            }
        }
    }
    if impact.mapped {
        let named: Vec<String> = member_changes
            .iter()
            .flat_map(|c| match c {
                MemberChange::ClearAll => Vec::new(),
                MemberChange::Add(refs) => refs.iter().map(|r| r.value.clone()).collect(),
                MemberChange::Remove(ids) => ids.clone(),
            })
            .collect();
        touch_scim_users(ctx, &mut prov, &mut tx, &named).await?;
        if impact.rules_changed {
            touch_members(ctx, &mut prov, &mut tx, id).await?;
        }
    }
    commit_group_patch(ctx, tx, prov, id, added, removed).await?;
    render_group_loaded(ctx, &rec, needs).await
}

/// Recomputes, audits (with how many members came and went) and commits a group PATCH.
async fn commit_group_patch(
    ctx: &Ctx<'_>,
    tx: Tx,
    prov: Provision,
    id: &str,
    added: u64,
    removed: u64,
) -> ScimResult<()> {
    let mut tx = finish(ctx, tx, prov).await?;
    let detail = (added + removed > 0).then(|| format!("members +{added} -{removed}"));
    audit::record(
        &mut tx,
        ctx.scope,
        AuditOp::Patch,
        AuditResource::Group,
        Some(id),
        detail.as_deref(),
    )
    .await?;
    tx.commit().await?;
    count_op(ctx.scope, AuditResource::Group, AuditOp::Patch);
    Ok(())
}

/// RFC 7644 §3.5.2 with member operations only, as Okta and Entra send membership: the cost is
/// that of the members named, whatever the group's size. The group's document is neither read
/// back nor rewritten (one statement bumps its version and lastModified), and access is
/// recomputed only for the users whose membership did change: an add of a member already there
/// or a remove of a non-member recomputes nobody, as their access cannot have changed.
async fn patch_members(
    ctx: &Ctx<'_>,
    id: &str,
    changes: &[MemberChange],
    if_match: Option<&str>,
    needs: Needs,
) -> ScimResult<Rendered> {
    let mut tx = ctx.store.begin().await?;
    let now = tx.now();
    let rec = db::touch_group(&mut tx, ctx.scope, id, now)
        .await?
        .ok_or_else(|| group_not_found(id))?;
    if !if_match_ok(if_match, rec.version - 1) {
        return Err(precondition_failed());
    }
    let mut prov = provisioner(ctx);
    let mapped = group_impact(
        &mut prov,
        &mut tx,
        ctx.scope.directory_id(),
        Some(&rec),
        Some(&rec),
    )
    .await?
    .mapped;
    let (mut added, mut removed) = (0, 0);
    let mut changed: Vec<String> = Vec::new();
    for change in changes {
        match change {
            // Entra's `replace members`: everyone there before is affected.
            MemberChange::ClearAll => {
                if mapped {
                    touch_members(ctx, &mut prov, &mut tx, id).await?;
                }
                removed += db::clear_members(&mut tx, ctx.scope, id).await?;
            }
            MemberChange::Add(refs) => {
                let ids =
                    db::add_members(&mut tx, ctx.scope, id, &new_members(refs.clone())).await?;
                added += ids.len() as u64;
                changed.extend(ids);
            }
            MemberChange::Remove(ids) => {
                let ids = db::remove_members(&mut tx, ctx.scope, id, ids).await?;
                removed += ids.len() as u64;
                changed.extend(ids);
            }
        }
    }
    if mapped && !changed.is_empty() {
        touch_scim_users(ctx, &mut prov, &mut tx, &changed).await?;
    }
    commit_group_patch(ctx, tx, prov, id, added, removed).await?;
    render_group_loaded(ctx, &rec, needs).await
}

pub async fn delete_group(ctx: &Ctx<'_>, id: &str, if_match: Option<&str>) -> ScimResult<()> {
    let mut tx = ctx.store.begin().await?;
    // Locked even without If-Match: its members are read for recomputation before it goes.
    let old = lock_group(ctx, &mut tx, id, if_match).await?;
    let mut prov = provisioner(ctx);
    if group_impact(
        &mut prov,
        &mut tx,
        ctx.scope.directory_id(),
        Some(&old),
        None,
    )
    .await?
    .mapped
    {
        touch_members(ctx, &mut prov, &mut tx, id).await?;
    }
    if !db::delete_group(&mut tx, ctx.scope, id).await? {
        return Err(group_not_found(id));
    }
    let mut tx = finish(ctx, tx, prov).await?;
    audit::record(
        &mut tx,
        ctx.scope,
        AuditOp::Delete,
        AuditResource::Group,
        Some(id),
        None,
    )
    .await?;
    tx.commit().await?;
    count_op(ctx.scope, AuditResource::Group, AuditOp::Delete);
    Ok(())
}

// ---- by kind -----------------------------------------------------------------------------------

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %ctx.scope.org_id(), directory_id = %ctx.scope.directory_id(), resource = ?kind))]
pub async fn create(ctx: &Ctx<'_>, kind: Kind, body: &Value) -> ScimResult<Rendered> {
    match kind {
        Kind::User => create_user(ctx, body).await,
        Kind::Group => create_group(ctx, body).await,
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %ctx.scope.org_id(), directory_id = %ctx.scope.directory_id(), resource = ?kind, resource_id = id))]
pub async fn get(ctx: &Ctx<'_>, kind: Kind, id: &str, needs: Needs) -> ScimResult<Rendered> {
    match kind {
        Kind::User => get_user(ctx, id, needs).await,
        Kind::Group => get_group(ctx, id, needs).await,
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %ctx.scope.org_id(), directory_id = %ctx.scope.directory_id(), resource = ?kind, resource_id = id))]
pub async fn replace(
    ctx: &Ctx<'_>,
    kind: Kind,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    needs: Needs,
) -> ScimResult<Rendered> {
    match kind {
        Kind::User => replace_user(ctx, id, body, if_match, needs).await,
        Kind::Group => replace_group(ctx, id, body, if_match, needs).await,
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %ctx.scope.org_id(), directory_id = %ctx.scope.directory_id(), resource = ?kind, resource_id = id))]
pub async fn patch(
    ctx: &Ctx<'_>,
    kind: Kind,
    id: &str,
    body: &Value,
    if_match: Option<&str>,
    needs: Needs,
) -> ScimResult<Rendered> {
    match kind {
        Kind::User => patch_user(ctx, id, body, if_match, needs).await,
        Kind::Group => patch_group(ctx, id, body, if_match, needs).await,
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %ctx.scope.org_id(), directory_id = %ctx.scope.directory_id(), resource = ?kind, resource_id = id))]
pub async fn delete(ctx: &Ctx<'_>, kind: Kind, id: &str, if_match: Option<&str>) -> ScimResult<()> {
    match kind {
        Kind::User => delete_user(ctx, id, if_match).await,
        Kind::Group => delete_group(ctx, id, if_match).await,
    }
}

/// Applies PATCH operations with the resource's `id` in view, so that a no-path replace carrying
/// the unchanged read-only `id` (as Okta sends) passes and a different one is refused; the id is
/// not part of the stored document.
fn apply_with_id(
    data: &Value,
    id: &str,
    ops: &[patch::PatchOp],
    rt: &crate::scim::schema::ResourceType,
) -> ScimResult<Value> {
    let mut doc = data.clone();
    if let Value::Object(m) = &mut doc {
        m.insert("id".into(), json!(id));
    }
    let mut out = patch::apply(&doc, ops, rt)?;
    if let Value::Object(m) = &mut out {
        m.remove("id");
        m.remove("meta");
    }
    Ok(out)
}
