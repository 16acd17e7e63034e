//! Opening the database (SQLite file or PostgreSQL URL), migrations, and write transactions.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::crypto::Keys;
use crate::keys::MasterKey;
use crate::{Result, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The latest SQLite migration this build knows (a restore refuses a newer database).
pub(crate) fn latest_sqlite_migration() -> i64 {
    SQLITE_MIGRATIONS
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer at a time; taking this lock before `BEGIN` turns what would be
    /// a `SQLITE_BUSY` failure between two upgrading transactions into a short wait.
    write_lock: Option<Arc<Mutex<()>>>,
    /// The list planner's statistics, shared by every clone.
    pub(crate) stats: Arc<crate::stats::StatsCache>,
    /// The unwrapped data keys (`crypto.rs`), shared by every clone.
    pub(crate) keys: Arc<Keys>,
}

/// A write transaction. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx {
    pub(crate) tx: Transaction<'static, Any>,
    backend: Backend,
    pub(crate) keys: Arc<Keys>,
    _write_guard: Option<OwnedMutexGuard<()>>,
}

impl Tx {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// The backend of the transaction's store.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// The name of the SQLite file inside a data directory.
pub const SQLITE_FILE: &str = "warden.db";

impl Store {
    /// Opens (creating if needed) the SQLite database in `dir`, migrates it, and unlocks its
    /// data keys with `master` (creating the first one in a new database).
    pub async fn open_dir(dir: &Path, master: &MasterKey) -> Result<Store> {
        Store::connect(&Store::dir_url(dir)?, master).await
    }

    /// The URL of the SQLite database in `dir` (created if missing).
    pub fn dir_url(dir: &Path) -> Result<String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Open(format!("{}: {e}", dir.display())))?;
        let file = dir.join(SQLITE_FILE);
        let path = file
            .to_str()
            .ok_or_else(|| StoreError::Open(format!("{} is not UTF-8", file.display())))?;
        Ok(format!("sqlite://{path}?mode=rwc"))
    }

    /// Connects to `sqlite://…` or `postgres://…`, migrates, and unlocks the data keys with
    /// `master`: a master key other than the one that wrapped them is refused
    /// ([`StoreError::WrongMasterKey`]).
    pub async fn connect(url: &str, master: &MasterKey) -> Result<Store> {
        let (pool, backend) = Store::open_pool(url).await?;
        Store::with_keys(pool, backend, master).await
    }

    pub(crate) async fn with_keys(
        pool: AnyPool,
        backend: Backend,
        master: &MasterKey,
    ) -> Result<Store> {
        let keys = Arc::new(Keys::open(&pool, master).await?);
        crate::access_log::seal_legacy(&pool, &keys).await?;
        Ok(Store {
            pool,
            backend,
            write_lock: (backend == Backend::Sqlite).then(|| Arc::new(Mutex::new(()))),
            stats: Arc::default(),
            keys,
        })
    }

    /// The migrated pool, before any key is known.
    pub(crate) async fn open_pool(url: &str) -> Result<(AnyPool, Backend)> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Open(
                "the database URL must start with sqlite: or postgres:".into(),
            ));
        };
        let options: AnyConnectOptions = url
            .parse::<AnyConnectOptions>()
            .map_err(|e| StoreError::Open(e.to_string()))?
            // Statements are logged at trace level only: a multi-row insert is a page of SQL.
            .log_statements(log::LevelFilter::Trace)
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let pool_options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(30))
            // A SQLite connection is a file handle in this process: it cannot go stale the way
            // a network connection can, so the pool does not ping it before every use (each
            // ping is a round trip to the connection's thread; without it single reads over
            // HTTP went from ~22,000 to ~25,000 per second on 2 cores).
            .test_before_acquire(backend == Backend::Postgres)
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            });
        let pool = match backend {
            Backend::Sqlite => {
                pool_options
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL: readers never wait for the writer. synchronous=FULL: a
                            // commit is on disk before it is acknowledged (nothing
                            // acknowledged is lost on power failure).
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                 PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
            }
            Backend::Postgres => pool_options.connect_with(options).await,
        }
        .map_err(|e| StoreError::Open(e.to_string()))?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok((pool, backend))
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        // SQLite: IMMEDIATE takes the database's write lock at once (waiting up to the busy
        // timeout). A deferred BEGIN that read first and wrote later failed at once with
        // "database is locked" whenever a write outside this lock (a webhook delivery's
        // mark, a session's activity) had committed since its read: found by the
        // differential backends test as a 500 on approving a request.
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx {
            tx,
            backend: self.backend,
            keys: self.keys.clone(),
            _write_guard: guard,
        })
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The current permission epoch.
    pub async fn epoch(&self) -> Result<i64> {
        let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM permission_epoch WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(epoch)
    }
}

impl Tx {
    /// Runs raw SQL: test support only (resetting a database between generated cases).
    #[doc(hidden)]
    pub async fn execute_raw_for_tests(&mut self, sql: &str) -> Result<()> {
        sqlx::raw_sql(sql).execute(&mut *self.tx).await?;
        Ok(())
    }

    /// Bumps the permission epoch: every server reloads its snapshot before its next decision.
    pub async fn bump_epoch(&mut self) -> Result<i64> {
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE permission_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
        )
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(epoch)
    }
}
