//! Rate limiting as a tower layer: [`RateLimitLayer`] / [`RateLimit`] over
//! one [`RateLimiter`](aeturnis_ratelimit::RateLimiter) or several that
//! must all pass.
//!
//! # Headers
//!
//! Responses carry the fields of **draft-ietf-httpapi-ratelimit-headers-11**
//! (pinned: later drafts may change them), as structured fields, one member
//! per limiter:
//!
//! ```text
//! RateLimit-Policy: "api";q=100;w=60
//! RateLimit: "api";r=42;t=17
//! ```
//!
//! `q` is the quota, `w` the window in seconds (rounded up), `r` the units
//! remaining, `t` the seconds until the quota is full again (rounded up).
//! A denial is `429 Too Many Requests` with `Retry-After` (seconds, rounded
//! up, at least 1) and an RFC 9457 `application/problem+json` body
//! (`detail`, `limiter`, `limit`, `remaining`, `retry_after`). Options: the
//! headers on admitted responses (on by default), and the legacy
//! `X-RateLimit-Limit` / `-Remaining` / `-Reset` form.
//!
//! # Redis down
//!
//! The limiter's own [`FailurePolicy`](aeturnis_ratelimit::FailurePolicy)
//! decides: fail-open and local-fallback admit (or deny with 429) as they
//! do in the limiter; **fail-closed is 503 with `Retry-After`**, not 429
//! (the client did nothing wrong); `Propagate` is 503 with `Retry-After: 1`.
//!
//! # Keys
//!
//! | extractor | key |
//! |---|---|
//! | [`PeerIp`] | the TCP peer (IPv6 grouped by /64) |
//! | [`ClientIp`] | the first untrusted hop of `Forwarded` / `X-Forwarded-For`, read from the right |
//! | `SessionUser` | the user of the request's session (feature `session`) |
//! | [`HeaderKey`] | one header's value |
//! | any `Fn(&R) -> Result<LimitKey, KeyError>` | whatever it returns, for any request type |
//!
//! # Any protocol: a WebSocket message limiter
//!
//! [`RequestLimiter`] is the same check without HTTP: a key function over
//! any type. [`GenericRateLimitLayer`] wraps it as a tower layer for any
//! request type (a gRPC service), a denial being the error
//! [`Limited::Denied`]. Here each chat message of a socket is checked, and a denied
//! one is answered in-band instead of closing the socket:
//!
//! ```no_run
//! use aeturnis_ratelimit::{LimitKey, Preset, RateLimiter, RateLimitConfig};
//! use aeturnis_tower::ratelimit::RequestLimiter;
//! use aeturnis_tower::KeyError;
//!
//! struct ChatMessage { user: String, text: String }
//!
//! # async fn socket_loop(
//! #     limiter: RateLimiter,
//! #     mut messages: tokio::sync::mpsc::Receiver<ChatMessage>,
//! #     replies: tokio::sync::mpsc::Sender<String>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! let per_user = RequestLimiter::new(limiter, |m: &ChatMessage| {
//!     LimitKey::user(&m.user).map_err(|e| KeyError::Layer(aeturnis_tower::LayerError::new(e)))
//! });
//! while let Some(message) = messages.recv().await {
//!     let verdict = per_user.check(&message).await?;
//!     if let Some(wait) = verdict.retry_after() {
//!         replies.send(format!("slow down: retry in {wait:?}")).await?;
//!         continue;
//!     }
//!     replies.send(message.text).await?;
//! }
//! # Ok(()) }
//! ```

mod client_ip;
mod future;
mod generic;
mod headers;
mod key;
mod layer;
mod limiter;
mod service;

pub use client_ip::{ClientIp, ForwardedHeader};
pub use future::ResponseFuture;
pub use generic::{GenericRateLimit, GenericRateLimitLayer, GenericResponseFuture, Limited};
pub use headers::{
    HeaderOptions, RATELIMIT, RATELIMIT_POLICY, X_RATELIMIT_LIMIT, X_RATELIMIT_REMAINING,
    X_RATELIMIT_RESET,
};
#[cfg(feature = "session")]
pub use key::SessionUser;
pub use key::{peer_addr, Extracted, HeaderKey, KeyExtractor, KeyFuture, PeerIp};
pub use layer::RateLimitLayer;
pub use limiter::{Cost, LimitError, RequestLimiter, UnitCost, Verdict};
pub use service::RateLimit;
