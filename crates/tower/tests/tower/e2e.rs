//! A real axum server on port 0, driven by a real HTTP client (hyper):
//! login sets the cookie, the cookie authenticates, the rate limit answers
//! 429 over the wire, health answers.

use std::net::SocketAddr;
use std::time::Duration;

use aeturnis_session::{SessionMetadata, UserId};
use aeturnis_testkit::TestCtx;
use aeturnis_tower::health::Health;
use aeturnis_tower::ratelimit::{PeerIp, RateLimitLayer};
use aeturnis_tower::session::{Session, SessionHandle, SessionLayer, SessionLayerConfig};
use aeturnis_tower::Problem;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::{limiter, redis, sessions, sf_param, Reply};

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>;

async fn call(client: &HttpClient, method: &str, url: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        text: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn should_serve_login_session_limits_and_health_over_http(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let app = Router::new()
        .route(
            "/login",
            post(|handle: SessionHandle| async move {
                let user = UserId::new("alice").map_err(|e| Problem::from_class(&e))?;
                let s = handle
                    .login(&user, SessionMetadata::new())
                    .await
                    .map_err(|e| Problem::from_class(&e))?;
                Ok::<_, Problem>(s.id.to_string())
            }),
        )
        .route("/me", get(|s: Session| async move { s.user.to_string() }))
        .layer(RateLimitLayer::new(
            limiter(&redis, "api", 4, Duration::from_secs(60)),
            PeerIp::default(),
        ))
        .layer(
            SessionLayer::new(
                sessions(&redis),
                SessionLayerConfig::default().with_secure(false),
            )
            .unwrap(),
        )
        .merge(Health::new(redis.clone()).router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let url = |path: &str| format!("http://{addr}{path}");

    let login = call(&client, "POST", &url("/login"), None).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let set_cookie = login.set_cookies().pop().unwrap();
    assert!(
        set_cookie.starts_with(&format!(
            "session={}; HttpOnly; SameSite=Lax; Path=/; Max-Age=",
            login.text
        )),
        "{set_cookie}"
    );
    assert_eq!(sf_param(&login, "ratelimit", "api", "r"), 3);
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let me = call(&client, "GET", &url("/me"), Some(&cookie)).await;
    assert_eq!((me.status, me.text.as_str()), (StatusCode::OK, "alice"));
    let anonymous = call(&client, "GET", &url("/me"), None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.header("content-type"),
        Some("application/problem+json")
    );
    let _ = call(&client, "GET", &url("/me"), Some(&cookie)).await;
    let limited = call(&client, "GET", &url("/me"), Some(&cookie)).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    // health is outside the limit
    let health = call(&client, "GET", &url("/health/detailed"), None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    assert_eq!(
        health.header("content-type"),
        Some("application/health+json")
    );
    server.abort();
}

aeturnis_testkit::topology_tests!(should_serve_login_session_limits_and_health_over_http);
