//! Mapping rules: changes and their preview, each recomputing the users it can affect.

use crate::domain::audit::{AuditOp, AuditResource};
use crate::domain::ids::OrgUserId;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::views::RuleRecord;
use super::{Action, AdminError, AdminResult, Caller};
use crate::mapping::rule::Source;
use crate::mapping::{Grant, GroupMatcher, MappingRule};
use crate::service::provision::{Provision, UserOutcome};
use crate::store::access::{self as access_db, OrgLock};
use crate::store::admin::{self as db, OrgScope, grant_sub_account};
use crate::store::{Store, Tx, audit, new_id};

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

/// The source a rule is bound to: the one it names, checked to be of this organization and of the
/// kind its matcher reads (groups come from directories, claims from connections); when it names
/// none, the organization's only directory (or connection, for a claim), `"any"` while there is
/// none yet, and a refusal when there are several: which one to trust is the admin's decision.
async fn resolve_source(
    tx: &mut Tx,
    scope: &OrgScope,
    m: &GroupMatcher,
    named: Option<&Source>,
) -> AdminResult<Source> {
    let claims = matches!(m, GroupMatcher::Claim { .. });
    let (kind, kinds, ids) = if claims {
        (
            "connection",
            "connections",
            access_db::connection_ids(tx, scope.org_id()).await?,
        )
    } else {
        (
            "directory",
            "directories",
            access_db::directory_ids(tx, scope.org_id()).await?,
        )
    };
    let source = match named {
        Some(s) => s.clone(),
        None => match (m, ids.as_slice()) {
            (GroupMatcher::DirectoryDefault { directory_id }, _) => {
                Source::Directory(directory_id.clone())
            }
            (_, []) => Source::Any,
            (_, [only]) if claims => Source::Connection(only.clone()),
            (_, [only]) => Source::Directory(only.clone()),
            (_, many) => {
                return Err(AdminError::Invalid(format!(
                    "this organization has {} {kinds}: name the one whose {} the rule trusts, \
                     \"source\": {{\"{kind}\": \"<id>\"}}, or \"source\": \"any\" to match \
                     every {kind}'s",
                    many.len(),
                    if claims { "claims" } else { "groups" },
                )));
            }
        },
    };
    let fits = match &source {
        Source::Any => true,
        Source::Directory(d) => {
            !claims
                && ids.contains(d)
                && match m {
                    GroupMatcher::DirectoryDefault { directory_id } => directory_id == d,
                    _ => true,
                }
        }
        Source::Connection(c) => claims && ids.contains(c),
    };
    if !fits {
        return Err(AdminError::Invalid(format!(
            "the source must be \"any\" or a {kind} of this organization{}",
            if matches!(m, GroupMatcher::DirectoryDefault { .. }) {
                ": the directory_default rule's own directory"
            } else if claims {
                " (claims come from sign-in connections)"
            } else {
                " (groups come from SCIM directories)"
            }
        )));
    }
    Ok(source)
}

/// Deletes the rules bound to a directory or connection that is being deleted, each audited: a
/// rule that trusted one IdP must not silently start trusting none or, rebound, another. The
/// caller recomputes the users they reached.
pub(super) async fn delete_rules_bound_to(
    tx: &mut Tx,
    scope: &OrgScope,
    source: &Source,
) -> AdminResult<Vec<String>> {
    let ids = access_db::delete_rules_of_source(tx, scope.org_id(), source).await?;
    let what = match source {
        Source::Directory(id) => format!("its source, directory {id}, was deleted"),
        Source::Connection(id) => format!("its source, connection {id}, was deleted"),
        Source::Any => String::new(),
    };
    for id in &ids {
        audit::record_as(
            tx,
            &scope.audit(),
            AuditOp::Delete,
            AuditResource::MappingRule,
            Some(id),
            Some(&what),
        )
        .await?;
    }
    Ok(ids)
}

pub(super) async fn validate_grant(tx: &mut Tx, scope: &OrgScope, g: &Grant) -> AdminResult<()> {
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
    /// Where the matched groups or claims must come from; see [`resolve_source`].
    #[serde(default)]
    pub source: Option<Source>,
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
        source: Option<Source>,
    },
    Update {
        id: String,
        description: Option<String>,
        matcher: GroupMatcher,
        grant: Grant,
        source: Option<Source>,
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

/// Whether [`rule_change`] makes the change or only tells what it would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In a write transaction that holds the organization exclusively.
    Apply,
    /// In a read-only snapshot that locks nothing, so previews never hold up provisioning.
    Preview,
}

/// One computation for both modes, so a preview and the change made right after it cannot
/// disagree: the rules are edited in memory and the affected users recomputed from them; only
/// [`Mode::Apply`] writes.
async fn rule_change(
    tx: &mut Tx,
    scope: &OrgScope,
    change: &RuleChange,
    mode: Mode,
) -> AdminResult<RuleChangeResult> {
    let now = tx.now();
    let lock = match mode {
        Mode::Apply => OrgLock::Exclusive,
        Mode::Preview => OrgLock::None,
    };
    let apply = mode == Mode::Apply;
    let mut org = access_db::load_org(tx, scope.org_id(), lock).await?;
    let mut affected: BTreeSet<OrgUserId> = BTreeSet::new();
    let t = now;
    let (rule, op) = match change {
        RuleChange::Create { rule } => {
            validate_matcher(tx, scope, &rule.matcher).await?;
            validate_grant(tx, scope, &rule.grant).await?;
            let source = resolve_source(tx, scope, &rule.matcher, rule.source.as_ref()).await?;
            let rec = db::RuleRecord {
                id: new_id(),
                description: rule.description.clone(),
                matcher: rule.matcher.clone(),
                grant: rule.grant.clone(),
                source,
                created_by: scope.actor().to_string(),
                created_at: t,
                updated_at: t,
            };
            if apply {
                db::insert_rule(tx, scope, &rec).await?;
            }
            affected.extend(access_db::org_users_matching(tx, scope.org_id(), &rec.matcher).await?);
            org.rules.push(MappingRule {
                id: rec.id.clone(),
                matcher: rec.matcher.clone(),
                grant: rec.grant.clone(),
                source: rec.source.clone(),
            });
            (Some(rec), AuditOp::Create)
        }
        RuleChange::Update { id, rule } => {
            let old = db::get_rule_tx(tx, scope, id).await?;
            validate_matcher(tx, scope, &rule.matcher).await?;
            validate_grant(tx, scope, &rule.grant).await?;
            let source = resolve_source(tx, scope, &rule.matcher, rule.source.as_ref()).await?;
            let rec = db::RuleRecord {
                description: rule.description.clone(),
                matcher: rule.matcher.clone(),
                grant: rule.grant.clone(),
                source,
                updated_at: t,
                ..old.clone()
            };
            if apply {
                db::update_rule(tx, scope, &rec).await?;
            }
            affected.extend(access_db::org_users_matching(tx, scope.org_id(), &old.matcher).await?);
            affected.extend(access_db::org_users_matching(tx, scope.org_id(), &rec.matcher).await?);
            for r in org.rules.iter_mut().filter(|r| r.id == rec.id) {
                r.matcher = rec.matcher.clone();
                r.grant = rec.grant.clone();
                r.source = rec.source.clone();
            }
            (Some(rec), AuditOp::Update)
        }
        RuleChange::Delete { id } => {
            let old = db::get_rule_tx(tx, scope, id).await?;
            if apply {
                db::delete_rule(tx, scope, id).await?;
            }
            affected.extend(access_db::org_users_matching(tx, scope.org_id(), &old.matcher).await?);
            org.rules.retain(|r| r.id != *id);
            (None, AuditOp::Delete)
        }
    };
    let rule_id = match change {
        RuleChange::Update { id, .. } | RuleChange::Delete { id } => id.clone(),
        RuleChange::Create { .. } => rule.as_ref().map(|r| r.id.clone()).unwrap_or_default(),
    };
    let mut prov = Provision::with_org(scope.org_id(), scope.actor(), org);
    prov.touch(affected);
    if !apply {
        let changes = prov.preview(tx).await?;
        return Ok(RuleChangeResult {
            rule: rule.map(Into::into),
            changes,
        });
    }
    let changes = prov.finish(tx).await?;
    audit::record_as(
        tx,
        &scope.audit(),
        op,
        AuditResource::MappingRule,
        Some(&rule_id),
        Some(&format!("{} users' access changed", changes.len())),
    )
    .await?;
    Ok(RuleChangeResult {
        rule: rule.map(Into::into),
        changes,
    })
}

/// Applies a rule change and recomputes the users it can affect, in one transaction.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn change_rule(
    store: &Store,
    caller: &Caller,
    change: &RuleChange,
) -> AdminResult<RuleChangeResult> {
    caller.require(Action::Manage)?;
    let mut tx = store.begin().await?;
    let result = rule_change(&mut tx, caller.scope(), change, Mode::Apply).await?;
    tx.commit().await?;
    Ok(result)
}

/// What a rule change would do, computed by the same code as [`change_rule`] in a read-only
/// snapshot, so applying the change right after produces exactly this. A preview is a read
/// (viewers run them): it takes neither the organization's lock nor SQLite's one writer.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn preview_rule(
    store: &Store,
    caller: &Caller,
    change: &RuleChange,
) -> AdminResult<RuleChangeResult> {
    caller.require(Action::Read)?;
    let mut tx = store.begin_read().await?;
    let result = rule_change(&mut tx, caller.scope(), change, Mode::Preview).await;
    tx.rollback().await?;
    result
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_rules(store: &Store, caller: &Caller) -> AdminResult<Vec<RuleRecord>> {
    caller.require(Action::Read)?;
    let rules = store.list_rules(caller.scope()).await?;
    Ok(rules.into_iter().map(Into::into).collect())
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), rule_id = id))]
pub async fn get_rule(store: &Store, caller: &Caller, id: &str) -> AdminResult<RuleRecord> {
    caller.require(Action::Read)?;
    Ok(store.get_rule(caller.scope(), id).await?.into())
}
