//! `GET /players/{id}/profile`, `PUT /me/profile`, `GET /guilds/{id}`,
//! `PUT /guilds/{id}`: the cache patterns in front of SQLite.

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use aeturnis_tower::session::Session;

use crate::extract::JsonBody;
use crate::response::ApiError;
use crate::state::AppState;
use crate::store::CacheOutcome;
use crate::validate;

/// `X-Cache: hit|miss|stale`.
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The profile through cache-aside with stale-while-revalidate: a fresh
/// entry is a hit, an entry past
/// [`profile_soft_ttl`](crate::DemoConfig::profile_soft_ttl) is served
/// (`stale`) while one refresh reloads it, a miss reads SQLite. Unknown
/// players are a 404.
pub(crate) async fn profile(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = validate::player_name("id", &id)?;
    let (found, outcome) = state.store().profile(id).await?;
    let profile = found.ok_or_else(|| ApiError::NotFound(format!("no player `{id}`")))?;
    Ok(with_cache_header(Json(profile), outcome))
}

/// `{"class": "mage", "level": 12}`.
#[derive(Debug, Deserialize)]
pub(crate) struct CharacterUpdate {
    class: String,
    level: u32,
}

/// The caller's character, updated through write-through (SQLite, then
/// the cache: the next profile read is a hit with the new row).
pub(crate) async fn update(
    State(state): State<AppState>,
    Session(session): Session,
    JsonBody(body): JsonBody<CharacterUpdate>,
) -> Result<Response, ApiError> {
    let class = validate::text("class", &body.class, validate::MAX_ITEM_LEN)?;
    if !(1..=100).contains(&body.level) {
        return Err(ApiError::bad_request("`level` must be between 1 and 100"));
    }
    let user = session.user.as_str();
    let profile = state
        .store()
        .update_character(user, class, body.level)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("`{user}` has no character")))?;
    Ok(Json(profile).into_response())
}

/// A guild through cache-aside, tagged with the guild.
pub(crate) async fn guild(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = validate::player_name("id", &id)?;
    let (found, outcome) = state.store().guild(id).await?;
    let guild = found.ok_or_else(|| ApiError::NotFound(format!("no guild `{id}`")))?;
    Ok(with_cache_header(Json(guild), outcome))
}

/// `{"name": "..."}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Rename {
    name: String,
}

/// Renames a guild in SQLite and invalidates every cached entry tagged
/// with it (the guild and its members' profiles). Any logged-in player may
/// (a demo has no permissions).
pub(crate) async fn rename_guild(
    State(state): State<AppState>,
    Session(_): Session,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Rename>,
) -> Result<Response, ApiError> {
    let id = validate::player_name("id", &id)?;
    let name = validate::text("name", &body.name, validate::MAX_ITEM_LEN)?;
    let invalidated = state
        .store()
        .rename_guild(id, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no guild `{id}`")))?;
    Ok(Json(json!({ "guild": id, "invalidated": invalidated })).into_response())
}

fn with_cache_header(body: impl IntoResponse, outcome: CacheOutcome) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(X_CACHE, HeaderValue::from_static(outcome.as_str()));
    response
}
