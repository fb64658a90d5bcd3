//! What the app leaves in Redis: the chat log's cap and expiry, and the
//! cached profile's TTL, read back with raw commands.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_demo::DemoConfig;
use aeturnis_ratelimit::{Quota, RateLimitConfig};
use aeturnis_redis_core::fred::interfaces::KeysInterface;
use axum::http::StatusCode;
use serde_json::json;

use crate::support::Api;

const HOUR_MS: i64 = 3_600_000;

#[tokio::test]
async fn should_cap_the_chat_log_at_100_and_expire_it_an_hour_after_the_last_message(
) -> anyhow::Result<()> {
    // the chat preset allows 10 a minute and the API preset 100: this test
    // posts more than 100
    let quota = Quota::new(NonZeroU32::new(1_000).unwrap(), Duration::from_secs(60))?;
    let config = DemoConfig::defaults()?
        .with_chat_limit(RateLimitConfig::new("chat", quota))
        .with_api_limit(RateLimitConfig::new("api", quota));
    assert_eq!(config.chat_capacity.get(), 100);
    assert_eq!(config.chat_ttl, Duration::from_secs(3600));
    let api = Api::standalone("demo_chat_cap", config).await?;
    let key = api.state.cache().key("chat").part("lobby").build()?;
    let alice = api.login("alice").await;
    let post = |i: u32| {
        let api = &api;
        let alice = &alice;
        async move {
            let sent = api
                .post("/chat", Some(alice), json!({ "message": format!("m {i}") }))
                .await;
            assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        }
    };
    for i in 1..=105 {
        post(i).await;
    }
    assert_eq!(api.llen(&key).await, 100);
    let ttl = api.pttl(&key).await;
    assert!(HOUR_MS - 60_000 < ttl && ttl <= HOUR_MS, "PTTL {ttl}");
    // GET /chat shows the newest page (20), oldest first: the first five
    // messages were trimmed away
    let log = api.get("/chat", None).await;
    let messages = log.body["messages"].as_array().unwrap();
    let texts: Vec<&str> = messages
        .iter()
        .map(|m| m["message"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (86..=105).map(|i| format!("m {i}")).collect();
    assert_eq!(texts, expected);

    // the expiry runs from the last message: shorten it, post, and it is
    // an hour again
    let shortened: bool = api
        .state
        .redis()
        .client()
        .pexpire(&key, 5_000, None)
        .await?;
    assert!(shortened);
    assert!(api.pttl(&key).await <= 5_000);
    post(106).await;
    let ttl = api.pttl(&key).await;
    assert!(HOUR_MS - 60_000 < ttl && ttl <= HOUR_MS, "PTTL {ttl}");
    assert_eq!(api.llen(&key).await, 100);
    Ok(())
}

#[tokio::test]
async fn should_cache_a_profile_for_sixty_seconds() -> anyhow::Result<()> {
    let config = DemoConfig::defaults()?;
    assert_eq!(config.profile_ttl, Duration::from_secs(60));
    let api = Api::standalone("demo_profile_ttl", config).await?;
    let key = api.state.cache().key("profile").id("carol").build()?;
    assert_eq!(api.pttl(&key).await, -2, "no profile cached yet");
    let miss = api.get("/players/carol/profile", None).await;
    assert_eq!(miss.header("x-cache"), Some("miss"));
    let ttl = api.pttl(&key).await;
    assert!(55_000 < ttl && ttl <= 60_000, "PTTL {ttl}");
    // the hit is served from that key: gone from Redis, it is a miss again
    assert_eq!(
        api.get("/players/carol/profile", None)
            .await
            .header("x-cache"),
        Some("hit")
    );
    let deleted: i64 = api.state.redis().client().del(&key).await?;
    assert_eq!(deleted, 1);
    assert_eq!(
        api.get("/players/carol/profile", None)
            .await
            .header("x-cache"),
        Some("miss")
    );
    // an unknown player is not cached
    let nobody = api.state.cache().schema().user_profile("nobody")?;
    assert_eq!(
        api.get("/players/nobody/profile", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.pttl(&nobody).await, -2);
    Ok(())
}
