//! `POST /chat` and `GET /chat`: a capped message log in the cache.

use std::time::SystemTime;

use aeturnis_redis_core::RedisKey;
use aeturnis_tower::ratelimit::Verdict;
use aeturnis_tower::session::Session;
use axum::extract::State;
use axum::Extension;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::extract::JsonBody;
use crate::response::ApiError;
use crate::routes::unix_secs;
use crate::state::AppState;
use crate::validate;

/// One chat line as stored in the list.
#[derive(Debug, Serialize, Deserialize)]
struct ChatMessage {
    user: String,
    character: Option<String>,
    message: String,
    /// Unix seconds, from this server's clock (display only).
    at: u64,
}

/// `{"message": "..."}`.
#[derive(Debug, Deserialize)]
pub(crate) struct PostMessage {
    message: String,
}

/// `chat:lobby`: the one room.
fn log_key(state: &AppState) -> Result<RedisKey, ApiError> {
    Ok(state.cache().key("chat").part("lobby").build()?)
}

/// Posts a message (the chat limit per user admitted it: its route layer),
/// newest-first into the
/// log, which is trimmed to [`DemoConfig::chat_capacity`](crate::DemoConfig::chat_capacity)
/// and expires [`chat_ttl`](crate::DemoConfig::chat_ttl) after the last message.
pub(crate) async fn post(
    State(state): State<AppState>,
    Session(session): Session,
    Extension(verdict): Extension<Verdict>,
    JsonBody(body): JsonBody<PostMessage>,
) -> Result<Json<Value>, ApiError> {
    let text = validate::text("message", &body.message, validate::MAX_MESSAGE_CHARS)?;
    let user = session.user.as_str();
    let message = ChatMessage {
        user: user.to_owned(),
        character: session.character.as_ref().map(|c| c.as_str().to_owned()),
        message: text.to_owned(),
        at: unix_secs(SystemTime::now()),
    };
    let key = log_key(&state)?;
    let config = state.config();
    let len = state
        .cache()
        .list_push_front(&key, &[message], config.chat_ttl)
        .await?;
    let capacity = u64::from(config.chat_capacity.get());
    if len > capacity {
        // The cache has no capped push: trimming is a second command. Two
        // racing posts trim to the same bound, so the log never stays long.
        state
            .cache()
            .list_trim(&key, 0, i64::from(config.chat_capacity.get()) - 1)
            .await?;
    }
    Ok(Json(
        json!({ "ok": true, "remaining": verdict.decision.remaining }),
    ))
}

/// The last [`chat_page`](crate::DemoConfig::chat_page) messages, oldest first.
pub(crate) async fn history(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let key = log_key(&state)?;
    let page = i64::from(state.config().chat_page.get());
    let mut messages: Vec<ChatMessage> = state.cache().list_range(&key, 0, page - 1).await?;
    messages.reverse();
    Ok(Json(json!({ "messages": messages })))
}
