//! The router: every game route behind aeturnis-tower's layers (the API
//! limit per client IP, per-route presets, sessions), plus health and
//! metrics.

use std::net::SocketAddr;
use std::time::Instant;

use aeturnis_ratelimit::RateLimiter;
use aeturnis_tower::health::Health;
use aeturnis_tower::ratelimit::{PeerIp, RateLimitLayer, SessionUser};
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::Router;

use crate::routes;
use crate::state::AppState;

/// The demo's router. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the rate limits
/// key on the peer address (in-process tests insert a
/// [`ConnectInfo`](axum::extract::ConnectInfo) into each request).
///
/// The health endpoints (`/health/live`, `/health/ready`, `/health/redis`,
/// `/health/detailed`) and `/metrics` sit outside the API limit: probes
/// and scrapers must not be throttled.
pub fn app(state: AppState) -> Router {
    let limits = state.limits();
    let per_ip = |l: &RateLimiter| RateLimitLayer::new(l.clone(), PeerIp::default());
    let per_user = |l: &RateLimiter| RateLimitLayer::new(l.clone(), SessionUser);
    let store = state.store().clone();
    let mut health = Health::new(state.redis().clone())
        .with_stats("cache", move || {
            // the plain cache's reads and the cache-aside reads
            let (hits, stale, misses) = store.read_counts();
            let reads = hits + stale + misses;
            async move {
                Ok::<_, std::convert::Infallible>(serde_json::json!({
                    "hits": hits,
                    "stale": stale,
                    "misses": misses,
                    "hit_rate": (reads > 0).then(|| (hits + stale) as f64 / reads as f64),
                }))
            }
        })
        .with_sessions("sessions", state.sessions().clone())
        .with_stats("locks", {
            let locks = state.locks().clone();
            move || {
                // acquisitions, waits and hand-offs of the trade locks
                let stats = locks.stats();
                async move { Ok::<_, std::convert::Infallible>(stats) }
            }
        });
    for (name, limiter) in limits.all() {
        health = health.with_limiter(format!("ratelimit-{name}"), limiter.clone());
    }
    Router::new()
        .route(
            "/auth/login",
            post(routes::auth::login).route_layer(per_ip(&limits.auth)),
        )
        .route("/auth/logout", post(routes::auth::logout))
        .route("/auth/logout-others", post(routes::auth::logout_others))
        .route("/me", get(routes::me::me))
        .route("/me/character", post(routes::me::character))
        .route(
            "/chat",
            post(routes::chat::post)
                .route_layer(per_user(&limits.chat))
                .get(routes::chat::history),
        )
        .route("/players/{id}/profile", get(routes::profile::profile))
        .route("/me/profile", put(routes::profile::update))
        .route(
            "/guilds/{id}",
            get(routes::profile::guild).put(routes::profile::rename_guild),
        )
        .route(
            "/move",
            post(routes::movement::record).route_layer(per_user(&limits.movement)),
        )
        .route("/players/{id}/position", get(routes::movement::stored))
        .route("/ws", get(crate::realtime::upgrade))
        .route(
            "/combat/action",
            post(routes::combat::action).route_layer(per_user(&limits.combat)),
        )
        .route("/leaderboard", get(routes::combat::leaderboard))
        .route("/trade", post(routes::trade::trade))
        .fallback(routes::not_found)
        .layer(per_ip(&limits.api))
        .layer(state.session_layer().clone())
        .layer(middleware::from_fn(log_request))
        .merge(health.router())
        .route("/metrics", get(routes::metrics::metrics))
        .merge(crate::dashboard::router())
        .with_state(state)
}

/// Logs each request with its status and duration.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let response = next.run(request).await;
    tracing::info!(
        %method,
        path,
        peer = ?peer,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}
