//! The app driven in-process: requests from a chosen peer address, replies
//! with their JSON body, and raw Redis reads of the keys the app writes.

use std::net::SocketAddr;

use aeturnis_demo::{app, AppState, DemoConfig};
use aeturnis_redis_core::fred::interfaces::{KeysInterface, ListInterface};
use aeturnis_redis_core::{Redis, RedisConfig, RedisKey};
use aeturnis_testkit::TestCtx;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

/// The peer address every request comes from unless a test picks another.
pub(crate) const PEER: &str = "203.0.113.7:40000";

/// The app on the test's prefix.
pub(crate) struct Api {
    router: Router,
    pub(crate) state: AppState,
}

/// One response: status, headers, JSON body (`Null` when empty).
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Api {
    /// The app on the shared topology of `ctx`, under its prefix.
    pub(crate) async fn new(ctx: &TestCtx, config: DemoConfig) -> anyhow::Result<Api> {
        let redis =
            Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
        Api::on(redis, config)
    }

    /// The app on the shared standalone server, under a prefix for `test`.
    pub(crate) async fn standalone(test: &str, config: DemoConfig) -> anyhow::Result<Api> {
        Api::new(&TestCtx::standalone(test).await, config).await
    }

    /// The app on a connection the test made itself.
    pub(crate) fn on(redis: Redis, config: DemoConfig) -> anyhow::Result<Api> {
        let state = AppState::new(redis, config)?;
        Ok(Api {
            router: app(state.clone()),
            state,
        })
    }

    /// Sends `request` from [`PEER`].
    pub(crate) async fn send(&self, request: Request<Body>) -> Reply {
        self.send_from(PEER, request).await
    }

    /// Sends `request` as if the TCP peer were `peer`.
    pub(crate) async fn send_from(&self, peer: &str, mut request: Request<Body>) -> Reply {
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
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

    /// A request with the test's `User-Agent`, a bearer token and a JSON body
    /// when given.
    pub(crate) fn request(
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Request<Body> {
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
        request.unwrap()
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        self.send(Api::request(method, path, token, body)).await
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(Method::GET, path, token, None).await
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// `POST /auth/login` from `peer`, without asserting the outcome.
    pub(crate) async fn login_from(&self, peer: &str, user: &str) -> Reply {
        let request = Api::request(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({ "user": user })),
        );
        self.send_from(peer, request).await
    }

    /// Logs in from [`PEER`] and returns the token.
    pub(crate) async fn login(&self, user: &str) -> String {
        let reply = self.login_from(PEER, user).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["user"], user);
        reply.body["token"].as_str().unwrap().to_owned()
    }

    /// `PTTL` of `key`, read with a raw command.
    pub(crate) async fn pttl(&self, key: &RedisKey) -> i64 {
        self.state.redis().client().pttl(key).await.unwrap()
    }

    /// `LLEN` of `key`, read with a raw command.
    pub(crate) async fn llen(&self, key: &RedisKey) -> u64 {
        self.state.redis().client().llen(key).await.unwrap()
    }
}
