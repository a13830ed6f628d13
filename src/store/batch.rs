//! Group commit for SQLite's one writer connection.
//!
//! Write transactions take turns on the one connection anyway; each used to begin, commit, and
//! hand the connection back to its pool (a ping and a spawned task on sqlx's side). Here a turn is
//! a savepoint inside a transaction that several turns share: a turn that ends while others are
//! queued for the writer releases its savepoint and leaves the transaction open for them, and the
//! turn that finds nobody queued (or the batch full, or old) commits it for all. A turn's
//! `commit` returns only once that shared transaction has committed, so nothing is acknowledged
//! that is not durable; a turn that fails is rolled back to its savepoint, and undoes no other
//! turn. If the shared transaction itself fails, every turn in it gets the error, none is
//! acknowledged.
//!
//! A turn abandoned without commit or rollback (its future dropped) is rolled back to its
//! savepoint by a task spawned at the drop, or failing that by the next turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard, watch};

use super::sql::SqlBuilder;
use super::{StoreError, StoreResult};

/// The most turns one transaction carries: the first of them waits for the last.
const MAX_TURNS: usize = 64;
/// The longest a shared transaction stays open while turns keep arriving.
const MAX_AGE: Duration = Duration::from_millis(5);
/// How long a turn that ended waits for its batch's commit before it commits the batch itself
/// (the turn it was handed to went away while queued).
const COMMIT_WAIT: Duration = Duration::from_millis(100);

/// How a shared transaction ended: `None` while it is open.
type Outcome = Option<Result<(), String>>;

pub(crate) struct Writer {
    pool: SqlitePool,
    state: Arc<Mutex<State>>,
    /// Turns waiting for the writer: while there are some, a finished turn leaves the
    /// transaction open for them.
    queued: AtomicUsize,
    batches: AtomicU64,
    /// Transactions committed, and the commits that carried them.
    committed: AtomicU64,
    commits: AtomicU64,
    /// How long a transaction waits for the writer before it gives up, as for a pool connection.
    acquire_timeout: Duration,
    /// The longest a shared transaction stays open ([`MAX_AGE`]).
    max_age: Duration,
}

#[derive(Default)]
struct State {
    batch: Option<Batch>,
    /// A turn ended without commit or rollback: its savepoint is still open.
    abandoned: bool,
}

struct Batch {
    id: u64,
    conn: PoolConnection<Sqlite>,
    started: Instant,
    /// Turns whose savepoint was released into this transaction, waiting for its commit.
    turns: usize,
    /// The last turn to end opened the next one's savepoint, in the call that released its own.
    next_open: bool,
    done: watch::Sender<Outcome>,
}

/// What SQLite's writer has done since the process started, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Write transactions committed.
    pub transactions: u64,
    /// Commits that carried them: fewer than `transactions` when turns shared one.
    pub commits: u64,
    /// Write transactions waiting for the writer now.
    pub waiting: u64,
}

/// One transaction's turn on the writer: the connection, inside its own savepoint.
pub(crate) struct Turn {
    guard: Option<OwnedMutexGuard<State>>,
    writer: Arc<Writer>,
}

fn not_committed(why: &str) -> StoreError {
    StoreError::Db(sqlx::Error::Protocol(format!(
        "the write was not committed: {why}"
    )))
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(conn).await.map(|_| ())
}

impl Writer {
    pub(crate) fn new(pool: SqlitePool, acquire_timeout: Duration) -> Arc<Writer> {
        Self::with_max_age(pool, acquire_timeout, MAX_AGE)
    }

    fn with_max_age(pool: SqlitePool, acquire_timeout: Duration, max_age: Duration) -> Arc<Writer> {
        Arc::new(Writer {
            pool,
            acquire_timeout,
            max_age,
            state: Arc::new(Mutex::new(State::default())),
            queued: AtomicUsize::new(0),
            batches: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            commits: AtomicU64::new(0),
        })
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Ends the open batch, if any (what its turns wrote is kept), then closes the pool. Without
    /// this, closing would wait for a connection the batch still holds.
    pub(crate) async fn close(&self) {
        if let Ok(mut g) = self.lock().await {
            self.tidy(&mut g).await;
            self.settle(&mut g, true).await;
        }
        self.pool.close().await;
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            transactions: self.committed.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
            waiting: self.queued.load(Ordering::Relaxed) as u64,
        }
    }

    /// Waits for the writer; after the acquire timeout the caller gets the error a pool gives,
    /// which answers 503 with Retry-After.
    async fn lock(&self) -> StoreResult<OwnedMutexGuard<State>> {
        /// Counts the wait even if the waiting future is dropped.
        struct Queued<'a>(&'a AtomicUsize);
        impl Drop for Queued<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        let _queued = Queued(&self.queued);
        tokio::time::timeout(self.acquire_timeout, self.state.clone().lock_owned())
            .await
            .map_err(|_| StoreError::Db(sqlx::Error::PoolTimedOut))
    }

    /// Takes the writer for a transaction: joins the open shared transaction or begins one
    /// (`BEGIN IMMEDIATE`, so another process waits for the write lock rather than failing
    /// half-way), inside a savepoint of its own.
    pub(crate) async fn begin(self: &Arc<Self>) -> StoreResult<Turn> {
        let mut g = self.lock().await?;
        self.tidy(&mut g).await;
        match g.batch.as_mut() {
            None => {
                let mut conn = self.pool.acquire().await?;
                if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE; SAVEPOINT turn").await {
                    let _ = exec(&mut conn, "ROLLBACK").await;
                    return Err(e.into());
                }
                g.batch = Some(Batch {
                    id: self.batches.fetch_add(1, Ordering::Relaxed),
                    conn,
                    started: Instant::now(),
                    turns: 0,
                    next_open: false,
                    done: watch::channel(None).0,
                });
            }
            Some(batch) if batch.next_open => batch.next_open = false,
            Some(batch) => {
                if let Err(e) = exec(&mut batch.conn, "SAVEPOINT turn").await {
                    self.settle(&mut g, false).await;
                    return Err(e.into());
                }
            }
        }
        g.abandoned = true;
        Ok(Turn {
            guard: Some(g),
            writer: self.clone(),
        })
    }

    /// Rolls back what an abandoned turn left.
    async fn tidy(&self, g: &mut State) {
        if !g.abandoned {
            return;
        }
        g.abandoned = false;
        if let Some(batch) = g.batch.as_mut()
            && let Err(e) = exec(&mut batch.conn, "ROLLBACK TO turn; RELEASE turn").await
        {
            Self::fail(g, &e.to_string()).await;
        }
    }

    /// Ends the shared transaction if nobody is queued to continue it, or it is full or old;
    /// otherwise leaves it open for the next turn.
    async fn settle(&self, g: &mut State, force: bool) {
        let Some(batch) = g.batch.as_mut() else {
            return;
        };
        if batch.turns == 0 {
            // Nothing in it to keep.
            let _ = exec(&mut batch.conn, "ROLLBACK").await;
            let _ = batch.done.send(Some(Ok(())));
            g.batch = None;
            return;
        }
        if !force
            && self.queued.load(Ordering::Acquire) > 0
            && batch.turns < MAX_TURNS
            && batch.started.elapsed() < self.max_age
        {
            return;
        }
        match exec(&mut batch.conn, "COMMIT").await {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.committed
                    .fetch_add(batch.turns as u64, Ordering::Relaxed);
                let _ = batch.done.send(Some(Ok(())));
                g.batch = None;
            }
            Err(e) => Self::fail(g, &e.to_string()).await,
        }
    }

    /// The shared transaction failed: it is rolled back, and every turn in it is told.
    async fn fail(g: &mut State, why: &str) {
        if let Some(mut batch) = g.batch.take() {
            let _ = exec(&mut batch.conn, "ROLLBACK").await;
            let _ = batch.done.send(Some(Err(why.to_string())));
        }
    }

    /// Waits for batch `id` to end; commits it if the turn it was left to never came.
    async fn wait(&self, id: u64, mut done: watch::Receiver<Outcome>) -> StoreResult<()> {
        loop {
            let ended = async { done.wait_for(Option::is_some).await.map(|o| o.clone()) };
            match tokio::time::timeout(COMMIT_WAIT, ended).await {
                Ok(Ok(outcome)) => {
                    return match outcome {
                        Some(Ok(())) => Ok(()),
                        Some(Err(why)) => Err(not_committed(&why)),
                        None => Err(not_committed("the transaction was dropped")),
                    };
                }
                Ok(Err(_)) => return Err(not_committed("the transaction was dropped")),
                Err(_) => {
                    let Ok(mut g) = self.lock().await else {
                        continue;
                    };
                    if g.batch.as_ref().is_some_and(|b| b.id == id) {
                        // Nobody is left to continue it: commit now.
                        self.tidy(&mut g).await;
                        self.settle(&mut g, true).await;
                    }
                }
            }
        }
    }
}

impl Turn {
    #[expect(
        clippy::expect_used,
        reason = "a turn holds the guard of an open batch from begin until commit, rollback or drop take it"
    )]
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self
            .guard
            .as_mut()
            .and_then(|g| g.batch.as_mut())
            .expect("a write turn used after it ended")
            .conn
    }

    /// Runs `later` (the turn's deferred writes, see [`super::Tx::defer`]) and keeps this turn's
    /// writes, in one call; returns once the transaction that carries them committed. If `later`
    /// fails, the turn is undone and nothing else is.
    pub(crate) async fn commit(mut self, later: SqlBuilder) -> StoreResult<()> {
        let Some(mut g) = self.guard.take() else {
            return Err(not_committed("the turn already ended"));
        };
        let writer = self.writer.clone();
        let Some(batch) = g.batch.as_mut() else {
            return Err(not_committed("no transaction"));
        };
        // A turn is likely to follow in this transaction (the test `settle` makes, a moment
        // early): open its savepoint in this call too, sparing it a call of its own. If none
        // comes, the commit keeps the empty savepoint's nothing.
        let next_open = writer.queued.load(Ordering::Acquire) > 0
            && batch.turns + 1 < MAX_TURNS
            && batch.started.elapsed() < writer.max_age;
        let mut b = later;
        if !b.sql.is_empty() {
            b.push(";\n");
        }
        b.push(if next_open {
            "RELEASE turn;\nSAVEPOINT turn"
        } else {
            "RELEASE turn"
        });
        let released = match b.query::<Sqlite>() {
            Ok(q) => q.execute(&mut *batch.conn).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = released {
            // The savepoint is still open (RELEASE comes last): undo this turn alone.
            writer.tidy(&mut g).await;
            writer.settle(&mut g, false).await;
            return Err(e.into());
        }
        g.abandoned = false;
        let Some(batch) = g.batch.as_mut() else {
            return Err(not_committed("no transaction"));
        };
        batch.turns += 1;
        batch.next_open = next_open;
        let (id, done) = (batch.id, batch.done.subscribe());
        writer.settle(&mut g, false).await;
        drop(g);
        // The batch may have been left open for turns queued behind this one. If this caller goes
        // away while waiting (its client hung up) and they went away too, nobody would end it: it
        // would hold SQLite's write lock, and its connection, until the next write.
        let mut ends = EndsBatch {
            writer: Some(writer.clone()),
            id,
        };
        let r = writer.wait(id, done).await;
        ends.writer = None;
        r
    }

    /// Undoes this turn's writes only.
    pub(crate) async fn rollback(mut self) -> StoreResult<()> {
        if let Some(mut g) = self.guard.take() {
            self.writer.tidy(&mut g).await;
            self.writer.settle(&mut g, false).await;
        }
        Ok(())
    }
}

/// Commits batch `id` if it is still open when the turn waiting for it is dropped.
struct EndsBatch {
    writer: Option<Arc<Writer>>,
    id: u64,
}

impl Drop for EndsBatch {
    fn drop(&mut self) {
        let (Some(writer), Ok(rt)) = (self.writer.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let id = self.id;
        rt.spawn(async move {
            if let Ok(mut g) = writer.lock().await
                && g.batch.as_ref().is_some_and(|b| b.id == id)
            {
                writer.tidy(&mut g).await;
                writer.settle(&mut g, true).await;
            }
        });
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(mut g) = self.guard.take() else {
            return;
        };
        let writer = self.writer.clone();
        // The savepoint is still open: undo it now if a runtime can, else the next turn will.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                writer.tidy(&mut g).await;
                writer.settle(&mut g, false).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::Bind;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    use std::str::FromStr;

    /// A writer on a new database file with one table, and a reader on the same file.
    async fn setup() -> (tempfile::TempDir, Arc<Writer>, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let opts = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        let reader = SqlitePoolOptions::new()
            .connect_with(opts.read_only(true))
            .await
            .unwrap();
        // Batches stay open while anyone is queued, however slow the machine running the tests.
        let w = Writer::with_max_age(pool, Duration::from_secs(5), Duration::from_secs(60));
        (dir, w, reader)
    }

    async fn insert(turn: &mut Turn, x: i64) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO t (x) VALUES ($1)")
            .bind(x)
            .execute(turn.conn())
            .await
            .map(|_| ())
    }

    async fn stored(reader: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(reader)
            .await
            .unwrap()
    }

    /// Holds the writer until `n` transactions wait for it, so that they join one batch.
    async fn until_waiting(w: &Writer, n: u64) {
        while w.stats().waiting < n {
            tokio::task::yield_now().await;
        }
    }

    /// Runs turns `1..=n`, each writing its row `x` and then ending as `end(turn, x)` says, while a
    /// first turn that wrote row 0 holds the writer, so that they queue and share batches; returns
    /// the `x` of those that failed.
    async fn queued_turns<F, Fut>(w: &Arc<Writer>, n: i64, end: F) -> Vec<i64>
    where
        F: Fn(Turn, i64) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = StoreResult<()>> + Send,
    {
        let mut first = w.begin().await.unwrap();
        insert(&mut first, 0).await.unwrap();
        let tasks: Vec<_> = (1..=n)
            .map(|x| {
                let (w, end) = (w.clone(), end.clone());
                tokio::spawn(async move {
                    let mut turn = w.begin().await?;
                    insert(&mut turn, x).await?;
                    end(turn, x).await
                })
            })
            .collect();
        until_waiting(w, n as u64).await;
        first.commit(SqlBuilder::default()).await.unwrap();
        let mut failed = Vec::new();
        for (x, t) in (1..=n).zip(tasks) {
            if t.await.unwrap().is_err() {
                failed.push(x);
            }
        }
        failed
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_transactions_share_a_commit_and_a_failed_one_undoes_only_itself() {
        let (_dir, w, reader) = setup().await;
        let failed = queued_turns(&w, 20, |mut turn, x| async move {
            // Every fifth fails half-way: a duplicate of the first row, after its own.
            if x % 5 == 0 {
                insert(&mut turn, 0).await?;
            }
            turn.commit(SqlBuilder::default()).await
        })
        .await;
        assert_eq!(failed, [5, 10, 15, 20], "only the duplicates fail");
        let expected: Vec<i64> = (0..=20).filter(|x| *x == 0 || x % 5 != 0).collect();
        assert_eq!(
            stored(&reader).await,
            expected,
            "each failure undid itself alone"
        );
        let stats = w.stats();
        assert_eq!(stats.transactions, 17);
        assert!(
            stats.commits < stats.transactions,
            "queued transactions shared commits: {stats:?}"
        );
    }

    /// Deferred writes go with the commit: one that fails there undoes its own turn, what that
    /// turn wrote before included, and no other turn of the batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deferred_write_that_fails_at_commit_undoes_only_its_turn() {
        let (_dir, w, reader) = setup().await;
        let failed = queued_turns(&w, 10, |turn, x| async move {
            // Two deferred rows each; every third turn defers a duplicate of row 0.
            let mut later = SqlBuilder::new("INSERT INTO t (x) VALUES (");
            later.bind(Bind::Int(100 + x)).push(");\n");
            later.push("INSERT INTO t (x) VALUES (");
            let second = if x % 3 == 0 { 0 } else { 200 + x };
            later.bind(Bind::Int(second)).push(")");
            turn.commit(later).await
        })
        .await;
        assert_eq!(failed, [3, 6, 9], "only the duplicates fail");
        let kept: Vec<i64> = (1..=10).filter(|x| x % 3 != 0).collect();
        let mut expected = vec![0];
        expected.extend(kept.iter().copied());
        expected.extend(kept.iter().map(|x| 100 + x));
        expected.extend(kept.iter().map(|x| 200 + x));
        assert_eq!(stored(&reader).await, expected);
        // The writer goes on after them.
        let mut next = w.begin().await.unwrap();
        insert(&mut next, 1000).await.unwrap();
        next.commit(SqlBuilder::default()).await.unwrap();
        assert!(stored(&reader).await.contains(&1000));
    }

    /// What a request sees: once its commit returns, a read on another connection finds what it
    /// wrote, deferred writes included, whatever the turns around it did (committed, rolled back,
    /// or dropped half-way like a request whose client hung up), with the writer's own timings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acknowledged_write_is_read_at_once_among_turns_that_end_every_way() {
        let (_dir, w, reader) = setup().await;
        let w = Writer::new(w.pool().clone(), Duration::from_secs(10));
        let tasks: Vec<_> = (0..400i64)
            .map(|x| {
                let (w, reader) = (w.clone(), reader.clone());
                tokio::spawn(async move {
                    let mut turn = w.begin().await.unwrap();
                    insert(&mut turn, x).await.unwrap();
                    match x % 4 {
                        0 => drop(turn),
                        1 => turn.rollback().await.unwrap(),
                        _ => {
                            let mut later = SqlBuilder::new("INSERT INTO t (x) VALUES (");
                            later.bind(Bind::Int(10_000 + x)).push(")");
                            turn.commit(later).await.unwrap();
                            let seen: Vec<i64> =
                                sqlx::query_scalar("SELECT x FROM t WHERE x IN ($1, $2)")
                                    .bind(x)
                                    .bind(10_000 + x)
                                    .fetch_all(&reader)
                                    .await
                                    .unwrap();
                            assert_eq!(seen, [x, 10_000 + x], "turn {x}, once acknowledged");
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let kept: Vec<i64> = (0..400).filter(|x| x % 4 >= 2).collect();
        let mut expected = kept.clone();
        expected.extend(kept.iter().map(|x| 10_000 + x));
        assert_eq!(stored(&reader).await, expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_left_open_for_turns_that_went_away_still_ends() {
        let (_dir, w, reader) = setup().await;
        let mut first = w.begin().await.unwrap();
        insert(&mut first, 1).await.unwrap();
        // A turn queued behind this one (its request still running) keeps the batch open at
        // commit; then both clients hang up: the queued turn and the committing one's wait are
        // dropped.
        w.queued.fetch_add(1, Ordering::AcqRel);
        let committing = tokio::spawn(first.commit(SqlBuilder::default()));
        while w
            .state
            .lock()
            .await
            .batch
            .as_ref()
            .is_none_or(|b| b.turns == 0)
        {
            tokio::task::yield_now().await;
        }
        committing.abort();
        let _ = committing.await;
        w.queued.fetch_sub(1, Ordering::AcqRel);
        // The batch ends without another write: the row is there, and the writer can be closed.
        let mut rows = stored(&reader).await;
        for _ in 0..500 {
            if !rows.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            rows = stored(&reader).await;
        }
        assert_eq!(rows, [1], "the released turn was committed");
        tokio::time::timeout(Duration::from_secs(10), w.close())
            .await
            .expect("the writer closes");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_the_writer_ends_an_open_batch() {
        let (_dir, w, reader) = setup().await;
        let mut turn = w.begin().await.unwrap();
        insert(&mut turn, 7).await.unwrap();
        // A turn released into the batch, which is left open with nobody to end it.
        let mut g = turn.guard.take().unwrap();
        g.abandoned = false;
        let batch = g.batch.as_mut().unwrap();
        exec(&mut batch.conn, "RELEASE turn").await.unwrap();
        batch.turns += 1;
        drop(g);
        tokio::time::timeout(Duration::from_secs(10), w.close())
            .await
            .expect("the writer closes with a batch open");
        assert_eq!(stored(&reader).await, [7], "what the batch held was kept");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_past_its_age_commits_though_others_are_queued() {
        let (_dir, w, reader) = setup().await;
        let w = Writer::with_max_age(w.pool().clone(), Duration::from_secs(5), Duration::ZERO);
        let mut first = w.begin().await.unwrap();
        insert(&mut first, 1).await.unwrap();
        let w2 = w.clone();
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let second = tokio::spawn(async move {
            let mut turn = w2.begin().await.unwrap();
            insert(&mut turn, 2).await.unwrap();
            // Holds its turn until the first one has been answered.
            wait.await.unwrap();
            turn.commit(SqlBuilder::default()).await
        });
        until_waiting(&w, 1).await;
        // Answered without waiting for the queued turn, which is still open.
        first.commit(SqlBuilder::default()).await.unwrap();
        assert_eq!(stored(&reader).await, [1]);
        go.send(()).unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(stored(&reader).await, [1, 2]);
        assert_eq!(w.stats().commits, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_transaction_is_undone_and_holds_nobody_up() {
        let (_dir, w, reader) = setup().await;
        let mut first = w.begin().await.unwrap();
        insert(&mut first, 1).await.unwrap();
        let w2 = w.clone();
        let next = tokio::spawn(async move {
            let mut turn = w2.begin().await.unwrap();
            insert(&mut turn, 3).await.unwrap();
            turn.commit(SqlBuilder::default()).await
        });
        until_waiting(&w, 1).await;
        first.commit(SqlBuilder::default()).await.unwrap();
        next.await.unwrap().unwrap();

        // Dropped half-way, with nobody after it: its row never appears, and the writer is free.
        let mut dropped = w.begin().await.unwrap();
        insert(&mut dropped, 2).await.unwrap();
        drop(dropped);
        let mut last = w.begin().await.unwrap();
        insert(&mut last, 4).await.unwrap();
        last.commit(SqlBuilder::default()).await.unwrap();
        assert_eq!(stored(&reader).await, [1, 3, 4]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_the_shared_transaction_is_lost_no_turn_in_it_is_acknowledged() {
        let (_dir, w, reader) = setup().await;
        let mut first = w.begin().await.unwrap();
        insert(&mut first, 1).await.unwrap();
        let w2 = w.clone();
        let second = tokio::spawn(async move {
            let mut turn = w2.begin().await.unwrap();
            insert(&mut turn, 2).await.unwrap();
            // What SQLite does to the whole transaction on some I/O errors.
            sqlx::raw_sql("ROLLBACK")
                .execute(turn.conn())
                .await
                .unwrap();
            turn.commit(SqlBuilder::default()).await
        });
        until_waiting(&w, 1).await;
        let first = first.commit(SqlBuilder::default()).await;
        assert!(second.await.unwrap().is_err());
        assert!(
            first.is_err(),
            "the first turn's write was lost with the batch"
        );
        assert_eq!(stored(&reader).await, Vec::<i64>::new());
        // The writer goes on.
        let mut turn = w.begin().await.unwrap();
        insert(&mut turn, 3).await.unwrap();
        turn.commit(SqlBuilder::default()).await.unwrap();
        assert_eq!(stored(&reader).await, [3]);
    }
}
