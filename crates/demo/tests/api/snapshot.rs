//! `AppState::snapshot`: the dashboard's figures move with the traffic.

use aeturnis_demo::DemoConfig;

use crate::support::Api;

#[tokio::test]
async fn should_count_traffic_in_the_snapshot() -> anyhow::Result<()> {
    let api = Api::standalone("demo_snapshot", DemoConfig::defaults()?).await?;
    let before = api.state.snapshot().await;
    assert!(before.redis.healthy);
    assert!(before.redis.used_memory.unwrap() > 0);
    api.login("alice").await;
    api.login("bob").await;
    api.get("/players/eve/profile", None).await;
    api.get("/players/eve/profile", None).await;
    let after = api.state.snapshot().await;
    assert_eq!(after.cache.hits - before.cache.hits, 1);
    assert_eq!(after.cache.misses - before.cache.misses, 1);
    assert_eq!(after.sessions.unwrap().active, 2);
    let auth = after.limiters.iter().find(|l| l.preset == "auth").unwrap();
    assert_eq!(auth.checks, 2);
    let api_preset = after.limiters.iter().find(|l| l.preset == "api").unwrap();
    assert!(api_preset.allowed >= 4, "{api_preset:?}");
    assert!(after.at_ms >= before.at_ms);
    let json = serde_json::to_value(&after)?;
    assert!(json["redis"]["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(json["limiters"].as_array().unwrap().len(), 5);
    Ok(())
}
