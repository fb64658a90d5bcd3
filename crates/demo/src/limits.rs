//! Rate-limit checks: a denial becomes a 429, and the API limit runs as
//! middleware in front of every route.

use std::time::Instant;

use aeturnis_ratelimit::{Decision, LimitKey, RateLimiter};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::extract::ClientIp;
use crate::response::ApiError;
use crate::state::AppState;

/// One check of `limiter` for `key`: the decision when admitted,
/// [`ApiError::RateLimited`] when not.
pub(crate) async fn enforce(
    name: &'static str,
    limiter: &RateLimiter,
    key: &LimitKey,
) -> Result<Decision, ApiError> {
    let decision = limiter.check(key).await?;
    if decision.allowed {
        Ok(decision)
    } else {
        tracing::info!(limiter = name, key = key.as_str(), "rate limited");
        Err(ApiError::RateLimited {
            limiter: name,
            decision,
        })
    }
}

/// Middleware: the API limit per client IP, then the route; logs each
/// request with its status and duration.
pub(crate) async fn api_limit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = match enforce("api", &state.limits().api, &LimitKey::ip(ip)).await {
        Ok(_) => next.run(request).await,
        Err(e) => e.into_response(),
    };
    tracing::info!(
        %method,
        path,
        %ip,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
