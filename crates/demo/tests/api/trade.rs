//! `POST /trade`: opposite trades contend for one lock, and each trade is
//! recorded with a fenced write that refuses an older fence.

use std::time::Duration;

use aeturnis_demo::DemoConfig;
use aeturnis_lock::{FencingToken, StaleFence};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::support::{Api, Reply};

/// The record the trade route writes (same fields, same order).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct TradeRecord {
    from: String,
    to: String,
    item: String,
}

fn record(from: &str, to: &str, item: &str) -> TradeRecord {
    TradeRecord {
        from: from.to_owned(),
        to: to.to_owned(),
        item: item.to_owned(),
    }
}

/// `POST /trade` as `token`'s user.
async fn trade(api: &Api, token: &str, with: &str, item: &str) -> Reply {
    api.post("/trade", Some(token), json!({ "with": with, "item": item }))
        .await
}

#[tokio::test]
async fn should_make_opposite_trades_contend_for_one_lock() -> anyhow::Result<()> {
    let config = DemoConfig::defaults()?.with_locks(
        aeturnis_lock::LockConfig::default().with_wait_timeout(Duration::from_millis(200)),
    );
    let api = Api::standalone("demo_trade_lock", config).await?;
    let bob = api.login("bob").await;
    // alice's side of a trade holds the lock...
    let held = api
        .state
        .locks()
        .try_acquire("trade:alice:bob", Duration::from_secs(30))
        .await?;
    // ...so bob → alice waits for it and gives up
    let busy = api
        .post(
            "/trade",
            Some(&bob),
            json!({ "with": "alice", "item": "bow" }),
        )
        .await;
    assert_eq!(busy.status, StatusCode::CONFLICT, "{}", busy.body);
    let retry: u64 = busy.header("retry-after").unwrap().parse()?;
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    // a trade with someone else is not blocked
    let other = api
        .post(
            "/trade",
            Some(&bob),
            json!({ "with": "carol", "item": "bow" }),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    let held_fence = held.fence().await?.get();
    held.release().await?;
    let done = api
        .post(
            "/trade",
            Some(&bob),
            json!({ "with": "alice", "item": "bow" }),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    // fences only grow (a refused attempt may use a number up)
    assert!(
        done.body["fence"].as_u64().unwrap() > held_fence,
        "{} after {held_fence}",
        done.body
    );
    Ok(())
}

#[tokio::test]
async fn should_record_each_trade_under_a_growing_fence_and_refuse_a_stale_one(
) -> anyhow::Result<()> {
    let api = Api::standalone("demo_trade_fence", DemoConfig::defaults()?).await?;
    let alice = api.login("alice").await;
    let bob = api.login("bob").await;
    let locks = api.state.locks();
    let resource = "trade:alice:bob";

    let one = trade(&api, &alice, "bob", "sword").await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    let first = FencingToken::new(one.body["fence"].as_u64().unwrap());
    assert_eq!(
        locks.fenced_read::<TradeRecord>(resource).await?,
        Some((first, record("alice", "bob", "sword")))
    );
    let two = trade(&api, &bob, "alice", "shield").await;
    assert_eq!(two.status, StatusCode::OK, "{}", two.body);
    let second = FencingToken::new(two.body["fence"].as_u64().unwrap());
    assert!(second > first, "fence {second} after {first}");
    assert_eq!(
        locks.fenced_read::<TradeRecord>(resource).await?,
        Some((second, record("bob", "alice", "shield")))
    );

    // a write under the first trade's fence comes too late: refused, and
    // the second trade's record stays
    let late = locks
        .fenced_write(resource, first, &record("alice", "bob", "late"))
        .await?;
    let StaleFence {
        offered, current, ..
    } = late.unwrap_err();
    assert_eq!((offered, current), (first, second));
    assert_eq!(
        locks.fenced_read::<TradeRecord>(resource).await?,
        Some((second, record("bob", "alice", "shield")))
    );

    // a newer holder (one that took the lock after this route's lease ran
    // out) has already recorded its trade: the route's own write is stale
    // and the trade is refused, not recorded
    let newer = FencingToken::new(second.get() + 1_000);
    assert_eq!(
        locks
            .fenced_write(resource, newer, &record("bob", "alice", "newer"))
            .await?,
        Ok(())
    );
    let refused = trade(&api, &alice, "bob", "bow").await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let error = refused.body["detail"].as_str().unwrap();
    assert!(error.contains("lock was lost"), "{error}");
    assert_eq!(
        locks.fenced_read::<TradeRecord>(resource).await?,
        Some((newer, record("bob", "alice", "newer")))
    );
    Ok(())
}
