//! `GET /metrics`: Prometheus text from aeturnis-tower's metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::state::AppState;

/// Sets the layer gauges (limiter violations, sessions), then renders every
/// metric in the Prometheus text format.
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    for (_, limiter) in state.limits().all() {
        aeturnis_tower::metrics::record_limiter_stats(limiter);
    }
    match state.sessions().stats().await {
        Ok(stats) => aeturnis_tower::metrics::record_session_stats(&stats),
        Err(e) => tracing::warn!(error = %e, "session stats for /metrics"),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}
