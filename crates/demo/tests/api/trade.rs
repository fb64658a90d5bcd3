//! `POST /trade`: opposite trades contend for one lock, and each trade is
//! written to SQLite with its fence checked by the database.

use std::time::Duration;

use aeturnis_demo::{DemoConfig, TradeWrite};
use axum::http::StatusCode;
use serde_json::json;

use crate::support::{Api, Reply};

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
async fn should_record_each_trade_in_sqlite_and_have_sqlite_refuse_a_stale_fence(
) -> anyhow::Result<()> {
    let api = Api::standalone("demo_trade_fence", DemoConfig::defaults()?).await?;
    let alice = api.login("alice").await;
    let bob = api.login("bob").await;
    let db = api.state.store().db();
    let resource = "trade:alice:bob";
    let inventory = |who: &'static str| async move { db.inventory(who).await.unwrap() };
    let items = |v: &[(&str, u32)]| -> Vec<(String, u32)> {
        v.iter().map(|(i, n)| ((*i).to_owned(), *n)).collect()
    };

    let one = trade(&api, &alice, "bob", "sword").await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    let first = one.body["fence"].as_u64().unwrap();
    assert_eq!(inventory("alice").await, items(&[("potion", 3)]));
    assert_eq!(
        inventory("bob").await,
        items(&[("bow", 1), ("potion", 3), ("sword", 1)])
    );
    let two = trade(&api, &bob, "alice", "bow").await;
    assert_eq!(two.status, StatusCode::OK, "{}", two.body);
    let second = two.body["fence"].as_u64().unwrap();
    assert!(second > first, "fence {second} after {first}");

    // a write under the first trade's fence comes too late: SQLite's
    // `UPDATE ... WHERE last_fence < ?` changes nothing, the trade is rolled
    // back and the inventories stay
    let late = db.trade(resource, first, "bob", "alice", "sword").await?;
    assert_eq!(late, TradeWrite::StaleFence { current: second });
    assert_eq!(
        inventory("bob").await,
        items(&[("potion", 3), ("sword", 1)])
    );

    // a newer holder (one that took the lock after this route's lease ran
    // out) has already written: the route's own write is stale, refused by
    // SQLite, and the trade is answered 409, not recorded
    let newer = db
        .trade(resource, second + 1_000, "bob", "alice", "potion")
        .await?;
    assert!(matches!(newer, TradeWrite::Recorded(_)), "{newer:?}");
    let refused = trade(&api, &alice, "bob", "bow").await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.header("retry-after"), Some("1"));
    let error = refused.body["detail"].as_str().unwrap();
    assert!(error.contains("lock was lost"), "{error}");
    assert_eq!(
        inventory("alice").await,
        items(&[("bow", 1), ("potion", 4)])
    );
    Ok(())
}
