//! Connections, limiters and a oneshot helper shared by the test modules.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_ratelimit::{Algorithm, Quota, RateLimitConfig, RateLimiter};
use aeturnis_redis_core::{ReconnectConfig, Redis, RedisConfig};
use aeturnis_session::{SessionConfig, SessionManager};
use aeturnis_testkit::TestCtx;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

/// The peer address of every request unless a test picks another.
pub(crate) const PEER: &str = "203.0.113.7:40000";

/// A connection under the test's prefix.
pub(crate) async fn redis(ctx: &TestCtx) -> Redis {
    Redis::connect(
        RedisConfig::from_url(&ctx.url)
            .unwrap()
            .with_key_prefix(&ctx.prefix),
    )
    .await
    .unwrap()
}

/// A connection to a private server that the test kills: short command
/// timeout and reconnect ceiling so the outage and the recovery are quick
/// (1 s: a stall of the loaded CI host must not time out a call that the
/// test expects to succeed).
pub(crate) async fn fragile_redis(url: &str, prefix: &str) -> Redis {
    Redis::connect(
        RedisConfig::from_url(url)
            .unwrap()
            .with_key_prefix(prefix)
            .with_command_timeout(Duration::from_secs(1))
            .with_reconnect(ReconnectConfig::default().with_max_delay(Duration::from_millis(200))),
    )
    .await
    .unwrap()
}

/// `limit` per `window` under `name` (fixed window: exact, easy counts).
pub(crate) fn limiter(redis: &Redis, name: &str, limit: u32, window: Duration) -> RateLimiter {
    let quota = Quota::new(NonZeroU32::new(limit).unwrap(), window).unwrap();
    limiter_with(
        redis,
        RateLimitConfig::new(name, quota).with_algorithm(Algorithm::FixedWindow),
    )
}

pub(crate) fn limiter_with(redis: &Redis, config: RateLimitConfig) -> RateLimiter {
    RateLimiter::new(redis.clone(), config).unwrap()
}

/// A session manager with a one-hour absolute lifetime.
pub(crate) fn sessions(redis: &Redis) -> SessionManager {
    SessionManager::new(
        redis.clone(),
        SessionConfig::default()
            .with_idle_ttl(Duration::from_secs(600))
            .with_absolute_ttl(Duration::from_secs(3600)),
    )
    .unwrap()
}

/// One response, its body as text and (when JSON) parsed.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.status, self.text))
    }

    /// Every `Set-Cookie` value.
    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

/// A GET of `path` from `peer`.
pub(crate) fn get_from(peer: &str, path: &str) -> Request<Body> {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    request
        .extensions_mut()
        .insert(peer.parse::<SocketAddr>().unwrap());
    request
}

/// Sends `request` through `router` (one oneshot) and reads the reply.
pub(crate) async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        headers,
        text: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// Asserts an RFC 9457 body with `status`, and returns it.
pub(crate) fn assert_problem(reply: &Reply, status: StatusCode) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let body = reply.json();
    assert_eq!(body["type"], "about:blank");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["title"], status.canonical_reason().unwrap());
    assert!(body["detail"].is_string(), "{body}");
    body
}

/// The members of a `RateLimit` / `RateLimit-Policy` field, parsed as an
/// RFC 8941 List: `(name, [(param, integer)])`.
pub(crate) fn sf_list(value: &str) -> Vec<(String, Vec<(String, i64)>)> {
    use sfv::{BareItem, ListEntry, Parser};
    let list = Parser::parse_list(value.as_bytes())
        .unwrap_or_else(|e| panic!("`{value}` is not a structured-field list: {e}"));
    list.into_iter()
        .map(|entry| match entry {
            ListEntry::Item(item) => {
                let name = match item.bare_item {
                    BareItem::String(s) => s,
                    other => panic!("policy name is not a String: {other:?}"),
                };
                let params = item
                    .params
                    .iter()
                    .map(|(k, v)| match v {
                        BareItem::Integer(i) => (k.clone(), *i),
                        other => panic!("parameter {k} is not an Integer: {other:?}"),
                    })
                    .collect();
                (name, params)
            }
            ListEntry::InnerList(_) => panic!("unexpected inner list in `{value}`"),
        })
        .collect()
}

/// `param` of the only member of `field`, named `name`.
pub(crate) fn sf_param(reply: &Reply, field: &str, name: &str, param: &str) -> i64 {
    let value = reply
        .header(field)
        .unwrap_or_else(|| panic!("no {field} header"));
    let members = sf_list(value);
    let (_, params) = members
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no member {name} in `{value}`"));
    params
        .iter()
        .find(|(p, _)| p == param)
        .unwrap_or_else(|| panic!("no parameter {param} in `{value}`"))
        .1
}
