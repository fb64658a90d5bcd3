//! # aeturnis-session
//!
//! Sessions on Redis with sliding (idle) and absolute expiry, at most N
//! sessions per user with least-recently-used eviction, revocation by
//! session or by user, id rotation, and statistics, each operation one
//! round trip and safe on a Redis Cluster.
//!
//! The login → request → logout flow:
//!
//! ```no_run
//! use aeturnis_session::{Redis, RedisConfig};
//! use aeturnis_session::{SessionConfig, SessionManager, SessionMetadata, UserId};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! let sessions = SessionManager::new(redis, SessionConfig::from_env()?)?;
//!
//! // login: create a session and hand its id to the client as a cookie
//! let user = UserId::new("player-42")?;
//! let meta = SessionMetadata::new().with_user_agent("Mozilla/5.0");
//! let session = sessions.create(&user, meta).await?;
//! // after authentication, defend against fixation: new id, old one dead
//! let session = sessions.rotate(&session.id).await?.ok_or("gone")?;
//! let cookie = session.id.to_string();
//!
//! // each request: look up and slide, one round trip;
//! // a malformed token is `None` without touching Redis
//! match sessions.get_by_token(&cookie).await? {
//!     Some(s) => println!("{} until {:?}", s.user, s.expires_at),
//!     None => println!("please log in"),
//! }
//!
//! // logout
//! sessions.revoke(&session.id).await?;
//! # Ok(()) }
//! ```
//!
//! | feature | what it adds |
//! |---|---|
//! | (none) | everything a service needs |
//! | `test-hooks` | hooks for this crate's tests and the workspace benches; not for production |
//!
//! | module | what |
//! |---|---|
//! | [`SessionManager`] | create (with LRU eviction), get-and-slide, list, extend, update, rotate, revoke; `stats`, `recount` |
//! | [`SessionConfig`] | idle and absolute lifetimes, per-user limit, touch interval; `from_env` (`SESSION_*`) |
//! | [`SessionId`], [`UserId`], [`CharacterId`] | the token (strictly parsed, no round trip) and the ids |
//! | [`Session`], [`SessionMetadata`] | what a session holds |
//! | [`SessionStats`], [`SessionCensus`] | figures without scanning; the exact count of a recount |
//! | [`Error`] | one error type, classified with [`Classify`] |
//!
//! How it works (keys, the one-command read, replay, stats): the [`guide`].

mod config;
mod error;
mod id;
mod manager;
mod metadata;
mod read;
mod record;
mod reply;
mod revoke;
mod scripts;
mod stats;
mod write;

/// The session guide (`docs/guide.md`).
#[doc = include_str!("../docs/guide.md")]
pub mod guide {}

pub use aeturnis_redis_core as core;
pub use aeturnis_redis_core::{Classify, ErrorClass, Redis, RedisConfig, RedisKey};

pub use config::SessionConfig;
pub use error::{Error, Result, TokenError};
pub use id::{CharacterId, SessionId, UserId, MAX_CHARACTER_ID_LEN, MAX_USER_ID_LEN, TOKEN_LEN};
pub use manager::SessionManager;
pub use metadata::{SessionMetadata, MAX_DEVICE_LEN, MAX_LOCATION_LEN, MAX_USER_AGENT_LEN};
pub use record::Session;
pub use stats::{SessionCensus, SessionStats, STATS_FLUSH_INTERVAL};
