//! `/health/*` and its figures, and the whole API while Redis is down: 503
//! with `Retry-After`, then recovery once Redis is back.

use std::time::{Duration, Instant};

use aeturnis_demo::DemoConfig;
use aeturnis_redis_core::{ReconnectConfig, Redis, RedisConfig};
use aeturnis_testkit::{eventually, RedisServer};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{Api, Reply};

#[tokio::test]
async fn should_report_health_and_stats() -> anyhow::Result<()> {
    let started = Instant::now();
    let api = Api::standalone("demo_health", DemoConfig::defaults()?).await?;
    api.login("alice").await;
    let phone = api.login("alice").await;
    api.login("bob").await;
    let out = api
        .call(Method::POST, "/auth/logout", Some(&phone), None)
        .await;
    assert_eq!(out.body["revoked"], true);
    api.get("/players/eve/profile", None).await;
    api.get("/players/eve/profile", None).await;
    let asked = Instant::now();
    let health = api.get("/health/detailed", None).await;
    let request_ms = asked.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    assert_eq!(
        health.header("content-type"),
        Some("application/health+json")
    );
    let body = &health.body;
    assert_eq!(body["status"], "pass", "{body}");
    let checks = &body["checks"];
    let connection = &checks["redis:connection"][0];
    assert_eq!(connection["observedValue"], "connected");
    assert_eq!(connection["role"], "master");
    assert_eq!(connection["output"], Value::Null);
    assert!(connection["version"].as_str().unwrap().starts_with('7'));
    assert!(connection["usedMemory"].as_u64().unwrap() > 0);
    // the PING round trip, in milliseconds: measured inside this request
    let latency = checks["redis:responseTime"][0]["observedValue"]
        .as_f64()
        .unwrap();
    assert!(
        latency > 0.0 && latency <= request_ms,
        "latency {latency} ms, the whole request took {request_ms:.3} ms"
    );
    let cache = &checks["cache:stats"][0]["observedValue"];
    assert_eq!(cache["hits"], 1);
    assert_eq!(cache["misses"], 1);
    assert_eq!(cache["hit_rate"], 0.5);
    // three logins, one logout
    let sessions = &checks["sessions:stats"][0]["observedValue"];
    assert_eq!(sessions["active"], 2, "{sessions}");
    assert_eq!(sessions["created"], 3, "{sessions}");
    assert_eq!(sessions["ended"], 1, "{sessions}");
    assert_eq!(sessions["unique_users"], 2, "{sessions}");
    let average = sessions["average_duration_ms"].as_u64().unwrap();
    assert!(
        u128::from(average) <= started.elapsed().as_millis(),
        "the ended session lived {average} ms, longer than the test"
    );
    // 3 logins + 1 logout + 2 profiles (health is outside the API limit)
    let limit = |name: &str| &checks[format!("ratelimit-{name}:stats")][0]["observedValue"];
    assert_eq!(limit("api")["checks"], 6);
    assert_eq!(limit("api")["allowed"], 6);
    assert_eq!(limit("auth")["checks"], 3);
    assert_eq!(limit("auth")["allowed"], 3);
    assert_eq!(limit("chat")["checks"], 0);
    let locks = &checks["locks:stats"][0]["observedValue"];
    assert_eq!(locks["acquired"], 0, "{locks}");
    assert_eq!(locks["waits"], 0, "{locks}");
    Ok(())
}

/// Asserts the 503 every route answers while Redis is unreachable.
fn assert_unavailable(what: &str, reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        reply.body
    );
    assert_eq!(reply.header("retry-after"), Some("1"), "{what}");
    assert_eq!(
        reply.body["detail"], "Redis is unavailable; try again shortly",
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_answer_503_with_retry_after_while_redis_is_down_and_recover() -> anyhow::Result<()>
{
    let mut server = RedisServer::start_standalone()?;
    let redis = Redis::connect(
        RedisConfig::from_url(&server.url())?
            .with_key_prefix("demo-down:")
            // 1 s: the calls before the kill and after the restart must not
            // time out on a stalled CI host
            .with_command_timeout(Duration::from_secs(1))
            // a short backoff ceiling: the default (30 s) grows with the
            // outage and could push the reconnect past the recovery deadline
            .with_reconnect(ReconnectConfig::default().with_max_delay(Duration::from_millis(200))),
    )
    .await?;
    let api = Api::on(redis, DemoConfig::defaults()?)?;
    let alice = api.login("alice").await;
    assert_eq!(api.get("/health/ready", None).await.status, StatusCode::OK);

    server.kill()?;
    let health = api.get("/health/detailed", None).await;
    assert_eq!(
        health.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        health.body
    );
    assert_eq!(health.body["status"], "fail");
    let checks = &health.body["checks"];
    assert_eq!(
        checks["redis:responseTime"][0]["observedValue"],
        Value::Null
    );
    assert!(
        checks["redis:connection"][0]["output"].is_string(),
        "{}",
        health.body
    );
    assert_eq!(api.get("/health/live", None).await.status, StatusCode::OK);
    assert_unavailable("GET /leaderboard", &api.get("/leaderboard", None).await);
    assert_unavailable(
        "GET /players/bob/profile",
        &api.get("/players/bob/profile", None).await,
    );
    // a live token is not turned into a 401 by the outage
    assert_unavailable("GET /me", &api.get("/me", Some(&alice)).await);
    assert_unavailable(
        "POST /auth/login",
        &api.post("/auth/login", None, json!({ "user": "bob" }))
            .await,
    );
    // the API limit fell back to its local quota for each of those requests
    // (it admitted them rather than answering 429 or 503 itself)
    let api_limit = api.state.limits().api.stats();
    assert_eq!(api_limit.redis_unavailable, 4);

    server.restart()?;
    eventually(
        "/health/ready answers 200 after the restart",
        Duration::from_secs(20),
        || {
            let api = &api;
            async move {
                let reply = api.get("/health/ready", None).await;
                if reply.status == StatusCode::OK {
                    Ok(())
                } else {
                    Err(format!("{}: {}", reply.status, reply.body))
                }
            }
        },
    )
    .await?;
    // the restart lost the data (no persistence): alice's session is gone,
    // which is a 401 now that Redis answers, and a new login works
    assert_eq!(
        api.get("/me", Some(&alice)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let bob = api.login("bob").await;
    let me = api.get("/me", Some(&bob)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["user"], "bob");
    let board = api.get("/leaderboard", None).await;
    assert_eq!(board.status, StatusCode::OK, "{}", board.body);
    Ok(())
}
