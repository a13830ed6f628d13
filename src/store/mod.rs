//! The only module that speaks SQL. It owns both backends (SQLite embedded, PostgreSQL for
//! production), their migrations, and every query. SQL text is written once with `$N` placeholders,
//! which both sqlx drivers accept; the few dialect differences live in [`sql`].
//!
//! Tenant isolation is structural: SCIM reads and writes take a [`DirectoryScope`], which only
//! [`Store::authenticate_directory`] can make, and every query binds its directory id.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

pub mod access;
pub mod admin;
pub mod audit;
pub mod directory;
pub mod rfc3339;
pub mod scim;
pub mod secrets;
pub mod sql;
pub mod sso;

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
    /// A request that could not be turned into SQL (a filter on an attribute that cannot be
    /// filtered, say): the client's error, in the protocol's terms.
    #[error("{0}")]
    Scim(#[from] crate::scim::error::ScimError),
    /// The change would take the organization past its seat limit; nothing was written.
    #[error("the organization's seat limit of {0} is reached")]
    SeatLimit(i64),
    /// The change would deprovision the organization's owner, which only a transfer may change.
    #[error("user {0} is the organization's owner; transfer ownership before deprovisioning them")]
    OwnerProtected(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
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

enum Pools {
    /// SQLite admits one writer at a time; a one-connection writer pool queues writers in-process
    /// instead of letting them fail with SQLITE_BUSY, while WAL lets readers run beside it.
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

#[derive(Clone)]
pub struct Store {
    pools: Arc<Pools>,
    /// Seals secrets before they are written; without it, nothing secret can be stored.
    secrets: Option<Arc<secrets::SecretBox>>,
}

/// A write transaction on either backend. Everything a request changes goes through one of these, so
/// a request commits whole or not at all.
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs the same query code against whichever backend `$tx` holds; `$c` is the concrete connection.
macro_rules! on_tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
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
    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    /// Undoes everything the transaction did (dropping it does the same, later).
    pub async fn rollback(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(t) => t.rollback().await?,
            Tx::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// Pool sizes and timeouts; the defaults suit a 2-core machine.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite:` or `postgres:`/`postgresql:`), creating a SQLite file if missing.
    /// Does not migrate; call [`Store::migrate`].
    pub async fn connect(url: &str, opts: &StoreOptions) -> StoreResult<Store> {
        let pools = if url.starts_with("sqlite:") {
            let base = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL with NORMAL loses no committed data on a process crash (SIGKILL); only an OS
                // crash can drop the last transactions, which is the documented trade for speed.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("temp_store", "memory")
                .pragma("cache_size", "-16000");
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(base.clone())
                .await?;
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let reader = if in_memory {
                writer.clone()
            } else {
                SqlitePoolOptions::new()
                    .max_connections(opts.max_connections.clamp(1, 8))
                    .acquire_timeout(opts.acquire_timeout)
                    .connect_lazy_with(base.read_only(true))
            };
            Pools::Sqlite { writer, reader }
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(options)
                .await?;
            Pools::Postgres(pool)
        } else {
            return Err(StoreError::Invalid(
                "database URL must start with sqlite: or postgres:".into(),
            ));
        };
        Ok(Store {
            pools: Arc::new(pools),
            secrets: None,
        })
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
            Pools::Sqlite { writer, .. } => sqlx::migrate!("migrations/sqlite").run(writer).await?,
            Pools::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Begins a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so a second process (the CLI
    /// beside a running server) waits for the write lock instead of failing half-way.
    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(match &*self.pools {
            Pools::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Pools::Postgres(pool) => Tx::Postgres(pool.begin().await?),
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
                vec![stats("writer", writer), stats("reader", reader)]
            }
            Pools::Postgres(pool) => vec![stats("main", pool)],
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

/// Now, in the unit of every stored time.
pub fn now_micros() -> i64 {
    micros(time::OffsetDateTime::now_utc())
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
