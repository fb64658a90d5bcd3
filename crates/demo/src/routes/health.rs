//! `GET /health`: the connection, and every layer's statistics.

use aeturnis_redis_core::{ConnectionState, HealthStatus};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::state::AppState;

/// `Redis::health` plus cache, session and rate-limit stats; 200 when PING
/// answered, 503 when not.
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (health, sessions) = tokio::join!(state.redis().health(), state.sessions().stats());
    let cache = state.cache().stats();
    let sessions = match sessions {
        Ok(s) => json!({
            "active": s.active,
            "unique_users": s.unique_users,
            "created": s.created,
            "ended": s.ended,
            "average_duration_ms": s.average_duration.map(|d| d.as_millis() as u64),
        }),
        Err(e) => json!({ "error": e.to_string() }),
    };
    let mut limits = Map::new();
    for (name, limiter) in state.limits().all() {
        let s = limiter.stats();
        limits.insert(
            name.to_owned(),
            json!({
                "checks": s.checks,
                "allowed": s.allowed,
                "violations": s.violations,
                "redis_unavailable": s.redis_unavailable,
            }),
        );
    }
    let healthy = health.status == HealthStatus::Healthy;
    let body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "latency_ms": health.latency.map(|d| d.as_secs_f64() * 1000.0),
        "state": state_name(health.state),
        "server_version": health.server_version,
        "role": health.role,
        "used_memory": health.used_memory,
        "error": health.error,
        "cache": {
            "hits": cache.hits,
            "misses": cache.misses,
            "hit_rate": cache.hit_rate(),
        },
        "sessions": sessions,
        "rate_limits": limits,
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

fn state_name(state: ConnectionState) -> &'static str {
    match state {
        ConnectionState::Connected => "connected",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Disconnecting => "disconnecting",
        ConnectionState::Disconnected => "disconnected",
        _ => "unknown",
    }
}
