//! The health endpoints: `application/health+json`, pass / warn / fail,
//! the registered stats, 503 when failing.

use std::time::Duration;

use aeturnis_testkit::TestCtx;
use aeturnis_tower::health::Health;
use axum::http::StatusCode;
use axum::Router;

use crate::support::{get_from, limiter, redis, send, sessions, Reply, PEER};

async fn get(app: &Router, path: &str) -> Reply {
    let reply = send(app, get_from(PEER, path)).await;
    assert_eq!(
        reply.header("content-type"),
        Some("application/health+json"),
        "{path}"
    );
    reply
}

async fn should_serve_every_health_endpoint(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let api = limiter(&redis, "api", 10, Duration::from_secs(60));
    let _ = api
        .check(&aeturnis_ratelimit::LimitKey::new("x").unwrap())
        .await
        .unwrap();
    let app: Router = Health::new(redis.clone())
        .with_latency_threshold(Duration::from_secs(5))
        .with_limiter("ratelimit-api", api)
        .with_sessions("sessions", sessions(&redis))
        .with_stats("broken", || async { Err::<u8, _>("cannot count") })
        .router();
    let live = get(&app, "/health/live").await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.json(), serde_json::json!({ "status": "pass" }));
    let ready = get(&app, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    let body = ready.json();
    assert_eq!(body["status"], "pass");
    let latency = &body["checks"]["redis:responseTime"][0];
    assert_eq!(latency["observedUnit"], "ms");
    assert!(latency["observedValue"].as_f64().unwrap() > 0.0);
    let redis_check = get(&app, "/health/redis").await.json();
    let connection = &redis_check["checks"]["redis:connection"][0];
    assert_eq!(connection["status"], "pass");
    assert_eq!(connection["observedValue"], "connected");
    assert!(connection["version"].as_str().unwrap().starts_with('7'));
    assert!(connection["usedMemory"].as_u64().unwrap() > 0);
    let detailed = get(&app, "/health/detailed").await;
    assert_eq!(detailed.status, StatusCode::OK);
    let body = detailed.json();
    // a failing stats source warns; it does not fail the service
    assert_eq!(body["status"], "warn", "{body}");
    let limits = &body["checks"]["ratelimit-api:stats"][0];
    assert_eq!(limits["status"], "pass");
    assert_eq!(limits["observedValue"]["checks"], 1);
    assert!(body["checks"]["sessions:stats"][0]["observedValue"]["active"].is_u64());
    assert_eq!(body["checks"]["broken:stats"][0]["output"], "cannot count");
}

async fn should_fail_readiness_above_the_latency_threshold(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let app: Router = Health::new(redis)
        .with_latency_threshold(Duration::ZERO)
        .router();
    let ready = get(&app, "/health/ready").await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.text
    );
    assert_eq!(ready.json()["status"], "fail");
    // /health/redis only warns: Redis answers, slowly
    let slow = get(&app, "/health/redis").await;
    assert_eq!(slow.status, StatusCode::OK);
    assert_eq!(slow.json()["status"], "warn");
}

aeturnis_testkit::topology_tests!(
    should_serve_every_health_endpoint,
    should_fail_readiness_above_the_latency_threshold,
);
