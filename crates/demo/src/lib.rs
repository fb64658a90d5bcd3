//! # aeturnis-demo
//!
//! The example game API server: every Aeturnis layer behind a small
//! [axum](https://docs.rs/axum) router. `cargo xtask demo` runs it with its
//! own local Redis; [`app`] builds the same router for in-process tests.
//!
//! ```no_run
//! use aeturnis_demo::{app, AppState};
//! use std::net::SocketAddr;
//!
//! # async fn demo() -> anyhow::Result<()> {
//! // REDIS_URL (or REDIS_HOST/...), plus the crates' own variables
//! let state = AppState::from_env().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(
//!     listener,
//!     app(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
//! )
//! .await?;
//! state.redis().shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! | endpoint | what it shows |
//! |---|---|
//! | `GET /health/{live,ready,redis,detailed}` | aeturnis-tower's health: `Redis::health`, cache, session and rate-limit stats |
//! | `GET /metrics` | Prometheus text of aeturnis-tower's metrics |
//! | `POST /auth/login` | auth preset per IP, a session with metadata, the cookie and the token |
//! | `GET /me`, `POST /me/character` | get-and-slide, session list, character binding |
//! | `POST /auth/logout`, `POST /auth/logout-others` | revoke, revoke others |
//! | `POST /chat`, `GET /chat` | chat preset per user, a capped list with a TTL |
//! | `GET /players/{id}/profile`, `PUT /me/profile` | SQLite behind `get_or_load` (SWR, `X-Cache: hit\|miss\|stale`), write-through |
//! | `GET`/`PUT /guilds/{id}` | cache-aside tagged by guild; a rename invalidates the tag |
//! | `POST /move`, `GET /players/{id}/position` | write-behind into SQLite (movement preset) |
//! | `GET /ws` | WebSocket: session, per-message presets, sharded pub/sub fan-out, presence |
//! | `POST /combat/action`, `GET /leaderboard` | combat preset, leaderboard |
//! | `POST /trade` | `with_lock` on both players, the fence checked by SQLite |
//! | `GET /dashboard` | [`dashboard`]: a live page of every layer's figures (SSE, sparklines) |
//!
//! [`AppState::snapshot`] reads every figure the dashboard shows.
//!
//! The session (cookie or bearer), the rate limits (`RateLimitLayer` with
//! the IETF `RateLimit` headers) and the health endpoints are
//! aeturnis-tower's layers; the demo holds only game routes. Every game
//! request passes the API preset per client IP. There is no
//! password store: logging in as any well-formed user name succeeds (it is a
//! demo of the Redis layers, not of authentication).
//!
//! The crate has no cargo features. SQLite (`rusqlite`, bundled) lives in
//! [`DemoConfig::data_dir`]; see [`Db`] and [`Store`].

mod app;
mod config;
pub mod dashboard;
mod db;
mod error;
mod extract;
mod players;
mod realtime;
mod response;
mod routes;
mod snapshot;
mod state;
mod store;
mod validate;

pub use app::app;
pub use config::DemoConfig;
pub use db::{Db, DbError, Guild, Position, TradeWrite};
pub use error::{Error, Result};
pub use players::PlayerProfile;
pub use response::ApiError;
pub use snapshot::{
    CacheSnapshot, LimiterSnapshot, LockSnapshot, RedisSnapshot, SessionsSnapshot, Snapshot,
    WriteBehindSnapshot, ZoneSnapshot,
};
pub use state::{AppState, Limiters};
pub use store::{CacheOutcome, MoveWriter, Store, StoreError};
