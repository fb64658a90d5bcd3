//! `GET /me` and `POST /me/character`.

use aeturnis_session::CharacterId;
use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use aeturnis_tower::session::Session;

use crate::extract::JsonBody;
use crate::response::ApiError;
use crate::routes::unix_secs;
use crate::state::AppState;

/// The caller's session (already slid by the extractor) and how many live
/// sessions their user has.
pub(crate) async fn me(
    State(state): State<AppState>,
    Session(session): Session,
) -> Result<Json<Value>, ApiError> {
    let sessions = state.sessions().list(&session.user).await?;
    Ok(Json(json!({
        "user": session.user.as_str(),
        "character": session.character.as_ref().map(CharacterId::as_str),
        "created_at": unix_secs(session.created_at),
        "expires_at": unix_secs(session.expires_at),
        "sessions": sessions.len(),
    })))
}

/// `{"character": "..."}`.
#[derive(Debug, Deserialize)]
pub(crate) struct BindCharacter {
    character: String,
}

/// Binds a character to the caller's session.
pub(crate) async fn character(
    State(state): State<AppState>,
    Session(session): Session,
    JsonBody(body): JsonBody<BindCharacter>,
) -> Result<Json<Value>, ApiError> {
    let character = CharacterId::new(body.character)?;
    let session = state
        .sessions()
        .bind_character(&session.id, &character)
        .await?
        .ok_or(ApiError::Unauthorized("invalid or expired session"))?;
    Ok(Json(json!({
        "user": session.user.as_str(),
        "character": session.character.as_ref().map(CharacterId::as_str),
    })))
}
