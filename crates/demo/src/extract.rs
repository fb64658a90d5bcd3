//! Request extractors: a JSON body whose rejections are JSON errors, the
//! caller's session, and the client address.

use std::net::{IpAddr, SocketAddr};

use aeturnis_session::Session;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::response::ApiError;
use crate::state::AppState;

/// `Json<T>` whose rejection is an [`ApiError`]: 400 for a body that is not
/// valid JSON or does not have the expected fields, 415 without a JSON
/// `Content-Type`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(JsonRejection::MissingJsonContentType(e)) => {
                Err(ApiError::UnsupportedMediaType(e.body_text()))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// The caller's live session, found from `Authorization: Bearer <token>`
/// and slid (one round trip). 401 without a token or without a session.
#[derive(Debug)]
pub(crate) struct CurrentSession(pub(crate) Session);

impl FromRequestParts<AppState> for CurrentSession {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ApiError::Unauthorized(
                "missing `Authorization: Bearer <token>` header",
            ))?;
        state
            .sessions()
            .get_by_token(token)
            .await?
            .map(CurrentSession)
            .ok_or(ApiError::Unauthorized("invalid or expired session"))
    }
}

/// The peer address of the connection. `X-Forwarded-For` is deliberately
/// not trusted: behind a proxy, configure the proxy's address range and
/// read the header there instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ConnectInfo(addr) = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::Internal(format!("no peer address: {e}")))?;
        Ok(ClientIp(addr.ip().to_canonical()))
    }
}
