//! How events get their per-organization numbers on PostgreSQL without making an organization's
//! writes commit one at a time.
//!
//! A transaction appends its events to `pending_events`, each with a position from one sequence,
//! taken after every row lock the transaction holds: a change that waited for another (the same
//! user, the organization's rules) takes its positions after the other committed, so positions
//! follow cause and effect. Positions are not yet an order readers can page through, though: a
//! transaction holding position 7 may commit after the one holding 8, and a reader that saw 8 and
//! remembered it would never see 7. So readers do not read positions. [`Store::publish_events`]
//! moves pending events into `events` in position order, numbering each organization's on from
//! its last, and stops at the first position it cannot see, until it knows that position is
//! settled: the transaction holding it has ended. It knows that from transaction ids: when it
//! first sees a gap, every transaction that could hold a position in it already had an id (a
//! writer takes one before its first position), so once the oldest transaction still running is
//! younger than every id handed out then, a position still missing was rolled back.
//!
//! One publisher runs at a time (a transaction-scoped advisory lock, on every replica). Everything
//! that reads `events` publishes first, so a reader sees its own committed write. SQLite has one
//! writer at a time: it numbers events as it writes them, and publishing does nothing there.

use sqlx::Row;

use super::sql::{Bind, ROWS_CHUNK};
use super::{Backend, Pools, StoreResult, Tx};
use crate::store::access::NewEvent;

/// The first position not yet seen, past the last one settled, with what was known when it was
/// first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The first missing position.
    pub at: i64,
    /// The first position that was visible after it: every missing position below it was taken
    /// before the gap was seen.
    pub end: i64,
    /// The first transaction id not yet handed out when the gap was seen.
    pub xmax: i64,
}

/// How far publishing can go: from `last` (settled), over the positions `visible` in one snapshot
/// (ascending, all past `last`), whose oldest running transaction id is `xmin` and whose first
/// unassigned one is `xmax`. Returns the new last settled position and the gap that stops it, if
/// any. A gap already on record at the same position keeps its record (its `xmax` must not move,
/// or a gap would never settle under a steady load).
pub fn settle(
    last: i64,
    gap: Option<Gap>,
    visible: &[i64],
    xmin: i64,
    xmax: i64,
) -> (i64, Option<Gap>) {
    let mut next = last + 1;
    let mut gap = gap;
    for &p in visible {
        if p < next {
            continue;
        }
        while p > next {
            let g = match gap {
                Some(g) if g.at == next => g,
                _ => Gap {
                    at: next,
                    end: p,
                    xmax,
                },
            };
            if xmin >= g.xmax && g.end > next {
                // Every transaction that could hold a position below `g.end` has ended: the
                // positions still missing there were rolled back (or never used).
                next = g.end.min(p);
                gap = None;
            } else {
                return (next - 1, Some(g));
            }
        }
        next = p + 1;
    }
    (next - 1, gap.filter(|g| g.at >= next))
}

/// Appends `events` to the organization's outbox, in this order, in the caller's transaction.
pub async fn append_events(
    tx: &mut Tx,
    org_id: &str,
    events: &[NewEvent],
    now: i64,
) -> StoreResult<()> {
    let backend = tx.backend();
    for chunk in events.chunks(ROWS_CHUNK) {
        // Nothing in the transaction reads its own events: on SQLite they go with the commit.
        tx.defer(|b| {
            match backend {
                // SQLite writes one transaction at a time: each chunk numbers itself after the
                // organization's last event in the statement that inserts it.
                Backend::Sqlite => {
                    b.push(
                        "INSERT INTO events (org_id, seq, id, type, org_user_id, data, at) \
                         SELECT m.org_id, m.base + v.column1, v.column2, v.column3, v.column4, v.column5, v.column6 \
                         FROM (SELECT ",
                    )
                    .bind_text(org_id)
                    .push(" AS org_id, COALESCE(MAX(seq), 0) AS base FROM events WHERE org_id = ")
                    .bind_text(org_id)
                    .push(") AS m CROSS JOIN (VALUES ");
                }
                // The transaction takes its id before its first position (the CTE is scanned
                // before the positions are drawn, which happens after the sort), so that the
                // publisher can tell when a missing position is settled; positions follow the
                // list's order.
                Backend::Postgres => {
                    b.push(
                        "WITH x AS MATERIALIZED (SELECT pg_current_xact_id() AS xid) \
                         INSERT INTO pending_events (position, org_id, id, type, org_user_id, data, at) \
                         SELECT nextval('event_position'), m.org_id, v.column2, v.column3, v.column4, v.column5, v.column6 \
                         FROM x CROSS JOIN (SELECT ",
                    )
                    .bind_text(org_id)
                    .push(" AS org_id) AS m CROSS JOIN (VALUES ");
                }
            }
            for (j, e) in chunk.iter().enumerate() {
                if j > 0 {
                    b.push(", ");
                }
                b.push("(").bind(Bind::Int(j as i64 + 1)).push(", ");
                b.bind_text(super::new_id()).push(", ");
                b.bind_text(e.ty.as_str().to_owned()).push(", ");
                match &e.org_user_id {
                    Some(u) => b.bind_text(u.as_str()),
                    None => b.push("CAST(NULL AS TEXT)"),
                };
                b.push(", ").bind_text(e.data.to_string()).push(", ");
                b.bind(Bind::Int(now)).push(")");
            }
            b.push(") AS v");
            if backend == Backend::Postgres {
                b.push(" WHERE x.xid IS NOT NULL ORDER BY v.column1");
            }
        })
        .await?;
    }
    Ok(())
}

/// Pending events one pass of the publisher reads at most.
const PUBLISH_BATCH: i64 = 5_000;

impl super::Store {
    /// Numbers the pending events whose positions are settled into `events` (see the module's
    /// documentation); returns how many. Does nothing on SQLite.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn publish_events(&self) -> StoreResult<u64> {
        let Pools::Postgres(pool) = &*self.pools else {
            return Ok(0);
        };
        let mut published = 0;
        loop {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('idbridge.events', 8))")
                .execute(&mut *tx)
                .await?;
            // Read committed: this statement's snapshot is taken once the lock is held, so it
            // sees what the publisher before committed.
            let row = sqlx::query(
                "SELECT last_position, gap_at, gap_end, gap_xmax FROM event_publisher WHERE id = 1",
            )
            .fetch_one(&mut *tx)
            .await?;
            let last: i64 = row.try_get("last_position")?;
            let gap = match (
                row.try_get::<Option<i64>, _>("gap_at")?,
                row.try_get::<Option<i64>, _>("gap_end")?,
                row.try_get::<Option<i64>, _>("gap_xmax")?,
            ) {
                (Some(at), Some(end), Some(xmax)) => Some(Gap { at, end, xmax }),
                _ => None,
            };
            // The positions and the running transactions, in one snapshot.
            let rows = sqlx::query(
                "SELECT p.position, s.xmin, s.xmax FROM \
                 (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin, \
                         pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax) AS s \
                 LEFT JOIN LATERAL (SELECT position FROM pending_events WHERE position > $1 \
                                    ORDER BY position LIMIT $2) AS p ON true",
            )
            .bind(last)
            .bind(PUBLISH_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            let (mut xmin, mut xmax) = (0, 0);
            let mut visible = Vec::with_capacity(rows.len());
            for r in &rows {
                xmin = r.try_get("xmin")?;
                xmax = r.try_get("xmax")?;
                if let Some(p) = r.try_get::<Option<i64>, _>("position")? {
                    visible.push(p);
                }
            }
            let (settled, new_gap) = settle(last, gap, &visible, xmin, xmax);
            let moved = if settled > last {
                // Replicas of the release before this one number events themselves under the
                // organization's advisory lock; hold it for the organizations numbered here.
                sqlx::query(
                    "SELECT pg_advisory_xact_lock(hashtextextended(org_id, 7)) FROM \
                     (SELECT DISTINCT org_id FROM pending_events WHERE position <= $1 ORDER BY org_id) AS o",
                )
                .bind(settled)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "WITH moved AS (DELETE FROM pending_events WHERE position <= $1 RETURNING *), \
                     base AS (SELECT o.org_id, \
                              COALESCE((SELECT MAX(e.seq) FROM events e WHERE e.org_id = o.org_id), 0) AS seq \
                              FROM (SELECT DISTINCT org_id FROM moved) AS o) \
                     INSERT INTO events (org_id, seq, id, type, org_user_id, data, at) \
                     SELECT m.org_id, b.seq + ROW_NUMBER() OVER (PARTITION BY m.org_id ORDER BY m.position), \
                            m.id, m.type, m.org_user_id, m.data, m.at \
                     FROM moved m JOIN base b ON b.org_id = m.org_id",
                )
                .bind(settled)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            } else {
                0
            };
            if settled != last || new_gap != gap {
                sqlx::query(
                    "UPDATE event_publisher SET last_position = $1, gap_at = $2, gap_end = $3, \
                     gap_xmax = $4 WHERE id = 1",
                )
                .bind(settled)
                .bind(new_gap.map(|g| g.at))
                .bind(new_gap.map(|g| g.end))
                .bind(new_gap.map(|g| g.xmax))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            published += moved;
            // A full batch may have left more behind it.
            if (visible.len() as i64) < PUBLISH_BATCH || settled == last {
                return Ok(published);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(at: i64, end: i64, xmax: i64) -> Option<Gap> {
        Some(Gap { at, end, xmax })
    }

    #[test]
    fn contiguous_positions_settle_at_once() {
        assert_eq!(settle(0, None, &[1, 2, 3], 50, 50), (3, None));
        assert_eq!(settle(3, None, &[], 50, 60), (3, None));
    }

    #[test]
    fn a_missing_position_stops_publishing_while_a_transaction_that_could_hold_it_runs() {
        // Position 2 is not visible and transaction 40 still runs: 3 waits behind it.
        let (last, open) = settle(0, None, &[1, 3], 40, 50);
        assert_eq!(last, 1);
        assert_eq!(open, gap(2, 3, 50));
        // Later, under a steady load the newest id keeps moving, but the record does not: once
        // every transaction older than 50 has ended, position 2 was rolled back.
        assert_eq!(settle(1, open, &[3, 4], 45, 80), (1, open));
        assert_eq!(settle(1, open, &[3, 4], 50, 90), (4, None));
    }

    #[test]
    fn a_position_that_appears_closes_its_gap() {
        assert_eq!(settle(1, gap(2, 3, 50), &[2, 3, 4], 45, 80), (4, None));
    }

    #[test]
    fn with_nothing_running_a_gap_is_settled_when_it_is_seen() {
        // xmin equal to xmax: no transaction is running, so a missing position was rolled back.
        assert_eq!(settle(0, None, &[1, 4, 5], 70, 70), (5, None));
    }

    #[test]
    fn a_settled_gap_covers_only_the_positions_taken_before_it_was_seen() {
        // Seen with 3 visible: positions 1-2 were taken before; 4 was taken after and is missing
        // now, with transaction 60 running.
        assert_eq!(
            settle(0, gap(1, 3, 50), &[3, 5], 60, 90),
            (3, gap(4, 5, 90))
        );
    }
}
