//! What changes between two effective accesses: the input of provisioning and deprovisioning, and
//! of the preview that shows an admin who would gain and who would lose which access before a rule
//! change is saved.
//!
//! Changes compare access, not reasons: a role that moves from one rule to another is no change.
//! A new user's changes are `diff(&EffectiveAccess::default(), &access)`, a removed user's the
//! reverse.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::domain::access::{Feature, Level, OrgRole, OrgRoleFamily, ProjectRole, SubAccountRole};
use crate::mapping::effective::{EffectiveAccess, SubAccountAccess, effective_access};
use crate::mapping::rule::{ManualGrant, MappingRule, OrgSettings, SubAccountScope, UserGroups};

/// One difference in access. `from`/`to` are `None` (or `Level::None`) for "not held".
///
/// `scope: All` is the baseline every sub-account receives, including future ones. `scope:
/// One(id)` is listed for each sub-account with grants of its own (before or after) whose resolved
/// access changed, with resolved values, so it may repeat an `All` change that reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AccessChange {
    /// Within one [`OrgRoleFamily`]: both roles, when present, are of the same family.
    OrgRoleChanged {
        from: Option<OrgRole>,
        to: Option<OrgRole>,
    },
    SubAccountRoleChanged {
        scope: SubAccountScope,
        from: Option<SubAccountRole>,
        to: Option<SubAccountRole>,
    },
    FeatureChanged {
        scope: SubAccountScope,
        feature: Feature,
        from: Level,
        to: Level,
    },
    ProjectRoleChanged {
        sub_account_id: String,
        project_id: String,
        from: Option<ProjectRole>,
        to: Option<ProjectRole>,
    },
}

impl AccessChange {
    /// True when the user ends with less than they had; every change is either a loss or a gain.
    pub fn is_loss(&self) -> bool {
        match self {
            AccessChange::OrgRoleChanged { from, to } => to < from,
            AccessChange::SubAccountRoleChanged { from, to, .. } => to < from,
            AccessChange::FeatureChanged { from, to, .. } => to < from,
            AccessChange::ProjectRoleChanged { from, to, .. } => to < from,
        }
    }
}

/// The changes from `before` to `after`, empty when the access is the same. Ordered: organization
/// roles by family, then the `All` baseline, then sub-accounts by id; within a scope the role, the
/// features, the projects.
pub fn diff(before: &EffectiveAccess, after: &EffectiveAccess) -> Vec<AccessChange> {
    let mut changes = Vec::new();
    for &family in OrgRoleFamily::ALL {
        let held = |access: &EffectiveAccess| {
            access
                .org_roles()
                .keys()
                .find(|r| r.family() == family)
                .copied()
        };
        let (from, to) = (held(before), held(after));
        if from != to {
            changes.push(AccessChange::OrgRoleChanged { from, to });
        }
    }
    scope_changes(
        SubAccountScope::All,
        &before.all_sub_accounts(),
        &after.all_sub_accounts(),
        &mut changes,
    );
    let ids: BTreeSet<&str> = before
        .sub_account_ids()
        .into_iter()
        .chain(after.sub_account_ids())
        .collect();
    for id in ids {
        scope_changes(
            SubAccountScope::One(id.to_owned()),
            &before.for_sub_account(id),
            &after.for_sub_account(id),
            &mut changes,
        );
    }
    changes
}

fn scope_changes(
    scope: SubAccountScope,
    before: &SubAccountAccess,
    after: &SubAccountAccess,
    changes: &mut Vec<AccessChange>,
) {
    if before.role != after.role {
        changes.push(AccessChange::SubAccountRoleChanged {
            scope: scope.clone(),
            from: before.role,
            to: after.role,
        });
    }
    for &feature in Feature::ALL {
        let level = |a: &SubAccountAccess| a.features.get(&feature).copied().unwrap_or(Level::None);
        let (from, to) = (level(before), level(after));
        if from != to {
            changes.push(AccessChange::FeatureChanged {
                scope: scope.clone(),
                feature,
                from,
                to,
            });
        }
    }
    if let SubAccountScope::One(sub_account_id) = &scope {
        let projects: BTreeSet<&String> = before
            .projects
            .keys()
            .chain(after.projects.keys())
            .collect();
        for project_id in projects {
            let (from, to) = (
                before.projects.get(project_id).copied(),
                after.projects.get(project_id).copied(),
            );
            if from != to {
                changes.push(AccessChange::ProjectRoleChanged {
                    sub_account_id: sub_account_id.clone(),
                    project_id: project_id.clone(),
                    from,
                    to,
                });
            }
        }
    }
}

/// One user of a [`preview`], with the facts [`effective_access`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewUser {
    pub user_id: String,
    pub groups: UserGroups,
    pub is_owner: bool,
    pub active: bool,
    /// This user's manual grants.
    pub manual: Vec<ManualGrant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserChanges {
    pub user_id: String,
    pub changes: Vec<AccessChange>,
}

/// Who would gain or lose what if `rules_before` became `rules_after`: only users whose access
/// changes, sorted by user id. Ownership and manual grants are the same on both sides, so a rule
/// change can never show (or cause) a change of owner.
pub fn preview(
    users: &[PreviewUser],
    rules_before: &[MappingRule],
    rules_after: &[MappingRule],
    settings: &OrgSettings,
) -> Vec<UserChanges> {
    let mut out: Vec<UserChanges> = users
        .iter()
        .filter_map(|u| {
            let access = |rules| {
                effective_access(&u.groups, u.is_owner, u.active, rules, &u.manual, settings)
            };
            let changes = diff(&access(rules_before), &access(rules_after));
            (!changes.is_empty()).then(|| UserChanges {
                user_id: u.user_id.clone(),
                changes,
            })
        })
        .collect();
    out.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::{Feature::*, OrgRole::*};
    use crate::mapping::effective::Reason;
    use crate::mapping::rule::Grant;
    use crate::mapping::testing::*;
    use AccessChange::*;
    use ProjectRole as P;
    use SubAccountRole::{Admin, Member, Owner, Viewer};
    use serde_json::json;

    fn access_of(rules: &[MappingRule]) -> EffectiveAccess {
        let user = member_of(&["Eng", "Ops"]);
        effective_access(&user, false, true, rules, &[], &OrgSettings::default())
    }

    #[test]
    fn diff_is_empty_when_access_is_equal() {
        let cases: [(Vec<MappingRule>, Vec<MappingRule>); 4] = [
            (vec![], vec![]),
            (
                vec![
                    rule("r1", by_name("Eng"), role(all(), Admin)),
                    rule(
                        "r2",
                        by_name("Eng"),
                        feats(one("sa1"), &[(Sandbox, Level::Full)]),
                    ),
                    rule("r3", by_name("Eng"), org(BillingAdmin)),
                    rule("r4", by_name("Eng"), project("sa1", "p1", P::Admin)),
                ],
                vec![
                    rule("r1", by_name("Eng"), role(all(), Admin)),
                    rule(
                        "r2",
                        by_name("Eng"),
                        feats(one("sa1"), &[(Sandbox, Level::Full)]),
                    ),
                    rule("r3", by_name("Eng"), org(BillingAdmin)),
                    rule("r4", by_name("Eng"), project("sa1", "p1", P::Admin)),
                ],
            ),
            // The same access from another rule and group: the reasons differ, the access does not.
            (
                vec![rule("r1", by_name("Eng"), role(all(), Admin))],
                vec![rule("r2", by_name("Ops"), role(all(), Admin))],
            ),
            // A sub-account grant below the `All` one changes nothing that can be used.
            (
                vec![rule("r1", by_name("Eng"), role(all(), Admin))],
                vec![
                    rule("r1", by_name("Eng"), role(all(), Admin)),
                    rule("r2", by_name("Eng"), role(one("sa1"), Member)),
                    rule("r3", by_name("Eng"), role(one("sa2"), Admin)),
                ],
            ),
        ];
        for (before, after) in cases {
            let (b, a) = (access_of(&before), access_of(&after));
            assert_eq!(diff(&b, &a), vec![], "{before:?} -> {after:?}");
            assert_eq!(diff(&a, &b), vec![]);
            assert_eq!(diff(&a, &a), vec![]);
        }
    }

    #[test]
    fn diff_is_exact() {
        use Level::{Full, Read};
        let sa_role = |scope, from, to| SubAccountRoleChanged { scope, from, to };
        let feature = |scope, feature, from, to| FeatureChanged {
            scope,
            feature,
            from,
            to,
        };
        let cases: Vec<(Vec<MappingRule>, Vec<MappingRule>, Vec<AccessChange>)> = vec![
            (
                vec![],
                vec![rule("r1", by_name("Eng"), role(all(), Admin))],
                vec![sa_role(all(), None, Some(Admin))],
            ),
            // Only the baseline moves; sa1 keeps its own, higher role.
            (
                vec![
                    rule("r1", by_name("Eng"), role(all(), Member)),
                    rule("r2", by_name("Eng"), role(one("sa1"), Owner)),
                ],
                vec![
                    rule("r1", by_name("Eng"), role(all(), Admin)),
                    rule("r2", by_name("Eng"), role(one("sa1"), Owner)),
                ],
                vec![sa_role(all(), Some(Member), Some(Admin))],
            ),
            // sa1 falls back to the baseline, other sub-accounts are untouched.
            (
                vec![
                    rule("r1", by_name("Eng"), role(all(), Member)),
                    rule("r2", by_name("Eng"), role(one("sa1"), Admin)),
                ],
                vec![rule("r1", by_name("Eng"), role(all(), Member))],
                vec![sa_role(one("sa1"), Some(Admin), Some(Member))],
            ),
            // A sub-account with grants of its own is listed with its resolved change too.
            (
                vec![
                    rule("r1", by_name("Eng"), role(all(), Member)),
                    rule("r2", by_name("Eng"), project("sa1", "p1", P::Viewer)),
                ],
                vec![
                    rule("r1", by_name("Eng"), role(all(), Admin)),
                    rule("r2", by_name("Eng"), project("sa1", "p1", P::Viewer)),
                ],
                vec![
                    sa_role(all(), Some(Member), Some(Admin)),
                    sa_role(one("sa1"), Some(Member), Some(Admin)),
                ],
            ),
            (
                vec![
                    rule("r1", by_name("Eng"), org(OrgViewer)),
                    rule("r2", by_name("Ops"), org(BillingAdmin)),
                ],
                vec![rule("r1", by_name("Eng"), org(OrgAdmin))],
                vec![
                    OrgRoleChanged {
                        from: Some(OrgViewer),
                        to: Some(OrgAdmin),
                    },
                    OrgRoleChanged {
                        from: Some(BillingAdmin),
                        to: None,
                    },
                ],
            ),
            (
                vec![
                    rule(
                        "r1",
                        by_name("Eng"),
                        feats(all(), &[(EmailApi, Read), (Campaigns, Full)]),
                    ),
                    rule("r2", by_name("Eng"), feats(one("sa1"), &[(Sandbox, Full)])),
                ],
                vec![rule(
                    "r1",
                    by_name("Eng"),
                    feats(all(), &[(EmailApi, Full), (Campaigns, Full)]),
                )],
                vec![
                    feature(all(), EmailApi, Read, Full),
                    feature(one("sa1"), EmailApi, Read, Full),
                    feature(one("sa1"), Sandbox, Full, Level::None),
                ],
            ),
            (
                vec![
                    rule("r1", by_name("Eng"), project("sa1", "p1", P::Viewer)),
                    rule("r2", by_name("Eng"), project("sa1", "p2", P::Member)),
                ],
                vec![
                    rule("r1", by_name("Eng"), project("sa1", "p1", P::Admin)),
                    rule("r3", by_name("Eng"), project("sa2", "p3", P::Viewer)),
                ],
                vec![
                    ProjectRoleChanged {
                        sub_account_id: "sa1".into(),
                        project_id: "p1".into(),
                        from: Some(P::Viewer),
                        to: Some(P::Admin),
                    },
                    ProjectRoleChanged {
                        sub_account_id: "sa1".into(),
                        project_id: "p2".into(),
                        from: Some(P::Member),
                        to: None,
                    },
                    ProjectRoleChanged {
                        sub_account_id: "sa2".into(),
                        project_id: "p3".into(),
                        from: None,
                        to: Some(P::Viewer),
                    },
                ],
            ),
            // A rule for a group the user is not in changes nothing.
            (
                vec![],
                vec![rule("r1", by_name("Sales"), role(all(), Owner))],
                vec![],
            ),
        ];
        for (before, after, want) in cases {
            let got = diff(&access_of(&before), &access_of(&after));
            assert_eq!(got, want, "{before:?} -> {after:?}");
        }
    }

    #[test]
    fn gains_and_losses() {
        let cases = [
            (
                OrgRoleChanged {
                    from: None,
                    to: Some(OrgViewer),
                },
                false,
            ),
            (
                OrgRoleChanged {
                    from: Some(OrgAdmin),
                    to: Some(OrgViewer),
                },
                true,
            ),
            (
                OrgRoleChanged {
                    from: Some(BillingViewer),
                    to: None,
                },
                true,
            ),
            (
                SubAccountRoleChanged {
                    scope: all(),
                    from: Some(Viewer),
                    to: Some(Owner),
                },
                false,
            ),
            (
                SubAccountRoleChanged {
                    scope: one("sa1"),
                    from: Some(Member),
                    to: None,
                },
                true,
            ),
            (
                FeatureChanged {
                    scope: all(),
                    feature: Sandbox,
                    from: Level::Full,
                    to: Level::Read,
                },
                true,
            ),
            (
                FeatureChanged {
                    scope: all(),
                    feature: Sandbox,
                    from: Level::None,
                    to: Level::Read,
                },
                false,
            ),
            (
                ProjectRoleChanged {
                    sub_account_id: "sa1".into(),
                    project_id: "p1".into(),
                    from: None,
                    to: Some(P::Viewer),
                },
                false,
            ),
        ];
        for (change, loss) in cases {
            assert_eq!(change.is_loss(), loss, "{change:?}");
        }
    }

    #[test]
    fn change_json_shape() {
        let changes = [
            OrgRoleChanged {
                from: Some(OrgViewer),
                to: None,
            },
            FeatureChanged {
                scope: one("sa1"),
                feature: EmailApi,
                from: Level::None,
                to: Level::Full,
            },
        ];
        assert_eq!(
            serde_json::to_value(changes).unwrap(),
            json!([
                {"change": "org_role_changed", "from": "org_viewer", "to": null},
                {"change": "feature_changed", "scope": {"one": "sa1"}, "feature": "email_api", "from": "none", "to": "full"}
            ])
        );
    }

    fn invert(c: AccessChange) -> AccessChange {
        match c {
            OrgRoleChanged { from, to } => OrgRoleChanged { from: to, to: from },
            SubAccountRoleChanged { scope, from, to } => SubAccountRoleChanged {
                scope,
                from: to,
                to: from,
            },
            FeatureChanged {
                scope,
                feature,
                from,
                to,
            } => FeatureChanged {
                scope,
                feature,
                from: to,
                to: from,
            },
            ProjectRoleChanged {
                sub_account_id,
                project_id,
                from,
                to,
            } => ProjectRoleChanged {
                sub_account_id,
                project_id,
                from: to,
                to: from,
            },
        }
    }

    fn person(id: &str, groups: &[&str]) -> PreviewUser {
        PreviewUser {
            user_id: id.into(),
            groups: member_of(groups),
            is_owner: false,
            active: true,
            manual: vec![],
        }
    }

    #[test]
    fn preview_lists_exactly_the_users_whose_access_changes() {
        let before = [
            rule("r1", by_name("Eng"), role(all(), Member)),
            rule("r2", by_name("Ops"), role(all(), Viewer)),
        ];
        let after = [
            rule("r1", by_name("Eng"), role(all(), Admin)),
            rule("r2", by_name("Ops"), role(all(), Viewer)),
            rule("r3", by_name("Sales"), org(OrgAdmin)),
        ];
        let settings = OrgSettings {
            default_role: Some(Viewer),
        };
        let users = [
            // Unchanged rule.
            person("bob", &["Ops"]),
            // Rule r1 moves Eng from Member to Admin.
            person("alice", &["Eng"]),
            // Inactive: no access before or after.
            PreviewUser {
                active: false,
                ..person("carol", &["Eng"])
            },
            // Already Admin everywhere by hand: the new rule adds nothing.
            PreviewUser {
                manual: vec![manual("m1", "root", role(all(), Admin))],
                ..person("dave", &["Eng"])
            },
            // The owner gains like anyone, and stays owner.
            PreviewUser {
                is_owner: true,
                ..person("erin", &["Eng"])
            },
            // No group matches before or after: the default role both times.
            person("frank", &[]),
            // Matching r3 gives OrgAdmin and ends the default role.
            person("gina", &["Sales"]),
        ];
        let got = preview(&users, &before, &after, &settings);
        let eng_gain = vec![SubAccountRoleChanged {
            scope: all(),
            from: Some(Member),
            to: Some(Admin),
        }];
        let want = vec![
            UserChanges {
                user_id: "alice".into(),
                changes: eng_gain.clone(),
            },
            UserChanges {
                user_id: "erin".into(),
                changes: eng_gain,
            },
            UserChanges {
                user_id: "gina".into(),
                changes: vec![
                    OrgRoleChanged {
                        from: None,
                        to: Some(OrgAdmin),
                    },
                    SubAccountRoleChanged {
                        scope: all(),
                        from: Some(Viewer),
                        to: None,
                    },
                ],
            },
        ];
        assert_eq!(got, want);
        // Reverting lists the same users with every change inverted.
        let inverted: Vec<UserChanges> = want
            .into_iter()
            .map(|u| UserChanges {
                user_id: u.user_id,
                changes: u.changes.into_iter().map(invert).collect(),
            })
            .collect();
        assert_eq!(preview(&users, &after, &before, &settings), inverted);
        assert_eq!(preview(&users, &after, &after, &settings), vec![]);
    }

    /// Every subset of a pool of rules covering every grantable shape, for owners and not, active
    /// and not: OrgOwner exists exactly when the owner fact says so, always for that reason alone,
    /// and no diff between rule sets mentions it.
    #[test]
    fn rules_never_make_or_unmake_the_owner() {
        let mut pool: Vec<MappingRule> = OrgRole::ALL
            .iter()
            .filter_map(|r| Grant::org_role(*r).ok())
            .enumerate()
            .map(|(i, g)| rule(&format!("o{i}"), by_name("Eng"), g))
            .collect();
        assert_eq!(
            pool.len(),
            OrgRole::ALL.len() - 1,
            "every role but the owner"
        );
        pool.extend([
            rule("s1", by_dir("dir-okta"), role(all(), Owner)),
            rule("s2", by_claim("x"), role(one("sa1"), Owner)),
            rule(
                "f1",
                by_id("id-Eng"),
                feats(all(), &[(Settings, Level::Full)]),
            ),
            rule("p1", by_ext("ext-Eng"), project("sa1", "p1", P::Admin)),
        ]);
        let mut user = member_of(&["Eng"]);
        user.claim_values.push("x".into());
        let settings = OrgSettings {
            default_role: Some(Owner),
        };
        let subsets: Vec<Vec<MappingRule>> = (0..1u32 << pool.len())
            .map(|bits| {
                pool.iter()
                    .enumerate()
                    .filter(|(i, _)| bits & (1 << i) != 0)
                    .map(|(_, r)| r.clone())
                    .collect()
            })
            .collect();
        let owner_changes = |c: &AccessChange| {
            matches!(c, OrgRoleChanged { from, to }
                if *from == Some(OrgOwner) || *to == Some(OrgOwner))
        };
        for is_owner in [false, true] {
            for active in [true, false] {
                let accesses: Vec<EffectiveAccess> = subsets
                    .iter()
                    .map(|rules| effective_access(&user, is_owner, active, rules, &[], &settings))
                    .collect();
                for a in &accesses {
                    let owner = a.org_roles().get(&OrgOwner);
                    let want = is_owner.then(|| BTreeSet::from([Reason::Owner]));
                    assert_eq!(owner, want.as_ref());
                }
                // Against nothing, everything, the complement and a neighbour: all pairs would
                // take seconds and find nothing more, the per-access check above being exhaustive.
                let full = accesses.len() - 1;
                for (i, before) in accesses.iter().enumerate() {
                    for j in [0, full, full - i, (i + 1) % accesses.len()] {
                        assert!(!diff(before, &accesses[j]).iter().any(owner_changes));
                        assert!(!diff(&accesses[j], before).iter().any(owner_changes));
                    }
                }
            }
        }
    }
}
