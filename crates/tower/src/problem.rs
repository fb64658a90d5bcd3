//! [`Problem`]: an RFC 9457 `application/problem+json` response body, the
//! one error body every layer of this crate answers with.

use std::time::Duration;

use aeturnis_redis_core::duration::ceil_millis;
use aeturnis_redis_core::{Classify, ErrorClass};
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use serde::Serialize;

/// `application/problem+json` (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem: `type` is `about:blank`, `title` the status's
/// reason phrase, plus a `detail` and optional extension members. It
/// becomes a response with [`into_response`](Self::into_response).
///
/// ```
/// use aeturnis_tower::Problem;
/// use http::StatusCode;
/// let response = Problem::new(StatusCode::UNAUTHORIZED, "log in first")
///     .into_response::<bytes::Bytes>();
/// assert_eq!(response.status(), 401);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// let body: serde_json::Value = serde_json::from_slice(response.body())?;
/// assert_eq!(body["detail"], "log in first");
/// assert_eq!(body["title"], "Unauthorized");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Problem {
    /// Always `about:blank`: the status code says it all.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    /// The status code.
    pub status: u16,
    /// What went wrong, for a human.
    pub detail: String,
    /// Extension members (RFC 9457 §3.2), such as `retry_after`.
    #[serde(flatten)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`).
    #[serde(skip)]
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
        }
    }

    /// Adds an extension member.
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Problem {
        self.extensions.insert(name.to_owned(), value.into());
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Problem {
        self.headers.push((name, value));
        self
    }

    /// Adds `Retry-After` (whole seconds, rounded up, at least 1) and the
    /// `retry_after` member.
    #[must_use]
    pub fn with_retry_after(self, wait: Duration) -> Problem {
        let secs = retry_after_secs(wait);
        self.with("retry_after", secs)
            .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
    }

    /// The answer to an error of an Aeturnis layer, by its class: invalid
    /// input 400, unavailable 503 with `Retry-After: 1`, contended 409 with
    /// its `Retry-After`, anything else 500 (whose detail is not shown).
    pub fn from_class<E: Classify + std::fmt::Display + ?Sized>(e: &E) -> Problem {
        match e.class() {
            ErrorClass::InvalidInput => Problem::new(StatusCode::BAD_REQUEST, e.to_string()),
            ErrorClass::Unavailable => {
                tracing::warn!(error = %e, "Redis unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Redis is unavailable; try again shortly",
                )
                .with_retry_after(Duration::from_secs(1))
            }
            ErrorClass::Contended { retry_after } => {
                Problem::new(StatusCode::CONFLICT, e.to_string())
                    .with_retry_after(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            _ => {
                tracing::error!(error = %e, "request failed");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }

    /// The status code.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The response: status, `Content-Type: application/problem+json`, the
    /// extra headers, the JSON body.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = Response::new(B::from(Bytes::from(body)));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        response
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Problem {
    fn into_response(self) -> axum::response::Response {
        Problem::into_response(self)
    }
}

/// Whole seconds, rounded up, at least 1 (a `Retry-After: 0` invites a
/// busy loop).
#[must_use]
pub fn retry_after_secs(wait: Duration) -> u64 {
    ceil_millis(wait).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_round_retry_after_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_micros(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(900)), 900);
    }
}
