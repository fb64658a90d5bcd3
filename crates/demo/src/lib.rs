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
//! | `GET /players/{id}/profile` | cache-aside by hand with `X-Cache: hit\|miss` |
//! | `POST /combat/action`, `GET /leaderboard` | combat preset, leaderboard |
//! | `POST /trade` | `with_lock` on both players, fencing token, fenced write |
//! | `GET /dashboard` | [`dashboard`]: a live page of every layer's figures (SSE, sparklines) |
//!
//! The session (cookie or bearer), the rate limits (`RateLimitLayer` with
//! the IETF `RateLimit` headers) and the health endpoints are
//! aeturnis-tower's layers; the demo holds only game routes. Every game
//! request passes the API preset per client IP. There is no
//! password store: logging in as any well-formed user name succeeds (it is a
//! demo of the Redis layers, not of authentication).
//!
//! The crate has no cargo features.

mod app;
mod config;
pub mod dashboard;
mod error;
mod extract;
mod players;
mod response;
mod routes;
mod state;
mod validate;

pub use app::app;
pub use config::DemoConfig;
pub use error::{Error, Result};
pub use players::PlayerProfile;
pub use response::ApiError;
pub use state::{AppState, Limiters};
