//! Why a user holds each piece of access: every source that applies, per scope, with the one that
//! wins marked. Where [`crate::mapping::EffectiveAccess`] keeps only the sources of the winning
//! value, this keeps them all, so an administrator sees why a lower grant has no effect.

use std::fmt::Display;

use serde::Serialize;

use super::effective::{Reason, applicable_grants};
use super::rule::{Grant, ManualGrant, MappingRule, OrgSettings, SubAccountScope, UserGroups};
use crate::domain::access::{Feature, OrgRole};

/// One scope: the organization, one sub-account's role, one feature of a sub-account, or one
/// project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ScopeReasons {
    /// `organization`, `sub_account`, `feature` or `project`.
    pub scope: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<Feature>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Every source, highest value first; `wins` on those that give the value the user holds.
    pub reasons: Vec<ReasonValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReasonValue {
    /// The role or level this source gives.
    pub value: String,
    pub reason: Reason,
    /// This source gives the value the user holds in this scope (several may tie).
    pub wins: bool,
}

/// Marks the highest values of one scope as winning, highest first. `rank` orders values; in the
/// organization scope only roles of one family compete, so the rank includes the family.
fn mark<T: Ord + Copy + Display, K: Ord + Copy>(
    mut cands: Vec<(T, Reason)>,
    key: impl Fn(T) -> K,
) -> Vec<ReasonValue> {
    cands.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    cands.dedup();
    let best = |k: K| cands.iter().filter(|c| key(c.0) == k).map(|c| c.0).max();
    cands
        .iter()
        .map(|(v, r)| ReasonValue {
            value: v.to_string(),
            reason: r.clone(),
            wins: best(key(*v)) == Some(*v),
        })
        .collect()
}

fn applies(scope: &SubAccountScope, sub_account_id: &str) -> bool {
    match scope {
        SubAccountScope::All => true,
        SubAccountScope::One(id) => id == sub_account_id,
    }
}

/// Every reason of the user's access per scope, for the organization and for each of
/// `sub_accounts` (grants to all sub-accounts count in each). Scopes with no source are left out.
pub fn explain(
    user: &UserGroups,
    is_owner: bool,
    active: bool,
    rules: &[MappingRule],
    manual: &[ManualGrant],
    settings: &OrgSettings,
    sub_accounts: &[String],
) -> Vec<ScopeReasons> {
    let grants = applicable_grants(user, active, rules, manual, settings);
    let mut out = Vec::new();

    let mut org: Vec<(OrgRole, Reason)> = Vec::new();
    if is_owner {
        org.push((OrgRole::OrgOwner, Reason::Owner));
    }
    for (g, r) in &grants {
        if let Grant::OrgRole { role } = g {
            org.push((role.get(), r.clone()));
        }
    }
    if !org.is_empty() {
        out.push(ScopeReasons {
            scope: "organization",
            sub_account_id: None,
            feature: None,
            project_id: None,
            reasons: mark(org, OrgRole::family),
        });
    }

    for sa in sub_accounts {
        let roles: Vec<_> = grants
            .iter()
            .filter_map(|(g, r)| match g {
                Grant::SubAccountRole { sub_account, role } if applies(sub_account, sa) => {
                    Some((*role, r.clone()))
                }
                _ => None,
            })
            .collect();
        if !roles.is_empty() {
            out.push(ScopeReasons {
                scope: "sub_account",
                sub_account_id: Some(sa.clone()),
                feature: None,
                project_id: None,
                reasons: mark(roles, |_| ()),
            });
        }
        let mut features: Vec<(Feature, Vec<_>)> = Vec::new();
        for (g, r) in &grants {
            if let Grant::Features {
                sub_account,
                levels,
            } = g
                && applies(sub_account, sa)
            {
                for (f, l) in levels.iter() {
                    match features.iter_mut().find(|(k, _)| *k == f) {
                        Some((_, v)) => v.push((l, r.clone())),
                        None => features.push((f, vec![(l, r.clone())])),
                    }
                }
            }
        }
        features.sort_by_key(|(f, _)| *f);
        for (f, cands) in features {
            out.push(ScopeReasons {
                scope: "feature",
                sub_account_id: Some(sa.clone()),
                feature: Some(f),
                project_id: None,
                reasons: mark(cands, |_| ()),
            });
        }
        let mut projects: Vec<(String, Vec<_>)> = Vec::new();
        for (g, r) in &grants {
            if let Grant::ProjectRole {
                sub_account_id,
                project_id,
                role,
            } = g
                && sub_account_id == sa
            {
                match projects.iter_mut().find(|(k, _)| k == project_id) {
                    Some((_, v)) => v.push((*role, r.clone())),
                    None => projects.push((project_id.clone(), vec![(*role, r.clone())])),
                }
            }
        }
        projects.sort_by(|a, b| a.0.cmp(&b.0));
        for (p, cands) in projects {
            out.push(ScopeReasons {
                scope: "project",
                sub_account_id: Some(sa.clone()),
                feature: None,
                project_id: Some(p),
                reasons: mark(cands, |_| ()),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::SubAccountRole::{Admin, Viewer};
    use crate::mapping::effective_access;
    use crate::mapping::testing::*;

    #[test]
    fn every_reason_is_listed_and_the_highest_wins_in_each_scope() {
        let user = member_of(&["eng", "everyone"]);
        let rules = vec![
            rule("r1", by_name("everyone"), role(all(), Viewer)),
            rule("r2", by_name("eng"), role(one("sa1"), Admin)),
        ];
        let sas = vec!["sa1".to_string(), "sa2".to_string()];
        let none = OrgSettings::default();
        let ex = explain(&user, false, true, &rules, &[], &none, &sas);
        let sa1 = ex
            .iter()
            .find(|s| s.sub_account_id.as_deref() == Some("sa1"))
            .unwrap();
        assert_eq!(sa1.reasons.len(), 2);
        assert_eq!(sa1.reasons[0].value, "admin");
        assert!(sa1.reasons[0].wins);
        assert_eq!(sa1.reasons[0].reason, via("r2", "eng"));
        assert_eq!(sa1.reasons[1].value, "viewer");
        assert!(!sa1.reasons[1].wins);
        let sa2 = ex
            .iter()
            .find(|s| s.sub_account_id.as_deref() == Some("sa2"))
            .unwrap();
        assert_eq!(sa2.reasons.len(), 1);
        assert!(sa2.reasons[0].wins);
        // The winners are what the effective access holds.
        let eff = effective_access(&user, false, true, &rules, &[], &none);
        assert_eq!(eff.for_sub_account("sa1").role, Some(Admin));
        // An inactive user keeps only the ownership fact.
        let ex = explain(&user, true, false, &rules, &[], &none, &sas);
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].scope, "organization");
        assert!(ex[0].reasons[0].wins);
    }
}
