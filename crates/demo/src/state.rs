//! [`AppState`]: the Redis connection and every layer built on it.

use std::sync::{Arc, OnceLock};

use aeturnis_cache::Cache;
use aeturnis_lock::LockManager;
use aeturnis_ratelimit::RateLimiter;
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_session::SessionManager;
use aeturnis_tower::session::{SessionLayer, SessionLayerConfig};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::DemoConfig;
use crate::db::Db;
use crate::error::Result;
use crate::store::Store;

/// One rate limiter per preset the server uses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limiters {
    /// `POST /auth/login`, per client IP.
    pub auth: RateLimiter,
    /// `POST /chat`, per user.
    pub chat: RateLimiter,
    /// `POST /combat/action`, per user.
    pub combat: RateLimiter,
    /// Movement (no endpoint; shown in `/health`).
    pub movement: RateLimiter,
    /// Every request, per client IP.
    pub api: RateLimiter,
}

impl Limiters {
    /// Each limiter with its name, in a fixed order.
    #[must_use]
    pub fn all(&self) -> [(&'static str, &RateLimiter); 5] {
        [
            ("auth", &self.auth),
            ("chat", &self.chat),
            ("combat", &self.combat),
            ("movement", &self.movement),
            ("api", &self.api),
        ]
    }
}

/// Everything a handler needs; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Redis,
    cache: Cache,
    sessions: SessionManager,
    locks: LockManager,
    limits: Limiters,
    session_layer: SessionLayer,
    metrics: PrometheusHandle,
    store: Store,
    hub: tokio::sync::OnceCell<crate::realtime::Hub>,
    config: DemoConfig,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("redis", &self.inner.redis)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Connects with [`RedisConfig::from_env`] and builds every layer from
    /// [`DemoConfig::from_env`].
    ///
    /// # Errors
    /// A bad variable, or Redis cannot be reached.
    pub async fn from_env() -> Result<AppState> {
        let redis = Redis::connect(RedisConfig::from_env()?).await?;
        AppState::new(redis, DemoConfig::from_env()?)
    }

    /// Builds every layer on `redis` (whose key prefix every key gets) and
    /// opens (creating, migrating and seeding) the SQLite database of
    /// [`DemoConfig::data_dir`]. Call [`start`](Self::start) to run the
    /// movement workers.
    ///
    /// # Errors
    /// A layer refused its configuration; the database cannot be opened.
    pub fn new(redis: Redis, config: DemoConfig) -> Result<AppState> {
        let limiter =
            |c: &aeturnis_ratelimit::RateLimitConfig| RateLimiter::new(redis.clone(), c.clone());
        let limits = Limiters {
            auth: limiter(&config.auth_limit)?,
            chat: limiter(&config.chat_limit)?,
            combat: limiter(&config.combat_limit)?,
            movement: limiter(&config.movement_limit)?,
            api: limiter(&config.api_limit)?,
        };
        let sessions = SessionManager::new(redis.clone(), config.sessions.clone())?;
        // the cookie with its secure defaults (browsers accept `Secure` on
        // localhost), or `Authorization: Bearer`
        let session_layer = SessionLayer::new(sessions.clone(), SessionLayerConfig::default())?;
        let cache = Cache::new(redis.clone(), config.cache.clone())?;
        let store = Store::new(
            Db::open(config.data_dir.as_deref())?,
            &cache,
            config.profile_ttl,
            config.profile_soft_ttl,
            config.moves_claim_idle,
        )?;
        Ok(AppState {
            inner: Arc::new(Inner {
                cache,
                store,
                hub: tokio::sync::OnceCell::new(),
                sessions,
                session_layer,
                metrics: prometheus(),
                locks: LockManager::new(redis.clone(), config.locks.clone())?,
                limits,
                config,
                redis,
            }),
        })
    }

    /// The Redis connection (call [`Redis::shutdown`] when the server stops).
    #[must_use]
    pub fn redis(&self) -> &Redis {
        &self.inner.redis
    }

    /// The cache.
    #[must_use]
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The session manager.
    #[must_use]
    pub fn sessions(&self) -> &SessionManager {
        &self.inner.sessions
    }

    /// The lock manager.
    #[must_use]
    pub fn locks(&self) -> &LockManager {
        &self.inner.locks
    }

    /// The rate limiters.
    #[must_use]
    pub fn limits(&self) -> &Limiters {
        &self.inner.limits
    }

    /// The session layer every route runs behind.
    #[must_use]
    pub fn session_layer(&self) -> &SessionLayer {
        &self.inner.session_layer
    }

    /// The Prometheus recorder's handle (`GET /metrics` renders it).
    #[must_use]
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }

    /// The settings the state was built with.
    #[must_use]
    pub fn config(&self) -> &DemoConfig {
        &self.inner.config
    }

    /// The database and the cache patterns in front of it.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The WebSocket fan-out, subscribed on first use.
    pub(crate) async fn hub(&self) -> std::result::Result<&crate::realtime::Hub, crate::ApiError> {
        self.inner
            .hub
            .get_or_try_init(|| crate::realtime::Hub::start(self))
            .await
    }

    /// Starts the background work: the movement write-behind workers
    /// (unless [`DemoConfig::moves_workers`] is off), which first drain
    /// moves acknowledged by a process that died.
    ///
    /// # Errors
    /// A Redis error.
    pub async fn start(&self) -> Result<()> {
        if !self.inner.config.moves_workers {
            return Ok(());
        }
        Ok(self.inner.store.start().await?)
    }

    /// Flushes every acknowledged move into SQLite and stops the workers
    /// (call it before [`Redis::shutdown`]).
    ///
    /// # Errors
    /// A Redis error while flushing (the moves stay in their stream).
    pub async fn shutdown(&self) -> Result<()> {
        Ok(self.inner.store.shutdown().await?)
    }
}

/// The process's Prometheus recorder, installed as the `metrics` global
/// recorder on first use (one per process: tests build many states).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "another metrics recorder is installed; /metrics stays empty");
            }
            handle
        })
        .clone()
}
