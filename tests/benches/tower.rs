//! aeturnis-tower bench: real HTTP over loopback (an axum server on port 0,
//! a hyper client keeping 50 connections busy), side by side in one run.
//!
//! * **Rate limit:** `GET /` behind `RateLimitLayer` (peer IP, the draft-11
//!   headers on every response) against the same route whose handler calls
//!   `RateLimiter::check` itself and answers `ok` (no headers). Same
//!   limiter (sliding window counter, a quota far above the load, so every
//!   request is admitted and counted), same key (the loopback peer). Goal:
//!   ≥ 0.9×.
//! * **Session load+slide:** `GET /me` whose handler reads the user from
//!   the session: aeturnis-tower's `SessionLayer` + `Session` extractor
//!   (one `GETEX` sliding the idle expiry; last-seen written at most every
//!   60 s) against tower-sessions' `SessionManagerLayer` with
//!   tower-sessions-redis-store (load, then save with the slid expiry, as
//!   `Expiry::OnInactivity` does on every request), on the same Redis, over
//!   1,000 sessions round robin, each request carrying its cookie. Goal:
//!   ≥ 1.3×. A third side calls `SessionManager::get_by_token` in the
//!   handler (the cookie read by hand): what the layer itself costs.
//!
//! Each row's two sides run interleaved ([`interleaved_medians`]): five
//! rounds of one run per side after a warm-up, the round with the median
//! ratio reported. Run it with `cargo xtask bench tower`.

#![allow(clippy::print_stdout)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aeturnis_ratelimit::{Algorithm, LimitKey, Quota, RateLimitConfig, RateLimiter};
use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_session::{SessionConfig, SessionManager, SessionMetadata, UserId};
use aeturnis_testkit::bench::{
    append_records, interleaved_medians, interleaved_rounds, measure, median_pair, side,
    BenchRecord, Sample,
};
use aeturnis_tests::{bench_redis_url, multi_thread_runtime};
use aeturnis_tower::ratelimit::{PeerIp, RateLimitLayer};
use aeturnis_tower::session::{Session, SessionLayer, SessionLayerConfig};
use axum::extract::{ConnectInfo, State};
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::SessionStore;
use tower_sessions_redis_store::RedisStore;

const LAYER: &str = "tower";
const CONCURRENCY: usize = 50;
const OPS: usize = 30_000;
const USERS: usize = 1000;
const RUNTIME: &str = "multi_thread(2), server and client in one process";

type Http = HttpClient<HttpConnector, Empty<bytes::Bytes>>;

fn main() -> anyhow::Result<()> {
    let url = bench_redis_url()?;
    let runtime = multi_thread_runtime()?;
    let mut records = Vec::new();
    runtime.block_on(async {
        rate_limit(&url, &mut records).await?;
        sessions(&url, &mut records).await?;
        anyhow::Ok(())
    })?;
    append_records(&records)
}

async fn connect(url: &str, prefix: &str) -> anyhow::Result<Redis> {
    Ok(Redis::connect(RedisConfig::from_url(url)?.with_key_prefix(prefix)).await?)
}

/// Serves `app` on a free loopback port; its address.
async fn serve(app: Router) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            eprintln!("bench server stopped: {e}");
        }
    });
    Ok(addr)
}

/// One run of `OPS` GETs of `url` from 50 tasks; `cookie(i)` per request.
fn load(
    client: &Http,
    url: String,
    cookies: Arc<Vec<String>>,
) -> impl std::future::Future<Output = anyhow::Result<Sample>> + Send + 'static {
    let client = client.clone();
    measure(CONCURRENCY, OPS, move |i| {
        let (client, url, cookies) = (client.clone(), url.clone(), Arc::clone(&cookies));
        async move {
            let mut request = Request::get(url.as_str());
            if !cookies.is_empty() {
                request = request.header("cookie", cookies[i % cookies.len()].as_str());
            }
            let response = client.request(request.body(Empty::new())?).await?;
            let status = response.status();
            let _ = response.into_body().collect().await?;
            anyhow::ensure!(status == StatusCode::OK, "HTTP {status}");
            Ok(())
        }
    })
}

async fn rate_limit(url: &str, records: &mut Vec<BenchRecord>) -> anyhow::Result<()> {
    let redis = connect(url, "bench-tower-rl:").await?;
    let quota = Quota::new(
        NonZeroU32::new(1_000_000_000).unwrap_or(NonZeroU32::MIN),
        Duration::from_secs(60),
    )?;
    let config = RateLimitConfig::new("api", quota).with_algorithm(Algorithm::SlidingWindow);
    let layered = RateLimiter::new(redis.clone(), config.clone())?;
    let in_handler = RateLimiter::new(redis.clone(), config.with_quota(quota))?;
    let layer_app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(RateLimitLayer::new(layered, PeerIp::default()));
    let handler_app =
        Router::new()
            .route(
                "/",
                get(
                    |State(limiter): State<RateLimiter>,
                     ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                        match limiter.check(&LimitKey::ip(peer.ip())).await {
                            Ok(d) if d.allowed => (StatusCode::OK, "ok"),
                            Ok(_) => (StatusCode::TOO_MANY_REQUESTS, "limited"),
                            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                        }
                    },
                ),
            )
            .with_state(in_handler);
    let (a, b) = (serve(layer_app).await?, serve(handler_app).await?);
    let client: Http = HttpClient::builder(TokioExecutor::new()).build_http();
    let none = Arc::new(Vec::new());
    let (ours, baseline) = interleaved_medians(
        || load(&client, format!("http://{a}/"), Arc::clone(&none)),
        || load(&client, format!("http://{b}/"), Arc::clone(&none)),
    )
    .await?;
    print_row(
        "RateLimitLayer vs limiter in the handler",
        ours,
        baseline,
        0.9,
    );
    records.push(
        BenchRecord::new(
            LAYER,
            "GET behind RateLimitLayer (sliding window, headers on)",
            CONCURRENCY,
            RUNTIME,
            ours,
            "same route, RateLimiter::check in the handler",
            baseline.ops_per_sec,
        )
        .with_baseline_latency(baseline),
    );
    Ok(())
}

async fn sessions(url: &str, records: &mut Vec<BenchRecord>) -> anyhow::Result<()> {
    let redis = connect(url, "bench-tower-s:").await?;
    let manager = SessionManager::new(redis.clone(), SessionConfig::default())?;
    let mut ours_cookies = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let user = UserId::new(format!("player-{i}"))?;
        let s = manager.create(&user, SessionMetadata::new()).await?;
        ours_cookies.push(format!("session={}", s.id));
    }
    let ours_app = Router::new()
        .route("/me", get(|s: Session| async move { s.user.to_string() }))
        .layer(SessionLayer::new(
            manager.clone(),
            SessionLayerConfig::default(),
        )?);
    // the floor: the same manager called in the handler, the cookie read by hand
    let by_hand_app = Router::new()
        .route(
            "/me",
            get(
                |State(m): State<SessionManager>, headers: axum::http::HeaderMap| async move {
                    let token = headers
                        .get("cookie")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("session="))
                        .unwrap_or_default();
                    match m.get_by_token(token).await {
                        Ok(Some(s)) => (StatusCode::OK, s.user.to_string()),
                        _ => (StatusCode::UNAUTHORIZED, String::new()),
                    }
                },
            ),
        )
        .with_state(manager);

    // tower-sessions: the same user field, in its store on the same Redis
    let tower_client = Client::new(Config::from_url(url)?, None, None, None);
    tower_client.init().await?;
    let store = RedisStore::new(tower_client.clone());
    let mut tower_cookies = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let mut data = HashMap::new();
        data.insert("user".to_owned(), serde_json::json!(format!("player-{i}")));
        let mut record = Record {
            id: Id::default(),
            data,
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::minutes(30),
        };
        store
            .create(&mut record)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tower_cookies.push(format!("id={}", record.id));
    }
    let tower_app = Router::new()
        .route(
            "/me",
            get(|s: tower_sessions::Session| async move {
                match s.get::<String>("user").await {
                    Ok(Some(user)) => (StatusCode::OK, user),
                    _ => (StatusCode::UNAUTHORIZED, String::new()),
                }
            }),
        )
        .layer(
            SessionManagerLayer::new(store)
                .with_secure(false)
                .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30)))
                // the slide: without it an unmodified session is loaded, never
                // saved, and its expiry does not move
                .with_always_save(true),
        );
    let (a, b) = (serve(ours_app).await?, serve(tower_app).await?);
    let c = serve(by_hand_app).await?;
    let client: Http = HttpClient::builder(TokioExecutor::new()).build_http();
    let (ours_cookies, tower_cookies) = (Arc::new(ours_cookies), Arc::new(tower_cookies));
    let oc = Arc::clone(&ours_cookies);
    let rounds = interleaved_rounds(vec![
        side(|| load(&client, format!("http://{a}/me"), Arc::clone(&ours_cookies))),
        side(|| {
            load(
                &client,
                format!("http://{b}/me"),
                Arc::clone(&tower_cookies),
            )
        }),
        side(|| load(&client, format!("http://{c}/me"), Arc::clone(&oc))),
    ])
    .await?;
    for (i, round) in rounds.iter().enumerate() {
        println!(
            "{LAYER} session round {i}: layer {:.0}, tower-sessions {:.0}, manager in handler {:.0} req/s",
            round[0].ops_per_sec, round[1].ops_per_sec, round[2].ops_per_sec
        );
    }
    let (ours, baseline) = median_pair(&rounds, 0, 1)?;
    let (layer, by_hand) = median_pair(&rounds, 0, 2)?;
    print_row(
        "SessionLayer vs tower-sessions + redis-store",
        ours,
        baseline,
        1.3,
    );
    print_row(
        "SessionLayer vs SessionManager in the handler",
        layer,
        by_hand,
        0.9,
    );
    records.push(
        BenchRecord::new(
            LAYER,
            "session load+slide via SessionLayer (cookie, 1,000 sessions)",
            CONCURRENCY,
            RUNTIME,
            ours,
            "tower-sessions 0.14 SessionManagerLayer + tower-sessions-redis-store 0.16 (OnInactivity, always_save)",
            baseline.ops_per_sec,
        )
        .with_baseline_latency(baseline),
    );
    records.push(
        BenchRecord::new(
            LAYER,
            "session load+slide via SessionLayer, its own cost (cookie, 1,000 sessions)",
            CONCURRENCY,
            RUNTIME,
            layer,
            "same route, SessionManager::get_by_token in the handler",
            by_hand.ops_per_sec,
        )
        .with_baseline_latency(by_hand),
    );
    Ok(())
}

fn print_row(what: &str, ours: Sample, baseline: Sample, goal: f64) {
    let ratio = ours.ops_per_sec / baseline.ops_per_sec;
    println!(
        "{LAYER} {what}: {:.0} req/s (p50 {:.0} µs, p99 {:.0} µs) vs {:.0} req/s (p50 {:.0} µs, p99 {:.0} µs): {ratio:.2}x (goal >= {goal}x)",
        ours.ops_per_sec, ours.p50_us, ours.p99_us,
        baseline.ops_per_sec, baseline.p50_us, baseline.p99_us,
    );
}
