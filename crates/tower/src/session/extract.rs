//! axum extractors: [`Session`] (required), `Option<Session>`, and
//! [`SessionHandle`].

use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use http::{header, HeaderValue, StatusCode};

use crate::problem::Problem;
use crate::session::handle::SessionHandle;

/// The request's live session, loaded and slid once. Without one the
/// request is refused: 401 with `WWW-Authenticate: Bearer` and a
/// problem+json body; Redis down is 503 with `Retry-After`. Use
/// `Option<Session>` where a visitor is welcome.
#[derive(Debug, Clone)]
pub struct Session(pub aeturnis_session::Session);

impl Session {
    /// The session record.
    #[must_use]
    pub fn into_inner(self) -> aeturnis_session::Session {
        self.0
    }
}

impl Deref for Session {
    type Target = aeturnis_session::Session;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The 401 answer: no live session.
fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, detail)
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

fn handle(parts: &Parts) -> Result<SessionHandle, Problem> {
    parts
        .extensions
        .get::<SessionHandle>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("the Session extractor runs without a SessionLayer");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        })
}

impl<S: Send + Sync> FromRequestParts<S> for SessionHandle {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        handle(parts)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let handle = handle(parts)?;
        match handle.get().await {
            Ok(Some(session)) => Ok(Session(session)),
            Ok(None) if handle.has_token() => Err(unauthorized("invalid or expired session")),
            Ok(None) => Err(unauthorized("no session token")),
            Err(e) => Err(Problem::from_class(&e)),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        let handle = handle(parts)?;
        match handle.get().await {
            Ok(session) => Ok(session.map(Session)),
            Err(e) => Err(Problem::from_class(&e)),
        }
    }
}
