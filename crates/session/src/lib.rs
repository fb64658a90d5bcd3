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
//! use aeturnis_redis_core::{Redis, RedisConfig};
//! use aeturnis_session::{SessionConfig, SessionManager, SessionMetadata, UserId};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = Redis::connect(RedisConfig::from_env()?).await?;
//! let sessions = SessionManager::new(redis, SessionConfig::from_env()?)?;
//!
//! // login: create a session and hand its id to the client as a cookie
//! let user = UserId::new("player-42")?;
//! let meta = SessionMetadata::new()
//!     .with_ip_address("203.0.113.7".parse()?)
//!     .with_user_agent("Mozilla/5.0");
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
//! | (none) | everything; the crate has no optional features |
//!
//! ## Design
//!
//! * **Keys.** A session is one string `PREFIX s:{TAG}:RANDOM`; the user's
//!   index is a sorted set `PREFIX su:{TAG}:USER` of the user's session ids
//!   scored by last recorded use. `TAG` is 4 hex characters derived from a
//!   hash of the user id and is the first part of the session id
//!   (`TAG.RANDOM`), so a session and its user's index always share a
//!   cluster hash slot and a token alone names both.
//! * **One round trip per operation.** Create (with eviction), extend,
//!   update, rotate, revoke, revoke-all and list are each one `EVALSHA` on
//!   that slot (the scripts are in `scripts.rs`).
//! * **A read is one native command.** With a non-zero touch interval
//!   (the default is 60 s), [`SessionManager::get`] sends
//!   `GETEX key PX idle` (the command a hand-written client would send).
//!   What needs the time is decided with the manager's
//!   [`ServerClock`](aeturnis_redis_core::ServerClock): an estimate of the
//!   Redis server's clock from `TIME` (calibrated on first use and every
//!   30 s in the background, carried forward on the local monotonic clock,
//!   never the host's wall clock), taken after the reply and widened by
//!   its uncertainty (half the calibration's round trip, 1 ms per second
//!   of drift allowance) plus 5 ms. When a touch may be due, when the
//!   slide may have passed the absolute expiry (the last idle TTL of a
//!   session's life), or when the estimate is provably behind the server
//!   (earlier than the `last_seen` the server wrote), the get-and-slide
//!   script runs in a second round trip and decides with the server's own
//!   `TIME`: it records the touch, pulls the expiry back to the absolute
//!   one, or deletes a session that is over. With a zero touch interval
//!   every read is the script.
//! * **Stored form.** A fixed 25-byte header (version, created, last seen,
//!   absolute expiry) followed by length-prefixed fields, so scripts read
//!   and patch it without a decoder; the idle expiry is the key's TTL,
//!   capped by the absolute expiry, so Redis itself ends every session.
//! * **No resurrection.** Every script that writes a session first reads
//!   it and returns `nil` when it is gone; `GETEX` on a missing key writes
//!   nothing. Nothing ever writes a missing session.
//! * **Absolute expiry, enforced with server time.** The key's expiry is
//!   never set past it, except by a fast read's `GETEX` in the last idle
//!   TTL of a session's life, which the script then pulls back; if the
//!   process dies (or the connection fails) in between, or fred replays a
//!   `GETEX` late, the key may linger up to one idle TTL past the absolute
//!   expiry. No call returns such a session: the scripts (get, list,
//!   update, extend, rotate, and eviction in create) check the absolute
//!   expiry against the server's `TIME`, and the fast read returns a
//!   session only when its estimate, taken after the reply and widened by
//!   its uncertainty, is more than one idle TTL before the absolute expiry
//!   (so the session was live when `GETEX` ran); the next get or list
//!   deletes it. A clock estimate wrong beyond its uncertainty (a server
//!   clock stepped since the calibration) cannot change this while the
//!   error is under one idle TTL; an estimate ahead only sends more reads
//!   to the script; one behind the session's `last_seen` is caught and
//!   recalibrated; and every estimate is recalibrated within 30 s.
//! * **Replay.** Create carries a client-chosen id (a replay finds its own
//!   session), rotate carries the new id, revoke is idempotent; extend is
//!   not, so it is sent without replay. The fast read's `GETEX PX` is safe
//!   to re-send: it slides again (by at most one idle TTL, see above) or
//!   finds nothing.
//! * **Stats** live in their own slot. Operations only add to in-process
//!   counters; a background task writes them in one script every
//!   [`STATS_FLUSH_INTERVAL`] ([`SessionManager::flush_stats`] on demand);
//!   see [`SessionStats`] for what the figures mean.

mod config;
mod error;
mod id;
mod manager;
mod metadata;
mod record;
mod scripts;
mod stats;

pub use config::SessionConfig;
pub use error::{Error, Result, TokenError};
pub use id::{CharacterId, SessionId, UserId, MAX_CHARACTER_ID_LEN, MAX_USER_ID_LEN, TOKEN_LEN};
pub use manager::SessionManager;
pub use metadata::{SessionMetadata, MAX_DEVICE_LEN, MAX_LOCATION_LEN, MAX_USER_AGENT_LEN};
pub use record::Session;
pub use stats::{SessionCensus, SessionStats, STATS_FLUSH_INTERVAL};
