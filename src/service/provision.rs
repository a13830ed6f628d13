//! Provisioning and deprovisioning of access, inside the transaction of the change that causes it.
//!
//! A write collects the organization users it may have affected ([`Provision::touch`]); before
//! commit, [`Provision::finish`] recomputes exactly those users from the organization's rules, their
//! groups and their grants made by hand, stores what changed, revokes the sessions of users who
//! lost their status, and appends one event per change to the outbox. Either all of it commits with
//! the change or none of it does, and the cost is proportional to the users touched, never to the
//! organization.

use crate::domain::audit::{AuditOp, AuditResource};
use crate::domain::ids::OrgUserId;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;

use crate::domain::access::EventType;
use crate::mapping::{
    AccessChange, EffectiveAccess, GroupRef, MappingRule, UserGroups, diff, effective_access,
};
use crate::store::access::{self as db, NewEvent, OrgAccess, OrgLock};
use crate::store::{StoreError, StoreResult, Tx};

/// Why recomputation refused a change: the business rules it enforces, or the storage failing.
/// Nothing was written; the caller's transaction must be dropped.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The change would take the organization past its seat limit.
    #[error("the organization's seat limit of {0} is reached")]
    SeatLimit(i64),
    /// The change would deprovision the organization's owner, which only a transfer may change.
    #[error("user {0} is the organization's owner; transfer ownership before deprovisioning them")]
    OwnerProtected(OrgUserId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What happened to one user's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusChange {
    Provisioned,
    Reactivated,
    Deprovisioned,
}

/// One recomputed user whose access or status changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UserOutcome {
    pub user_id: String,
    pub user_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusChange>,
    pub changes: Vec<AccessChange>,
}

pub struct Provision {
    org_id: String,
    actor: String,
    org: Option<OrgAccess>,
    touched: BTreeSet<OrgUserId>,
    created: BTreeSet<OrgUserId>,
    unlinked: BTreeSet<OrgUserId>,
    merged: BTreeSet<OrgUserId>,
    signed_in: BTreeSet<OrgUserId>,
    extra_events: Vec<NewEvent>,
}

impl Provision {
    pub fn new(org_id: &str, actor: &str) -> Provision {
        Provision {
            org_id: org_id.to_string(),
            actor: actor.to_string(),
            org: None,
            touched: BTreeSet::new(),
            created: BTreeSet::new(),
            unlinked: BTreeSet::new(),
            merged: BTreeSet::new(),
            signed_in: BTreeSet::new(),
            extra_events: Vec::new(),
        }
    }

    /// Starts from an organization already loaded (and locked) by the caller, as rule changes do:
    /// they lock it exclusively and then edit `rules` to what the change makes them.
    pub fn with_org(org_id: &str, actor: &str, org: OrgAccess) -> Provision {
        let mut p = Provision::new(org_id, actor);
        p.org = Some(org);
        p
    }

    /// The organization's rules and settings, read (and share-locked) once per transaction.
    #[tracing::instrument(level = "debug", skip_all, fields(org_id = %self.org_id))]
    pub async fn org(&mut self, tx: &mut Tx) -> StoreResult<&mut OrgAccess> {
        let org = match self.org.take() {
            Some(org) => org,
            None => db::load_org(tx, &self.org_id, OrgLock::Share).await?,
        };
        Ok(self.org.insert(org))
    }

    pub fn touch(&mut self, ids: impl IntoIterator<Item = OrgUserId>) {
        self.touched.extend(ids);
    }

    /// A user this transaction created: its activation is "provisioned", not "reactivated".
    pub fn created(&mut self, id: &OrgUserId) {
        self.created.insert(id.clone());
        self.touched.insert(id.clone());
    }

    /// A user whose SCIM face this transaction deleted: if no other directory provisions them,
    /// they are deprovisioned.
    pub fn unlinked(&mut self, id: &OrgUserId) {
        self.unlinked.insert(id.clone());
        self.touched.insert(id.clone());
    }

    /// A user whose SCIM face a userName change moved to another person (a merge): like
    /// [`Provision::unlinked`], but the deprovisioning, if any, says "merged".
    pub fn merged(&mut self, id: &OrgUserId) {
        self.merged.insert(id.clone());
        self.unlinked(id);
    }

    /// A user an SSO sign-in vouches for. It activates a user no directory provisions (just-in-time
    /// provisioning); a user some directory provisions keeps the status SCIM gave them.
    pub fn signed_in(&mut self, id: &OrgUserId) {
        self.signed_in.insert(id.clone());
        self.touched.insert(id.clone());
    }

    /// An event that is not a user's access change (an ownership transfer, say), numbered with the
    /// rest at flush.
    pub fn event(
        &mut self,
        ty: EventType,
        org_user_id: Option<&OrgUserId>,
        data: serde_json::Value,
    ) {
        self.extra_events.push(NewEvent {
            ty,
            org_user_id: org_user_id.cloned(),
            data,
        });
    }

    /// Recomputes every touched user, stores the changes, and flushes the outbox. Fails without
    /// writing when the owner would be deprovisioned or the seat limit would be passed; the caller's
    /// transaction must then be dropped.
    #[tracing::instrument(level = "debug", skip_all, fields(org_id = %self.org_id))]
    pub async fn finish(mut self, tx: &mut Tx) -> Result<Vec<UserOutcome>, ProvisionError> {
        if self.touched.is_empty() && self.extra_events.is_empty() {
            return Ok(Vec::new());
        }
        let now = tx.now();
        let plan = self.recompute(tx, RowLock::ForUpdate).await?;
        let mut events = Vec::new();
        let mut updates = Vec::new();
        for user in &plan.users {
            let row = &user.row;
            let data = |extra: serde_json::Value| {
                let mut data = json!({ "user_id": row.id, "user_name": row.user_name });
                if let (Some(d), serde_json::Value::Object(extra)) = (data.as_object_mut(), extra) {
                    d.extend(extra);
                }
                data
            };
            let push = |events: &mut Vec<NewEvent>, ty: EventType, data| {
                events.push(NewEvent {
                    ty,
                    org_user_id: Some(row.id.clone()),
                    data,
                })
            };
            match user.outcome.status {
                Some(StatusChange::Provisioned) => {
                    push(&mut events, EventType::UserProvisioned, data(json!({})))
                }
                Some(StatusChange::Reactivated) => {
                    push(&mut events, EventType::UserReactivated, data(json!({})))
                }
                _ => {}
            }
            for change in &user.outcome.changes {
                let ty = if change.is_loss() {
                    EventType::AccessRevoked
                } else {
                    EventType::AccessGranted
                };
                push(&mut events, ty, data(json!({ "change": change })));
            }
            if user.outcome.status == Some(StatusChange::Deprovisioned) {
                let reason = self.deprovision_reason(user);
                let sessions = db::revoke_all_sessions(tx, &row.id, reason, now).await?;
                push(
                    &mut events,
                    EventType::UserDeprovisioned,
                    data(json!({ "reason": reason, "sessions_revoked": sessions })),
                );
                crate::store::audit::record_as(
                    tx,
                    &crate::store::audit::Actor {
                        org_id: &self.org_id,
                        directory_id: None,
                        actor: &self.actor,
                    },
                    AuditOp::Deprovision,
                    AuditResource::OrgUser,
                    Some(&row.id),
                    Some(&format!(
                        "{reason}: {} access changes, {sessions} sessions revoked",
                        user.outcome.changes.len()
                    )),
                )
                .await?;
            }
            if user.stored != row.access || user.active != row.active {
                updates.push(db::UserUpdate {
                    id: row.id.clone(),
                    active: user.active,
                    access: user.stored.clone(),
                });
            }
        }
        db::update_org_users(tx, &updates, now).await?;
        events.append(&mut self.extra_events);
        if let (true, Some(limit)) = (plan.seat_delta > 0, plan.org.seat_limit) {
            db::take_turn(tx, &self.org_id).await?;
            if db::seats_used(tx, &self.org_id).await? > limit {
                return Err(ProvisionError::SeatLimit(limit));
            }
        }
        if !events.is_empty() {
            db::append_events(tx, &self.org_id, &events, now).await?;
        }
        Ok(plan.outcomes())
    }

    /// What [`Provision::finish`] would answer, computed by the same code in a read-only snapshot
    /// ([`crate::store::Store::begin_read`]) and written nowhere: a preview, which takes no lock
    /// that provisioning waits for.
    #[tracing::instrument(level = "debug", skip_all, fields(org_id = %self.org_id))]
    pub async fn preview(mut self, tx: &mut Tx) -> Result<Vec<UserOutcome>, ProvisionError> {
        if self.touched.is_empty() {
            return Ok(Vec::new());
        }
        let plan = self.recompute(tx, RowLock::None).await?;
        // The seats the snapshot uses, plus what the change would add: what `finish` counts
        // after storing the users' new status.
        if let (true, Some(limit)) = (plan.seat_delta > 0, plan.org.seat_limit)
            && db::seats_used(tx, &self.org_id).await? + plan.seat_delta > limit
        {
            return Err(ProvisionError::SeatLimit(limit));
        }
        Ok(plan.outcomes())
    }

    fn deprovision_reason(&self, user: &Recomputed) -> &'static str {
        if user.scim_links > 0 {
            "deactivated"
        } else if self.merged.contains(&user.row.id) {
            "merged"
        } else {
            "deleted"
        }
    }

    /// Every touched user's new status and access, from the organization's rules and the users'
    /// facts as `tx` sees them, before anything is written.
    async fn recompute(&mut self, tx: &mut Tx, lock: RowLock) -> Result<Plan, ProvisionError> {
        let org = match self.org.take() {
            Some(org) => org,
            None => {
                let org_lock = match lock {
                    RowLock::ForUpdate => OrgLock::Share,
                    RowLock::None => OrgLock::None,
                };
                db::load_org(tx, &self.org_id, org_lock).await?
            }
        };
        let ids: Vec<OrgUserId> = std::mem::take(&mut self.touched).into_iter().collect();
        // A user this transaction made is seen by no other until it commits: it needs no lock.
        let lock_rows =
            lock == RowLock::ForUpdate && !ids.iter().all(|id| self.created.contains(id));
        let (rows, mut facts) = db::org_users_with_facts(tx, &self.org_id, &ids, lock_rows).await?;
        let mut users = Vec::with_capacity(rows.len());
        let mut seat_delta = 0i64;
        for row in rows {
            let f = facts.remove(&row.id).unwrap_or_default();
            // A user some directory provisions is active when one of its SCIM users is; a user no
            // directory provisions any more is inactive; a user no directory ever provisioned (a
            // sign-in) keeps the status it has.
            let active = if f.scim_links > 0 {
                f.any_scim_active
            } else if self.unlinked.contains(&row.id) {
                false
            } else if self.signed_in.contains(&row.id) {
                true
            } else {
                row.active
            };
            let is_owner = org.owner_user_id.as_deref() == Some(row.id.as_str());
            if is_owner && row.active && !active {
                return Err(ProvisionError::OwnerProtected(row.id));
            }
            let groups = UserGroups {
                directory_ids: f.directory_ids,
                groups: f.groups,
                claim_values: f.claims,
                claims_from: f.claims_from,
            };
            let access = effective_access(
                &groups,
                is_owner,
                active,
                &org.rules,
                &f.manual,
                &org.settings,
            );
            let before: EffectiveAccess = serde_json::from_str(&row.access).unwrap_or_default();
            let changes = diff(&before, &access);
            let status = match (row.active, active) {
                // An inactive owner is one named when the organization was created and never
                // active since (the owner is never deprovisioned): their first activation.
                (false, true) if self.created.contains(&row.id) || is_owner => {
                    Some(StatusChange::Provisioned)
                }
                (false, true) => Some(StatusChange::Reactivated),
                (true, false) => Some(StatusChange::Deprovisioned),
                _ => None,
            };
            seat_delta += match status {
                Some(StatusChange::Provisioned | StatusChange::Reactivated) => 1,
                Some(StatusChange::Deprovisioned) => -1,
                None => 0,
            };
            users.push(Recomputed {
                outcome: UserOutcome {
                    user_id: row.id.to_string(),
                    user_name: row.user_name.clone(),
                    status,
                    changes,
                },
                stored: db::to_json(&access),
                active,
                scim_links: f.scim_links,
                row,
            });
        }
        Ok(Plan {
            org,
            users,
            seat_delta,
        })
    }
}

/// Whether the recomputation locks the users it reads (a change) or reads a snapshot (a preview).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowLock {
    ForUpdate,
    None,
}

/// One touched user, recomputed.
struct Recomputed {
    row: db::OrgUserRow,
    outcome: UserOutcome,
    active: bool,
    /// The new effective access, as stored.
    stored: String,
    scim_links: usize,
}

/// The recomputation of every touched user, before anything is written.
struct Plan {
    org: OrgAccess,
    users: Vec<Recomputed>,
    seat_delta: i64,
}

impl Plan {
    /// The users whose status or access changes.
    fn outcomes(self) -> Vec<UserOutcome> {
        self.users
            .into_iter()
            .map(|u| u.outcome)
            .filter(|o| o.status.is_some() || !o.changes.is_empty())
            .collect()
    }
}

/// The ids of the rules that match a group, to tell whether its membership or its name can change
/// anyone's access.
pub fn rules_matching(rules: &[MappingRule], group: &GroupRef) -> BTreeSet<String> {
    let user = UserGroups {
        groups: vec![group.clone()],
        ..UserGroups::default()
    };
    rules
        .iter()
        .filter(|r| !r.matches(&user).is_empty())
        .map(|r| r.id.clone())
        .collect()
}

/// Counts of gains and losses over many users, for summaries.
pub fn summarize(outcomes: &[UserOutcome]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::from([("users", outcomes.len()), ("gains", 0), ("losses", 0)]);
    for o in outcomes {
        for c in &o.changes {
            *m.entry(if c.is_loss() { "losses" } else { "gains" })
                .or_default() += 1;
        }
    }
    m
}

/// Records, in a transaction of its own, that a change was refused because it would have
/// deprovisioned the owner: an audit entry and an `owner.deprovision_refused` event. Failures are
/// logged, not returned: the caller is already answering with the refusal.
pub async fn record_owner_refusal(
    store: &crate::store::Store,
    org_id: &str,
    directory_id: Option<&str>,
    actor: &str,
    user_id: &OrgUserId,
) {
    tracing::warn!(
        org_id,
        user_id = user_id.as_str(),
        actor,
        "refused to deprovision the organization's owner"
    );
    let result = async {
        let mut tx = store.begin().await?;
        let who = crate::store::audit::Actor {
            org_id,
            directory_id,
            actor,
        };
        crate::store::audit::record_as(
            &mut tx,
            &who,
            AuditOp::DeprovisionRefused,
            AuditResource::OrgUser,
            Some(user_id.as_str()),
            Some("the user is the organization's owner; transfer ownership first"),
        )
        .await?;
        let event = NewEvent {
            ty: EventType::OwnerDeprovisionRefused,
            org_user_id: Some(user_id.clone()),
            data: json!({ "user_id": user_id, "actor": actor }),
        };
        let now = tx.now();
        db::append_events(&mut tx, org_id, &[event], now).await?;
        tx.commit().await
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record the refused deprovisioning");
    }
}
