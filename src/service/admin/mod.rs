//! The admin API's operations, for the API, the CLI and any console alike: who may do what
//! ([`Caller`], [`allows`]), the reads, and the changes that recompute access (rules, grants made
//! by hand, the default role, ownership) in the same transaction as the change. One file per kind
//! of resource.

use std::fmt;
use std::str::FromStr;

use crate::domain::access::OrgRole;
use crate::service::provision::ProvisionError;
use crate::store::StoreError;
use crate::store::admin::{AdminPrincipal, OrgScope};

mod access;
mod audit;
mod directories;
mod grants;
mod org;
mod people;
mod rule_helpers;
mod rules;
mod sso;
mod sub_accounts;
mod tokens;
mod views;
mod webhooks;

pub use access::*;
pub use audit::*;
pub use directories::*;
pub use grants::*;
pub use org::*;
pub use people::*;
pub use rule_helpers::*;
pub use rules::*;
pub use sso::*;
pub use sub_accounts::*;
pub use tokens::*;
pub use views::*;
pub use webhooks::*;

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
    /// What only the deployment's operator does, with the CLI or a platform token, and no admin
    /// token whatever its role: rename the organization or change its key in the SaaS, delete it,
    /// mint admin tokens. An owner who could mint tokens or delete the organization would need
    /// no one; the SaaS that sells the organization decides those.
    Operate,
}

/// Authorization with the roles this service manages: Org Owner and Admin manage everything of
/// their organization (only the owner transfers ownership); Org Viewer reads; billing roles see
/// seats and nothing of mappings; a sub-account admin manages grants in their sub-account only.
pub fn allows(role: AdminRole, own_sub_account: Option<&str>, action: Action<'_>) -> bool {
    use OrgRole::*;
    match role {
        AdminRole::Org(OrgOwner) => action != Action::Operate,
        AdminRole::Org(OrgAdmin) => !matches!(
            action,
            Action::TransferOwner | Action::ManageOwnerSignIn | Action::Operate
        ),
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
            e if e.is_unavailable() => {
                tracing::warn!(error = %e, "database unavailable");
                AdminError::Unavailable(crate::service::DATABASE_UNAVAILABLE.into())
            }
            e => {
                tracing::error!(error = %e, "storage failure");
                AdminError::Internal
            }
        }
    }
}

impl From<ProvisionError> for AdminError {
    fn from(e: ProvisionError) -> Self {
        match e {
            e @ (ProvisionError::SeatLimit(_) | ProvisionError::OwnerProtected(_)) => {
                AdminError::Conflict(e.to_string())
            }
            ProvisionError::Store(e) => e.into(),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// Where a caller's authority comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// An admin token of the organization, limited by its role.
    AdminToken,
    /// The operator's CLI, on the machine with the database.
    Operator,
    /// A platform token: the SaaS's backend, which reaches every organization.
    Platform,
    /// A console session: opened by a portal link (limited to the pages of its intent), or by a
    /// person's sign-in (limited by their role).
    Console,
}

/// Who calls an admin operation: the organization it acts for (the only [`OrgScope`] an operation
/// sees), its role parsed once, and the token it presented. Authentication makes one; the
/// operator's CLI and a platform token act as the owner, and may also [`Action::Operate`].
#[derive(Debug, Clone)]
pub struct Caller {
    scope: OrgScope,
    role: AdminRole,
    sub_account_id: Option<String>,
    token_id: Option<String>,
    authority: Authority,
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
            authority: Authority::AdminToken,
        })
    }
    /// The operator's CLI, which acts as the organization's owner.
    pub fn operator(scope: OrgScope) -> Caller {
        Caller {
            scope,
            role: AdminRole::Org(OrgRole::OrgOwner),
            sub_account_id: None,
            token_id: None,
            authority: Authority::Operator,
        }
    }
    /// A platform token acting on one organization, recorded in its audit log as
    /// `platform-token:{id}` (the scope's actor). Only the platform API makes these, once the
    /// organization is known to exist.
    pub fn platform(scope: OrgScope, token_id: &str) -> Caller {
        Caller {
            scope,
            role: AdminRole::Org(OrgRole::OrgOwner),
            sub_account_id: None,
            token_id: Some(token_id.to_string()),
            authority: Authority::Platform,
        }
    }
    /// A console session opened by a portal link, recorded in the audit log as
    /// `portal-link:{id}` (the scope's actor). It acts as an organization admin: the IT admin
    /// the SaaS sent sets up SSO and SCIM, but neither takes over the connection the owner signs
    /// in through nor operates the deployment.
    pub fn console(scope: OrgScope, link_id: &str) -> Caller {
        Caller {
            scope,
            role: AdminRole::Org(OrgRole::OrgAdmin),
            sub_account_id: None,
            token_id: Some(link_id.to_string()),
            authority: Authority::Console,
        }
    }
    /// A console session a person opened by signing in through their organization's SSO: their
    /// organization role (owner, admin or viewer, from the mapping) decides what it may do.
    /// Named in the audit log by the scope's actor; `org_user_id` is who they are.
    pub fn console_user(scope: OrgScope, role: OrgRole, org_user_id: &str) -> Caller {
        Caller {
            scope,
            role: AdminRole::Org(role),
            sub_account_id: None,
            token_id: Some(org_user_id.to_string()),
            authority: Authority::Console,
        }
    }
    pub fn authority(&self) -> Authority {
        self.authority
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
    /// The admin or platform token presented; `None` for the operator.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }
    /// Refuses with 403 unless the role allows `action`.
    pub fn require(&self, action: Action<'_>) -> AdminResult<()> {
        let allowed = match action {
            Action::Operate => {
                matches!(self.authority, Authority::Operator | Authority::Platform)
            }
            _ => allows(self.role, self.sub_account(), action),
        };
        if allowed {
            Ok(())
        } else {
            Err(AdminError::Forbidden)
        }
    }
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
            Action::Operate,
        ];
        let allowed = |role: AdminRole, own: Option<&str>| -> Vec<Action<'static>> {
            all.iter()
                .copied()
                .filter(|a| allows(role, own, *a))
                .collect()
        };
        // No admin token operates the deployment, whatever its role.
        assert_eq!(
            allowed(AdminRole::Org(OrgOwner), None),
            all.iter()
                .copied()
                .filter(|a| *a != Action::Operate)
                .collect::<Vec<_>>()
        );
        assert_eq!(
            allowed(AdminRole::Org(OrgAdmin), None),
            all.iter()
                .copied()
                .filter(|a| !matches!(
                    a,
                    Action::TransferOwner | Action::ManageOwnerSignIn | Action::Operate
                ))
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
    fn only_the_operator_and_a_platform_token_operate_the_deployment() {
        let scope = || OrgScope::for_org("o1", "t");
        let owner_token = Caller::authenticated(AdminPrincipal {
            scope: scope(),
            token_id: "t1".into(),
            role: "org_owner".into(),
            sub_account_id: None,
        })
        .unwrap();
        assert!(owner_token.require(Action::Manage).is_ok());
        assert!(matches!(
            owner_token.require(Action::Operate),
            Err(AdminError::Forbidden)
        ));
        assert!(matches!(
            Caller::console(scope(), "l1").require(Action::Operate),
            Err(AdminError::Forbidden)
        ));
        for c in [Caller::operator(scope()), Caller::platform(scope(), "p1")] {
            assert!(c.require(Action::Operate).is_ok(), "{c:?}");
            assert!(c.require(Action::TransferOwner).is_ok(), "{c:?}");
        }
        assert_eq!(Caller::platform(scope(), "p1").token_id(), Some("p1"));
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
