//! `SessionLayer` through `oneshot`: cookie attributes, login / rotate /
//! logout, a gone session's cookie cleared, 401 problem+json, one load per
//! request.

use std::time::Duration;

use aeturnis_redis_core::fred::interfaces::ClientLike;
use aeturnis_session::{SessionManager, SessionMetadata, UserId};
use aeturnis_testkit::{RedisServer, TestCtx};
use aeturnis_tower::session::{
    SameSite, Session, SessionHandle, SessionLayer, SessionLayerConfig, TokenSource,
};
use aeturnis_tower::Problem;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;

use crate::support::{assert_problem, redis, send, sessions, Reply};

fn app(sessions: SessionManager, config: SessionLayerConfig) -> Router {
    Router::new()
        .route(
            "/login",
            post(|handle: SessionHandle| async move {
                let user = UserId::new("alice").map_err(|e| Problem::from_class(&e))?;
                let session = handle
                    .login(&user, SessionMetadata::new())
                    .await
                    .map_err(|e| Problem::from_class(&e))?;
                Ok::<_, Problem>(session.id.to_string())
            }),
        )
        .route("/me", get(|s: Session| async move { s.user.to_string() }))
        .route(
            "/maybe",
            get(|s: Option<Session>| async move {
                s.map_or("visitor".to_owned(), |s| s.user.to_string())
            }),
        )
        .route(
            "/rotate",
            post(|handle: SessionHandle| async move {
                let rotated = handle.rotate().await.map_err(|e| Problem::from_class(&e))?;
                Ok::<_, Problem>(rotated.map(|s| s.id.to_string()).unwrap_or_default())
            }),
        )
        .route(
            "/logout",
            post(|handle: SessionHandle| async move {
                let revoked = handle.logout().await.map_err(|e| Problem::from_class(&e))?;
                Ok::<_, Problem>(revoked.to_string())
            }),
        )
        .route(
            "/twice",
            get(|handle: SessionHandle, s: Session| async move {
                // the extractor loaded it; these reuse that load
                let again = handle.get().await.unwrap().unwrap();
                let third = handle.get().await.unwrap().unwrap();
                assert_eq!((&again.id, &third.id), (&s.id, &s.id));
                "ok"
            }),
        )
        .layer(SessionLayer::new(sessions, config).unwrap())
}

fn with_cookie(method: &str, path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

fn plain(method: &str, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap()
}

/// The one `Set-Cookie` of `reply`.
fn only_cookie(reply: &Reply) -> String {
    let cookies = reply.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    cookies[0].clone()
}

fn assert_cleared(reply: &Reply) {
    assert_eq!(
        only_cookie(reply),
        "session=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0"
    );
}

async fn should_set_the_cookie_with_exact_attributes_on_login(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let app = app(sessions(&redis), SessionLayerConfig::default());
    let login = send(&app, plain("POST", "/login")).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    let token = login.text.clone();
    let cookie = only_cookie(&login);
    let prefix = format!("session={token}; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=");
    assert!(cookie.starts_with(&prefix), "{cookie}");
    // Max-Age is the absolute lifetime left (one hour), never more
    let max_age: u64 = cookie[prefix.len()..].parse().unwrap();
    assert!((3590..=3600).contains(&max_age), "Max-Age {max_age}");
    // the cookie is the session
    let me = send(&app, with_cookie("GET", "/me", &format!("session={token}"))).await;
    assert_eq!((me.status, me.text.as_str()), (StatusCode::OK, "alice"));
    assert!(me.set_cookies().is_empty(), "a live session sets no cookie");
    // configured attributes
    let strict = app_with_strict(&redis);
    let cookie = only_cookie(&send(&strict, plain("POST", "/login")).await);
    assert!(
        cookie.starts_with("sid=")
            && cookie.contains("; SameSite=Strict; Path=/game; Domain=example.com; Max-Age="),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure") && !cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

fn app_with_strict(redis: &aeturnis_redis_core::Redis) -> Router {
    app(
        sessions(redis),
        SessionLayerConfig::default()
            .with_cookie_name("sid")
            .with_secure(false)
            .with_http_only(false)
            .with_same_site(SameSite::Strict)
            .with_path("/game")
            .with_domain("example.com"),
    )
}

async fn should_clear_the_cookie_of_a_revoked_or_expired_session(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let sessions = sessions(&redis);
    let app = app(sessions.clone(), SessionLayerConfig::default());
    let token = send(&app, plain("POST", "/login")).await.text;
    let id = aeturnis_session::SessionId::parse(&token).unwrap();
    assert!(sessions.revoke(&id).await.unwrap());
    let maybe = send(
        &app,
        with_cookie("GET", "/maybe", &format!("session={token}")),
    )
    .await;
    assert_eq!(maybe.text, "visitor");
    assert_cleared(&maybe);
    // a required session: 401 problem+json, and the cookie cleared
    let me = send(&app, with_cookie("GET", "/me", &format!("session={token}"))).await;
    assert_problem(&me, StatusCode::UNAUTHORIZED);
    assert_eq!(me.header("www-authenticate"), Some("Bearer"));
    assert_cleared(&me);
    // an expired one: a session whose idle lifetime ran out
    let short = SessionManager::new(
        redis.clone(),
        aeturnis_session::SessionConfig::default()
            .with_idle_ttl(Duration::from_millis(200))
            .with_touch_interval(Duration::ZERO)
            // the probe below slides the idle lifetime; the absolute one ends it
            .with_absolute_ttl(Duration::from_millis(400)),
    )
    .unwrap();
    let short_app = self::app(short.clone(), SessionLayerConfig::default());
    let token = send(&short_app, plain("POST", "/login")).await.text;
    let cookie = format!("session={token}");
    aeturnis_testkit::eventually("the session expires", Duration::from_secs(5), || {
        let short = short.clone();
        let token = token.clone();
        async move {
            match short.get_by_token(&token).await {
                Ok(None) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
    .unwrap();
    assert_cleared(&send(&short_app, with_cookie("GET", "/maybe", &cookie)).await);
    // no cookie at all: nothing to clear
    let visitor = send(&app, plain("GET", "/maybe")).await;
    assert!(visitor.set_cookies().is_empty());
    let anonymous = send(&app, plain("GET", "/me")).await;
    assert_problem(&anonymous, StatusCode::UNAUTHORIZED);
    assert!(anonymous.set_cookies().is_empty());
}

async fn should_rotate_and_log_out_through_the_cookie(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let app = app(sessions(&redis), SessionLayerConfig::default());
    let old = send(&app, plain("POST", "/login")).await.text;
    let rotate = send(
        &app,
        with_cookie("POST", "/rotate", &format!("session={old}")),
    )
    .await;
    let new = rotate.text.clone();
    assert_ne!(new, old);
    assert!(only_cookie(&rotate).starts_with(&format!("session={new}; ")));
    let stale = send(&app, with_cookie("GET", "/me", &format!("session={old}"))).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    let logout = send(
        &app,
        with_cookie("POST", "/logout", &format!("session={new}")),
    )
    .await;
    assert_eq!(logout.text, "true");
    assert_cleared(&logout);
    let gone = send(&app, with_cookie("GET", "/me", &format!("session={new}"))).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
}

async fn should_read_bearer_tokens_and_never_set_cookies_in_bearer_mode(ctx: TestCtx) {
    let redis = redis(&ctx).await;
    let app = app(
        sessions(&redis),
        SessionLayerConfig::default().with_token_source(TokenSource::Bearer),
    );
    let login = send(&app, plain("POST", "/login")).await;
    assert!(login.set_cookies().is_empty());
    let mut me = plain("GET", "/me");
    me.headers_mut().insert(
        "authorization",
        format!("Bearer {}", login.text).parse().unwrap(),
    );
    let me = send(&app, me).await;
    assert_eq!((me.status, me.text.as_str()), (StatusCode::OK, "alice"));
    // a cookie is not read in bearer mode
    let cookie = send(
        &app,
        with_cookie("GET", "/me", &format!("session={}", login.text)),
    )
    .await;
    assert_eq!(cookie.status, StatusCode::UNAUTHORIZED);
    assert!(SessionLayer::new(
        sessions(&redis),
        SessionLayerConfig::default().with_cookie_name("a;b")
    )
    .is_err());
}

aeturnis_testkit::topology_tests!(
    should_set_the_cookie_with_exact_attributes_on_login,
    should_clear_the_cookie_of_a_revoked_or_expired_session,
    should_rotate_and_log_out_through_the_cookie,
    should_read_bearer_tokens_and_never_set_cookies_in_bearer_mode,
);

/// Commands the server has answered, not counting `INFO` (ours) and
/// `TIME` (the session manager's clock sync, not part of a load).
async fn commands(redis: &aeturnis_redis_core::Redis) -> u64 {
    let stats: String = redis
        .client()
        .info(Some(
            aeturnis_redis_core::fred::types::InfoKind::CommandStats,
        ))
        .await
        .unwrap();
    stats
        .lines()
        .filter(|l| l.starts_with("cmdstat_"))
        .filter(|l| !l.starts_with("cmdstat_info:") && !l.starts_with("cmdstat_time:"))
        .filter_map(|l| l.split_once(":calls="))
        .map(|(_, rest)| rest.split(',').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_load_and_slide_at_most_once_per_request() {
    // a private server: nothing else runs scripts on it
    let server = RedisServer::start_standalone().unwrap();
    let redis = crate::support::fragile_redis(&server.url(), "once:").await;
    let app = app(sessions(&redis), SessionLayerConfig::default());
    let token = send(&app, plain("POST", "/login")).await.text;
    let cookie = format!("session={token}");
    let before = commands(&redis).await;
    let reply = send(&app, with_cookie("GET", "/twice", &cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(commands(&redis).await - before, 1);
    // a handler that never asks costs nothing
    let app = Router::new()
        .route("/free", get(|| async { "free" }))
        .layer(SessionLayer::new(sessions(&redis), SessionLayerConfig::default()).unwrap());
    let before = commands(&redis).await;
    send(&app, with_cookie("GET", "/free", &cookie)).await;
    assert_eq!(commands(&redis).await - before, 0);
}
