//! The demo's API driven in-process (`tower::ServiceExt::oneshot`) against
//! the shared standalone Redis, each test under its own key prefix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_demo::{app, AppState, DemoConfig};
use aeturnis_ratelimit::{Quota, RateLimitConfig};
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_testkit::TestCtx;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

const PEER: &str = "203.0.113.7:40000";

/// The app on the test's prefix, as seen from [`PEER`].
struct Api {
    router: Router,
    state: AppState,
}

/// One response: status, headers, JSON body (`Null` when empty).
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api {
    async fn new(test: &str, config: DemoConfig) -> anyhow::Result<Api> {
        let ctx = TestCtx::standalone(test).await;
        let redis =
            Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
        let state = AppState::new(redis, config)?;
        let peer: SocketAddr = PEER.parse()?;
        let router = app(state.clone()).layer(MockConnectInfo(peer));
        Ok(Api { router, state })
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {bytes:?}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::USER_AGENT, "aeturnis-demo-test/1.0");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    async fn login(&self, user: &str) -> String {
        let reply = self
            .post("/auth/login", None, json!({ "user": user }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["user"], user);
        reply.body["token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn should_serve_the_whole_game_flow() -> anyhow::Result<()> {
    let api = Api::new("demo_flow", DemoConfig::defaults()?).await?;

    // login twice as alice: two sessions
    let alice = api.login("alice").await;
    let alice_phone = api.login("alice").await;
    assert_ne!(alice, alice_phone);
    let me = api.get("/me", Some(&alice)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.body["user"], "alice");
    assert_eq!(me.body["character"], Value::Null);
    assert_eq!(me.body["sessions"], 2);
    assert!(me.body["expires_at"].as_u64().unwrap() > me.body["created_at"].as_u64().unwrap());

    // bind a character
    let bound = api
        .post(
            "/me/character",
            Some(&alice),
            json!({ "character": "Ælfrida" }),
        )
        .await;
    assert_eq!(bound.status, StatusCode::OK, "{}", bound.body);
    assert_eq!(
        api.get("/me", Some(&alice)).await.body["character"],
        "Ælfrida"
    );

    // chat until the chat preset (10 per minute per user) says no
    for i in 1..=10 {
        let sent = api
            .post(
                "/chat",
                Some(&alice),
                json!({ "message": format!("hello {i}") }),
            )
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        assert_eq!(sent.body["ok"], true);
        assert_eq!(sent.body["remaining"], 10 - i);
    }
    let denied = api
        .post(
            "/chat",
            Some(&alice_phone),
            json!({ "message": "one too many" }),
        )
        .await;
    assert_eq!(
        denied.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        denied.body
    );
    let retry: u64 = denied.header("retry-after").unwrap().parse()?;
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(denied.header("ratelimit-limit"), Some("10"));
    assert_eq!(denied.header("ratelimit-remaining"), Some("0"));
    assert!(denied.body["error"].as_str().unwrap().contains("chat"));
    let log = api.get("/chat", None).await;
    let messages = log.body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 10);
    assert_eq!(messages[0]["message"], "hello 1");
    assert_eq!(messages[9]["message"], "hello 10");
    assert_eq!(messages[9]["character"], "Ælfrida");

    // cache-aside: a miss loads the "database", then the cache answers
    let first = api.get("/players/bob/profile", None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-cache"), Some("miss"));
    assert_eq!(first.body["name"], "Bob of the Marsh");
    let second = api.get("/players/bob/profile", None).await;
    assert_eq!(second.header("x-cache"), Some("hit"));
    assert_eq!(second.body, first.body);
    let nobody = api.get("/players/nobody/profile", None).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND);
    assert!(nobody.body["error"].is_string());

    // combat and the leaderboard
    let bob = api.login("bob").await;
    for expected in [30.0, 60.0] {
        let hit = api
            .post(
                "/combat/action",
                Some(&alice),
                json!({ "target": "bob", "damage": 30 }),
            )
            .await;
        assert_eq!(hit.status, StatusCode::OK, "{}", hit.body);
        assert_eq!(hit.body["score"], expected);
    }
    let hit = api
        .post(
            "/combat/action",
            Some(&bob),
            json!({ "target": "alice", "damage": 12 }),
        )
        .await;
    assert_eq!(hit.body["score"], 12.0);
    let board = api.get("/leaderboard", None).await;
    assert_eq!(
        board.body["leaderboard"],
        json!([
            { "rank": 1, "player": "alice", "score": 60.0 },
            { "rank": 2, "player": "bob", "score": 12.0 },
        ])
    );

    // trades in both directions take the same lock: the fence grows
    let one = api
        .post(
            "/trade",
            Some(&alice),
            json!({ "with": "bob", "item": "sword" }),
        )
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["trade"], "done");
    let two = api
        .post(
            "/trade",
            Some(&bob),
            json!({ "with": "alice", "item": "shield" }),
        )
        .await;
    assert_eq!(two.status, StatusCode::OK, "{}", two.body);
    assert_eq!(
        two.body["fence"].as_u64().unwrap(),
        one.body["fence"].as_u64().unwrap() + 1
    );

    // logout-others ends the phone session, logout the current one
    let others = api
        .call(Method::POST, "/auth/logout-others", Some(&alice), None)
        .await;
    assert_eq!(others.status, StatusCode::OK, "{}", others.body);
    assert_eq!(others.body["revoked"], 1);
    assert_eq!(
        api.get("/me", Some(&alice_phone)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(api.get("/me", Some(&alice)).await.body["sessions"], 1);
    let out = api
        .call(Method::POST, "/auth/logout", Some(&alice), None)
        .await;
    assert_eq!(out.body["revoked"], true);
    let gone = api.get("/me", Some(&alice)).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gone.header("www-authenticate"), Some("Bearer"));
    Ok(())
}

#[tokio::test]
async fn should_answer_bad_input_with_400() -> anyhow::Result<()> {
    let api = Api::new("demo_bad_input", DemoConfig::defaults()?).await?;
    let not_json = api
        .send(
            Request::post("/auth/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"user\": "))?,
        )
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert!(not_json.body["error"].is_string());
    let wrong_field = api
        .post("/auth/login", None, json!({ "name": "alice" }))
        .await;
    assert_eq!(wrong_field.status, StatusCode::BAD_REQUEST);
    let bad_name = api
        .post("/auth/login", None, json!({ "user": "a{b}" }))
        .await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
    assert!(bad_name.body["error"].as_str().unwrap().contains("user"));
    let no_type = api
        .send(Request::post("/auth/login").body(Body::from(r#"{"user":"alice"}"#))?)
        .await;
    assert_eq!(no_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let token = api.login("carol").await;
    let empty = api
        .post("/chat", Some(&token), json!({ "message": "  " }))
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let zero = api
        .post(
            "/combat/action",
            Some(&token),
            json!({ "target": "bob", "damage": 0 }),
        )
        .await;
    assert_eq!(zero.status, StatusCode::BAD_REQUEST);
    let negative = api
        .post(
            "/combat/action",
            Some(&token),
            json!({ "target": "bob", "damage": -5 }),
        )
        .await;
    assert_eq!(negative.status, StatusCode::BAD_REQUEST);
    let myself = api
        .post(
            "/trade",
            Some(&token),
            json!({ "with": "carol", "item": "gold" }),
        )
        .await;
    assert_eq!(myself.status, StatusCode::BAD_REQUEST);
    let bad_id = api.get("/players/bad%20id/profile", None).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn should_answer_401_without_a_live_session() -> anyhow::Result<()> {
    let api = Api::new("demo_unauthorized", DemoConfig::defaults()?).await?;
    let missing = api.get("/me", None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert!(missing.body["error"].as_str().unwrap().contains("Bearer"));
    let bogus = api.get("/me", Some("not-a-session-token")).await;
    assert_eq!(bogus.status, StatusCode::UNAUTHORIZED);
    let chat = api.post("/chat", None, json!({ "message": "hi" })).await;
    assert_eq!(chat.status, StatusCode::UNAUTHORIZED);
    let unknown = api.get("/nowhere", None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn should_limit_logins_per_client_ip() -> anyhow::Result<()> {
    let api = Api::new("demo_login_limit", DemoConfig::defaults()?).await?;
    for _ in 0..5 {
        api.login("dave").await;
    }
    let denied = api
        .post("/auth/login", None, json!({ "user": "eve" }))
        .await;
    assert_eq!(
        denied.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        denied.body
    );
    let retry: u64 = denied.header("retry-after").unwrap().parse()?;
    // the auth preset blocks for its whole window (15 min)
    assert!((800..=900).contains(&retry), "Retry-After {retry}");
    assert_eq!(denied.header("ratelimit-limit"), Some("5"));
    Ok(())
}

#[tokio::test]
async fn should_pass_every_request_through_the_api_limit() -> anyhow::Result<()> {
    let quota = Quota::new(NonZeroU32::new(3).unwrap(), Duration::from_secs(60))?;
    let config = DemoConfig::defaults()?.with_api_limit(RateLimitConfig::new("api", quota));
    let api = Api::new("demo_api_limit", config).await?;
    for _ in 0..3 {
        assert_eq!(api.get("/leaderboard", None).await.status, StatusCode::OK);
    }
    let denied = api.get("/health", None).await;
    assert_eq!(denied.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(denied.header("retry-after").is_some());
    assert_eq!(denied.header("ratelimit-limit"), Some("3"));
    assert_eq!(denied.header("ratelimit-remaining"), Some("0"));
    Ok(())
}

#[tokio::test]
async fn should_make_opposite_trades_contend_for_one_lock() -> anyhow::Result<()> {
    let config = DemoConfig::defaults()?.with_locks(
        aeturnis_lock::LockConfig::default().with_wait_timeout(Duration::from_millis(200)),
    );
    let api = Api::new("demo_trade_lock", config).await?;
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
    let held_fence = held.fence().get();
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
async fn should_report_health_and_stats() -> anyhow::Result<()> {
    let api = Api::new("demo_health", DemoConfig::defaults()?).await?;
    api.get("/players/eve/profile", None).await;
    api.get("/players/eve/profile", None).await;
    let health = api.get("/health", None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    let body = &health.body;
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["state"], "connected");
    assert_eq!(body["role"], "master");
    assert!(body["server_version"].as_str().unwrap().starts_with('7'));
    assert!(body["latency_ms"].as_f64().unwrap() >= 0.0);
    assert!(body["used_memory"].as_u64().unwrap() > 0);
    assert_eq!(body["cache"]["hits"], 1);
    assert_eq!(body["cache"]["misses"], 1);
    assert_eq!(body["cache"]["hit_rate"], 0.5);
    assert!(body["sessions"]["active"].is_u64(), "{}", body["sessions"]);
    assert_eq!(body["rate_limits"]["api"]["checks"], 3);
    assert_eq!(body["rate_limits"]["api"]["allowed"], 3);
    Ok(())
}
