//! `POST /auth/login`, `/auth/logout`, `/auth/logout-others`.

use std::net::SocketAddr;

use aeturnis_session::{SessionMetadata, UserId, MAX_USER_AGENT_LEN};
use aeturnis_tower::session::{Session, SessionHandle};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::extract::JsonBody;
use crate::response::ApiError;
use crate::routes::unix_secs;
use crate::state::AppState;
use crate::validate;

/// `{"user": "alice"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    user: String,
}

/// Logs in as `user` (no password: this is a demo of the session layer):
/// the auth limit per client IP has admitted it (its route layer), then a
/// new session with the client's address and user agent, returned as the
/// token and set as the session cookie.
pub(crate) async fn login(
    handle: SessionHandle,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Login>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = validate::player_name("user", &body.user)?;
    let ip = peer.ip().to_canonical();
    let mut metadata = SessionMetadata::new().with_ip_address(ip);
    if let Some(agent) = headers.get(header::USER_AGENT) {
        let agent = agent
            .to_str()
            .map_err(|_| ApiError::bad_request("`User-Agent` is not visible ASCII"))?;
        if agent.len() > MAX_USER_AGENT_LEN {
            return Err(ApiError::bad_request(format!(
                "`User-Agent` is longer than {MAX_USER_AGENT_LEN} bytes"
            )));
        }
        metadata = metadata.with_user_agent(agent);
    }
    let user = UserId::new(name)?;
    let session = handle.login(&user, metadata).await?;
    tracing::info!(user = name, %ip, "login");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "token": session.id.as_str(),
            "user": session.user.as_str(),
            "expires_at": unix_secs(session.expires_at),
        })),
    ))
}

/// Revokes the caller's session and clears the cookie.
pub(crate) async fn logout(
    _session: Session,
    handle: SessionHandle,
) -> Result<Json<Value>, ApiError> {
    let revoked = handle.logout().await?;
    Ok(Json(json!({ "revoked": revoked })))
}

/// Revokes every other session of the caller's user.
pub(crate) async fn logout_others(
    State(state): State<AppState>,
    Session(session): Session,
) -> Result<Json<Value>, ApiError> {
    let revoked = state
        .sessions()
        .revoke_others(&session.user, &session.id)
        .await?;
    Ok(Json(json!({ "revoked": revoked })))
}
