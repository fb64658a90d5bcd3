//! Redis killed under each failure policy: the documented status, then
//! normal service on the same layers after the restart.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_ratelimit::{Algorithm, FailurePolicy, Quota, RateLimitConfig};
use aeturnis_testkit::{eventually, RedisServer};
use aeturnis_tower::health::Health;
use aeturnis_tower::ratelimit::{PeerIp, RateLimitLayer};
use aeturnis_tower::session::{Session, SessionLayer, SessionLayerConfig};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::support::{assert_problem, fragile_redis, get_from, limiter_with, send, sessions, PEER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_answer_each_failure_policy_while_redis_is_down_then_recover() {
    let mut server = RedisServer::start_standalone().unwrap();
    let redis = fragile_redis(&server.url(), "faults:").await;
    let quota = Quota::new(NonZeroU32::new(2).unwrap(), Duration::from_secs(60)).unwrap();
    let route = |policy: FailurePolicy, name: &str| {
        let config = RateLimitConfig::new(name, quota)
            .with_algorithm(Algorithm::FixedWindow)
            .with_failure_policy(policy)
            .with_deny_cache(false);
        Router::new()
            .route(&format!("/{name}"), get(|| async { "ok" }))
            .route_layer(RateLimitLayer::new(
                limiter_with(&redis, config),
                PeerIp::default(),
            ))
    };
    let manager = sessions(&redis);
    let user = aeturnis_session::UserId::new("alice").unwrap();
    let token = manager
        .create(&user, aeturnis_session::SessionMetadata::new())
        .await
        .unwrap()
        .id
        .to_string();
    let app = Router::new()
        .merge(route(FailurePolicy::FailOpen, "open"))
        .merge(route(FailurePolicy::FailClosed, "closed"))
        .merge(route(FailurePolicy::LocalFallback, "local"))
        .merge(route(FailurePolicy::Propagate, "propagate"))
        .route("/me", get(|s: Session| async move { s.user.to_string() }))
        .layer(SessionLayer::new(manager, SessionLayerConfig::default()).unwrap())
        .merge(Health::new(redis.clone()).router());
    for path in ["/open", "/closed", "/local", "/propagate"] {
        assert_eq!(
            send(&app, get_from(PEER, path)).await.status,
            StatusCode::OK,
            "{path}"
        );
    }

    server.kill().unwrap();
    // fail-open admits
    assert_eq!(
        send(&app, get_from(PEER, "/open")).await.status,
        StatusCode::OK
    );
    // fail-closed: 503 with Retry-After, not 429
    let closed = send(&app, get_from(PEER, "/closed")).await;
    assert_problem(&closed, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        closed
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert_eq!(closed.header("ratelimit"), None);
    // local fallback: the quota per instance, then 429
    assert_eq!(
        send(&app, get_from(PEER, "/local")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_from(PEER, "/local")).await.status,
        StatusCode::OK
    );
    let local = send(&app, get_from(PEER, "/local")).await;
    assert_problem(&local, StatusCode::TOO_MANY_REQUESTS);
    // propagate: the error's class, unavailable, 503 Retry-After: 1
    let propagate = send(&app, get_from(PEER, "/propagate")).await;
    assert_problem(&propagate, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(propagate.header("retry-after"), Some("1"));
    // a session that cannot be loaded is 503, not 401
    let mut me = get_from(PEER, "/me");
    me.headers_mut()
        .insert("cookie", format!("session={token}").parse().unwrap());
    let me = send(&app, me).await;
    assert_problem(&me, StatusCode::SERVICE_UNAVAILABLE);
    assert!(me.set_cookies().is_empty(), "an outage clears no cookie");
    let ready = send(&app, get_from(PEER, "/health/ready")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        send(&app, get_from(PEER, "/health/live")).await.status,
        StatusCode::OK
    );

    server.restart().unwrap();
    // each route until it answers 200 once: a 200 takes one unit of the
    // route's quota of 2 (the restarted server starts from none), so no
    // route is asked again once it has served
    for path in ["/health/ready", "/propagate", "/closed"] {
        eventually("the layers serve again", Duration::from_secs(20), || {
            let app = app.clone();
            async move {
                let reply = send(&app, get_from(PEER, path)).await;
                if reply.status == StatusCode::OK {
                    Ok(())
                } else {
                    Err(format!("{path}: {} {}", reply.status, reply.text))
                }
            }
        })
        .await
        .unwrap();
    }
    let reply = send(&app, get_from(PEER, "/closed")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("ratelimit").is_some());
}
