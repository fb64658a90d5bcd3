//! Sessions as a tower layer: [`SessionLayer`] reads the token from a
//! cookie or `Authorization: Bearer` and puts a lazy [`SessionHandle`] in
//! each request; with the `axum` feature, `Session` and `Option<Session>`
//! extract it.
//!
//! - **Lazy, once:** Redis is asked only when a handler, an extractor or a
//!   later layer (the `SessionUser` rate limit key) calls [`SessionHandle::get`]; that first call loads and
//!   slides the session in one round trip, later ones reuse it.
//! - **Cookies:** secure defaults (`Secure`, `HttpOnly`, `SameSite=Lax`,
//!   `Path=/`, host-only), all configurable ([`CookieConfig`]).
//!   [`SessionHandle::login`] sets it with `Max-Age` equal to the session's
//!   absolute lifetime left; [`SessionHandle::rotate`] sets the new id;
//!   [`SessionHandle::logout`] revokes and clears it; a cookie whose session
//!   is gone (expired, revoked) is cleared on the response.
//! - **401:** the required `Session` extractor answers 401 with
//!   `WWW-Authenticate: Bearer` and an `application/problem+json` body.
//!
//! ```no_run
//! use aeturnis_session::{SessionMetadata, UserId};
//! use aeturnis_tower::session::{Session, SessionHandle};
//! use aeturnis_tower::Problem;
//!
//! async fn login(handle: SessionHandle) -> Result<String, Problem> {
//!     let user = UserId::new("alice").map_err(|e| Problem::from_class(&e))?;
//!     // sets the cookie on the response
//!     let session = handle.login(&user, SessionMetadata::new()).await
//!         .map_err(|e| Problem::from_class(&e))?;
//!     Ok(session.id.to_string())
//! }
//!
//! async fn me(session: Session) -> String {
//!     session.user.to_string()
//! }
//!
//! async fn home(session: Option<Session>) -> &'static str {
//!     if session.is_some() { "welcome back" } else { "hello, visitor" }
//! }
//! ```

mod config;
#[cfg(feature = "axum")]
mod extract;
mod handle;
mod layer;
mod service;

pub use config::{CookieConfig, SameSite, SessionLayerConfig, TokenSource};
#[cfg(feature = "axum")]
pub use extract::Session;
pub use handle::SessionHandle;
pub use layer::SessionLayer;
pub use service::{ResponseFuture, SessionService};
