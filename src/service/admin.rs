//! The admin API's operations: who may do what, and the changes that recompute access (rules,
//! grants made by hand, the default role, ownership) in the same transaction as the change.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::provision::{Provision, UserOutcome};
use crate::domain::access::{OrgRole, SubAccountRole};
use crate::mapping::explain::{ScopeReasons, explain};
use crate::mapping::{EffectiveAccess, Grant, GroupMatcher, MappingRule, Reason, SubAccountAccess};
use crate::store::access::{self as access_db, OrgLock};
use crate::store::admin::{
    self as db, AdminPrincipal, GrantRecord, OrgScope, RuleRecord, grant_sub_account,
};
use crate::store::{Store, StoreError, Tx, audit, new_id, now_micros};

/// The role of an admin token: an organization role, or the admin of one sub-account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRole {
    Org(OrgRole),
    SubAccountAdmin,
}

impl FromStr for AdminRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "sub_account_admin" {
            return Ok(AdminRole::SubAccountAdmin);
        }
        s.parse::<OrgRole>()
            .map(AdminRole::Org)
            .map_err(|e| format!("{e}, sub_account_admin (with a sub-account)"))
    }
}

impl fmt::Display for AdminRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminRole::Org(r) => write!(f, "{r}"),
            AdminRole::SubAccountAdmin => f.write_str("sub_account_admin"),
        }
    }
}

/// What a request wants to do, for authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// The organization's name and seat count.
    ReadSeats,
    /// Change the seat limit.
    ManageSeats,
    /// Read everything of the organization (rules, users, access, audit, events...).
    Read,
    /// Change anything but ownership.
    Manage,
    TransferOwner,
    /// Make, change or remove a connection the owner signs in through: whoever controls it can
    /// become the owner, so it is the owner's alone.
    ManageOwnerSignIn,
    /// Read one sub-account and its projects, and users' access in it.
    ReadSubAccount(&'a str),
    /// Make or remove a grant by hand confined to this sub-account (`None`: organization-wide).
    ManageGrant(Option<&'a str>),
}

/// Authorization with the roles this service manages: Org Owner and Admin manage everything of
/// their organization (only the owner transfers ownership); Org Viewer reads; billing roles see
/// seats and nothing of mappings; a sub-account admin manages grants in their sub-account only.
pub fn allows(role: AdminRole, own_sub_account: Option<&str>, action: Action<'_>) -> bool {
    use OrgRole::*;
    match role {
        AdminRole::Org(OrgOwner) => true,
        AdminRole::Org(OrgAdmin) => {
            !matches!(action, Action::TransferOwner | Action::ManageOwnerSignIn)
        }
        AdminRole::Org(OrgViewer) => matches!(
            action,
            Action::Read | Action::ReadSeats | Action::ReadSubAccount(_)
        ),
        AdminRole::Org(BillingAdmin) => {
            matches!(action, Action::ReadSeats | Action::ManageSeats)
        }
        AdminRole::Org(BillingViewer) => action == Action::ReadSeats,
        AdminRole::SubAccountAdmin => match action {
            Action::ReadSeats => true,
            Action::ReadSubAccount(sa) | Action::ManageGrant(Some(sa)) => {
                own_sub_account == Some(sa)
            }
            _ => false,
        },
    }
}

/// Errors of admin operations, rendered as RFC 9457 problem details by the HTTP layer.
#[derive(Debug)]
pub enum AdminError {
    Unauthorized,
    Forbidden,
    NotFound(String),
    Conflict(String),
    Invalid(String),
    /// Something the service depends on (DNS, say) did not answer; worth trying again.
    Unavailable(String),
    Internal,
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AdminError::NotFound("not found".into()),
            StoreError::Conflict(what) => AdminError::Conflict(format!("{what} already exists")),
            StoreError::Invalid(msg) => AdminError::Invalid(msg),
            e @ (StoreError::SeatLimit(_) | StoreError::OwnerProtected(_)) => {
                AdminError::Conflict(e.to_string())
            }
            StoreError::Scim(e) => AdminError::Invalid(e.detail),
            e => {
                tracing::error!(error = %e, "storage failure");
                AdminError::Internal
            }
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// Who calls an admin operation: the organization it acts for (the only [`OrgScope`] an operation
/// sees), its role parsed once, and the admin token it presented. Authentication makes one; the
/// operator's CLI makes the owner's.
#[derive(Debug, Clone)]
pub struct Caller {
    scope: OrgScope,
    role: AdminRole,
    sub_account_id: Option<String>,
    token_id: Option<String>,
}

impl Caller {
    /// An authenticated admin token. A role this service does not know (a row written by hand,
    /// say) allows nothing: 403.
    pub fn authenticated(principal: AdminPrincipal) -> AdminResult<Caller> {
        let role = principal.role.parse().map_err(|_| AdminError::Forbidden)?;
        Ok(Caller {
            scope: principal.scope,
            role,
            sub_account_id: principal.sub_account_id,
            token_id: Some(principal.token_id),
        })
    }
    /// The operator's CLI, which acts as the organization's owner.
    pub fn operator(scope: OrgScope) -> Caller {
        Caller {
            scope,
            role: AdminRole::Org(OrgRole::OrgOwner),
            sub_account_id: None,
            token_id: None,
        }
    }
    pub fn scope(&self) -> &OrgScope {
        &self.scope
    }
    pub fn role(&self) -> AdminRole {
        self.role
    }
    /// The sub-account of a sub-account admin.
    pub fn sub_account(&self) -> Option<&str> {
        self.sub_account_id.as_deref()
    }
    /// The admin token presented; `None` for the operator.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }
    /// Refuses with 403 unless the role allows `action`.
    pub fn require(&self, action: Action<'_>) -> AdminResult<()> {
        if allows(self.role, self.sub_account(), action) {
            Ok(())
        } else {
            Err(AdminError::Forbidden)
        }
    }
}

// ---- validation --------------------------------------------------------------------------------

const MAX_MATCH_VALUE: usize = 256;

async fn validate_matcher(tx: &mut Tx, scope: &OrgScope, m: &GroupMatcher) -> AdminResult<()> {
    let value = match m {
        GroupMatcher::GroupId { group_id } => group_id,
        GroupMatcher::ExternalId { external_id } => external_id,
        GroupMatcher::DisplayName { display_name } => display_name,
        GroupMatcher::Claim { value } => value,
        GroupMatcher::DirectoryDefault { directory_id } => directory_id,
    };
    if value.trim().is_empty() || value.len() > MAX_MATCH_VALUE {
        return Err(AdminError::Invalid(format!(
            "the matcher's value must be 1-{MAX_MATCH_VALUE} bytes"
        )));
    }
    // Ids are ours, so one that names nothing of this organization is a mistake (or another
    // organization's id); names and claim values may arrive from the IdP later.
    let unknown = match m {
        GroupMatcher::GroupId { group_id } => {
            !access_db::group_in_org(tx, scope.org_id(), group_id).await?
        }
        GroupMatcher::DirectoryDefault { directory_id } => {
            !access_db::directory_in_org(tx, scope.org_id(), directory_id).await?
        }
        _ => false,
    };
    if unknown {
        return Err(AdminError::Invalid(format!(
            "{value:?} is not a group or directory of this organization"
        )));
    }
    Ok(())
}

async fn validate_grant(tx: &mut Tx, scope: &OrgScope, g: &Grant) -> AdminResult<()> {
    if let Grant::ProjectRole {
        sub_account_id,
        project_id,
        ..
    } = g
    {
        if !db::project_exists(tx, scope, sub_account_id, project_id).await? {
            return Err(AdminError::Invalid(format!(
                "no project {project_id:?} in sub-account {sub_account_id:?} of this organization"
            )));
        }
    } else if let Some(sa) = grant_sub_account(g)
        && !db::sub_account_exists(tx, scope, sa).await?
    {
        return Err(AdminError::Invalid(format!(
            "no sub-account {sa:?} in this organization"
        )));
    }
    Ok(())
}

// ---- mapping rules -----------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    #[serde(default)]
    pub description: Option<String>,
    pub matcher: GroupMatcher,
    pub grant: Grant,
}

/// A proposed change of the rules, as preview and apply take it.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleChange {
    Create {
        #[serde(flatten)]
        rule: RuleInput,
    },
    Update {
        id: String,
        #[serde(flatten)]
        rule: RuleInput,
    },
    Delete {
        id: String,
    },
}

/// [`RuleChange`] as the OpenAPI document describes it: the same JSON with the rule's fields
/// written out in each variant. The flattened `RuleInput` would appear as an `allOf` inside a
/// `oneOf`, which client generators cannot read. Only its schema is used.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = RuleChange)]
#[serde(tag = "op", rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RuleChangeSchema {
    Create {
        description: Option<String>,
        matcher: GroupMatcher,
        grant: Grant,
    },
    Update {
        id: String,
        description: Option<String>,
        matcher: GroupMatcher,
        grant: Grant,
    },
    Delete {
        id: String,
    },
}

/// The result of a rule change (or of its preview): the rule as it now is, and who gained or lost
/// what.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleChangeResult {
    pub rule: Option<RuleRecord>,
    pub changes: Vec<UserOutcome>,
}

async fn apply_rule_change(
    tx: &mut Tx,
    scope: &OrgScope,
    change: &RuleChange,
) -> AdminResult<RuleChangeResult> {
    let mut org = access_db::load_org(tx, scope.org_id(), OrgLock::Exclusive).await?;
    let mut affected: BTreeSet<String> = BTreeSet::new();
    let t = now_micros();
    let (rule, op) = match change {
        RuleChange::Create { rule } => {
            validate_matcher(tx, scope, &rule.matcher).await?;
            validate_grant(tx, scope, &rule.grant).await?;
            let rec = RuleRecord {
                id: new_id(),
                description: rule.description.clone(),
                matcher: rule.matcher.clone(),
                grant: rule.grant.clone(),
                created_by: scope.actor().to_string(),
                created_at: t,
                updated_at: t,
            };
            db::insert_rule(tx, scope, &rec).await?;
            affected.extend(access_db::org_users_matching(tx, scope.org_id(), &rec.matcher).await?);
            org.rules.push(MappingRule {
                id: rec.id.clone(),
                matcher: rec.matcher.clone(),
                grant: rec.grant.clone(),
            });
            (Some(rec), "create")
        }
        RuleChange::Update { id, rule } => {
            let old = db::get_rule_tx(tx, scope, id).await?;
            validate_matcher(tx, scope, &rule.matcher).await?;
            validate_grant(tx, scope, &rule.grant).await?;
            let rec = RuleRecord {
                description: rule.description.clone(),
                matcher: rule.matcher.clone(),
                grant: rule.grant.clone(),
                updated_at: t,
                ..old.clone()
            };
            db::update_rule(tx, scope, &rec).await?;
            affected.extend(access_db::org_users_matching(tx, scope.org_id(), &old.matcher).await?);
            affected.extend(access_db::org_users_matching(tx, scope.org_id(), &rec.matcher).await?);
            for r in org.rules.iter_mut().filter(|r| r.id == rec.id) {
                r.matcher = rec.matcher.clone();
                r.grant = rec.grant.clone();
            }
            (Some(rec), "update")
        }
        RuleChange::Delete { id } => {
            let old = db::get_rule_tx(tx, scope, id).await?;
            db::delete_rule(tx, scope, id).await?;
            affected.extend(access_db::org_users_matching(tx, scope.org_id(), &old.matcher).await?);
            org.rules.retain(|r| r.id != *id);
            (None, "delete")
        }
    };
    let rule_id = match change {
        RuleChange::Update { id, .. } | RuleChange::Delete { id } => id.clone(),
        RuleChange::Create { .. } => rule.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
    };
    let mut prov = Provision::with_org(scope.org_id(), scope.actor(), org);
    prov.touch(affected);
    let changes = prov.finish(tx).await?;
    audit::record_as(
        tx,
        &scope.audit(),
        op,
        "MappingRule",
        Some(&rule_id),
        Some(&format!("{} users' access changed", changes.len())),
    )
    .await?;
    Ok(RuleChangeResult { rule, changes })
}

/// Applies a rule change and recomputes the users it can affect, in one transaction.
pub async fn change_rule(
    store: &Store,
    caller: &Caller,
    change: &RuleChange,
) -> AdminResult<RuleChangeResult> {
    caller.require(Action::Manage)?;
    let mut tx = store.begin().await?;
    let result = apply_rule_change(&mut tx, caller.scope(), change).await?;
    tx.commit().await?;
    Ok(result)
}

/// What a rule change would do, computed by making it in a transaction that is then rolled back:
/// the same code as [`change_rule`], so applying the change right after produces exactly this.
pub async fn preview_rule(
    store: &Store,
    caller: &Caller,
    change: &RuleChange,
) -> AdminResult<RuleChangeResult> {
    caller.require(Action::Read)?;
    let mut tx = store.begin().await?;
    let result = apply_rule_change(&mut tx, caller.scope(), change).await;
    tx.rollback().await?;
    result
}

// ---- grants made by hand -----------------------------------------------------------------------

pub async fn create_grant(
    store: &Store,
    caller: &Caller,
    user_id: &str,
    grant: Grant,
) -> AdminResult<(GrantRecord, Vec<UserOutcome>)> {
    caller.require(Action::ManageGrant(grant_sub_account(&grant)))?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    if !db::org_user_exists(&mut tx, scope, user_id).await? {
        return Err(AdminError::NotFound(format!("no user {user_id:?}")));
    }
    validate_grant(&mut tx, scope, &grant).await?;
    let rec = GrantRecord {
        id: new_id(),
        user_id: user_id.to_string(),
        sub_account_id: grant_sub_account(&grant).map(str::to_string),
        grant,
        granted_by: scope.actor().to_string(),
        created_at: now_micros(),
    };
    db::insert_grant(&mut tx, scope, &rec).await?;
    let mut prov = Provision::new(scope.org_id(), scope.actor());
    prov.touch([user_id.to_string()]);
    let changes = prov.finish(&mut tx).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        "create",
        "Grant",
        Some(&rec.id),
        Some(&format!("user {user_id}")),
    )
    .await?;
    tx.commit().await?;
    Ok((rec, changes))
}

pub async fn delete_grant(
    store: &Store,
    caller: &Caller,
    grant_id: &str,
) -> AdminResult<Vec<UserOutcome>> {
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let rec = db::get_grant_tx(&mut tx, scope, grant_id).await?;
    caller.require(Action::ManageGrant(rec.sub_account_id.as_deref()))?;
    db::delete_grant(&mut tx, scope, grant_id).await?;
    let mut prov = Provision::new(scope.org_id(), scope.actor());
    prov.touch([rec.user_id.clone()]);
    let changes = prov.finish(&mut tx).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        "delete",
        "Grant",
        Some(grant_id),
        Some(&format!("user {}", rec.user_id)),
    )
    .await?;
    tx.commit().await?;
    Ok(changes)
}

// ---- organization settings and ownership -------------------------------------------------------

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgPatch {
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

pub async fn update_org(
    store: &Store,
    caller: &Caller,
    patch: &OrgPatch,
) -> AdminResult<Vec<UserOutcome>> {
    if patch.seat_limit.is_some() {
        caller.require(Action::ManageSeats)?;
    }
    if patch.default_role.is_some() {
        caller.require(Action::Manage)?;
    }
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let mut org = access_db::load_org(&mut tx, scope.org_id(), OrgLock::Exclusive).await?;
    if let Some(limit) = patch.seat_limit {
        if limit.is_some_and(|l| l < 0) {
            return Err(AdminError::Invalid("seat_limit must be 0 or more".into()));
        }
        db::set_seat_limit(&mut tx, scope, limit).await?;
        audit::record_as(
            &mut tx,
            &scope.audit(),
            "update",
            "Organization",
            Some(scope.org_id()),
            Some(&format!("seat_limit {limit:?}")),
        )
        .await?;
    }
    let mut changes = Vec::new();
    if let Some(role) = patch.default_role
        && role != org.settings.default_role
    {
        db::set_default_role(&mut tx, scope, role.map(|r| r.as_str())).await?;
        org.settings.default_role = role;
        // The default role reaches every user whose groups match no rule: anyone.
        let everyone = access_db::all_org_users(&mut tx, scope.org_id()).await?;
        let mut prov = Provision::with_org(scope.org_id(), scope.actor(), org);
        prov.touch(everyone);
        changes = prov.finish(&mut tx).await?;
        audit::record_as(
            &mut tx,
            &scope.audit(),
            "update",
            "Organization",
            Some(scope.org_id()),
            Some(&format!("default_role {role:?}")),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(changes)
}

/// A new organization, and its owner when one was named.
#[derive(Debug, Clone)]
pub struct CreatedOrg {
    pub org: crate::store::directory::OrgRecord,
    pub owner_user_id: Option<String>,
}

/// Creates an organization, with its owner from the start when `owner_email` is given, so owner
/// protection holds on day one. The owner is a person of the organization at once, inactive and
/// taking no seat until SCIM or a sign-in brings that userName (matched case-insensitively, as
/// every userName is), which links and activates them. One transaction: the organization never
/// exists without the owner it was created with. The operator's CLI calls this; so will any API
/// that creates organizations.
pub async fn create_org(
    store: &Store,
    name: &str,
    owner_email: Option<&str>,
    actor: &str,
) -> AdminResult<CreatedOrg> {
    let owner_email = match owner_email.map(str::trim) {
        None => None,
        Some(e) if is_email(e) => Some(e),
        Some(e) => {
            return Err(AdminError::Invalid(format!(
                "the owner must be named by email address, got {e:?}"
            )));
        }
    };
    let mut tx = store.begin().await?;
    let org = crate::store::directory::insert_org(&mut tx, name).await?;
    let scope = db::OrgScope::for_org(&org.id, actor);
    let mut owner_user_id = None;
    if let Some(email) = owner_email {
        let (user_id, _) =
            access_db::link_org_user(&mut tx, &org.id, email, None, now_micros()).await?;
        db::set_owner(&mut tx, &scope, &user_id).await?;
        let mut prov = Provision::new(&org.id, actor);
        prov.touch([user_id.clone()]);
        prov.event(
            "owner.transferred",
            Some(&user_id),
            serde_json::json!({ "from": null, "to": user_id, "user_name": email }),
        );
        prov.finish(&mut tx).await?;
        owner_user_id = Some(user_id);
    }
    audit::record_as(
        &mut tx,
        &scope.audit(),
        "create",
        "Organization",
        Some(&org.id),
        Some(&match owner_email {
            Some(e) => format!("{} (owner {e})", org.name),
            None => format!("{} (no owner yet)", org.name),
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedOrg { org, owner_user_id })
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
pub async fn transfer_owner(
    store: &Store,
    caller: &Caller,
    user_id: &str,
) -> AdminResult<Vec<UserOutcome>> {
    caller.require(Action::TransferOwner)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let mut org = access_db::load_org(&mut tx, scope.org_id(), OrgLock::Exclusive).await?;
    let user = access_db::lock_org_users(&mut tx, scope.org_id(), &[user_id.to_string()]).await?;
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
    prov.touch([user_id.to_string()]);
    prov.touch(previous.clone());
    prov.event(
        "owner.transferred",
        Some(user_id),
        serde_json::json!({ "from": previous, "to": user_id }),
    );
    let changes = prov.finish(&mut tx).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        "transfer_owner",
        "Organization",
        Some(scope.org_id()),
        Some(&format!("{previous:?} -> {user_id}")),
    )
    .await?;
    tx.commit().await?;
    Ok(changes)
}

// ---- sub-accounts and projects -----------------------------------------------------------------

pub async fn create_sub_account(
    store: &Store,
    caller: &Caller,
    name: &str,
) -> AdminResult<db::SubAccount> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    let sa = db::insert_sub_account(&mut tx, scope, name).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        "create",
        "SubAccount",
        Some(&sa.id),
        Some(&sa.name),
    )
    .await?;
    tx.commit().await?;
    Ok(sa)
}

/// Refused while a rule or a grant made by hand names the sub-account: deleting it would silently
/// change what those mean.
pub async fn delete_sub_account(store: &Store, caller: &Caller, id: &str) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    access_db::load_org(&mut tx, scope.org_id(), OrgLock::Exclusive).await?;
    let refs = db::references(&mut tx, scope, id).await?;
    if refs > 0 {
        return Err(AdminError::Conflict(format!(
            "{refs} rules or grants give access in this sub-account; delete them first"
        )));
    }
    if !db::delete_sub_account(&mut tx, scope, id).await? {
        return Err(AdminError::NotFound(format!("no sub-account {id:?}")));
    }
    audit::record_as(
        &mut tx,
        &scope.audit(),
        "delete",
        "SubAccount",
        Some(id),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn create_project(
    store: &Store,
    caller: &Caller,
    sub_account_id: &str,
    name: &str,
) -> AdminResult<db::Project> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    if !db::sub_account_exists(&mut tx, scope, sub_account_id).await? {
        return Err(AdminError::NotFound(format!(
            "no sub-account {sub_account_id:?}"
        )));
    }
    let p = db::insert_project(&mut tx, scope, sub_account_id, name).await?;
    audit::record_as(
        &mut tx,
        &scope.audit(),
        "create",
        "Project",
        Some(&p.id),
        Some(&p.name),
    )
    .await?;
    tx.commit().await?;
    Ok(p)
}

pub async fn delete_project(
    store: &Store,
    caller: &Caller,
    sub_account_id: &str,
    id: &str,
) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    let scope = caller.scope();
    let mut tx = store.begin().await?;
    access_db::load_org(&mut tx, scope.org_id(), OrgLock::Exclusive).await?;
    let refs = db::references(&mut tx, scope, id).await?;
    if refs > 0 {
        return Err(AdminError::Conflict(format!(
            "{refs} rules or grants give a role in this project; delete them first"
        )));
    }
    if !db::delete_project(&mut tx, scope, sub_account_id, id).await? {
        return Err(AdminError::NotFound(format!("no project {id:?}")));
    }
    audit::record_as(&mut tx, &scope.audit(), "delete", "Project", Some(id), None).await?;
    tx.commit().await?;
    Ok(())
}

// ---- effective access --------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OrgRoleView {
    pub role: OrgRole,
    #[schema(value_type = Vec<Object>)]
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubAccountView {
    pub id: String,
    pub name: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub access: SubAccountAccess,
}

/// A user's effective access: organization roles, and the access in every sub-account of the
/// organization (including sub-accounts created after the grants), each with its reasons.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccessView {
    pub user_id: String,
    pub user_name: String,
    pub active: bool,
    pub org_roles: Vec<OrgRoleView>,
    pub sub_accounts: Vec<SubAccountView>,
    /// Every source of access per scope (organization, each sub-account, feature, project),
    /// including those outranked by a higher grant; `wins` marks those that give what is held.
    pub scopes: Vec<ScopeReasons>,
}

pub async fn user_access(store: &Store, caller: &Caller, user_id: &str) -> AdminResult<AccessView> {
    let own = caller.sub_account();
    match (caller.role, own) {
        (AdminRole::SubAccountAdmin, Some(sa)) => caller.require(Action::ReadSubAccount(sa))?,
        _ => caller.require(Action::Read)?,
    }
    let scope = caller.scope();
    let user = store.get_org_user(scope, user_id).await?;
    let access: EffectiveAccess = serde_json::from_str(&user.access).unwrap_or_default();
    let sub_accounts = store.list_sub_accounts(scope).await?;
    let restricted = caller.role == AdminRole::SubAccountAdmin;
    let visible: Vec<String> = sub_accounts
        .iter()
        .filter(|sa| !restricted || own == Some(sa.id.as_str()))
        .map(|sa| sa.id.clone())
        .collect();
    // The same inputs the last recomputation read, to show the sources it discarded too.
    let mut tx = store.begin().await?;
    let org = access_db::load_org(&mut tx, scope.org_id(), OrgLock::Share).await?;
    let facts = access_db::user_facts(&mut tx, std::slice::from_ref(&user.id))
        .await?
        .remove(&user.id)
        .unwrap_or_default();
    tx.rollback().await?;
    let groups = crate::mapping::UserGroups {
        directory_ids: facts.directory_ids,
        groups: facts.groups,
        claim_values: facts.claims,
    };
    let is_owner = org.owner_user_id.as_deref() == Some(user.id.as_str());
    let mut scopes = explain(
        &groups,
        is_owner,
        user.active,
        &org.rules,
        &facts.manual,
        &org.settings,
        &visible,
    );
    if restricted {
        scopes.retain(|s| s.scope != "organization");
    }
    Ok(AccessView {
        scopes,
        user_id: user.id,
        user_name: user.user_name,
        active: user.active,
        org_roles: if restricted {
            Vec::new()
        } else {
            access
                .org_roles()
                .iter()
                .map(|(role, reasons)| OrgRoleView {
                    role: *role,
                    reasons: reasons.iter().cloned().collect(),
                })
                .collect()
        },
        sub_accounts: sub_accounts
            .into_iter()
            .filter(|sa| !restricted || own == Some(sa.id.as_str()))
            .map(|sa| SubAccountView {
                access: access.for_sub_account(&sa.id),
                id: sa.id,
                name: sa.name,
            })
            .collect(),
    })
}

// ---- admin tokens ------------------------------------------------------------------------------

/// Whether a caller may see (and so revoke) a token of `role`: managing tokens is for the owner and
/// admins, and only the owner sees owner tokens, so an admin cannot lock the owner out.
fn token_visible(caller: &Caller, role: &str) -> bool {
    caller.role == AdminRole::Org(OrgRole::OrgOwner) || role != "org_owner"
}

/// The organization's admin tokens the caller may see: never a secret or a hash.
pub async fn list_admin_tokens(
    store: &Store,
    caller: &Caller,
) -> AdminResult<Vec<db::AdminTokenInfo>> {
    caller.require(Action::Manage)?;
    let mut items = store.list_admin_tokens(caller.scope()).await?;
    items.retain(|t| token_visible(caller, &t.role));
    Ok(items)
}

/// Revokes a token; the next request that presents it is refused.
pub async fn revoke_admin_token(store: &Store, caller: &Caller, id: &str) -> AdminResult<()> {
    caller.require(Action::Manage)?;
    let tokens = store.list_admin_tokens(caller.scope()).await?;
    let Some(t) = tokens
        .iter()
        .find(|t| t.id == id && token_visible(caller, &t.role))
    else {
        return Err(AdminError::NotFound("no such admin token".into()));
    };
    if t.revoked_at.is_some() {
        return Err(AdminError::Conflict(
            "this admin token is already revoked".into(),
        ));
    }
    store
        .revoke_admin_token(caller.scope(), id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                AdminError::Conflict("this admin token is already revoked".into())
            }
            e => e.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrgRole::*;

    #[test]
    fn roles_authorize_what_the_product_says() {
        let all = [
            Action::ReadSeats,
            Action::ManageSeats,
            Action::Read,
            Action::Manage,
            Action::TransferOwner,
            Action::ManageOwnerSignIn,
            Action::ReadSubAccount("sa1"),
            Action::ManageGrant(Some("sa1")),
            Action::ManageGrant(Some("sa2")),
            Action::ManageGrant(None),
        ];
        let allowed = |role: AdminRole, own: Option<&str>| -> Vec<Action<'static>> {
            all.iter()
                .copied()
                .filter(|a| allows(role, own, *a))
                .collect()
        };
        assert_eq!(allowed(AdminRole::Org(OrgOwner), None), all.to_vec());
        assert_eq!(
            allowed(AdminRole::Org(OrgAdmin), None),
            all.iter()
                .copied()
                .filter(|a| !matches!(a, Action::TransferOwner | Action::ManageOwnerSignIn))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            allowed(AdminRole::Org(OrgViewer), None),
            vec![
                Action::ReadSeats,
                Action::Read,
                Action::ReadSubAccount("sa1")
            ]
        );
        assert_eq!(
            allowed(AdminRole::Org(BillingAdmin), None),
            vec![Action::ReadSeats, Action::ManageSeats]
        );
        assert_eq!(
            allowed(AdminRole::Org(BillingViewer), None),
            vec![Action::ReadSeats]
        );
        assert_eq!(
            allowed(AdminRole::SubAccountAdmin, Some("sa1")),
            vec![
                Action::ReadSeats,
                Action::ReadSubAccount("sa1"),
                Action::ManageGrant(Some("sa1"))
            ]
        );
    }

    #[test]
    fn admin_roles_parse_with_one_spelling() {
        assert_eq!(
            "org_admin".parse::<AdminRole>(),
            Ok(AdminRole::Org(OrgAdmin))
        );
        assert_eq!(
            "sub_account_admin".parse::<AdminRole>(),
            Ok(AdminRole::SubAccountAdmin)
        );
        assert!("admin".parse::<AdminRole>().is_err());
        for r in ["org_owner", "billing_viewer", "sub_account_admin"] {
            assert_eq!(r.parse::<AdminRole>().unwrap().to_string(), r);
        }
    }
}
