//! What the session tests share: managers on the test's server, ids, keys
//! and raw reads of what Redis holds, waits on the server's clock, and
//! connections killed with a command provably in flight.

use std::time::{Duration, SystemTime};

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_session::{SessionConfig, SessionId, SessionManager, SessionMetadata, UserId};
use aeturnis_testkit::{eventually, TestCtx};

/// How long any wait in these tests may take.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

pub(crate) async fn manager(
    ctx: &TestCtx,
    config: SessionConfig,
) -> anyhow::Result<SessionManager> {
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    Ok(SessionManager::new(redis, config)?)
}

/// Every read records a touch: every read is the get-and-slide script.
pub(crate) fn eager() -> SessionConfig {
    SessionConfig::default().with_touch_interval(Duration::ZERO)
}

/// A 5 s touch interval, longer than any test keeps one session busy:
/// every read of a live session starts with the fast path's one
/// `GETEX key PX idle`; in the last idle TTL of its life the get-and-slide
/// script follows and caps the expiry.
pub(crate) fn fast() -> SessionConfig {
    SessionConfig::default().with_touch_interval(Duration::from_secs(5))
}

pub(crate) fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub(crate) fn meta() -> SessionMetadata {
    SessionMetadata::new()
        .with_ip_address("203.0.113.42".parse().unwrap())
        .with_user_agent("Mozilla/5.0 (X11; Linux x86_64) Firefox/127.0")
        .with_device("desktop")
        .with_location("Berlin, DE")
}

pub(crate) fn session_key(ctx: &TestCtx, id: &SessionId) -> String {
    let s = id.as_str();
    format!("{}s:{{{}}}:{}", ctx.prefix, &s[..4], &s[5..])
}

pub(crate) fn index_key(ctx: &TestCtx, u: &UserId) -> String {
    format!("{}su:{{{}}}:{}", ctx.prefix, u.slot_tag(), u.as_str())
}

pub(crate) async fn pttl(m: &SessionManager, key: &str) -> i64 {
    m.redis().client().pttl(key).await.unwrap()
}

/// The key's absolute expiry in ms of server time (`PEXPIRETIME`).
pub(crate) async fn pexpire_time(m: &SessionManager, key: &str) -> i64 {
    m.redis().client().pexpire_time(key).await.unwrap()
}

pub(crate) fn ms(t: SystemTime) -> i64 {
    i64::try_from(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

pub(crate) async fn index_score(m: &SessionManager, index: &str, id: &SessionId) -> Option<f64> {
    m.redis()
        .client()
        .zscore(index, &id.as_str()[5..])
        .await
        .unwrap()
}

pub(crate) async fn exists(m: &SessionManager, key: &str) -> bool {
    m.redis().client().exists::<i64, _>(key).await.unwrap() == 1
}

/// Waits until the server's clock reads later than `at` (time since the
/// Unix epoch).
pub(crate) async fn server_time_past(m: &SessionManager, at: Duration) -> anyhow::Result<()> {
    eventually("the server clock passes the time", DEADLINE, || async {
        let now = m.redis().server_time().await.map_err(|e| e.to_string())?;
        if now > at {
            Ok(())
        } else {
            Err(format!("server time {now:?}, waiting for {at:?}"))
        }
    })
    .await
}

/// Waits until the server clock has moved past the current millisecond, so
/// the next write gets a later score.
pub(crate) async fn next_ms(m: &SessionManager) -> anyhow::Result<()> {
    let start = m.redis().server_time().await?;
    server_time_past(m, start + Duration::from_millis(1)).await
}
