//! The service's shared state: the store, the current snapshot, and its reload on a new epoch.

use std::sync::{Arc, RwLock};

use warden_policy::Snapshot;
use warden_store::Store;

use crate::{Result, ServiceError};

/// Tunables of the service.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a login session lives at most, in milliseconds.
    pub session_lifetime_ms: i64,
    /// How long a login session lives without use.
    pub session_idle_ms: i64,
    /// Consecutive failures counted together when no older than this.
    pub failure_window_ms: i64,
    /// Failures of one username that lock it.
    pub user_lock_threshold: i64,
    /// Failures from one address that lock it.
    pub address_lock_threshold: i64,
    /// First lock duration; each further failure doubles it (at most a day).
    pub lock_ms: i64,
    /// Longest lifetime of an API token.
    pub api_token_max_lifetime_ms: i64,
    /// Largest page a list returns.
    pub max_page_size: u32,
    /// Page size when the caller gives none.
    pub default_page_size: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            session_lifetime_ms: 12 * 60 * 60 * 1000,
            session_idle_ms: 30 * 60 * 1000,
            failure_window_ms: 15 * 60 * 1000,
            user_lock_threshold: 5,
            address_lock_threshold: 30,
            lock_ms: 15 * 60 * 1000,
            api_token_max_lifetime_ms: 366 * 24 * 60 * 60 * 1000,
            max_page_size: 200,
            default_page_size: 50,
        }
    }
}

/// The service: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Warden {
    pub(crate) store: Store,
    pub(crate) config: Config,
    /// The group-committing writer of read and refusal entries.
    pub(crate) read_log: crate::logging::ReadLog,
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
    reload: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Warden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warden")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Warden {
    /// Loads the current snapshot and wraps the store; starts the access log's writer task on
    /// the current runtime.
    pub async fn new(store: Store, config: Config) -> Result<Warden> {
        let snapshot = load_snapshot(&store).await?;
        Ok(Warden {
            read_log: crate::logging::ReadLog::start(store.clone()),
            store,
            config,
            snapshot: Arc::new(RwLock::new(Arc::new(snapshot))),
            reload: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// The store underneath (operator commands and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The snapshot currently held, without looking at the database.
    pub fn cached_snapshot(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// A snapshot at least as new as `epoch`, reloading from the database when needed.
    pub async fn snapshot_at_least(&self, epoch: i64) -> Result<Arc<Snapshot>> {
        let current = self.cached_snapshot();
        if current.epoch() >= epoch {
            return Ok(current);
        }
        // One reload at a time; whoever waited finds the fresh snapshot already there.
        let _guard = self.reload.lock().await;
        let current = self.cached_snapshot();
        if current.epoch() >= epoch {
            return Ok(current);
        }
        let fresh = Arc::new(load_snapshot(&self.store).await?);
        // A re-encryption bumps the epoch when it makes a new data key: learn it here, so that
        // the next write uses it. On failure (a key wrapped by a master key this process does
        // not hold), writes keep the key they have, which stays readable.
        if let Err(error) = self.store.reload_keys().await {
            tracing::warn!(%error, "data keys not reloaded");
        }
        tracing::debug!(epoch = fresh.epoch(), "permission snapshot reloaded");
        match self.snapshot.write() {
            Ok(mut guard) => *guard = fresh.clone(),
            Err(poisoned) => *poisoned.into_inner() = fresh.clone(),
        }
        Ok(fresh)
    }

    /// The snapshot for the database's current epoch.
    pub async fn current_snapshot(&self) -> Result<Arc<Snapshot>> {
        let epoch = self.store.epoch().await?;
        self.snapshot_at_least(epoch).await
    }
}

async fn load_snapshot(store: &Store) -> Result<Snapshot> {
    let model = store.load_model().await?;
    Snapshot::compile(&model).map_err(|e| {
        ServiceError::Internal(format!("the stored organisation is inconsistent: {e}"))
    })
}
