//! What an organization configures (mapping rules, manual grants, settings) and what a user brings
//! to be matched (directories, SCIM groups, SSO group-claim values).
//!
//! Grants that would be dangerous or meaningless cannot be built: [`GrantableOrgRole`] excludes
//! the owner, [`FeatureLevels`] is never empty and never holds `none`. Both checks also run when
//! deserializing, so a stored or submitted rule is valid once it is parsed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::access::{Feature, Level, OrgRole, ProjectRole, SubAccountRole};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    OwnerNotGrantable,
    NoFeatures,
    NoneLevel(Feature),
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::OwnerNotGrantable => f.write_str(
                "org_owner cannot be granted: ownership changes only by explicit transfer",
            ),
            GrantError::NoFeatures => {
                f.write_str("a features grant must name at least one feature")
            }
            GrantError::NoneLevel(feature) => write!(
                f,
                "{feature}: level none grants nothing and cannot revoke access; leave the feature out"
            ),
        }
    }
}

impl std::error::Error for GrantError {}

/// An organization role a rule or an admin may grant: any but [`OrgRole::OrgOwner`].
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(try_from = "OrgRole", into = "OrgRole")]
pub struct GrantableOrgRole(OrgRole);

impl GrantableOrgRole {
    pub fn get(self) -> OrgRole {
        self.0
    }
}

impl TryFrom<OrgRole> for GrantableOrgRole {
    type Error = GrantError;

    fn try_from(role: OrgRole) -> Result<Self, GrantError> {
        match role {
            OrgRole::OrgOwner => Err(GrantError::OwnerNotGrantable),
            other => Ok(GrantableOrgRole(other)),
        }
    }
}

impl From<GrantableOrgRole> for OrgRole {
    fn from(role: GrantableOrgRole) -> OrgRole {
        role.0
    }
}

/// Feature levels a grant gives: at least one feature, none at level `none`.
///
/// Grants only add access (highest wins), so `none` could never take anything away; accepting it
/// would let an admin believe a rule revokes access when it does not, and a rule that grants
/// nothing would still count as matched and suppress the default role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "BTreeMap<Feature, Level>")]
pub struct FeatureLevels(BTreeMap<Feature, Level>);

impl FeatureLevels {
    pub fn iter(&self) -> impl Iterator<Item = (Feature, Level)> + '_ {
        self.0.iter().map(|(f, l)| (*f, *l))
    }
}

impl TryFrom<BTreeMap<Feature, Level>> for FeatureLevels {
    type Error = GrantError;

    fn try_from(levels: BTreeMap<Feature, Level>) -> Result<Self, GrantError> {
        if levels.is_empty() {
            return Err(GrantError::NoFeatures);
        }
        match levels.iter().find(|(_, l)| **l == Level::None) {
            Some((f, _)) => Err(GrantError::NoneLevel(*f)),
            None => Ok(FeatureLevels(levels)),
        }
    }
}

/// Which sub-accounts a grant covers.
///
/// `All` is kept as one grant, never expanded into per-account rows, so it also covers
/// sub-accounts created after the grant without anyone re-running the mapping.
///
/// JSON: `"all"` or `{"one": "<sub-account id>"}`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SubAccountScope {
    All,
    One(String),
}

/// Access given by a mapping rule or by hand. JSON: `{"type": "sub_account_role", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Grant {
    OrgRole {
        role: GrantableOrgRole,
    },
    SubAccountRole {
        sub_account: SubAccountScope,
        role: SubAccountRole,
    },
    Features {
        sub_account: SubAccountScope,
        levels: FeatureLevels,
    },
    /// The sub-account is named beside the project so the grant resolves without a lookup, and so a
    /// project role never leaks into another sub-account's view.
    ProjectRole {
        sub_account_id: String,
        project_id: String,
        role: ProjectRole,
    },
}

impl Grant {
    /// A grant of an organization role; the owner is refused.
    pub fn org_role(role: OrgRole) -> Result<Grant, GrantError> {
        Ok(Grant::OrgRole {
            role: role.try_into()?,
        })
    }

    /// A grant of feature levels; an empty map or a `none` level is refused.
    pub fn features(
        sub_account: SubAccountScope,
        levels: impl IntoIterator<Item = (Feature, Level)>,
    ) -> Result<Grant, GrantError> {
        Ok(Grant::Features {
            sub_account,
            levels: levels.into_iter().collect::<BTreeMap<_, _>>().try_into()?,
        })
    }
}

/// Which users a rule applies to.
///
/// Group id, externalId and claim value compare exactly (SCIM's `id` and `externalId` are
/// caseExact, and claim values are opaque strings from the IdP); displayName compares without case,
/// as SCIM defines it. Matching spans every directory of the organization: a displayName or
/// externalId matcher matches a group of that name in any of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GroupMatcher {
    GroupId {
        group_id: String,
    },
    ExternalId {
        external_id: String,
    },
    DisplayName {
        display_name: String,
    },
    /// A value of the SSO assertion's group claim, for IdPs that send groups only at sign-in.
    Claim {
        value: String,
    },
    /// Every user provisioned by that directory, whatever their groups.
    DirectoryDefault {
        directory_id: String,
    },
}

/// What made a rule match, kept in the grant's reasons.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Matched {
    Group {
        group_id: String,
        display_name: String,
    },
    Claim {
        value: String,
    },
    Directory {
        directory_id: String,
    },
}

/// The IdP a rule's groups or claims must come from. An organization's IdPs are not equally
/// trusted (a contractor's directory can name a group like a mapped one), so a rule names its
/// source. JSON: `"any"`, `{"directory": "<id>"}` or `{"connection": "<id>"}`.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Every directory and connection of the organization.
    #[default]
    Any,
    Directory(String),
    Connection(String),
}

impl Source {
    fn directory(&self, id: &str) -> bool {
        match self {
            Source::Any => true,
            Source::Directory(d) => d == id,
            Source::Connection(_) => false,
        }
    }

    fn connection(&self, id: Option<&str>) -> bool {
        match self {
            Source::Any => true,
            Source::Connection(c) => Some(c.as_str()) == id,
            Source::Directory(_) => false,
        }
    }
}

impl GroupMatcher {
    /// Everything in `user` this matcher matches; empty when it does not apply. One reason per
    /// matching group, because two directories may each hold a group of the same displayName.
    pub fn matches(&self, user: &UserGroups) -> Vec<Matched> {
        self.matches_from(&Source::Any, user)
    }

    /// The same, among the groups of `source`'s directories and the claims of its connections.
    pub fn matches_from(&self, source: &Source, user: &UserGroups) -> Vec<Matched> {
        let group = |g: &GroupRef| Matched::Group {
            group_id: g.id.clone(),
            display_name: g.display_name.clone(),
        };
        let groups = || {
            user.groups
                .iter()
                .filter(|g| source.directory(&g.directory_id))
        };
        match self {
            GroupMatcher::GroupId { group_id } => {
                groups().filter(|g| g.id == *group_id).map(group).collect()
            }
            GroupMatcher::ExternalId { external_id } => groups()
                .filter(|g| g.external_id.as_deref() == Some(external_id.as_str()))
                .map(group)
                .collect(),
            GroupMatcher::DisplayName { display_name } => groups()
                .filter(|g| eq_ignore_case(&g.display_name, display_name))
                .map(group)
                .collect(),
            GroupMatcher::Claim { value } => user
                .claim_values
                .iter()
                .filter(|_| source.connection(user.claims_from.as_deref()))
                .filter(|v| *v == value)
                .map(|v| Matched::Claim { value: v.clone() })
                .collect(),
            GroupMatcher::DirectoryDefault { directory_id } => user
                .directory_ids
                .iter()
                .filter(|d| source.directory(d))
                .filter(|d| *d == directory_id)
                .map(|d| Matched::Directory {
                    directory_id: d.clone(),
                })
                .collect(),
        }
    }
}

/// Unicode lowercase mapping on both sides, char by char so nothing is allocated: "ÉQUIPE"
/// matches "équipe". Not full case folding, so "STRASSE" does not match "straße".
fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// One rule of an organization: users matching `matcher` receive `grant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRule {
    pub id: String,
    pub matcher: GroupMatcher,
    pub grant: Grant,
    #[serde(default)]
    pub source: Source,
}

impl MappingRule {
    /// What the rule's matcher matches among what its source brought.
    pub fn matches(&self, user: &UserGroups) -> Vec<Matched> {
        self.matcher.matches_from(&self.source, user)
    }
}

/// A grant an admin made by hand for one user. Mappings never create, change or remove these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualGrant {
    pub id: String,
    pub grant: Grant,
    /// The admin who made the grant, reported with every access it produces.
    pub granted_by: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrgSettings {
    /// The role in all sub-accounts of a user whose groups match no rule. `None` (the default)
    /// gives such users nothing, which is the safe choice for an IdP that provisions everyone.
    pub default_role: Option<SubAccountRole>,
}

/// A SCIM group the user is a member of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub id: String,
    pub external_id: Option<String>,
    pub display_name: String,
    /// The directory that provisions the group.
    #[serde(default)]
    pub directory_id: String,
}

/// What is known about a user's groups: the directories that provision them, their SCIM group
/// memberships and the group-claim values of their last SSO sign-in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserGroups {
    pub directory_ids: Vec<String>,
    pub groups: Vec<GroupRef>,
    pub claim_values: Vec<String>,
    /// The connection of the sign-in that brought the claim values (each sign-in replaces them).
    pub claims_from: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(id: &str, external_id: Option<&str>, display_name: &str) -> GroupRef {
        GroupRef {
            id: id.into(),
            external_id: external_id.map(Into::into),
            display_name: display_name.into(),
            directory_id: "dir-okta".into(),
        }
    }

    fn user() -> UserGroups {
        UserGroups {
            directory_ids: vec!["dir-okta".into()],
            groups: vec![
                group("g1", Some("00gA"), "Engineering"),
                group("g2", None, "ÉQUIPE Paris"),
                group("g3", Some("ext-3"), "engineering"),
            ],
            claim_values: vec!["sso-admins".into()],
            claims_from: Some("conn-okta".into()),
        }
    }

    fn g(id: &str, name: &str) -> Matched {
        Matched::Group {
            group_id: id.into(),
            display_name: name.into(),
        }
    }

    #[test]
    fn matching() {
        let m = |j: serde_json::Value| serde_json::from_value::<GroupMatcher>(j).unwrap();
        let cases = [
            (
                m(json!({"type": "group_id", "group_id": "g1"})),
                vec![g("g1", "Engineering")],
            ),
            (m(json!({"type": "group_id", "group_id": "G1"})), vec![]),
            (m(json!({"type": "group_id", "group_id": "00gA"})), vec![]),
            (
                m(json!({"type": "external_id", "external_id": "00gA"})),
                vec![g("g1", "Engineering")],
            ),
            (
                m(json!({"type": "external_id", "external_id": "00ga"})),
                vec![],
            ),
            (
                m(json!({"type": "external_id", "external_id": "g2"})),
                vec![],
            ),
            (
                m(json!({"type": "display_name", "display_name": "ENGINEERING"})),
                vec![g("g1", "Engineering"), g("g3", "engineering")],
            ),
            (
                m(json!({"type": "display_name", "display_name": "équipe paris"})),
                vec![g("g2", "ÉQUIPE Paris")],
            ),
            (
                m(json!({"type": "display_name", "display_name": "Engineer"})),
                vec![],
            ),
            (
                m(json!({"type": "display_name", "display_name": "Engineering "})),
                vec![],
            ),
            (
                m(json!({"type": "claim", "value": "sso-admins"})),
                vec![Matched::Claim {
                    value: "sso-admins".into(),
                }],
            ),
            (m(json!({"type": "claim", "value": "SSO-admins"})), vec![]),
            (m(json!({"type": "claim", "value": "Engineering"})), vec![]),
            (
                m(json!({"type": "directory_default", "directory_id": "dir-okta"})),
                vec![Matched::Directory {
                    directory_id: "dir-okta".into(),
                }],
            ),
            (
                m(json!({"type": "directory_default", "directory_id": "dir-entra"})),
                vec![],
            ),
        ];
        for (matcher, want) in cases {
            assert_eq!(matcher.matches(&user()), want, "{matcher:?}");
        }
        let nobody = UserGroups::default();
        assert!(
            GroupMatcher::DirectoryDefault {
                directory_id: "dir-okta".into()
            }
            .matches(&nobody)
            .is_empty()
        );
    }

    #[test]
    fn a_source_limits_what_a_matcher_sees() {
        let mut u = user();
        u.groups.push(GroupRef {
            directory_id: "dir-contractors".into(),
            ..group("g9", None, "Engineering")
        });
        let by_name = GroupMatcher::DisplayName {
            display_name: "engineering".into(),
        };
        let dir = |d: &str| Source::Directory(d.into());
        assert_eq!(by_name.matches_from(&Source::Any, &u).len(), 3);
        assert_eq!(by_name.matches_from(&dir("dir-okta"), &u).len(), 2);
        assert_eq!(
            by_name.matches_from(&dir("dir-contractors"), &u),
            vec![g("g9", "Engineering")]
        );
        assert!(
            by_name
                .matches_from(&Source::Connection("conn-okta".into()), &u)
                .is_empty()
        );
        let claim = GroupMatcher::Claim {
            value: "sso-admins".into(),
        };
        assert_eq!(
            claim
                .matches_from(&Source::Connection("conn-okta".into()), &u)
                .len(),
            1
        );
        assert!(
            claim
                .matches_from(&Source::Connection("conn-other".into()), &u)
                .is_empty()
        );
        assert!(claim.matches_from(&dir("dir-okta"), &u).is_empty());
        let json = |s: &Source| serde_json::to_value(s).unwrap();
        assert_eq!(json(&Source::Any), json!("any"));
        assert_eq!(json(&dir("d1")), json!({"directory": "d1"}));
    }

    #[test]
    fn owner_is_not_grantable() {
        for &role in OrgRole::ALL {
            let got = GrantableOrgRole::try_from(role).map(GrantableOrgRole::get);
            let want = match role {
                OrgRole::OrgOwner => Err(GrantError::OwnerNotGrantable),
                other => Ok(other),
            };
            assert_eq!(got, want);
        }
        assert_eq!(
            Grant::org_role(OrgRole::OrgOwner),
            Err(GrantError::OwnerNotGrantable)
        );
        let err = serde_json::from_value::<MappingRule>(json!({
            "id": "r1",
            "matcher": {"type": "claim", "value": "admins"},
            "grant": {"type": "org_role", "role": "org_owner"}
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("org_owner cannot be granted"),
            "{err}"
        );
        let err = serde_json::from_value::<ManualGrant>(json!({
            "id": "m1", "granted_by": "alice",
            "grant": {"type": "org_role", "role": "org_owner"}
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("org_owner cannot be granted"),
            "{err}"
        );
    }

    #[test]
    fn feature_levels_are_validated() {
        use Feature::*;
        use Level::{Full, Read};
        type Levels = Vec<(Feature, Level)>;
        let cases: [(Levels, Result<(), GrantError>); 4] = [
            (vec![(EmailApi, Full), (Sandbox, Read)], Ok(())),
            (vec![], Err(GrantError::NoFeatures)),
            (
                vec![(EmailApi, Full), (Analytics, Level::None)],
                Err(GrantError::NoneLevel(Analytics)),
            ),
            (vec![(Settings, Read)], Ok(())),
        ];
        for (levels, want) in cases {
            let got = Grant::features(SubAccountScope::All, levels.clone()).map(drop);
            assert_eq!(got, want, "{levels:?}");
        }
        let err = serde_json::from_value::<Grant>(json!({
            "type": "features", "sub_account": "all", "levels": {"campaigns": "none"}
        }))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("campaigns: level none grants nothing"),
            "{err}"
        );
    }

    /// The JSON shapes are the admin API's and the database's: pin them.
    #[test]
    fn json_shapes() {
        let cases = [
            (
                Grant::org_role(OrgRole::BillingAdmin).unwrap(),
                json!({"type": "org_role", "role": "billing_admin"}),
            ),
            (
                Grant::SubAccountRole {
                    sub_account: SubAccountScope::All,
                    role: SubAccountRole::Admin,
                },
                json!({"type": "sub_account_role", "sub_account": "all", "role": "admin"}),
            ),
            (
                Grant::features(
                    SubAccountScope::One("sa1".into()),
                    [(Feature::EmailApi, Level::Full)],
                )
                .unwrap(),
                json!({"type": "features", "sub_account": {"one": "sa1"}, "levels": {"email_api": "full"}}),
            ),
            (
                Grant::ProjectRole {
                    sub_account_id: "sa1".into(),
                    project_id: "p1".into(),
                    role: ProjectRole::Member,
                },
                json!({"type": "project_role", "sub_account_id": "sa1", "project_id": "p1", "role": "member"}),
            ),
        ];
        for (grant, want) in cases {
            assert_eq!(serde_json::to_value(&grant).unwrap(), want);
            assert_eq!(serde_json::from_value::<Grant>(want).unwrap(), grant);
        }
    }

    #[test]
    fn malformed_json_is_rejected() {
        let cases = [
            (
                json!({"type": "sub_account_role", "sub_account": "all", "role": "superuser"}),
                "unknown sub-account role \"superuser\"",
            ),
            (
                json!({"type": "sub_account_role", "sub_acount": "all", "role": "admin"}),
                "unknown field `sub_acount`",
            ),
            (
                json!({"type": "sub_account_role", "sub_account": "every", "role": "admin"}),
                "unknown variant `every`",
            ),
            (
                json!({"type": "project_role", "sub_account_id": "sa1", "project_id": "p1", "role": "owner"}),
                "unknown project role \"owner\"",
            ),
            (json!({"type": "admin"}), "unknown variant `admin`"),
        ];
        for (j, want) in cases {
            let err = serde_json::from_value::<Grant>(j.clone()).unwrap_err();
            assert!(err.to_string().contains(want), "{j}: {err}");
        }
        let err =
            serde_json::from_value::<GroupMatcher>(json!({"type": "display_name", "name": "x"}))
                .unwrap_err();
        assert!(err.to_string().contains("unknown field `name`"), "{err}");
    }
}
