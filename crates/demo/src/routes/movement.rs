//! `POST /move` and `GET /players/{id}/position`: movement through
//! write-behind.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use aeturnis_tower::session::Session;

use crate::db::Position;
use crate::extract::JsonBody;
use crate::players::ZONES;
use crate::response::ApiError;
use crate::state::AppState;
use crate::validate;

/// Largest coordinate accepted.
const MAX_COORD: f64 = 10_000.0;

/// `{"zone": "meadow", "x": 1.5, "y": -3}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Move {
    zone: String,
    x: f64,
    y: f64,
}

/// The move is acknowledged (`{"ack": "<stream id>"}`) once it is in the
/// cache and in a Redis stream; the workers write it to SQLite later, in
/// coalesced batches. Unknown zones and coordinates beyond ±10 000 are a
/// 400.
pub(crate) async fn record(
    State(state): State<AppState>,
    Session(session): Session,
    JsonBody(body): JsonBody<Move>,
) -> Result<Json<Value>, ApiError> {
    if !ZONES.iter().any(|(id, _)| *id == body.zone) {
        return Err(ApiError::bad_request(format!(
            "no zone `{}`",
            body.zone
                .chars()
                .take(validate::MAX_NAME_LEN)
                .collect::<String>()
        )));
    }
    for (name, v) in [("x", body.x), ("y", body.y)] {
        if !v.is_finite() || v.abs() > MAX_COORD {
            return Err(ApiError::bad_request(format!(
                "`{name}` must be a number between -10000 and 10000"
            )));
        }
    }
    let position = Position::new(session.user.as_str(), &body.zone, body.x, body.y);
    let ack = state.store().record_move(&position).await?;
    Ok(Json(json!({ "ack": ack.to_string() })))
}

/// A position, when the zone exists and the coordinates are in range.
pub(crate) fn checked(user: &str, zone: &str, x: f64, y: f64) -> Result<Position, ApiError> {
    if !ZONES.iter().any(|(id, _)| *id == zone) {
        return Err(ApiError::bad_request(format!(
            "no zone `{}`",
            zone.chars()
                .take(validate::MAX_NAME_LEN)
                .collect::<String>()
        )));
    }
    for (name, v) in [("x", x), ("y", y)] {
        if !v.is_finite() || v.abs() > MAX_COORD {
            return Err(ApiError::bad_request(format!(
                "`{name}` must be a number between -10000 and 10000"
            )));
        }
    }
    Ok(Position::new(user, zone, x, y))
}

/// The position SQLite holds for a player (what write-behind wrote).
pub(crate) async fn stored(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Position>, ApiError> {
    let id = validate::player_name("id", &id)?;
    state
        .store()
        .db()
        .position(id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no character `{id}`")))
}
