//! [`ApiError`]: every failure a handler returns, as an RFC 9457
//! `application/problem+json` reply (aeturnis-tower's [`Problem`], the body
//! the rate-limit and session layers answer with too).

use std::time::Duration;

use aeturnis_redis_core::Classify;
use aeturnis_tower::Problem;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A request failure. Its response is a problem+json body whose `detail`
/// is the message, with the status code below.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed or a value is out of range.
    #[error("{0}")]
    BadRequest(String),
    /// 415: the body is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 401 with `WWW-Authenticate: Bearer`: no live session.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409 with `Retry-After`: someone else holds the lock.
    #[error("{message}")]
    Busy {
        /// What is busy.
        message: String,
        /// How long the holder may still keep it.
        retry_after: Duration,
    },
    /// An error of an Aeturnis layer, answered by its class (400, 503 with
    /// `Retry-After: 1`, 409, 500).
    #[error("{}", .0.detail)]
    Layer(Problem),
}

impl ApiError {
    /// A 400 with this message.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    /// The problem this error answers with.
    #[must_use]
    pub fn problem(self) -> Problem {
        let detail = self.to_string();
        match self {
            ApiError::BadRequest(_) => Problem::new(StatusCode::BAD_REQUEST, detail),
            ApiError::UnsupportedMediaType(_) => {
                Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, detail)
            }
            ApiError::Unauthorized(_) => Problem::new(StatusCode::UNAUTHORIZED, detail)
                .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")),
            ApiError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, detail),
            ApiError::Busy { retry_after, .. } => {
                Problem::new(StatusCode::CONFLICT, detail).with_retry_after(retry_after)
            }
            ApiError::Layer(problem) => problem,
        }
    }

    /// The status code of the response.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Busy { .. } => StatusCode::CONFLICT,
            ApiError::Layer(problem) => problem.status(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}

/// Every layer's error becomes a response by its class
/// ([`Problem::from_class`]).
impl<E: Classify + std::error::Error> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::Layer(Problem::from_class(&e))
    }
}
