//! Group-to-role mapping, pure: a user's group facts, the organization's mapping rules, the user's
//! manual grants and the organization's settings go in; the user's effective access comes out,
//! every grant with the reasons it exists. No IO, no clock, no database: the service layer loads
//! the inputs and provisions the result.
//!
//! - [`rule`]: what an organization configures (rules, matchers, grants, settings) and what a user
//!   brings (directories, groups, SSO claim values).
//! - [`effective`]: [`effective_access`], union of all sources with the highest role or level
//!   winning per scope, and resolution of one sub-account from its own and the `All` grants.
//! - [`explain`]: every source of a user's access per scope, the winning ones marked.
//! - [`diff`]: what changes between two effective accesses, and [`preview`] of a rule change over
//!   many users.
//!
//! Mappings only ever add access. The organization owner is a fact passed in, never a grant, so no
//! rule set can make or unmake an owner.

pub mod diff;
pub mod effective;
pub mod explain;
pub mod rule;
#[cfg(test)]
mod testing;

pub use diff::{AccessChange, PreviewUser, UserChanges, diff, preview};
pub use effective::{
    AccessReasons, EffectiveAccess, Granted, Reason, SubAccountAccess, effective_access,
};
pub use rule::{
    FeatureLevels, Grant, GrantError, GrantableOrgRole, GroupMatcher, GroupRef, ManualGrant,
    MappingRule, Matched, OrgSettings, SubAccountScope, UserGroups,
};
