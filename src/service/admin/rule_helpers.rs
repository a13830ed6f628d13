//! What an admin writing mapping rules needs to see: the IdP groups a rule can name (the
//! organization's SCIM groups and the group-claim values its sign-ins brought), and whom each rule
//! reaches.

use serde::Serialize;

use super::views::RuleRecord;
use super::{Action, AdminResult, Caller};
use crate::mapping::rule::Source;
use crate::mapping::{GroupMatcher, Matched, UserGroups};
use crate::store::access as access_db;
use crate::store::{Store, Tx};

/// An IdP group a rule can name, and the matcher that names it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum GroupChoice {
    /// A group a SCIM directory pushed.
    ScimGroup {
        id: String,
        display_name: String,
        external_id: Option<String>,
        directory_id: String,
        directory_name: String,
        /// Matches this group only (`group_id`); a `display_name` matcher would also match a
        /// group of that name in another directory.
        matcher: GroupMatcher,
    },
    /// A value of the group claim a sign-in through one of the organization's connections sent.
    Claim {
        value: String,
        connection_id: String,
        connection_name: String,
        #[serde(with = "crate::store::rfc3339")]
        #[schema(value_type = String, format = DateTime)]
        last_seen_at: i64,
        matcher: GroupMatcher,
    },
}

/// Up to `limit` of each source whose name contains `q` (every group when `q` is blank): SCIM
/// groups by display name or externalId, then claim values seen at sign-in.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn search_rule_groups(
    store: &Store,
    caller: &Caller,
    q: Option<&str>,
    limit: i64,
) -> AdminResult<Vec<GroupChoice>> {
    caller.require(Action::Read)?;
    let q = super::people::search_text(q)?;
    let q = q.as_deref();
    let scope = caller.scope();
    let groups = store.search_org_groups(scope, q, limit).await?;
    let claims = store.search_claims_seen(scope, q, limit).await?;
    let groups = groups
        .into_iter()
        .map(|(g, directory_name)| GroupChoice::ScimGroup {
            matcher: GroupMatcher::GroupId {
                group_id: g.id.clone(),
            },
            id: g.id,
            display_name: g.display_name,
            external_id: g.external_id,
            directory_id: g.directory_id,
            directory_name,
        });
    let claims = claims.into_iter().map(|c| GroupChoice::Claim {
        matcher: GroupMatcher::Claim {
            value: c.value.clone(),
        },
        value: c.value,
        connection_id: c.connection_id,
        connection_name: c.connection_name,
        last_seen_at: c.last_seen_at,
    });
    Ok(groups.chain(claims).collect())
}

/// A user a rule applies to, and what in their groups it matched.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReachedUser {
    pub id: String,
    pub user_name: String,
    pub matched: Vec<Matched>,
}

/// Every active user `matcher` matches among what `source` brought, in id order: exactly those the rule grants to, found by
/// the indexed superset a rule change recomputes and then the mapping's own matching, so a
/// reach never disagrees with what applying the rule does.
async fn reached(
    tx: &mut Tx,
    org_id: &str,
    matcher: &GroupMatcher,
    source: &Source,
) -> AdminResult<Vec<ReachedUser>> {
    let candidates = access_db::org_users_matching(tx, org_id, matcher).await?;
    let (users, mut facts) =
        access_db::org_users_with_facts(tx, org_id, &candidates, false).await?;
    let mut out = Vec::new();
    for user in users.into_iter().filter(|u| u.active) {
        let f = facts.remove(&user.id).unwrap_or_default();
        let groups = UserGroups {
            directory_ids: f.directory_ids,
            groups: f.groups,
            claim_values: f.claims,
            claims_from: f.claims_from,
        };
        let matched = matcher.matches_from(source, &groups);
        if !matched.is_empty() {
            out.push(ReachedUser {
                id: user.id.into_string(),
                user_name: user.user_name,
                matched,
            });
        }
    }
    Ok(out)
}

/// Whom one rule reaches: how many users in all, and one page of them after the user id `after`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleReach {
    pub rule_id: String,
    pub count: usize,
    pub items: Vec<ReachedUser>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id(), rule_id = rule_id))]
pub async fn rule_reach(
    store: &Store,
    caller: &Caller,
    rule_id: &str,
    after: &str,
    limit: i64,
) -> AdminResult<RuleReach> {
    caller.require(Action::Read)?;
    let rule = store.get_rule(caller.scope(), rule_id).await?;
    // One snapshot, so the count and the page agree.
    let mut tx = store.begin_read().await?;
    let all = reached(
        &mut tx,
        caller.scope().org_id(),
        &rule.matcher,
        &rule.source,
    )
    .await;
    tx.rollback().await?;
    let all = all?;
    let count = all.len();
    let limit = usize::try_from(limit).unwrap_or(0);
    let mut rest = all.into_iter().filter(|u| u.id.as_str() > after);
    let items: Vec<ReachedUser> = rest.by_ref().take(limit).collect();
    let next = if rest.next().is_some() {
        items.last().map(|u| u.id.clone())
    } else {
        None
    };
    Ok(RuleReach {
        rule_id: rule.id,
        count,
        items,
        next,
    })
}

/// A rule as the rule list shows it: with how many users it reaches when that was asked for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleWithReach {
    #[serde(flatten)]
    pub rule: RuleRecord,
    /// How many active users the rule applies to now; only with `with_reach=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reach: Option<usize>,
}

/// Every rule of the organization with its reach, counted in one snapshot.
#[tracing::instrument(level = "debug", skip_all, fields(org_id = %caller.scope().org_id()))]
pub async fn list_rules_with_reach(
    store: &Store,
    caller: &Caller,
) -> AdminResult<Vec<RuleWithReach>> {
    caller.require(Action::Read)?;
    let rules = store.list_rules(caller.scope()).await?;
    let mut tx = store.begin_read().await?;
    let mut out = Vec::with_capacity(rules.len());
    for rule in rules {
        match reached(
            &mut tx,
            caller.scope().org_id(),
            &rule.matcher,
            &rule.source,
        )
        .await
        {
            Ok(users) => out.push(RuleWithReach {
                reach: Some(users.len()),
                rule: rule.into(),
            }),
            Err(e) => {
                tx.rollback().await?;
                return Err(e);
            }
        }
    }
    tx.rollback().await?;
    Ok(out)
}
