//! The login limit and the API limit, both keyed on the TCP peer address
//! (never on `X-Forwarded-For`).

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_demo::DemoConfig;
use aeturnis_ratelimit::{Quota, RateLimitConfig};
use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Api, Reply, PEER};

/// Another client, on another address.
const OTHER_PEER: &str = "198.51.100.20:51000";
/// A third client, seen only in the spoofing test.
const THIRD_PEER: &str = "192.0.2.55:52000";

/// Asserts a login denied by the auth preset (5 per 15 min, then blocked).
fn assert_login_limited(denied: &Reply) {
    assert_eq!(
        denied.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        denied.body
    );
    let retry: u64 = denied.header("retry-after").unwrap().parse().unwrap();
    // the auth preset blocks for its whole window (15 min)
    assert!((800..=900).contains(&retry), "Retry-After {retry}");
    // draft-ietf-httpapi-ratelimit-headers-11: the auth policy, 5 per 900 s,
    // none left
    assert!(
        denied
            .header("ratelimit-policy")
            .unwrap()
            .starts_with("\"auth\";q=5;w=900"),
        "{:?}",
        denied.header("ratelimit-policy")
    );
    assert!(
        denied
            .header("ratelimit")
            .unwrap()
            .starts_with("\"auth\";r=0;t="),
        "{:?}",
        denied.header("ratelimit")
    );
}

#[tokio::test]
async fn should_limit_logins_per_client_ip() -> anyhow::Result<()> {
    let api = Api::standalone("demo_login_limit", DemoConfig::defaults()?).await?;
    for _ in 0..5 {
        api.login("dave").await;
    }
    assert_login_limited(&api.login_from(PEER, "eve").await);
    // a second client is admitted while the first is limited: the limit is
    // per IP, not one global count
    let other = api.login_from(OTHER_PEER, "eve").await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    // and the first stays limited
    assert_login_limited(&api.login_from(PEER, "dave").await);
    let auth = api.state.limits().auth.stats();
    assert_eq!((auth.checks, auth.allowed), (8, 6));
    Ok(())
}

/// `POST /auth/login` from `peer` with `X-Forwarded-For: forwarded_for`.
async fn login_forwarded(api: &Api, peer: &str, forwarded_for: &str) -> Reply {
    let mut request = Api::request(
        Method::POST,
        "/auth/login",
        None,
        Some(json!({ "user": "mallory" })),
    );
    request
        .headers_mut()
        .insert("x-forwarded-for", forwarded_for.parse().unwrap());
    api.send_from(peer, request).await
}

#[tokio::test]
async fn should_key_the_login_limit_on_the_peer_not_x_forwarded_for() -> anyhow::Result<()> {
    let api = Api::standalone("demo_forwarded_for", DemoConfig::defaults()?).await?;
    // five logins from PEER, each claiming to be a different client
    for claimed in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"] {
        let reply = login_forwarded(&api, PEER, claimed).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    // a fresh forwarded address does not escape PEER's limit
    assert_login_limited(&login_forwarded(&api, PEER, "10.0.0.6").await);
    // and naming the limited PEER does not limit another client
    let peer_ip = PEER.split(':').next().unwrap();
    let other = login_forwarded(&api, THIRD_PEER, peer_ip).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    // the session records the peer address, not the header
    let token = other.body["token"].as_str().unwrap();
    let session = api.state.sessions().get_by_token(token).await?.unwrap();
    assert_eq!(
        session
            .metadata
            .ip_address
            .map(|ip| ip.to_string())
            .as_deref(),
        Some("192.0.2.55")
    );
    Ok(())
}

#[tokio::test]
async fn should_pass_every_request_through_the_api_limit() -> anyhow::Result<()> {
    let quota = Quota::new(NonZeroU32::new(3).unwrap(), Duration::from_secs(60))?;
    let config = DemoConfig::defaults()?.with_api_limit(RateLimitConfig::new("api", quota));
    let api = Api::standalone("demo_api_limit", config).await?;
    for _ in 0..3 {
        assert_eq!(api.get("/leaderboard", None).await.status, StatusCode::OK);
    }
    let denied = api.get("/chat", None).await;
    assert_eq!(denied.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(denied.header("retry-after").is_some());
    assert_eq!(denied.header("ratelimit-policy"), Some("\"api\";q=3;w=60"));
    assert!(denied
        .header("ratelimit")
        .unwrap()
        .starts_with("\"api\";r=0;t="));
    // health probes are not throttled
    let health = api.get("/health/live", None).await;
    assert_eq!(health.status, StatusCode::OK);
    // the API limit is per client IP too
    let other = api
        .send_from(
            OTHER_PEER,
            Api::request(Method::GET, "/leaderboard", None, None),
        )
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    Ok(())
}

#[tokio::test]
async fn should_serve_prometheus_metrics_of_the_layers() -> anyhow::Result<()> {
    let api = Api::standalone("demo_metrics", DemoConfig::defaults()?).await?;
    let token = api.login("frank").await;
    assert_eq!(api.get("/me", Some(&token)).await.status, StatusCode::OK);
    let request = Api::request(Method::GET, "/metrics", None, None);
    let response = tower::ServiceExt::oneshot(aeturnis_demo::app(api.state.clone()), {
        let mut request = request;
        request.extensions_mut().insert(axum::extract::ConnectInfo(
            PEER.parse::<std::net::SocketAddr>()?,
        ));
        request
    })
    .await?;
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        axum::body::to_bytes(response.into_body(), 1 << 20)
            .await?
            .to_vec(),
    )?;
    for name in [
        "aeturnis_ratelimit_checks_total{limiter=\"auth\",outcome=\"allowed\"}",
        "aeturnis_ratelimit_violations{limiter=\"api\"}",
        "aeturnis_sessions_active",
        "aeturnis_session_loads_total",
    ] {
        assert!(text.contains(name), "no {name} in:\n{text}");
    }
    Ok(())
}
