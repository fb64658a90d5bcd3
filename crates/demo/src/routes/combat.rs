//! `POST /combat/action` and `GET /leaderboard`.

use std::num::NonZeroU32;

use aeturnis_redis_core::RedisKey;
use aeturnis_tower::ratelimit::Verdict;
use aeturnis_tower::session::Session;
use axum::extract::State;
use axum::Extension;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::extract::JsonBody;
use crate::response::ApiError;
use crate::state::AppState;
use crate::validate;

/// How many entries `GET /leaderboard` shows.
const TOP: NonZeroU32 = NonZeroU32::MIN.saturating_add(9);

/// `{"target": "bob", "damage": 12}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Action {
    target: String,
    damage: u32,
}

/// `leaderboard:{pvp}`.
fn board(state: &AppState) -> Result<RedisKey, ApiError> {
    Ok(state.cache().schema().leaderboard("pvp")?)
}

/// An attack (the combat limit per user admitted it: its route layer): the
/// damage is added to the
/// attacker's PvP score.
pub(crate) async fn action(
    State(state): State<AppState>,
    Session(session): Session,
    Extension(verdict): Extension<Verdict>,
    JsonBody(body): JsonBody<Action>,
) -> Result<Json<Value>, ApiError> {
    let target = validate::player_name("target", &body.target)?;
    let user = session.user.as_str();
    if target == user {
        return Err(ApiError::bad_request("you cannot attack yourself"));
    }
    if body.damage == 0 || body.damage > validate::MAX_DAMAGE {
        return Err(ApiError::bad_request(format!(
            "`damage` must be from 1 to {}",
            validate::MAX_DAMAGE
        )));
    }
    let score = state
        .cache()
        .leaderboard_incr(
            &board(&state)?,
            user,
            f64::from(body.damage),
            state.config().leaderboard_ttl,
        )
        .await?;
    Ok(Json(json!({
        "target": target,
        "damage": body.damage,
        "score": score,
        "remaining": verdict.decision.remaining,
    })))
}

/// The top ten of the PvP board.
pub(crate) async fn leaderboard(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let top = state.cache().leaderboard_top(&board(&state)?, TOP).await?;
    let entries: Vec<Value> = top
        .iter()
        .map(|e| json!({ "rank": e.rank, "player": e.member, "score": e.score }))
        .collect();
    Ok(Json(json!({ "leaderboard": entries })))
}
