//! The only module that speaks SQL. It owns both backends (SQLite embedded, PostgreSQL for
//! production), their migrations, and every query. SQL text is written once with `$N` placeholders,
//! which both sqlx drivers accept; the few dialect differences live in [`sql`].
//!
//! Tenant isolation is structural: SCIM reads and writes take a [`DirectoryScope`], which only
//! [`Store::authenticate_directory`] can make, and every query binds its directory id.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::domain::clock::Clock;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

pub mod access;
pub mod admin;
pub mod audit;
mod auth_cache;
mod batch;
pub mod console;
pub mod directory;
pub mod outbox;
mod page_marks;
pub mod platform;
pub mod rfc3339;
pub mod scim;
pub mod secrets;
pub mod sql;
pub mod sso;

pub use batch::WriterStats;
pub use directory::{DirectoryScope, NewToken, OrgRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; the string names what was duplicated.
    #[error("{0} already exists")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database could not be opened; the text names where (path or host:port, never a
    /// password) and why.
    #[error("{0}")]
    Open(String),
    /// A SQLite file that does not exist, opened without [`StoreOptions::create_if_missing`].
    #[error("the database does not exist")]
    NoDatabase,
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// The database could not be reached or is shutting down (not a fault of the request): worth
    /// answering 503 with a retry hint, and trying again once it is back.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Db(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            // PostgreSQL: connection exceptions (08), and admin/crash shutdown or "cannot connect
            // now" (57P01-57P03), which a server stopping or starting sends.
            sqlx::Error::Database(d) => d
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
            _ => false,
        }
    }

    /// Maps a unique-constraint violation to [`StoreError::Conflict`] and leaves other errors be.
    pub(crate) fn on_unique(e: sqlx::Error, what: &str) -> StoreError {
        match &e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                StoreError::Conflict(what.into())
            }
            _ => StoreError::Db(e),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `expr` with ASCII letters folded, as `domain::fold_key` folds in Rust. SQLite's built-in
    /// lower() folds ASCII only; PostgreSQL's follows the locale and would fold U+212A KELVIN SIGN
    /// to `k`, so it spells the ASCII fold out.
    pub fn ascii_lower(self, expr: &str) -> String {
        match self {
            Backend::Sqlite => format!("lower({expr})"),
            Backend::Postgres => format!(
                "translate({expr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"
            ),
        }
    }
}

enum Pools {
    /// SQLite admits one writer at a time; a one-connection writer pool queues writers in-process
    /// instead of letting them fail with SQLITE_BUSY, while WAL lets readers run beside it.
    Sqlite {
        writer: Arc<batch::Writer>,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

#[derive(Clone)]
pub struct Store {
    pools: Arc<Pools>,
    /// Seals secrets before they are written; without it, nothing secret can be stored.
    secrets: Option<Arc<secrets::SecretBox>>,
    /// This replica's accepted tokens (see auth_cache.rs).
    auth_cache: Arc<auth_cache::AuthCache>,
    /// Where the next pages of user lists start, on this replica (see page_marks.rs).
    page_marks: Arc<page_marks::PageMarks>,
    /// The time every expiry and timestamp is read from (see domain/clock.rs).
    clock: Clock,
}

/// A transaction on either backend. Everything a request changes goes through one of these, so
/// a request commits whole or not at all; and everything it writes or checks against the time
/// uses [`Tx::now`], read once from the store's clock when the transaction began.
pub struct Tx {
    conn: TxConn,
    now: i64,
    /// Writes whose results the transaction never reads (audit rows, events, counts), queued by
    /// [`Tx::defer`]: on SQLite's writer they go in one call with the turn's release.
    later: sql::SqlBuilder,
}

/// Parameters queued by [`Tx::defer`] past which they are sent at once rather than at commit.
const DEFER_MAX_BINDS: usize = 4096;

pub(crate) enum TxConn {
    Sqlite(Transaction<'static, Sqlite>),
    /// A write transaction's turn on SQLite's one writer (see [`batch`]).
    SqliteTurn(batch::Turn),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs the same query code against whichever backend `$tx` holds; `$c` is the concrete connection.
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match &mut ($tx).conn {
            $crate::store::TxConn::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::TxConn::SqliteTurn(t) => {
                let $c = t.conn();
                $body
            }
            $crate::store::TxConn::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// Like [`on_tx!`] for reads outside a transaction; `$c` is the backend's read pool.
macro_rules! on_read {
    ($store:expr, $c:ident => $body:expr) => {
        match $store.read_pool() {
            $crate::store::ReadPool::Sqlite($c) => $body,
            $crate::store::ReadPool::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_read;

pub(crate) enum ReadPool<'a> {
    Sqlite(&'a SqlitePool),
    Postgres(&'a PgPool),
}

impl Tx {
    /// The time this transaction acts at, in microseconds since the Unix epoch: read from the
    /// store's clock when it began, so every row it writes and every expiry it checks agree.
    pub fn now(&self) -> i64 {
        self.now
    }

    pub async fn commit(mut self) -> StoreResult<()> {
        let later = std::mem::take(&mut self.later);
        match self.conn {
            // Only a turn defers (Tx::defer runs the write at once elsewhere).
            TxConn::SqliteTurn(t) => t.commit(later).await?,
            TxConn::Sqlite(t) => t.commit().await?,
            TxConn::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// A write whose result this transaction never reads, nor anything it reads depends on, nor
    /// any later write of it would change (deferred writes run last, in the order given):
    /// `build` appends one statement. On SQLite's writer it is sent at commit, with every other
    /// such write and the turn's release, in one call to the database's thread rather than one
    /// each (SQLite runs statements separated by `;` in order, each binding its `$N` from the
    /// shared list). Elsewhere it runs now. A failure then fails the commit, and undoes the turn.
    pub(crate) async fn defer(
        &mut self,
        build: impl FnOnce(&mut sql::SqlBuilder),
    ) -> StoreResult<()> {
        if let TxConn::SqliteTurn(_) = self.conn {
            if !self.later.sql.is_empty() {
                self.later.push(";\n");
            }
            build(&mut self.later);
            if self.later.binds.len() >= DEFER_MAX_BINDS {
                let later = std::mem::take(&mut self.later);
                on_tx!(self, c => later.query()?.execute(c).await?.rows_affected());
            }
            return Ok(());
        }
        let mut b = sql::SqlBuilder::default();
        build(&mut b);
        on_tx!(self, c => b.query()?.execute(c).await?.rows_affected());
        Ok(())
    }

    /// Undoes everything the transaction did (dropping it does the same, later).
    pub async fn rollback(self) -> StoreResult<()> {
        match self.conn {
            TxConn::Sqlite(t) => t.rollback().await?,
            TxConn::SqliteTurn(t) => t.rollback().await?,
            TxConn::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.conn {
            TxConn::Sqlite(_) | TxConn::SqliteTurn(_) => Backend::Sqlite,
            TxConn::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Pool sizes and timeouts; the defaults suit a 2-core machine.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Make the SQLite file when it is missing. Only `serve` and `migrate` do: any other command
    /// run from the wrong folder would otherwise work on a new, empty database.
    pub create_if_missing: bool,
    /// How long this replica trusts a token it has accepted before asking the database again:
    /// how long a revocation made on another replica can take to reach this one. Zero: ask
    /// every time.
    pub auth_cache: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            // Short enough that a request fails in seconds, with a 503 an IdP retries, rather than
            // hanging while the database is unreachable.
            acquire_timeout: Duration::from_secs(5),
            create_if_missing: true,
            auth_cache: Duration::from_secs(1),
        }
    }
}

/// Creates an empty SQLite file readable by its owner only: it holds session hashes, sealed
/// secrets and everyone's access, and SQLite gives its WAL and shared-memory files the mode of the
/// database file. An empty file is a valid empty database.
fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        // Another process made it first; its mode is its own.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Connects to `url` (`sqlite:` or `postgres:`/`postgresql:`), creating a SQLite file if missing
    /// and [`StoreOptions::create_if_missing`] says so. Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str, opts: &StoreOptions) -> StoreResult<Store> {
        let pools = if url.starts_with("sqlite:") {
            let base = SqliteConnectOptions::from_str(url)?
                .create_if_missing(opts.create_if_missing)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL with NORMAL loses no committed data on a process crash (SIGKILL); only an OS
                // crash can drop the last transactions, which is the documented trade for speed.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-16000");
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let path = base.get_filename().to_path_buf();
            if !in_memory && !opts.create_if_missing && !path.exists() {
                return Err(StoreError::NoDatabase);
            }
            if !in_memory && opts.create_if_missing && !path.exists() {
                create_private_file(&path)
                    .map_err(|e| sqlite_open_error(&path, sqlx::Error::Io(e)))?;
            }
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(base.clone())
                .await
                .map_err(|e| sqlite_open_error(&path, e))?;
            let reader = if in_memory {
                writer.clone()
            } else {
                SqlitePoolOptions::new()
                    .max_connections(opts.max_connections.clamp(1, 8))
                    .acquire_timeout(opts.acquire_timeout)
                    // The writer keeps 16 MB of pages (an insert walks every index it adds to);
                    // a reader SQLite's default 2 MB, since up to 8 of them each keep their own.
                    // At 100,000 users 16 MB readers held 180 MB after a run of GETs, 2 MB ones
                    // 70 MB, at rates within the noise of each other: the pages come from the
                    // OS's cache either way.
                    .connect_lazy_with(base.read_only(true).pragma("cache_size", "-2000"))
            };
            Pools::Sqlite {
                writer: batch::Writer::new(writer, opts.acquire_timeout),
                reader,
            }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            use sqlx::{ConnectOptions as _, Connection as _};
            // A statement over a second is reported at INFO, not sqlx's WARN: the longest waits are
            // replicas and commands queueing on the migration lock, which is normal at a rolling
            // start and would otherwise print to every CLI command's stderr. Request latency is in
            // the request log and metrics; `IDBRIDGE_LOG=info,sqlx=info` shows these too.
            let options = PgConnectOptions::from_str(url)?
                .log_slow_statements(log::LevelFilter::Info, Duration::from_secs(1));
            // One plain attempt first: the pool retries a refused connection until its timeout and
            // then reports only "timed out", which hides the cause from the operator.
            let first = tokio::time::timeout(
                opts.acquire_timeout,
                sqlx::PgConnection::connect_with(&options),
            )
            .await;
            match first {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                }
                Ok(Err(e)) => return Err(pg_open_error(&options, &e)),
                Err(_) => {
                    return Err(pg_open_error(&options, &sqlx::Error::PoolTimedOut));
                }
            }
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(options.clone())
                .await
                .map_err(|e| pg_open_error(&options, &e))?;
            Pools::Postgres(pool)
        } else {
            return Err(StoreError::Invalid(
                "database URL must start with sqlite: or postgres:".into(),
            ));
        };
        Ok(Store {
            pools: Arc::new(pools),
            secrets: None,
            auth_cache: Arc::new(auth_cache::AuthCache::new(opts.auth_cache)),
            page_marks: Arc::default(),
            clock: Clock::system(),
        })
    }

    /// The clock every expiry and timestamp reads (the system's unless a test or a rehearsal
    /// passes another).
    pub fn with_clock(mut self, clock: Clock) -> Store {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The store's time in microseconds, for reads outside a transaction; inside one, [`Tx::now`].
    pub fn now(&self) -> i64 {
        self.clock.now_micros()
    }

    /// After a commit that can end a token: this replica stops trusting what it had accepted.
    pub(crate) fn tokens_changed(&self) {
        self.auth_cache.forget_all();
    }

    /// Whether the database holds idbridge's tables, i.e. `migrate` or `serve` ran on it.
    pub async fn has_schema(&self) -> StoreResult<bool> {
        let found: bool = match &*self.pools {
            Pools::Sqlite { writer, .. } => sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'organizations')",
            )
            .fetch_one(writer.pool())
            .await?,
            // to_regclass follows search_path, so a schema chosen in the URL is the one asked.
            Pools::Postgres(pool) => {
                sqlx::query_scalar("SELECT to_regclass('organizations') IS NOT NULL")
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(found)
    }

    /// The key that seals OIDC client secrets and signing keys at rest.
    pub fn with_secrets(mut self, key: secrets::SecretBox) -> Store {
        self.secrets = Some(Arc::new(key));
        self
    }

    pub(crate) fn secrets(&self) -> StoreResult<&secrets::SecretBox> {
        self.secrets.as_deref().ok_or_else(|| {
            StoreError::Invalid(
                "no secrets key is configured (IDBRIDGE_SECRETS_KEY): secrets cannot be stored or read"
                    .into(),
            )
        })
    }

    pub fn backend(&self) -> Backend {
        match &*self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match &*self.pools {
            Pools::Sqlite { writer, .. } => {
                sqlx::migrate!("migrations/sqlite")
                    .run(writer.pool())
                    .await?
            }
            Pools::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Begins a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so a second process (the CLI
    /// beside a running server) waits for the write lock instead of failing half-way.
    pub async fn begin(&self) -> StoreResult<Tx> {
        let conn = match &*self.pools {
            Pools::Sqlite { writer, .. } => TxConn::SqliteTurn(writer.begin().await?),
            Pools::Postgres(pool) => TxConn::Postgres(pool.begin().await?),
        };
        // Read once the write lock is held, so later transactions never act at an earlier time.
        Ok(Tx {
            conn,
            now: self.now(),
            later: sql::SqlBuilder::default(),
        })
    }

    /// Begins a read-only transaction on the reader pool: one consistent snapshot that takes no
    /// lock, so it neither waits for writers (the organization's lock, SQLite's one writer) nor
    /// holds them up. Any write in it fails.
    pub async fn begin_read(&self) -> StoreResult<Tx> {
        let conn = match &*self.pools {
            Pools::Sqlite { reader, .. } => TxConn::Sqlite(reader.begin().await?),
            Pools::Postgres(pool) => TxConn::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
            ),
        };
        Ok(Tx {
            conn,
            now: self.now(),
            later: sql::SqlBuilder::default(),
        })
    }

    pub(crate) fn read_pool(&self) -> ReadPool<'_> {
        match &*self.pools {
            Pools::Sqlite { reader, .. } => ReadPool::Sqlite(reader),
            Pools::Postgres(pool) => ReadPool::Postgres(pool),
        }
    }

    /// Readiness: the database answers a trivial query.
    pub async fn ping(&self) -> StoreResult<()> {
        on_read!(self, c => sqlx::query("SELECT 1").execute(c).await.map(|_| ()))?;
        Ok(())
    }

    /// Connections of each pool, for `/metrics`: open, idle, and the most it may open.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        fn stats<DB: sqlx::Database>(pool: &'static str, p: &sqlx::Pool<DB>) -> PoolStats {
            PoolStats {
                pool,
                size: p.size(),
                idle: p.num_idle() as u32,
                max: p.options().get_max_connections(),
            }
        }
        match &*self.pools {
            Pools::Sqlite { writer, reader } => {
                vec![stats("writer", writer.pool()), stats("reader", reader)]
            }
            Pools::Postgres(pool) => vec![stats("main", pool)],
        }
    }

    /// SQLite's writer: transactions committed and the commits that carried them; none on
    /// PostgreSQL.
    pub fn writer_stats(&self) -> Option<batch::WriterStats> {
        match &*self.pools {
            Pools::Sqlite { writer, .. } => Some(writer.stats()),
            Pools::Postgres(_) => None,
        }
    }

    pub async fn close(&self) {
        match &*self.pools {
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

/// Why a SQLite file did not open, in the terms of the file system: SQLite itself only says
/// "unable to open database file".
fn sqlite_open_error(path: &std::path::Path, e: sqlx::Error) -> StoreError {
    let shown = path.display();
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let cause = match std::fs::metadata(parent) {
        Err(p) if p.kind() == std::io::ErrorKind::NotFound => {
            format!("directory {} does not exist", parent.display())
        }
        Ok(m) if !m.is_dir() => format!("{} is not a directory", parent.display()),
        _ => match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Err(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                "permission denied".to_string()
            }
            // The file is missing and could not be made: the directory refuses new files.
            Err(io) if io.kind() == std::io::ErrorKind::NotFound => {
                format!("permission denied in directory {}", parent.display())
            }
            _ => e.to_string(),
        },
    };
    StoreError::Open(format!("cannot open SQLite database {shown}: {cause}"))
}

/// Names the server and the cause; the password is never part of either.
fn pg_open_error(options: &PgConnectOptions, e: &sqlx::Error) -> StoreError {
    let cause = match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_string()
        }
        sqlx::Error::Io(io) => io.to_string(),
        // The server's own words: "password authentication failed for user ...", "database ...
        // does not exist".
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("28")) => {
            format!("authentication failed: {}", d.message())
        }
        sqlx::Error::Database(d) => d.message().to_string(),
        sqlx::Error::PoolTimedOut => "timed out".to_string(),
        e => e.to_string(),
    };
    let server = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    StoreError::Open(format!("cannot connect to PostgreSQL at {server}: {cause}"))
}

/// One connection pool's state at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// `main` on PostgreSQL; `writer` and `reader` on SQLite.
    pub pool: &'static str,
    /// Connections open, idle or in use.
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// Microseconds since the Unix epoch, the unit of every stored time.
pub fn micros(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub fn from_micros(us: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sql::Bind;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("d.db").display());
        let store = Store::connect(&url, &StoreOptions::default())
            .await
            .unwrap();
        let mut tx = store.begin().await.unwrap();
        on_tx!(tx, c => sqlx::query("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT NOT NULL)")
            .execute(c).await.unwrap().rows_affected());
        tx.commit().await.unwrap();
        (dir, store)
    }

    async fn rows(store: &Store) -> Vec<i64> {
        on_read!(store, c => sqlx::query_scalar("SELECT x FROM t ORDER BY x").fetch_all(c).await.unwrap())
    }

    async fn defer_insert(tx: &mut Tx, x: i64) {
        tx.defer(|b| {
            b.push("INSERT INTO t (x, y) VALUES (")
                .bind(Bind::Int(x))
                .push(", ")
                .bind_text(format!("row {x}"))
                .push(")");
        })
        .await
        .unwrap();
    }

    /// Deferred writes land at commit, however many (past the point where they are sent early),
    /// and go with a rollback, those sent early included.
    #[tokio::test]
    async fn deferred_writes_land_with_the_commit_and_go_with_a_rollback() {
        let (_dir, store) = store().await;
        let mut tx = store.begin().await.unwrap();
        for x in 0..3000 {
            defer_insert(&mut tx, x).await;
        }
        tx.rollback().await.unwrap();
        assert!(rows(&store).await.is_empty(), "a rollback keeps none");

        let mut tx = store.begin().await.unwrap();
        for x in 0..3000 {
            defer_insert(&mut tx, x).await;
        }
        tx.commit().await.unwrap();
        assert_eq!(rows(&store).await, (0..3000).collect::<Vec<i64>>());
    }

    /// A deferred write that fails fails the commit, and what the transaction wrote at once is
    /// undone with it.
    #[tokio::test]
    async fn a_failing_deferred_write_fails_the_commit_and_undoes_the_rest() {
        let (_dir, store) = store().await;
        let mut tx = store.begin().await.unwrap();
        defer_insert(&mut tx, 1).await;
        tx.commit().await.unwrap();

        let mut tx = store.begin().await.unwrap();
        on_tx!(tx, c => sqlx::query("INSERT INTO t (x, y) VALUES (2, 'at once')")
            .execute(c).await.unwrap().rows_affected());
        defer_insert(&mut tx, 3).await;
        defer_insert(&mut tx, 1).await;
        assert!(tx.commit().await.is_err(), "the duplicate fails the commit");
        assert_eq!(rows(&store).await, [1]);
    }
}
