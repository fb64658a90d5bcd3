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
//! * **Reads are native commands.** With a non-zero touch interval (the
//!   default is 60 s), [`SessionManager::get`] sends `GET key`,
//!   `PEXPIRE key idle` and `PEXPIRETIME key` in one fred pipeline (about a
//!   seventh of the get-and-slide script's Redis CPU). The expiry Redis
//!   reports is the clock, its own: it is `slide time + idle`, and a key
//!   that still exists has not reached its expiry. When that expiry is past
//!   the absolute one (the last idle TTL of a session's life) a second
//!   pipeline, `PEXPIREAT key absolute LT` + `PEXPIRETIME key`, pulls it
//!   back, or finds the session over; when the recorded touch is at least
//!   the touch interval old, the get-and-slide script records it. With a
//!   zero touch interval every read is the script.
//! * **Stored form.** A fixed 25-byte header (version, created, last seen,
//!   absolute expiry) followed by length-prefixed fields, so scripts read
//!   and patch it without a decoder; the idle expiry is the key's TTL,
//!   capped by the absolute expiry, so Redis itself ends every session.
//! * **No resurrection.** Every script that writes a session first reads
//!   it and returns `nil` when it is gone; `PEXPIRE` and `PEXPIREAT` on a
//!   missing key write nothing. Nothing ever writes a missing session.
//! * **Absolute expiry.** The key's expiry is never set past it, except
//!   for the moment between a fast read's `PEXPIRE` and its `PEXPIREAT`
//!   near the end of a session's life; if the process dies (or the
//!   connection fails) in between, the key may linger up to one idle TTL
//!   past the absolute expiry, but every call (get, list, update, extend,
//!   rotate, and eviction in create) checks the absolute expiry against
//!   the server clock and treats such a session as gone, and the next get
//!   or list deletes it.
//! * **Replay.** Create carries a client-chosen id (a replay finds its own
//!   session), rotate carries the new id, revoke is idempotent; extend is
//!   not, so it is sent without replay. The fast read's commands are safe
//!   to re-send: `PEXPIRE` slides again (or finds nothing), `PEXPIRETIME`
//!   reads what is there, `PEXPIREAT .. LT` never extends.
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
