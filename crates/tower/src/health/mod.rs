//! Health endpoints in `application/health+json`
//! (draft-inadarei-api-health-check: `status` pass / warn / fail and
//! `checks`), 503 when failing.
//!
//! | endpoint | method | checks |
//! |---|---|---|
//! | `/health/live` | [`Health::live`] | none: the process answers (no Redis) |
//! | `/health/ready` | [`Health::ready`] | PING round trip against the latency threshold: fail above it |
//! | `/health/redis` | [`Health::redis`] | connection state, PING latency (warn above the threshold), server version, role, memory, key count (`DBSIZE`, standalone only: `null` on a cluster) |
//! | `/health/detailed` | [`Health::detailed`] | `/health/redis` plus every registered layer's stats |
//!
//! With the `axum` feature, `Health::router` serves all four.
//!
//! ```no_run
//! use aeturnis_tower::health::Health;
//! use aeturnis_redis_core::{Redis, RedisConfig};
//! use std::time::Duration;
//!
//! # async fn demo(sessions: aeturnis_session::SessionManager) -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! let health = Health::new(redis)
//!     .with_latency_threshold(Duration::from_millis(100))
//!     .with_sessions("sessions", sessions);
//! let app: axum::Router = health.router();
//! # Ok(()) }
//! ```

mod report;

pub use report::{CheckStatus, HealthReport, HEALTH_JSON};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "session")]
use aeturnis_redis_core::duration::ceil_millis;
use aeturnis_redis_core::fred::interfaces::ServerInterface;
use aeturnis_redis_core::Redis;
use serde_json::{json, Map, Value};

type StatsFuture = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
type StatsFn = Arc<dyn Fn() -> StatsFuture + Send + Sync>;

/// The health checks of one service. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    redis: Redis,
    threshold: Duration,
    sources: Vec<(String, StatsFn)>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("redis", &self.redis)
            .field("threshold", &self.threshold)
            .field(
                "sources",
                &self.sources.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Health {
    /// Checks of `redis`, latency threshold 250 ms.
    #[must_use]
    pub fn new(redis: Redis) -> Health {
        Health {
            redis,
            threshold: Duration::from_millis(250),
            sources: Vec::new(),
        }
    }

    /// The PING latency above which `/health/ready` fails and
    /// `/health/redis` warns. Default: 250 ms.
    #[must_use]
    pub fn with_latency_threshold(mut self, threshold: Duration) -> Health {
        self.threshold = threshold;
        self
    }

    /// Registers a layer's stats under `name` (shown by `/health/detailed`
    /// as the check `<name>:stats`); an `Err` makes that check warn.
    #[must_use]
    pub fn with_stats<F, Fut, T, E>(mut self, name: impl Into<String>, stats: F) -> Health
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: serde::Serialize,
        E: std::fmt::Display,
    {
        let f: StatsFn = Arc::new(move || {
            let fut = stats();
            Box::pin(async move {
                match fut.await {
                    Ok(v) => serde_json::to_value(v).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            })
        });
        self.sources.push((name.into(), f));
        self
    }

    /// Registers a rate limiter's [`stats`](aeturnis_ratelimit::RateLimiter::stats)
    /// (checks, violations, Redis unavailable, ...).
    #[cfg(feature = "ratelimit")]
    #[must_use]
    pub fn with_limiter(
        self,
        name: impl Into<String>,
        limiter: aeturnis_ratelimit::RateLimiter,
    ) -> Health {
        self.with_stats(name, move || {
            let stats = limiter.stats();
            async move { Ok::<_, std::convert::Infallible>(stats) }
        })
    }

    /// Registers the session manager's [`stats`](aeturnis_session::SessionManager::stats)
    /// (`active`, `unique_users`, `created`, `ended`, `average_duration_ms`).
    #[cfg(feature = "session")]
    #[must_use]
    pub fn with_sessions(
        self,
        name: impl Into<String>,
        sessions: aeturnis_session::SessionManager,
    ) -> Health {
        self.with_stats(name, move || {
            let sessions = sessions.clone();
            async move {
                sessions.stats().await.map(|s| {
                    json!({
                        "active": s.active,
                        "unique_users": s.unique_users,
                        "created": s.created,
                        "ended": s.ended,
                        "average_duration_ms": s.average_duration.map(ceil_millis),
                    })
                })
            }
        })
    }

    /// `/health/live`: always passes (no Redis round trip).
    #[must_use]
    pub fn live(&self) -> HealthReport {
        HealthReport::new(CheckStatus::Pass, Map::new())
    }

    /// `/health/ready`: PING answered within the threshold.
    pub async fn ready(&self) -> HealthReport {
        let health = self.redis.health().await;
        let status = match health.latency {
            Some(l) if health.is_healthy() && l <= self.threshold => CheckStatus::Pass,
            _ => CheckStatus::Fail,
        };
        let mut checks = Map::new();
        checks.insert(
            "redis:responseTime".into(),
            json!([latency_check(&health, status)]),
        );
        HealthReport::new(status, checks)
    }

    /// `/health/redis`: connection, latency and the server's facts.
    pub async fn redis(&self) -> HealthReport {
        let (status, checks) = self.redis_checks().await;
        HealthReport::new(status, checks)
    }

    /// `/health/detailed`: `/health/redis` plus every registered layer's
    /// stats (fetched concurrently).
    pub async fn detailed(&self) -> HealthReport {
        let stats = futures_join(self.sources.iter().map(|(_, f)| f()));
        let ((mut status, mut checks), stats) = tokio::join!(self.redis_checks(), stats);
        for ((name, _), result) in self.sources.iter().zip(stats) {
            let check = match result {
                Ok(value) => json!({
                    "componentType": "component",
                    "status": "pass",
                    "observedValue": value,
                }),
                Err(e) => {
                    status = status.max(CheckStatus::Warn);
                    json!({ "componentType": "component", "status": "warn", "output": e })
                }
            };
            checks.insert(format!("{name}:stats"), json!([check]));
        }
        HealthReport::new(status, checks)
    }

    async fn redis_checks(&self) -> (CheckStatus, Map<String, Value>) {
        let health = self.redis.health().await;
        let status = match health.latency {
            Some(l) if health.is_healthy() && l <= self.threshold => CheckStatus::Pass,
            Some(_) if health.is_healthy() => CheckStatus::Warn,
            _ => CheckStatus::Fail,
        };
        let keys = if health.is_healthy() && !self.redis.is_cluster() {
            self.redis.client().dbsize::<u64>().await.ok()
        } else {
            None
        };
        let mut checks = Map::new();
        checks.insert(
            "redis:responseTime".into(),
            json!([latency_check(&health, status)]),
        );
        checks.insert(
            "redis:connection".into(),
            json!([{
                "componentType": "datastore",
                "status": if health.is_healthy() { "pass" } else { "fail" },
                "observedValue": health.state.as_str(),
                "connections": health.connections,
                "version": health.server_version,
                "role": health.role,
                "usedMemory": health.used_memory,
                "keys": keys,
                "output": health.error,
            }]),
        );
        (status, checks)
    }
}

fn latency_check(health: &aeturnis_redis_core::Health, status: CheckStatus) -> Value {
    json!({
        "componentType": "datastore",
        "observedValue": health.latency.map(|d| d.as_secs_f64() * 1000.0),
        "observedUnit": "ms",
        "status": status,
        "output": health.error,
    })
}

/// Runs the futures concurrently, results in order.
async fn futures_join(futures: impl Iterator<Item = StatsFuture>) -> Vec<Result<Value, String>> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::with_capacity(handles.len());
    // few sources, each one round trip at most: join them all at once
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in handles.into_iter().enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    out.resize_with(set.len(), || Err("not run".to_owned()));
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined {
            out[i] = r;
        }
    }
    out
}

#[cfg(feature = "axum")]
impl Health {
    /// The four endpoints as an axum router (merge or nest it).
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> axum::Router<S> {
        use axum::routing::get;
        let h = Arc::new(self);
        let (a, b, c) = (Arc::clone(&h), Arc::clone(&h), Arc::clone(&h));
        axum::Router::new()
            .route(
                "/health/live",
                get(move || {
                    let h = Arc::clone(&h);
                    async move { h.live() }
                }),
            )
            .route(
                "/health/ready",
                get(move || {
                    let h = Arc::clone(&a);
                    async move { h.ready().await }
                }),
            )
            .route(
                "/health/redis",
                get(move || {
                    let h = Arc::clone(&b);
                    async move { h.redis().await }
                }),
            )
            .route(
                "/health/detailed",
                get(move || {
                    let h = Arc::clone(&c);
                    async move { h.detailed().await }
                }),
            )
    }
}
