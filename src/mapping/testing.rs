//! Short constructors for the mapping tests, so each table row reads as the rule it describes.

use crate::domain::access::{Feature, Level, OrgRole, ProjectRole, SubAccountRole};
use crate::mapping::effective::Reason;
use crate::mapping::rule::{
    Grant, GroupMatcher, GroupRef, ManualGrant, MappingRule, Matched, Source, SubAccountScope,
    UserGroups,
};

pub fn all() -> SubAccountScope {
    SubAccountScope::All
}

pub fn one(id: &str) -> SubAccountScope {
    SubAccountScope::One(id.into())
}

pub fn by_name(name: &str) -> GroupMatcher {
    GroupMatcher::DisplayName {
        display_name: name.into(),
    }
}

pub fn by_id(id: &str) -> GroupMatcher {
    GroupMatcher::GroupId {
        group_id: id.into(),
    }
}

pub fn by_ext(external_id: &str) -> GroupMatcher {
    GroupMatcher::ExternalId {
        external_id: external_id.into(),
    }
}

pub fn by_claim(value: &str) -> GroupMatcher {
    GroupMatcher::Claim {
        value: value.into(),
    }
}

pub fn by_dir(directory_id: &str) -> GroupMatcher {
    GroupMatcher::DirectoryDefault {
        directory_id: directory_id.into(),
    }
}

pub fn org(role: OrgRole) -> Grant {
    Grant::org_role(role).expect("not the owner")
}

pub fn role(scope: SubAccountScope, role: SubAccountRole) -> Grant {
    Grant::SubAccountRole {
        sub_account: scope,
        role,
    }
}

pub fn feats(scope: SubAccountScope, levels: &[(Feature, Level)]) -> Grant {
    Grant::features(scope, levels.iter().copied()).expect("valid levels")
}

pub fn project(sub_account_id: &str, project_id: &str, role: ProjectRole) -> Grant {
    Grant::ProjectRole {
        sub_account_id: sub_account_id.into(),
        project_id: project_id.into(),
        role,
    }
}

pub fn rule(id: &str, matcher: GroupMatcher, grant: Grant) -> MappingRule {
    MappingRule {
        id: id.into(),
        matcher,
        grant,
        source: Source::Any,
    }
}

pub fn manual(id: &str, granted_by: &str, grant: Grant) -> ManualGrant {
    ManualGrant {
        id: id.into(),
        grant,
        granted_by: granted_by.into(),
    }
}

/// A user of directory `dir-okta` in groups named by display name; each group's id is
/// `id-<name>` and its externalId `ext-<name>`.
pub fn member_of(names: &[&str]) -> UserGroups {
    UserGroups {
        directory_ids: vec!["dir-okta".into()],
        groups: names
            .iter()
            .map(|n| GroupRef {
                id: format!("id-{n}"),
                external_id: Some(format!("ext-{n}")),
                display_name: (*n).into(),
                directory_id: "dir-okta".into(),
            })
            .collect(),
        claim_values: vec![],
        claims_from: None,
    }
}

/// The reason a rule gives when it matched the group named `name` of [`member_of`].
pub fn via(rule_id: &str, name: &str) -> Reason {
    Reason::Rule {
        rule_id: rule_id.into(),
        matched: Matched::Group {
            group_id: format!("id-{name}"),
            display_name: name.into(),
        },
    }
}

pub fn by_hand(grant_id: &str, granted_by: &str) -> Reason {
    Reason::Manual {
        grant_id: grant_id.into(),
        granted_by: granted_by.into(),
    }
}
