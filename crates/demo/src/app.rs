//! The router: every route, and the API limit in front of them.

use axum::routing::{get, post};
use axum::Router;

use crate::limits;
use crate::routes;
use crate::state::AppState;

/// The demo's router. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the rate limits
/// key on the peer address (in-process tests insert a
/// [`ConnectInfo`](axum::extract::ConnectInfo) into each request).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/health", get(routes::health::health))
        .route("/auth/login", post(routes::auth::login))
        .route("/auth/logout", post(routes::auth::logout))
        .route("/auth/logout-others", post(routes::auth::logout_others))
        .route("/me", get(routes::me::me))
        .route("/me/character", post(routes::me::character))
        .route("/chat", get(routes::chat::history).post(routes::chat::post))
        .route("/players/{id}/profile", get(routes::profile::profile))
        .route("/combat/action", post(routes::combat::action))
        .route("/leaderboard", get(routes::combat::leaderboard))
        .route("/trade", post(routes::trade::trade))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::api_limit,
        ))
        .with_state(state)
}
