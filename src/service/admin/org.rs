//! The organization: its settings, its creation with an owner, and ownership.

use crate::domain::audit::{AuditOp, AuditResource};
use crate::domain::ids::OrgUserId;
use serde::{Deserialize, Serialize};

use super::views::OrgDetails;
use super::{Action, AdminError, AdminResult, Caller};
use crate::domain::access::EventType;
use crate::domain::access::SubAccountRole;
use crate::service::provision::{Provision, UserOutcome};
use crate::store::access::{self as access_db, OrgLock};
use crate::store::admin::{self as db};
use crate::store::platform as platform_db;
use crate::store::{Store, audit};

/// The organization as the caller may see it: the billing and sub-account roles see its name and
/// seats, not who owns it or the default role.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn org_details(store: &Store, caller: &Caller) -> AdminResult<OrgDetails> {
    caller.require(Action::ReadSeats)?;
    let mut org = OrgDetails::from(store.org_details(caller.scope()).await?);
    if caller.require(Action::Read).is_err() {
        org.owner_user_id = None;
        org.default_role = None;
    }
    Ok(org)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Seats {
    pub used: i64,
    pub limit: Option<i64>,
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn seats(store: &Store, caller: &Caller) -> AdminResult<Seats> {
    caller.require(Action::ReadSeats)?;
    let org = store.org_details(caller.scope()).await?;
    Ok(Seats {
        used: org.seats_used,
        limit: org.seat_limit,
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Changes {
    pub organization: OrgDetails,
    pub changes: Vec<UserOutcome>,
}

/// The organization after a change the caller was allowed to make, and who gained or lost what.
async fn changed(
    store: &Store,
    caller: &Caller,
    changes: Vec<UserOutcome>,
) -> AdminResult<Changes> {
    let organization = store.org_details(caller.scope()).await?.into();
    Ok(Changes {
        organization,
        changes,
    })
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
    /// A new name (unique across the deployment, without case). A platform token only.
    #[serde(default)]
    pub name: Option<String>,
    /// The SaaS's key for the organization, or null to clear it. A platform token only.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub external_key: Option<Option<String>>,
    /// A number, or null for no limit.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub seat_limit: Option<Option<i64>>,
    /// A sub-account role, or null for none.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<SubAccountRole>)]
    pub default_role: Option<Option<SubAccountRole>>,
}

/// Tells a field that is absent (leave it) from one that is null (clear it).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Records a change of the organization's settings in its audit log.
async fn updated(tx: &mut crate::store::Tx, scope: &db::OrgScope, detail: &str) -> AdminResult<()> {
    audit::record_as(
        tx,
        &scope.audit(),
        AuditOp::Update,
        AuditResource::Organization,
        Some(scope.org_id()),
        Some(detail),
    )
    .await?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn update_org(store: &Store, caller: &Caller, patch: &OrgPatch) -> AdminResult<Changes> {
    if patch.seat_limit.is_some() {
        caller.require(Action::ManageSeats)?;
    }
    if patch.default_role.is_some() {
        caller.require(Action::Manage)?;
    }
    if patch.name.is_some() || patch.external_key.is_some() {
        caller.require(Action::Operate)?;
    }
    if let Some(Some(key)) = &patch.external_key {
        check_external_key(key)?;
    }
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let mut org = access_db::load_org(&mut tx, scope.org_id(), OrgLock::Exclusive).await?;
    if let Some(name) = &patch.name {
        let name = platform_db::set_org_name(&mut tx, scope, name).await?;
        updated(&mut tx, scope, &format!("name {name:?}")).await?;
    }
    if let Some(key) = &patch.external_key {
        platform_db::set_external_key(&mut tx, scope, key.as_deref()).await?;
        updated(&mut tx, scope, &format!("external_key {key:?}")).await?;
    }
    if let Some(limit) = patch.seat_limit {
        check_seat_limit(limit)?;
        db::set_seat_limit(&mut tx, scope, limit).await?;
        updated(&mut tx, scope, &format!("seat_limit {limit:?}")).await?;
    }
    let mut changes = Vec::new();
    if let Some(role) = patch.default_role
        && role != org.settings.default_role
    {
        db::set_default_role(&mut tx, scope, role.map(|r| r.as_str())).await?;
        org.settings.default_role = role;
        changes = default_role_reach(&mut tx, scope, org)
            .await?
            .finish(&mut tx)
            .await?;
        updated(&mut tx, scope, &format!("default_role {role:?}")).await?;
    }
    tx.commit().await?;
    changed(store, caller, changes).await
}

/// The recomputation a new default role asks for, in `org` (which already has it): the default
/// role reaches every user whose groups match no rule, so anyone.
async fn default_role_reach(
    tx: &mut crate::store::Tx,
    scope: &db::OrgScope,
    org: access_db::OrgAccess,
) -> AdminResult<Provision> {
    let everyone = access_db::all_org_users(tx, scope.org_id()).await?;
    let mut prov = Provision::with_org(scope.org_id(), scope.actor(), org);
    prov.touch(everyone);
    Ok(prov)
}

/// Who would gain and lose what if the default role became `role`, computed as [`update_org`]
/// makes the change, in a read-only snapshot that locks nothing (a read, like a rule's preview).
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn preview_default_role(
    store: &Store,
    caller: &Caller,
    role: Option<SubAccountRole>,
) -> AdminResult<Vec<UserOutcome>> {
    caller.require(Action::Read)?;
    let scope = caller.scope();
    let mut tx = store.begin_read().await?;
    let result: AdminResult<Vec<UserOutcome>> = async {
        let mut org = access_db::load_org(&mut tx, scope.org_id(), OrgLock::None).await?;
        if org.settings.default_role == role {
            return Ok(Vec::new());
        }
        org.settings.default_role = role;
        let prov = default_role_reach(&mut tx, scope, org).await?;
        Ok(prov.preview(&mut tx).await?)
    }
    .await;
    tx.rollback().await?;
    result
}

/// A new organization, and its owner when one was named.
#[derive(Debug, Clone)]
pub struct CreatedOrg {
    pub org: crate::store::directory::OrgRecord,
    pub owner_user_id: Option<String>,
}

/// What an organization is created with: the operator's `org create` and the platform API's
/// `POST /api/v1/orgs` alike.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    /// 1-200 characters, unique across the deployment without case.
    pub name: String,
    /// The SaaS's own key for the organization (its id for the customer, say): 1-200 characters
    /// without control characters or surrounding spaces, unique across the deployment, compared
    /// exactly. `GET /api/v1/orgs?external_key=...` finds the organization by it.
    #[serde(default)]
    pub external_key: Option<String>,
    /// The owner's email address: a person of the organization at once, inactive and taking no
    /// seat until SCIM or a sign-in brings that userName. Without one, nothing protects an owner
    /// from deprovisioning until ownership is transferred to someone.
    #[serde(default)]
    pub owner_email: Option<String>,
    /// The most active users the organization may have; none: no limit.
    #[serde(default)]
    pub seat_limit: Option<i64>,
}

fn check_seat_limit(limit: Option<i64>) -> AdminResult<()> {
    match limit {
        Some(l) if l < 0 => Err(AdminError::Invalid("seat_limit must be 0 or more".into())),
        _ => Ok(()),
    }
}

/// The SaaS's key of an organization: an exact identifier, so surrounding spaces are refused rather
/// than trimmed (a key that differs from the SaaS's by a space would never be found again).
pub fn check_external_key(key: &str) -> AdminResult<()> {
    if key.is_empty()
        || key.chars().count() > 200
        || key.chars().any(char::is_control)
        || key.trim() != key
    {
        return Err(AdminError::Invalid(
            "external_key must be 1-200 characters, without control characters or surrounding spaces"
                .into(),
        ));
    }
    Ok(())
}

/// Creates an organization, with its owner from the start when `owner_email` is given, so owner
/// protection holds on day one. The owner is a person of the organization at once, inactive and
/// taking no seat until SCIM or a sign-in brings that userName (matched case-insensitively, as
/// every userName is), which links and activates them. One transaction: the organization never
/// exists without the owner, key and seat limit it was created with. The operator's CLI and the
/// platform API call this.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn create_org(store: &Store, new: &NewOrg, actor: &str) -> AdminResult<CreatedOrg> {
    let owner_email = match new.owner_email.as_deref().map(str::trim) {
        None => None,
        Some(e) if is_email(e) => Some(e),
        Some(e) => {
            return Err(AdminError::Invalid(format!(
                "the owner must be named by email address, got {e:?}"
            )));
        }
    };
    check_seat_limit(new.seat_limit)?;
    if let Some(key) = &new.external_key {
        check_external_key(key)?;
    }
    let mut tx = store.begin().await?;
    let org = crate::store::directory::insert_org(&mut tx, &new.name).await?;
    let scope = db::OrgScope::for_org(&org.id, actor);
    if new.external_key.is_some() {
        platform_db::set_external_key(&mut tx, &scope, new.external_key.as_deref()).await?;
    }
    if new.seat_limit.is_some() {
        db::set_seat_limit(&mut tx, &scope, new.seat_limit).await?;
    }
    let mut owner_user_id = None;
    if let Some(email) = owner_email {
        let (user_id, _) =
            access_db::link_org_user(&mut tx, &org.id, email, None, store.now()).await?;
        db::set_owner(&mut tx, &scope, &user_id).await?;
        let mut prov = Provision::new(&org.id, actor);
        prov.touch([user_id.clone()]);
        prov.event(
            EventType::OwnerTransferred,
            Some(&user_id),
            serde_json::json!({ "from": null, "to": user_id, "user_name": email }),
        );
        prov.finish(&mut tx).await?;
        owner_user_id = Some(user_id);
    }
    let mut detail = match owner_email {
        Some(e) => format!("{} (owner {e})", org.name),
        None => format!("{} (no owner yet)", org.name),
    };
    if let Some(key) = &new.external_key {
        detail.push_str(&format!(", external_key {key:?}"));
    }
    if let Some(limit) = new.seat_limit {
        detail.push_str(&format!(", seat_limit {limit}"));
    }
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::Create,
        AuditResource::Organization,
        Some(&org.id),
        Some(&detail),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedOrg {
        org,
        owner_user_id: owner_user_id.map(OrgUserId::into_string),
    })
}

/// One `@` between a non-empty local part and a domain with a dot, without spaces: enough to
/// catch a user id or a name given where an email address was meant.
fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// Makes `user_id` the owner. The previous owner keeps every other access they have.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), user_id = user_id))]
pub async fn transfer_owner(store: &Store, caller: &Caller, user_id: &str) -> AdminResult<Changes> {
    caller.require(Action::TransferOwner)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let mut org = access_db::load_org(&mut tx, scope.org_id(), OrgLock::Exclusive).await?;
    let new_owner = OrgUserId::new(user_id);
    let user = access_db::lock_org_users(&mut tx, scope.org_id(), std::slice::from_ref(&new_owner))
        .await?;
    let Some(user) = user.first() else {
        return Err(AdminError::NotFound(format!("no user {user_id:?}")));
    };
    if !user.active {
        return Err(AdminError::Invalid(
            "the new owner must be an active user".into(),
        ));
    }
    let previous = org.owner_user_id.replace(user_id.to_string());
    db::set_owner(&mut tx, scope, user_id).await?;
    let mut prov = Provision::with_org(scope.org_id(), scope.actor(), org);
    prov.touch([new_owner.clone()]);
    prov.touch(previous.clone().map(OrgUserId::new));
    prov.event(
        EventType::OwnerTransferred,
        Some(&new_owner),
        serde_json::json!({ "from": previous, "to": user_id }),
    );
    let changes = prov.finish(&mut tx).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        AuditOp::TransferOwner,
        AuditResource::Organization,
        Some(scope.org_id()),
        Some(&format!("{previous:?} -> {user_id}")),
    )
    .await?;
    tx.commit().await?;
    changed(store, caller, changes).await
}
