//! A user's effective access: the union of every matching rule, their manual grants, the default
//! role and the ownership fact, with the highest role or level winning per scope and every result
//! carrying the reasons it exists.
//!
//! `All`-scoped grants are stored once and combined with a sub-account's own grants only when that
//! sub-account is resolved ([`EffectiveAccess::for_sub_account`]), so they cover sub-accounts that
//! did not exist when the access was computed.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::access::{Feature, Level, OrgRole, ProjectRole, SubAccountRole};
use crate::mapping::rule::{
    Grant, ManualGrant, MappingRule, Matched, OrgSettings, SubAccountScope, UserGroups,
};

/// Why a user holds some access.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Reason {
    /// The user is the organization's owner (`owner_user_id`).
    Owner,
    Rule {
        rule_id: String,
        matched: Matched,
    },
    Manual {
        grant_id: String,
        granted_by: String,
    },
    /// The organization's default role: the user's groups matched no rule.
    DefaultRole,
}

/// A role or level with every source that gives exactly it. Sources giving less are dropped: they
/// do not explain the access the user has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Granted<T> {
    pub value: T,
    pub reasons: BTreeSet<Reason>,
}

impl<T: Ord> Granted<T> {
    fn raise(&mut self, value: T, reasons: impl IntoIterator<Item = Reason>) {
        match value.cmp(&self.value) {
            std::cmp::Ordering::Greater => {
                *self = Granted {
                    value,
                    reasons: reasons.into_iter().collect(),
                }
            }
            std::cmp::Ordering::Equal => self.reasons.extend(reasons),
            std::cmp::Ordering::Less => {}
        }
    }
}

fn raise<T: Ord>(
    slot: &mut Option<Granted<T>>,
    value: T,
    reasons: impl IntoIterator<Item = Reason>,
) {
    match slot {
        Some(granted) => granted.raise(value, reasons),
        None => {
            *slot = Some(Granted {
                value,
                reasons: reasons.into_iter().collect(),
            })
        }
    }
}

fn raise_in<K: Ord, T: Ord>(
    map: &mut BTreeMap<K, Granted<T>>,
    key: K,
    value: T,
    reasons: impl IntoIterator<Item = Reason>,
) {
    match map.entry(key) {
        Entry::Occupied(mut e) => e.get_mut().raise(value, reasons),
        Entry::Vacant(e) => {
            e.insert(Granted {
                value,
                reasons: reasons.into_iter().collect(),
            });
        }
    }
}

/// Role and features granted for one scope, before combining `All` with a sub-account's own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
struct ScopeGrants {
    role: Option<Granted<SubAccountRole>>,
    features: BTreeMap<Feature, Granted<Level>>,
}

/// Everything a user may do in an organization, per scope, with reasons. Deterministic: equal
/// inputs give equal values and identical JSON, whatever the order of rules, grants or groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EffectiveAccess {
    /// At most one role per [`crate::domain::access::OrgRoleFamily`].
    org_roles: BTreeMap<OrgRole, BTreeSet<Reason>>,
    all_sub_accounts: ScopeGrants,
    sub_accounts: BTreeMap<String, ScopeGrants>,
    /// sub-account id -> project id -> role.
    projects: BTreeMap<String, BTreeMap<String, Granted<ProjectRole>>>,
}

/// One sub-account's access, its own grants combined with the `All` ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubAccountAccess {
    pub role: Option<SubAccountRole>,
    /// Only features above `none`; a missing feature is `none`.
    pub features: BTreeMap<Feature, Level>,
    /// Projects with an explicit role. What a sub-account role implies inside its projects is the
    /// product's rule, not the mapping's.
    pub projects: BTreeMap<String, ProjectRole>,
    pub reasons: AccessReasons,
}

/// The reasons behind each entry of a [`SubAccountAccess`], keyed the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AccessReasons {
    pub role: BTreeSet<Reason>,
    pub features: BTreeMap<Feature, BTreeSet<Reason>>,
    pub projects: BTreeMap<String, BTreeSet<Reason>>,
}

impl SubAccountAccess {
    fn from_grants(
        role: Option<Granted<SubAccountRole>>,
        features: BTreeMap<Feature, Granted<Level>>,
        projects: BTreeMap<String, Granted<ProjectRole>>,
    ) -> SubAccountAccess {
        let mut access = SubAccountAccess::default();
        if let Some(g) = role {
            access.role = Some(g.value);
            access.reasons.role = g.reasons;
        }
        for (feature, g) in features {
            access.features.insert(feature, g.value);
            access.reasons.features.insert(feature, g.reasons);
        }
        for (project, g) in projects {
            access.projects.insert(project.clone(), g.value);
            access.reasons.projects.insert(project, g.reasons);
        }
        access
    }
}

impl EffectiveAccess {
    /// The organization roles held, at most one per family, each with its reasons.
    pub fn org_roles(&self) -> &BTreeMap<OrgRole, BTreeSet<Reason>> {
        &self.org_roles
    }

    /// What every sub-account gets from `All`-scoped grants, including sub-accounts created later.
    pub fn all_sub_accounts(&self) -> SubAccountAccess {
        SubAccountAccess::from_grants(
            self.all_sub_accounts.role.clone(),
            self.all_sub_accounts.features.clone(),
            BTreeMap::new(),
        )
    }

    /// The sub-accounts with grants of their own (role, features or projects); any other resolves
    /// to [`Self::all_sub_accounts`].
    pub fn sub_account_ids(&self) -> BTreeSet<&str> {
        self.sub_accounts
            .keys()
            .chain(self.projects.keys())
            .map(String::as_str)
            .collect()
    }

    /// The access in one sub-account: per role and per feature the higher of its own and the
    /// `All` grant, with the reasons of both when they are equal.
    pub fn for_sub_account(&self, sub_account_id: &str) -> SubAccountAccess {
        let mut role = self.all_sub_accounts.role.clone();
        let mut features = self.all_sub_accounts.features.clone();
        if let Some(own) = self.sub_accounts.get(sub_account_id) {
            if let Some(g) = &own.role {
                raise(&mut role, g.value, g.reasons.iter().cloned());
            }
            for (feature, g) in &own.features {
                raise_in(&mut features, *feature, g.value, g.reasons.iter().cloned());
            }
        }
        let projects = self
            .projects
            .get(sub_account_id)
            .cloned()
            .unwrap_or_default();
        SubAccountAccess::from_grants(role, features, projects)
    }

    fn add_org_role(&mut self, role: OrgRole, reason: Reason) {
        let held = self
            .org_roles
            .keys()
            .find(|r| r.family() == role.family())
            .copied();
        match held {
            Some(held) if held == role => {
                self.org_roles.entry(role).or_default().insert(reason);
            }
            Some(held) if held.outranks(role) => {}
            Some(held) => {
                self.org_roles.remove(&held);
                self.org_roles.insert(role, BTreeSet::from([reason]));
            }
            None => {
                self.org_roles.insert(role, BTreeSet::from([reason]));
            }
        }
    }

    fn scope_mut(&mut self, scope: &SubAccountScope) -> &mut ScopeGrants {
        match scope {
            SubAccountScope::All => &mut self.all_sub_accounts,
            SubAccountScope::One(id) => self.sub_accounts.entry(id.clone()).or_default(),
        }
    }

    fn add(&mut self, grant: &Grant, reason: Reason) {
        match grant {
            Grant::OrgRole { role } => self.add_org_role(role.get(), reason),
            Grant::SubAccountRole { sub_account, role } => {
                raise(&mut self.scope_mut(sub_account).role, *role, [reason]);
            }
            Grant::Features {
                sub_account,
                levels,
            } => {
                let scope = self.scope_mut(sub_account);
                for (feature, level) in levels.iter() {
                    raise_in(&mut scope.features, feature, level, [reason.clone()]);
                }
            }
            Grant::ProjectRole {
                sub_account_id,
                project_id,
                role,
            } => {
                let projects = self.projects.entry(sub_account_id.clone()).or_default();
                raise_in(projects, project_id.clone(), *role, [reason]);
            }
        }
    }
}

/// A user's effective access.
///
/// - `manual` are this user's manual grants.
/// - An inactive user keeps only the ownership fact. Deactivation in the IdP means the person lost
///   access, so derived grants, the default role and manual grants all stop applying; manual grants
///   are not deleted (mappings never touch them) and apply again on reactivation. The owner stays
///   owner because an organization must never be left without one and ownership ends only by
///   transfer; keeping an inactive owner from signing in is authentication's job, not this one's.
/// - The default role applies only when no rule matched; manual grants do not count as matches,
///   since they say nothing about the user's groups.
pub fn effective_access(
    user: &UserGroups,
    is_owner: bool,
    active: bool,
    rules: &[MappingRule],
    manual: &[ManualGrant],
    settings: &OrgSettings,
) -> EffectiveAccess {
    let mut access = EffectiveAccess::default();
    if is_owner {
        access.add_org_role(OrgRole::OrgOwner, Reason::Owner);
    }
    for (grant, reason) in applicable_grants(user, active, rules, manual, settings) {
        access.add(&grant, reason);
    }
    access
}

/// Every grant that applies to the user, each with its reason, before the highest wins: what
/// [`effective_access`] combines and what [`crate::mapping::explain`] shows. The ownership fact is
/// not a grant and is not included.
pub fn applicable_grants(
    user: &UserGroups,
    active: bool,
    rules: &[MappingRule],
    manual: &[ManualGrant],
    settings: &OrgSettings,
) -> Vec<(Grant, Reason)> {
    let mut out = Vec::new();
    if !active {
        return out;
    }
    let mut any_matched = false;
    for rule in rules {
        for matched in rule.matches(user) {
            any_matched = true;
            let reason = Reason::Rule {
                rule_id: rule.id.clone(),
                matched,
            };
            out.push((rule.grant.clone(), reason));
        }
    }
    for grant in manual {
        let reason = Reason::Manual {
            grant_id: grant.id.clone(),
            granted_by: grant.granted_by.clone(),
        };
        out.push((grant.grant.clone(), reason));
    }
    if !any_matched && let Some(role) = settings.default_role {
        let grant = Grant::SubAccountRole {
            sub_account: SubAccountScope::All,
            role,
        };
        out.push((grant, Reason::DefaultRole));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::{Feature::*, OrgRole::*};
    use crate::mapping::rule::{GroupRef, Matched};
    use crate::mapping::testing::*;
    use SubAccountRole::{Admin, Member, Owner, Viewer};
    use serde_json::json;

    const NO_SETTINGS: OrgSettings = OrgSettings { default_role: None };

    fn active(user: &UserGroups, rules: &[MappingRule], manual: &[ManualGrant]) -> EffectiveAccess {
        effective_access(user, false, true, rules, manual, &NO_SETTINGS)
    }

    fn reasons<const N: usize>(r: [Reason; N]) -> BTreeSet<Reason> {
        BTreeSet::from(r)
    }

    /// One rule per role, all matching: the highest wins and only its rule is the reason.
    #[test]
    fn sub_account_role_precedence() {
        let cases: [(&[SubAccountRole], SubAccountRole); 7] = [
            (&[Viewer], Viewer),
            (&[Viewer, Member], Member),
            (&[Member, Viewer], Member),
            (&[Admin, Member, Viewer], Admin),
            (&[Viewer, Owner, Member, Admin], Owner),
            (&[Owner, Admin], Owner),
            (&[Member, Member], Member),
        ];
        let user = member_of(&["Eng"]);
        for (granted, want) in cases {
            let rules: Vec<_> = granted
                .iter()
                .enumerate()
                .map(|(i, r)| rule(&format!("r{i}"), by_name("Eng"), role(all(), *r)))
                .collect();
            let got = active(&user, &rules, &[]).for_sub_account("sa1");
            assert_eq!(got.role, Some(want), "{granted:?}");
            let winners: BTreeSet<Reason> = granted
                .iter()
                .enumerate()
                .filter(|(_, r)| **r == want)
                .map(|(i, _)| via(&format!("r{i}"), "Eng"))
                .collect();
            assert_eq!(got.reasons.role, winners, "{granted:?}");
        }
    }

    /// Highest per family, families accumulate.
    #[test]
    fn org_role_families() {
        let cases: [(&[OrgRole], &[OrgRole]); 8] = [
            (&[OrgViewer], &[OrgViewer]),
            (&[OrgViewer, OrgAdmin], &[OrgAdmin]),
            (&[OrgAdmin, OrgViewer], &[OrgAdmin]),
            (&[BillingViewer, BillingAdmin], &[BillingAdmin]),
            (&[BillingAdmin, BillingViewer], &[BillingAdmin]),
            (&[OrgAdmin, BillingViewer], &[OrgAdmin, BillingViewer]),
            (
                &[OrgViewer, BillingAdmin, OrgAdmin, BillingViewer],
                &[OrgAdmin, BillingAdmin],
            ),
            (&[], &[]),
        ];
        let user = member_of(&["Eng"]);
        for (granted, want) in cases {
            let rules: Vec<_> = granted
                .iter()
                .enumerate()
                .map(|(i, r)| rule(&format!("r{i}"), by_name("Eng"), org(*r)))
                .collect();
            let access = active(&user, &rules, &[]);
            let got: Vec<OrgRole> = access.org_roles().keys().copied().collect();
            let mut want = want.to_vec();
            want.sort();
            assert_eq!(got, want, "{granted:?}");
        }
    }

    /// Per feature the highest level wins, within one scope and across `All` and `One`.
    #[test]
    fn features_merge() {
        use Level::{Full, Read};
        type Levels = &'static [(Feature, Level)];
        let cases: Vec<(Vec<(SubAccountScope, Levels)>, Levels)> = vec![
            (vec![(all(), &[(EmailApi, Read)])], &[(EmailApi, Read)]),
            (
                vec![(all(), &[(EmailApi, Read)]), (all(), &[(EmailApi, Full)])],
                &[(EmailApi, Full)],
            ),
            (
                vec![
                    (all(), &[(EmailApi, Full)]),
                    (one("sa1"), &[(EmailApi, Read)]),
                ],
                &[(EmailApi, Full)],
            ),
            (
                vec![
                    (all(), &[(EmailApi, Read)]),
                    (one("sa1"), &[(EmailApi, Full)]),
                ],
                &[(EmailApi, Full)],
            ),
            (
                vec![
                    (all(), &[(EmailApi, Read), (Analytics, Full)]),
                    (one("sa1"), &[(EmailApi, Full), (Sandbox, Read)]),
                ],
                &[(EmailApi, Full), (Sandbox, Read), (Analytics, Full)],
            ),
            // Another sub-account's grants do not leak into sa1.
            (
                vec![
                    (one("sa2"), &[(Campaigns, Full)]),
                    (one("sa1"), &[(Settings, Read)]),
                ],
                &[(Settings, Read)],
            ),
            (vec![(one("sa2"), &[(Campaigns, Full)])], &[]),
        ];
        let user = member_of(&["Eng"]);
        for (grants, want) in cases {
            let rules: Vec<_> = grants
                .iter()
                .enumerate()
                .map(|(i, (scope, levels))| {
                    rule(
                        &format!("r{i}"),
                        by_name("Eng"),
                        feats(scope.clone(), levels),
                    )
                })
                .collect();
            let got = active(&user, &rules, &[]).for_sub_account("sa1").features;
            assert_eq!(got, want.iter().copied().collect(), "{grants:?}");
        }
    }

    #[test]
    fn equal_levels_list_every_source() {
        use Level::{Full, Read};
        // "Eng" exists in two directories: one rule, two matched groups.
        let mut user = member_of(&["Eng", "Ops"]);
        user.groups.push(GroupRef {
            id: "id-Eng-entra".into(),
            external_id: None,
            display_name: "ENG".into(),
            directory_id: "dir-entra".into(),
        });
        let rules = [
            rule("r1", by_name("eng"), role(all(), Admin)),
            rule("r2", by_name("Ops"), role(one("sa1"), Admin)),
            rule("r3", by_name("Ops"), role(one("sa1"), Member)),
            rule("f1", by_name("Ops"), feats(all(), &[(EmailApi, Full)])),
            rule(
                "f2",
                by_name("Ops"),
                feats(one("sa1"), &[(EmailApi, Full), (Sandbox, Read)]),
            ),
            rule("f3", by_name("Ops"), feats(all(), &[(EmailApi, Read)])),
            rule("o1", by_name("Ops"), org(OrgAdmin)),
            rule(
                "p1",
                by_name("Ops"),
                project("sa1", "p1", ProjectRole::Member),
            ),
        ];
        let manual_grants = [
            manual("m1", "alice", role(one("sa1"), Admin)),
            manual("m2", "bob", org(OrgAdmin)),
            manual("m3", "bob", project("sa1", "p1", ProjectRole::Member)),
            manual("m4", "bob", project("sa1", "p1", ProjectRole::Viewer)),
        ];
        let access = active(&user, &rules, &manual_grants);
        let eng_twice = [
            via("r1", "Eng"),
            Reason::Rule {
                rule_id: "r1".into(),
                matched: Matched::Group {
                    group_id: "id-Eng-entra".into(),
                    display_name: "ENG".into(),
                },
            },
        ];

        let sa1 = access.for_sub_account("sa1");
        let mut want = BTreeSet::from(eng_twice.clone());
        want.extend([via("r2", "Ops"), by_hand("m1", "alice")]);
        assert_eq!((sa1.role, &sa1.reasons.role), (Some(Admin), &want));
        assert_eq!(
            sa1.reasons.features,
            BTreeMap::from([
                (EmailApi, reasons([via("f1", "Ops"), via("f2", "Ops")])),
                (Sandbox, reasons([via("f2", "Ops")])),
            ])
        );
        assert_eq!(
            sa1.reasons.projects,
            BTreeMap::from([(
                "p1".to_owned(),
                reasons([via("p1", "Ops"), by_hand("m3", "bob")])
            )])
        );
        assert_eq!(
            access.org_roles(),
            &BTreeMap::from([(OrgAdmin, reasons([via("o1", "Ops"), by_hand("m2", "bob")]))])
        );

        let sa2 = access.for_sub_account("sa2");
        assert_eq!(sa2.reasons.role, BTreeSet::from(eng_twice));
        assert_eq!(
            sa2.reasons.features,
            BTreeMap::from([(EmailApi, reasons([via("f1", "Ops")]))])
        );
    }

    #[test]
    fn default_role_only_when_no_rule_matched() {
        struct Case {
            rules: Vec<MappingRule>,
            manual: Vec<ManualGrant>,
            default_role: Option<SubAccountRole>,
            sa1: Option<(SubAccountRole, Reason)>,
            sa2: Option<SubAccountRole>,
        }
        let cases = [
            Case {
                rules: vec![],
                manual: vec![],
                default_role: Some(Member),
                sa1: Some((Member, Reason::DefaultRole)),
                sa2: Some(Member),
            },
            Case {
                rules: vec![rule("r1", by_name("Sales"), role(all(), Admin))],
                manual: vec![],
                default_role: Some(Member),
                sa1: Some((Member, Reason::DefaultRole)),
                sa2: Some(Member),
            },
            // A matched rule suppresses the default even when it grants no role, or a lower one.
            Case {
                rules: vec![rule(
                    "r1",
                    by_name("Eng"),
                    feats(all(), &[(Sandbox, Level::Read)]),
                )],
                manual: vec![],
                default_role: Some(Member),
                sa1: None,
                sa2: None,
            },
            Case {
                rules: vec![rule("r1", by_name("Eng"), org(BillingViewer))],
                manual: vec![],
                default_role: Some(Member),
                sa1: None,
                sa2: None,
            },
            Case {
                rules: vec![rule("r1", by_name("Eng"), role(one("sa1"), Viewer))],
                manual: vec![],
                default_role: Some(Admin),
                sa1: Some((Viewer, via("r1", "Eng"))),
                sa2: None,
            },
            // Manual grants are not matches: the default still applies beside them.
            Case {
                rules: vec![],
                manual: vec![manual("m1", "alice", role(one("sa1"), Owner))],
                default_role: Some(Viewer),
                sa1: Some((Owner, by_hand("m1", "alice"))),
                sa2: Some(Viewer),
            },
            Case {
                rules: vec![],
                manual: vec![],
                default_role: None,
                sa1: None,
                sa2: None,
            },
        ];
        let user = member_of(&["Eng"]);
        for (i, c) in cases.iter().enumerate() {
            let settings = OrgSettings {
                default_role: c.default_role,
            };
            let access = effective_access(&user, false, true, &c.rules, &c.manual, &settings);
            let sa1 = access.for_sub_account("sa1");
            let got = sa1.role.map(|r| (r, sa1.reasons.role.clone()));
            let want = c.sa1.clone().map(|(r, why)| (r, BTreeSet::from([why])));
            assert_eq!(got, want, "case {i}");
            assert_eq!(access.for_sub_account("sa2").role, c.sa2, "case {i}");
        }
    }

    #[test]
    fn directory_default() {
        let rules = [rule("d1", by_dir("dir-okta"), role(all(), Viewer))];
        let in_dir = |dirs: &[&str]| UserGroups {
            directory_ids: dirs.iter().map(|d| (*d).to_owned()).collect(),
            ..UserGroups::default()
        };
        let from_okta = Reason::Rule {
            rule_id: "d1".into(),
            matched: Matched::Directory {
                directory_id: "dir-okta".into(),
            },
        };
        let cases = [
            (in_dir(&["dir-okta"]), Some(Viewer)),
            (in_dir(&["dir-entra", "dir-okta"]), Some(Viewer)),
            (in_dir(&["dir-entra"]), None),
            (in_dir(&[]), None),
        ];
        for (user, want) in cases {
            let sa = active(&user, &rules, &[]).for_sub_account("sa1");
            assert_eq!(sa.role, want, "{user:?}");
            if want.is_some() {
                assert_eq!(sa.reasons.role, BTreeSet::from([from_okta.clone()]));
            }
        }
    }

    /// Every matcher kind reaches the computed access, and the reason names what matched.
    #[test]
    fn every_matcher_kind() {
        let user = UserGroups {
            directory_ids: vec!["dir-okta".into()],
            groups: vec![GroupRef {
                id: "0190-g".into(),
                external_id: Some("00gX".into()),
                display_name: "Sales EMEA".into(),
                directory_id: "dir-okta".into(),
            }],
            claim_values: vec!["crm-admins".into()],
            claims_from: None,
        };
        let sales = Matched::Group {
            group_id: "0190-g".into(),
            display_name: "Sales EMEA".into(),
        };
        let cases = [
            (by_id("0190-g"), Some(sales.clone())),
            (by_id("0190-G"), None),
            (by_ext("00gX"), Some(sales.clone())),
            (by_ext("00gx"), None),
            (by_name("sales emea"), Some(sales.clone())),
            (by_name("SALES EMEA"), Some(sales)),
            (by_name("Sales"), None),
            (
                by_claim("crm-admins"),
                Some(Matched::Claim {
                    value: "crm-admins".into(),
                }),
            ),
            (by_claim("Crm-Admins"), None),
            (by_claim("Sales EMEA"), None),
        ];
        for (matcher, want) in cases {
            let rules = [rule("r1", matcher.clone(), role(all(), Member))];
            let sa = active(&user, &rules, &[]).for_sub_account("sa1");
            let want = want.map(|matched| {
                let why = Reason::Rule {
                    rule_id: "r1".into(),
                    matched,
                };
                (Member, BTreeSet::from([why]))
            });
            assert_eq!(sa.role.map(|r| (r, sa.reasons.role)), want, "{matcher:?}");
        }
    }

    #[test]
    fn manual_grants_carry_granted_by() {
        let grants = [
            manual("m1", "alice", org(BillingAdmin)),
            manual("m2", "alice", role(one("sa1"), Owner)),
            manual("m3", "bob", feats(all(), &[(Campaigns, Level::Full)])),
            manual("m4", "carol", project("sa1", "p9", ProjectRole::Admin)),
        ];
        // No group, no rule: everything comes from the manual grants.
        let access = active(&UserGroups::default(), &[], &grants);
        assert_eq!(
            access.org_roles(),
            &BTreeMap::from([(BillingAdmin, reasons([by_hand("m1", "alice")]))])
        );
        let sa1 = access.for_sub_account("sa1");
        let want = SubAccountAccess {
            role: Some(Owner),
            features: BTreeMap::from([(Campaigns, Level::Full)]),
            projects: BTreeMap::from([("p9".to_owned(), ProjectRole::Admin)]),
            reasons: AccessReasons {
                role: reasons([by_hand("m2", "alice")]),
                features: BTreeMap::from([(Campaigns, reasons([by_hand("m3", "bob")]))]),
                projects: BTreeMap::from([("p9".to_owned(), reasons([by_hand("m4", "carol")]))]),
            },
        };
        assert_eq!(sa1, want);
    }

    #[test]
    fn inactive_user_keeps_only_ownership() {
        let user = member_of(&["Eng"]);
        let rules = [
            rule("r1", by_name("Eng"), org(OrgAdmin)),
            rule("r2", by_name("Eng"), role(all(), Admin)),
        ];
        let grants = [manual("m1", "alice", org(BillingAdmin))];
        let settings = OrgSettings {
            default_role: Some(Member),
        };
        // (is_owner, active, org roles, role in sa1)
        let cases: [(bool, bool, &[OrgRole], Option<SubAccountRole>); 4] = [
            (false, true, &[OrgAdmin, BillingAdmin], Some(Admin)),
            (true, true, &[OrgOwner, OrgAdmin, BillingAdmin], Some(Admin)),
            (false, false, &[], None),
            (true, false, &[OrgOwner], None),
        ];
        for (is_owner, is_active, org_roles, sa1) in cases {
            let access = effective_access(&user, is_owner, is_active, &rules, &grants, &settings);
            let got: Vec<OrgRole> = access.org_roles().keys().copied().collect();
            assert_eq!(got, org_roles, "owner {is_owner}, active {is_active}");
            assert_eq!(access.for_sub_account("sa1").role, sa1);
            if !is_active {
                assert!(access.sub_account_ids().is_empty());
                assert_eq!(access.all_sub_accounts(), SubAccountAccess::default());
            }
            if is_owner {
                assert_eq!(access.org_roles()[&OrgOwner], reasons([Reason::Owner]));
            }
        }
        // Nothing matched and inactive: the default role does not apply either.
        let nobody = effective_access(&UserGroups::default(), false, false, &[], &[], &settings);
        assert_eq!(nobody, EffectiveAccess::default());
    }

    #[test]
    fn all_scope_covers_unseen_sub_accounts() {
        let rules = [
            rule("r1", by_name("Eng"), role(all(), Member)),
            rule(
                "r2",
                by_name("Eng"),
                feats(all(), &[(Analytics, Level::Read)]),
            ),
            rule("r3", by_name("Eng"), role(one("sa1"), Owner)),
        ];
        let access = active(&member_of(&["Eng"]), &rules, &[]);
        // Created after the access was computed: covered without recomputing.
        let fresh = access.for_sub_account("01935e7a-0000-7000-8000-000000000000");
        assert_eq!(fresh, access.all_sub_accounts());
        assert_eq!(fresh.role, Some(Member));
        assert_eq!(fresh.features, BTreeMap::from([(Analytics, Level::Read)]));
        assert_eq!(access.for_sub_account("sa1").role, Some(Owner));
        // The `All` grant stays one grant, not a row per known sub-account.
        assert_eq!(access.sub_account_ids(), BTreeSet::from(["sa1"]));
    }

    #[test]
    fn projects_resolve_in_their_sub_account() {
        use ProjectRole as P;
        let rules = [
            rule("r1", by_name("Eng"), project("sa1", "p1", P::Viewer)),
            rule("r2", by_name("Eng"), project("sa1", "p1", P::Admin)),
            rule("r3", by_name("Eng"), project("sa1", "p2", P::Member)),
            rule("r4", by_name("Eng"), project("sa2", "p3", P::Member)),
        ];
        let access = active(&member_of(&["Eng"]), &rules, &[]);
        let cases: [(&str, &[(&str, P)]); 3] = [
            ("sa1", &[("p1", P::Admin), ("p2", P::Member)]),
            ("sa2", &[("p3", P::Member)]),
            ("sa3", &[]),
        ];
        for (sa, want) in cases {
            let want: BTreeMap<String, P> =
                want.iter().map(|(p, r)| ((*p).to_owned(), *r)).collect();
            assert_eq!(access.for_sub_account(sa).projects, want, "{sa}");
        }
        assert_eq!(access.for_sub_account("sa1").role, None);
        assert_eq!(access.sub_account_ids(), BTreeSet::from(["sa1", "sa2"]));
    }

    /// The order of rules, grants, groups and claims changes nothing, not even the JSON.
    #[test]
    fn deterministic() {
        let mut user = member_of(&["Eng", "Ops", "eng"]);
        user.claim_values = vec!["a".into(), "b".into()];
        let mut rules = vec![
            rule("r1", by_name("ENG"), role(all(), Admin)),
            rule("r2", by_name("Ops"), role(all(), Admin)),
            rule(
                "r3",
                by_claim("a"),
                feats(one("sa1"), &[(EmailApi, Level::Full)]),
            ),
            rule(
                "r4",
                by_claim("b"),
                feats(one("sa1"), &[(EmailApi, Level::Full)]),
            ),
            rule("r5", by_name("ops"), org(OrgViewer)),
            rule("r6", by_name("eng"), org(OrgViewer)),
        ];
        let mut grants = vec![
            manual("m1", "alice", org(OrgViewer)),
            manual("m2", "bob", role(all(), Admin)),
        ];
        let a = active(&user, &rules, &grants);
        user.groups.reverse();
        user.claim_values.reverse();
        rules.reverse();
        grants.reverse();
        let b = active(&user, &rules, &grants);
        assert_eq!(a, b);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }

    /// The serialised form is what an admin API returns and a preview stores: pin it.
    #[test]
    fn json_shape() {
        let user = member_of(&["Eng"]);
        let rules = [
            rule("r1", by_name("Eng"), role(all(), Member)),
            rule(
                "r2",
                by_name("Eng"),
                feats(one("sa1"), &[(EmailApi, Level::Full)]),
            ),
            rule(
                "r3",
                by_name("Eng"),
                project("sa1", "p1", ProjectRole::Viewer),
            ),
        ];
        let grants = [manual("m1", "alice", org(BillingViewer))];
        let access = effective_access(&user, true, true, &rules, &grants, &NO_SETTINGS);
        let eng = json!({"by": "group", "group_id": "id-Eng", "display_name": "Eng"});
        assert_eq!(
            serde_json::to_value(&access).unwrap(),
            json!({
                "org_roles": {
                    "org_owner": [{"source": "owner"}],
                    "billing_viewer": [{"source": "manual", "grant_id": "m1", "granted_by": "alice"}]
                },
                "all_sub_accounts": {
                    "role": {"value": "member", "reasons": [{"source": "rule", "rule_id": "r1", "matched": eng}]},
                    "features": {}
                },
                "sub_accounts": {
                    "sa1": {
                        "role": null,
                        "features": {
                            "email_api": {"value": "full", "reasons": [{"source": "rule", "rule_id": "r2", "matched": eng}]}
                        }
                    }
                },
                "projects": {
                    "sa1": {"p1": {"value": "viewer", "reasons": [{"source": "rule", "rule_id": "r3", "matched": eng}]}}
                }
            })
        );
    }
}
