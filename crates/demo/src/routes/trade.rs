//! `POST /trade`: a lock on both players, and a fenced write of the trade.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use aeturnis_tower::session::Session;

use crate::db::TradeWrite;
use crate::extract::JsonBody;
use crate::response::ApiError;
use crate::state::AppState;
use crate::validate;

/// `{"with": "bob", "item": "sword"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Trade {
    with: String,
    item: String,
}

/// The lock resource for a trade between two players: both names in
/// sorted order, so `alice → bob` and `bob → alice` contend.
pub(crate) fn trade_resource(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("trade:{first}:{second}")
}

/// Trades `item` to `with` under `with_lock` on both players. Inside the
/// lock the trade is written to SQLite with the lock's fencing token,
/// checked by the database itself (`UPDATE trade_fences ... WHERE
/// last_fence < ?`): a write from an older holder changes nothing.
pub(crate) async fn trade(
    State(state): State<AppState>,
    Session(session): Session,
    JsonBody(body): JsonBody<Trade>,
) -> Result<Json<Value>, ApiError> {
    let with = validate::player_name("with", &body.with)?;
    let item = validate::text("item", &body.item, validate::MAX_ITEM_LEN)?;
    let user = session.user.as_str();
    if with == user {
        return Err(ApiError::bad_request("you cannot trade with yourself"));
    }
    let resource = trade_resource(user, with);
    let locks = state.locks();
    let resource = resource.as_str();
    let db = state.store().db();
    let (fence, written) = locks
        .with_lock(resource, state.config().trade_lock_ttl, |ctx| async move {
            let fence = ctx.fence().await?;
            let written = db.trade(resource, fence.get(), user, with, item).await?;
            Ok::<_, ApiError>((fence, written))
        })
        .await?;
    if let TradeWrite::StaleFence { current } = written {
        // Only possible when the lease ran out mid-trade and a newer holder
        // already recorded its trade.
        return Err(ApiError::Busy {
            message: format!("the trade lock was lost: trade {current} was recorded first"),
            retry_after: std::time::Duration::from_secs(1),
        });
    }
    let id = match written {
        TradeWrite::Recorded(id) => id,
        TradeWrite::StaleFence { .. } => 0,
    };
    Ok(Json(
        json!({ "fence": fence.get(), "trade": "done", "id": id }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_name_the_same_resource_in_both_directions() {
        assert_eq!(trade_resource("alice", "bob"), "trade:alice:bob");
        assert_eq!(trade_resource("bob", "alice"), "trade:alice:bob");
    }
}
