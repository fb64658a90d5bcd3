//! `RateLimitLayer` through `oneshot`: admission, 429 with problem+json,
//! the draft-11 headers parsed as structured fields, cost, options, keys.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_testkit::TestCtx;
use aeturnis_tower::ratelimit::{HeaderKey, PeerIp, RateLimitLayer, SessionUser};
use aeturnis_tower::session::{SessionLayer, SessionLayerConfig};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;

use crate::support::{
    assert_problem, get_from, limiter, redis, send, sessions, sf_list, sf_param, PEER,
};

fn app(layer: RateLimitLayer<PeerIp>) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(layer)
}

async fn should_admit_to_the_quota_then_answer_429_with_problem_json(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let app = app(RateLimitLayer::new(
        limiter(&redis, "api", 3, Duration::from_secs(60)),
        PeerIp::default(),
    ));
    for left in (0..3).rev() {
        let reply = send(&app, get_from(PEER, "/")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.text, "ok");
        // the headers parse as structured fields and match the decision
        assert_eq!(sf_param(&reply, "ratelimit-policy", "api", "q"), 3);
        assert_eq!(sf_param(&reply, "ratelimit-policy", "api", "w"), 60);
        assert_eq!(sf_param(&reply, "ratelimit", "api", "r"), left);
        let t = sf_param(&reply, "ratelimit", "api", "t");
        assert!((1..=60).contains(&t), "t={t}");
    }
    let denied = send(&app, get_from(PEER, "/")).await;
    let body = assert_problem(&denied, StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = denied.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(body["retry_after"], retry);
    assert_eq!(body["limiter"], "api");
    assert_eq!(
        (body["limit"].as_u64(), body["remaining"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(sf_param(&denied, "ratelimit", "api", "r"), 0);
    assert_eq!(sf_param(&denied, "ratelimit", "api", "t"), retry);
    // another peer has its own quota
    let other = send(&app, get_from("198.51.100.20:1", "/")).await;
    assert_eq!(other.status, StatusCode::OK);
}

async fn should_name_every_composed_limiter_and_deny_by_the_tighter(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let burst = limiter(&redis, "burst", 2, Duration::from_secs(10));
    let hourly = limiter(&redis, "hourly", 100, Duration::from_secs(3600));
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::all([burst, hourly], PeerIp::default()).unwrap());
    let first = send(&app, get_from(PEER, "/")).await;
    let policy = sf_list(first.header("ratelimit-policy").unwrap());
    let names: Vec<&str> = policy.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["burst", "hourly"]);
    assert_eq!(sf_param(&first, "ratelimit", "hourly", "r"), 99);
    assert_eq!(sf_param(&first, "ratelimit", "burst", "r"), 1);
    assert_eq!(send(&app, get_from(PEER, "/")).await.status, StatusCode::OK);
    let denied = send(&app, get_from(PEER, "/")).await;
    let body = assert_problem(&denied, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["limiter"], "burst");
    // the denial refunded the hourly limit: still 98 left, not 97
    assert_eq!(sf_param(&denied, "ratelimit", "hourly", "r"), 98);
}

async fn should_charge_what_the_cost_function_says(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let layer = RateLimitLayer::new(
        limiter(&redis, "cost", 5, Duration::from_secs(60)),
        PeerIp::default(),
    )
    .with_cost(|r: &Request<Body>| {
        if r.uri().path() == "/search" {
            NonZeroU32::new(2).unwrap()
        } else {
            NonZeroU32::MIN
        }
    });
    let app = Router::new()
        .route("/search", get(|| async { "found" }))
        .route("/", get(|| async { "ok" }))
        .layer(layer);
    let reply = send(&app, get_from(PEER, "/search")).await;
    assert_eq!(sf_param(&reply, "ratelimit", "cost", "r"), 3);
    let reply = send(&app, get_from(PEER, "/search")).await;
    assert_eq!(sf_param(&reply, "ratelimit", "cost", "r"), 1);
    assert_eq!(
        send(&app, get_from(PEER, "/search")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // one unit is still there for a cheap request
    let reply = send(&app, get_from(PEER, "/")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(sf_param(&reply, "ratelimit", "cost", "r"), 0);
}

async fn should_follow_the_header_options(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let quiet = app(RateLimitLayer::new(
        limiter(&redis, "quiet", 1, Duration::from_secs(60)),
        PeerIp::default(),
    )
    .with_headers_on_allowed(false)
    .with_legacy_headers(true));
    let allowed = send(&quiet, get_from(PEER, "/")).await;
    assert_eq!(allowed.status, StatusCode::OK);
    for name in ["ratelimit", "ratelimit-policy", "x-ratelimit-limit"] {
        assert_eq!(allowed.header(name), None, "{name} on an allowed response");
    }
    // a denial always carries them, and the legacy form when asked
    let denied = send(&quiet, get_from(PEER, "/")).await;
    assert_eq!(denied.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sf_param(&denied, "ratelimit", "quiet", "r"), 0);
    assert_eq!(denied.header("x-ratelimit-limit"), Some("1"));
    assert_eq!(denied.header("x-ratelimit-remaining"), Some("0"));
    let reset: u64 = denied.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!((1..=60).contains(&reset));
}

async fn should_refuse_requests_without_a_key(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    // no peer address: a server misconfiguration, 500, never a shared key
    let by_peer = app(RateLimitLayer::new(
        limiter(&redis, "peer", 5, Duration::from_secs(60)),
        PeerIp::default(),
    ));
    let reply = send(&by_peer, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_problem(&reply, StatusCode::INTERNAL_SERVER_ERROR);
    // a header key without the header: 400
    let by_header = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::new(
            limiter(&redis, "tenant", 1, Duration::from_secs(60)),
            HeaderKey::new("x-api-key").unwrap(),
        ));
    let reply = send(&by_header, get_from(PEER, "/")).await;
    let body = assert_problem(&reply, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("x-api-key"));
    // with it, each key its own quota
    let keyed = |key: &str| {
        let mut r = get_from(PEER, "/");
        r.headers_mut().insert("x-api-key", key.parse().unwrap());
        r
    };
    assert_eq!(send(&by_header, keyed("a")).await.status, StatusCode::OK);
    assert_eq!(
        send(&by_header, keyed("a")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send(&by_header, keyed("b")).await.status, StatusCode::OK);
}

async fn should_key_on_the_session_user_whatever_the_address(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let sessions = sessions(&redis);
    let user = aeturnis_session::UserId::new("alice").unwrap();
    let token = sessions
        .create(&user, aeturnis_session::SessionMetadata::new())
        .await
        .unwrap()
        .id
        .to_string();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::new(
            limiter(&redis, "per-user", 2, Duration::from_secs(60)),
            SessionUser,
        ))
        .layer(SessionLayer::new(sessions, SessionLayerConfig::default()).unwrap());
    let from = |peer: &str| {
        let mut r = get_from(peer, "/");
        r.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    };
    assert_eq!(send(&app, from("192.0.2.1:1")).await.status, StatusCode::OK);
    assert_eq!(send(&app, from("192.0.2.2:1")).await.status, StatusCode::OK);
    assert_eq!(
        send(&app, from("192.0.2.3:1")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // no session: 401, nothing counted
    let anonymous = send(&app, get_from(PEER, "/")).await;
    assert_problem(&anonymous, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
}

/// A game message: what a WebSocket or gRPC handler would limit.
struct Move {
    player: &'static str,
}

async fn should_limit_any_request_type_with_the_generic_service(ctx: TestCtx) {
    use aeturnis_tower::ratelimit::{GenericRateLimitLayer, Limited, RequestLimiter};
    use tower::{Layer, ServiceExt};
    let redis = redis(&ctx).await;
    let per_player = RequestLimiter::new(
        limiter(&redis, "moves", 2, Duration::from_secs(60)),
        |m: &Move| {
            aeturnis_ratelimit::LimitKey::user(m.player)
                .map_err(|e| aeturnis_tower::KeyError::Layer(aeturnis_tower::LayerError::new(e)))
        },
    );
    let service =
        GenericRateLimitLayer::new(per_player).layer(tower::service_fn(|m: Move| async move {
            Ok::<_, std::convert::Infallible>(m.player.len())
        }));
    for _ in 0..2 {
        let moved = service.clone().oneshot(Move { player: "ann" }).await;
        assert_eq!(moved.unwrap(), 3);
    }
    match service.clone().oneshot(Move { player: "ann" }).await {
        Err(Limited::Denied(verdict)) => {
            assert_eq!(verdict.limiter, "moves");
            assert!(verdict.retry_after().unwrap() > Duration::ZERO);
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    // another player, another key
    assert_eq!(service.oneshot(Move { player: "bo" }).await.unwrap(), 2);
    // an empty player is a key error, not a shared key
    let keyless = GenericRateLimitLayer::new(RequestLimiter::new(
        limiter(&redis, "moves2", 2, Duration::from_secs(60)),
        |m: &Move| {
            aeturnis_ratelimit::LimitKey::user(m.player)
                .map_err(|e| aeturnis_tower::KeyError::Layer(aeturnis_tower::LayerError::new(e)))
        },
    ))
    .layer(tower::service_fn(|_: Move| async {
        Ok::<_, std::convert::Infallible>(0)
    }));
    assert!(matches!(
        keyless.oneshot(Move { player: "" }).await,
        Err(Limited::Check(aeturnis_tower::ratelimit::LimitError::Key(
            aeturnis_tower::KeyError::Layer(_)
        )))
    ));
}

aeturnis_testkit::topology_tests!(
    should_limit_any_request_type_with_the_generic_service,
    should_admit_to_the_quota_then_answer_429_with_problem_json,
    should_name_every_composed_limiter_and_deny_by_the_tighter,
    should_charge_what_the_cost_function_says,
    should_follow_the_header_options,
    should_refuse_requests_without_a_key,
    should_key_on_the_session_user_whatever_the_address,
);
