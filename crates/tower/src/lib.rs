//! # aeturnis-tower
//!
//! tower layers and axum extractors over the Aeturnis crates: Redis rate
//! limits with the IETF `RateLimit` headers and trusted-proxy client IPs,
//! cookie or bearer sessions loaded lazily, health endpoints in
//! `application/health+json`, and metrics through the `metrics` facade.
//! Each layer follows tower-http's shape (a `Layer`, a `Clone` service,
//! a named response future); nothing but the `axum` feature needs axum.
//!
//! ```no_run
//! use aeturnis_ratelimit::Preset;
//! use aeturnis_session::{SessionConfig, SessionManager};
//! use aeturnis_tower::{ratelimit::RateLimitLayer, session::{Session, SessionLayer, SessionLayerConfig}};
//! use aeturnis_redis_core::{Redis, RedisConfig};
//! use axum::{routing::get, Router};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! let sessions = SessionManager::new(redis.clone(), SessionConfig::from_env()?)?;
//! let app: Router = Router::new()
//!     .route("/me", get(|session: Session| async move { session.user.to_string() }))
//!     .layer(RateLimitLayer::preset(&redis, Preset::Api)?)
//!     .layer(SessionLayer::new(sessions, SessionLayerConfig::default())?);
//! # Ok(()) }
//! ```
//!
//! | module | what |
//! |---|---|
//! | `ratelimit` | `RateLimitLayer`, key extractors (peer, trusted-proxy client IP, session user, header, closure), draft-11 headers, the protocol-agnostic `RequestLimiter` |
//! | `session` | `SessionLayer` (cookie or bearer, lazy load-and-slide once per request), `SessionHandle` (login, rotate, logout), axum extractors |
//! | `health` | `/health/live`, `/health/ready`, `/health/redis`, `/health/detailed` |
//! | `metrics` | the metric names and the `record_*` gauges |
//! | [`Problem`] | the RFC 9457 problem+json body of every error response |
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `ratelimit` | yes | `ratelimit` over aeturnis-ratelimit |
//! | `session` | yes | `session` over aeturnis-session |
//! | `health` | yes | `health` |
//! | `axum` | no | extractors, the health router, `ConnectInfo` as peer address |
//! | `metrics` | no | counters and gauges through the `metrics` facade |

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod error;
mod problem;

#[cfg(feature = "health")]
pub mod health;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "ratelimit")]
pub mod ratelimit;
#[cfg(feature = "session")]
pub mod session;

#[cfg(feature = "ratelimit")]
pub use aeturnis_ratelimit;
pub use aeturnis_redis_core as core;
#[cfg(feature = "session")]
pub use aeturnis_session;

pub use error::{Error, KeyError, LayerError, Result};
pub use problem::{retry_after_secs, Problem, PROBLEM_JSON};
#[cfg(feature = "ratelimit")]
pub use ratelimit::RateLimitLayer;
#[cfg(feature = "session")]
pub use session::SessionLayer;
