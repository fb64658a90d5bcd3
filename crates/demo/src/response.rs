//! [`ApiError`]: every failure a handler returns, as a JSON `{error}` reply
//! with the right status code and headers.

use std::time::Duration;

use aeturnis_ratelimit::Classify as _;
use aeturnis_ratelimit::Decision;
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

    /// Maps a layer's error: bad input is a 400, an unreachable Redis a
    /// 503, the rest a 500.
    fn from_layer(e: &dyn std::error::Error, invalid_input: bool, retryable: bool) -> Self {
        if invalid_input {
            ApiError::BadRequest(e.to_string())
        } else if retryable {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
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

impl From<aeturnis_cache::Error> for ApiError {
    fn from(e: aeturnis_cache::Error) -> Self {
        // `Classify`: a connection error is unavailable, hence retryable
        use aeturnis_cache::Classify as _;
        ApiError::from_layer(&e, e.is_invalid_input(), e.is_retryable())
    }
}

impl From<aeturnis_session::Error> for ApiError {
    fn from(e: aeturnis_session::Error) -> Self {
        use aeturnis_session::Classify as _;
        // unavailable (connection, timeout, shutdown) is retryable
        ApiError::from_layer(&e, e.is_invalid_input(), e.is_retryable())
    }
}

impl From<aeturnis_ratelimit::Error> for ApiError {
    fn from(e: aeturnis_ratelimit::Error) -> Self {
        ApiError::from_layer(&e, e.is_invalid_input(), e.is_retryable())
    }
}

impl From<aeturnis_lock::Error> for ApiError {
    fn from(e: aeturnis_lock::Error) -> Self {
        use aeturnis_lock::Classify as _;
        if let Some(retry_after) = e.retry_after() {
            return ApiError::Busy {
                message: e.to_string(),
                retry_after,
            };
        }
        ApiError::from_layer(&e, e.is_invalid_input(), e.is_retryable())
    }
}

impl From<aeturnis_redis_core::KeyError> for ApiError {
    fn from(e: aeturnis_redis_core::KeyError) -> Self {
        ApiError::BadRequest(e.to_string())
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
