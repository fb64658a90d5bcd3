//! `GET /dashboard`: a live page of every layer's figures.
//!
//! One self-contained page (HTML, CSS and plain JS compiled into the binary
//! from `crates/demo/assets/`, no external asset: the
//! `Content-Security-Policy` allows only the demo's own origin) that
//! subscribes to `GET /dashboard/feed`, server-sent events carrying one
//! [`Snapshot`] a second, and draws each series as a sparkline.
//! `GET /dashboard/sample` answers one sample as JSON.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use axum::Router;
use futures::Stream;

use crate::state::AppState;
use crate::Snapshot;

/// How often the feed sends a sample.
const EVERY: Duration = Duration::from_secs(1);

/// Only the demo's own origin: no CDN, no inline script.
const CSP: &str = "default-src 'self'; img-src 'self' data:; connect-src 'self'";

/// The page, its assets, the feed and the one-shot sample.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/dashboard.css", get(css))
        .route("/dashboard/dashboard.js", get(js))
        .route("/dashboard/feed", get(feed))
        .route("/dashboard/sample", get(one))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("../../assets/dashboard.html"),
    )
}

async fn css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../assets/dashboard.css"),
    )
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/dashboard.js"),
    )
}

/// One sample as JSON.
async fn one(State(state): State<AppState>) -> Json<Snapshot> {
    Json(state.snapshot().await)
}

/// A sample now, then one every [`EVERY`], as `sample` events.
async fn feed(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let stream = futures::stream::unfold((state, ticks), |(state, mut ticks)| async move {
        ticks.tick().await;
        let sample = state.snapshot().await;
        let event = Event::default()
            .event("sample")
            .json_data(&sample)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "serialising a dashboard sample");
                Event::default().comment("unserialisable sample")
            });
        Some((Ok(event), (state, ticks)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
