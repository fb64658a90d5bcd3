//! The handlers, one file per area.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::Uri;

use crate::response::ApiError;

pub(crate) mod auth;
pub(crate) mod chat;
pub(crate) mod combat;
pub(crate) mod me;
pub(crate) mod metrics;
pub(crate) mod movement;
pub(crate) mod profile;
pub(crate) mod trade;

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Any other path: a JSON 404.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}
