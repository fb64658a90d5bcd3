//! [`ApiError`]: every failure a handler returns, as a JSON `{error}` reply
//! with the right status code and headers.

use std::time::Duration;

use aeturnis_ratelimit::Decision;
use aeturnis_redis_core::{Classify, ErrorClass};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `RateLimit-Limit`: the quota of the limiter that answered.
pub(crate) const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`: what is left of it.
pub(crate) const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");

/// A request failure. Its response is `{"error": "..."}` (plus details for
/// some kinds) with the status code below.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request is malformed or a value is out of range.
    #[error("{0}")]
    BadRequest(String),
    /// 415: the body is not declared as JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 401 with `WWW-Authenticate: Bearer`: no token, or no live session
    /// for it.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 429 with `Retry-After` (whole seconds, rounded up),
    /// `RateLimit-Limit` and `RateLimit-Remaining`.
    #[error("rate limit `{limiter}` exceeded")]
    RateLimited {
        /// Which limiter refused.
        limiter: &'static str,
        /// Its decision.
        decision: Decision,
    },
    /// 409 with `Retry-After`: someone else holds the lock.
    #[error("{message}")]
    Busy {
        /// What is busy.
        message: String,
        /// How long the holder may still keep it.
        retry_after: Duration,
    },
    /// 503 with `Retry-After: 1`: Redis is unreachable or slow right now.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 500: anything else (logged, not shown in detail).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 400 with this message.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    /// The status code of the response.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Busy { .. } => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Maps any layer's error by its class (`aeturnis_redis_core::Classify`,
    /// the same answer in every crate): invalid input is a 400, unavailable
    /// a 503, contended a 409 with `Retry-After`, internal a 500.
    pub fn from_class<E: Classify + std::error::Error>(e: &E) -> Self {
        match e.class() {
            ErrorClass::InvalidInput => ApiError::BadRequest(e.to_string()),
            ErrorClass::Unavailable => ApiError::Unavailable(e.to_string()),
            ErrorClass::Contended { retry_after } => ApiError::Busy {
                message: e.to_string(),
                retry_after: retry_after.unwrap_or(Duration::from_secs(1)),
            },
            _ => ApiError::Internal(e.to_string()),
        }
    }
}

/// Whole seconds, rounded up, at least 1 (a `Retry-After: 0` invites a
/// busy loop).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "request failed"),
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "Redis unavailable"),
            _ => {}
        }
        let (body, headers): (_, Vec<(HeaderName, String)>) = match &self {
            ApiError::RateLimited { limiter, decision } => {
                let wait = retry_after_secs(decision.retry_after.unwrap_or(decision.reset_after));
                (
                    json!({
                        "error": self.to_string(),
                        "limiter": limiter,
                        "retry_after": wait,
                        "limit": decision.limit,
                        "remaining": decision.remaining,
                    }),
                    vec![
                        (header::RETRY_AFTER, wait.to_string()),
                        (RATELIMIT_LIMIT, decision.limit.to_string()),
                        (RATELIMIT_REMAINING, decision.remaining.to_string()),
                    ],
                )
            }
            ApiError::Busy { retry_after, .. } => {
                let wait = retry_after_secs(*retry_after);
                (
                    json!({ "error": self.to_string(), "retry_after": wait }),
                    vec![(header::RETRY_AFTER, wait.to_string())],
                )
            }
            ApiError::Unauthorized(_) => (
                json!({ "error": self.to_string() }),
                vec![(header::WWW_AUTHENTICATE, "Bearer".to_owned())],
            ),
            ApiError::Unavailable(_) => (
                json!({ "error": "Redis is unavailable; try again shortly" }),
                vec![(header::RETRY_AFTER, "1".to_owned())],
            ),
            ApiError::Internal(_) => (json!({ "error": "internal error" }), Vec::new()),
            _ => (json!({ "error": self.to_string() }), Vec::new()),
        };
        let mut response = (status, Json(body)).into_response();
        for (name, value) in headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// Every layer's error becomes a response by its class.
impl<E: Classify + std::error::Error> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::from_class(&e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_round_retry_after_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(900)), 900);
    }
}
