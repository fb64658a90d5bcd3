//! `GET /players/{id}/profile`: cache-aside, written out by hand.

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::players::PlayerProfile;
use crate::response::ApiError;
use crate::state::AppState;
use crate::validate;

/// `X-Cache: hit|miss`.
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The profile from the cache; on a miss from the "database", then cached
/// for [`profile_ttl`](crate::DemoConfig::profile_ttl). Unknown players
/// are a 404 (and are not cached).
pub(crate) async fn profile(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = validate::player_name("id", &id)?;
    let key = state.cache().schema().user_profile(id)?;
    if let Some(profile) = state.cache().get::<PlayerProfile>(&key).await? {
        return Ok(with_cache_header(Json(profile), "hit"));
    }
    let profile = state
        .load_player(id)
        .ok_or_else(|| ApiError::NotFound(format!("no player `{id}`")))?;
    state
        .cache()
        .set(&key, &profile, state.config().profile_ttl)
        .await?;
    Ok(with_cache_header(Json(profile), "miss"))
}

fn with_cache_header(body: impl IntoResponse, outcome: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(X_CACHE, HeaderValue::from_static(outcome));
    response
}
