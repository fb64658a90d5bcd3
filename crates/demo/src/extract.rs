//! [`JsonBody`]: a JSON body whose rejections are problem+json errors.
//! (The session and the client address come from `aeturnis-tower`.)

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::response::ApiError;

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
