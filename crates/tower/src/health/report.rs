//! [`HealthReport`]: an `application/health+json` body and its status.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;
use serde_json::{Map, Value};

/// `application/health+json` (draft-inadarei-api-health-check).
pub const HEALTH_JSON: &str = "application/health+json";

/// A check's or the whole report's status; ordered `Pass < Warn < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CheckStatus {
    /// Healthy.
    Pass,
    /// Healthy, with a concern (slow, a stats source failed).
    Warn,
    /// Unhealthy: the response is 503.
    Fail,
}

/// A health response: `{"status": ..., "checks": {...}}`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HealthReport {
    /// The overall status (the worst check's).
    pub status: CheckStatus,
    /// The body.
    pub body: Value,
}

impl HealthReport {
    pub(crate) fn new(status: CheckStatus, checks: Map<String, Value>) -> HealthReport {
        let mut body = Map::new();
        body.insert(
            "status".into(),
            serde_json::to_value(status).unwrap_or_default(),
        );
        if !checks.is_empty() {
            body.insert("checks".into(), Value::Object(checks));
        }
        HealthReport {
            status,
            body: Value::Object(body),
        }
    }

    /// 200 when passing or warning, 503 when failing.
    #[must_use]
    pub fn http_status(&self) -> StatusCode {
        if self.status == CheckStatus::Fail {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        }
    }

    /// The response: status, `Content-Type: application/health+json`,
    /// `Cache-Control: no-store`, the body.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut response = Response::new(B::from(Bytes::from(body)));
        *response.status_mut() = self.http_status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(HEALTH_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for HealthReport {
    fn into_response(self) -> axum::response::Response {
        HealthReport::into_response(self)
    }
}
