//! Session behaviour against real Redis, on the shared standalone server and
//! the shared 6-node cluster.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime};

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::fred::types::{ClusterHash, CustomCommand, SetOptions};
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_session::{
    CharacterId, Error, SessionConfig, SessionId, SessionManager, SessionMetadata, TokenError,
    UserId, MAX_USER_AGENT_LEN,
};
use aeturnis_testkit::TestCtx;

const DEADLINE: Duration = Duration::from_secs(10);

async fn manager(ctx: &TestCtx, config: SessionConfig) -> anyhow::Result<SessionManager> {
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    Ok(SessionManager::new(redis, config)?)
}

/// Every read records a touch: every read is the get-and-slide script.
fn eager() -> SessionConfig {
    SessionConfig::default().with_touch_interval(Duration::ZERO)
}

/// A 5 s touch interval, longer than any test keeps one session busy:
/// every read of a live session starts with the fast path's one
/// `GETEX key PX idle`; in the last idle TTL of its life the get-and-slide
/// script follows and caps the expiry.
fn fast() -> SessionConfig {
    SessionConfig::default().with_touch_interval(Duration::from_secs(5))
}

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn meta() -> SessionMetadata {
    SessionMetadata::new()
        .with_ip_address("203.0.113.42".parse().unwrap())
        .with_user_agent("Mozilla/5.0 (X11; Linux x86_64) Firefox/127.0")
        .with_device("desktop")
        .with_location("Berlin, DE")
}

fn session_key(ctx: &TestCtx, id: &SessionId) -> String {
    let s = id.as_str();
    format!("{}s:{{{}}}:{}", ctx.prefix, &s[..4], &s[5..])
}

fn index_key(ctx: &TestCtx, u: &UserId) -> String {
    format!("{}su:{{{}}}:{}", ctx.prefix, u.slot_tag(), u.as_str())
}

async fn pttl(m: &SessionManager, key: &str) -> i64 {
    m.redis().client().pttl(key).await.unwrap()
}

/// The key's absolute expiry in ms of server time (`PEXPIRETIME`).
async fn pexpire_time(m: &SessionManager, key: &str) -> i64 {
    m.redis().client().pexpire_time(key).await.unwrap()
}

fn ms(t: SystemTime) -> i64 {
    i64::try_from(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

async fn index_score(m: &SessionManager, index: &str, id: &SessionId) -> Option<f64> {
    m.redis()
        .client()
        .zscore(index, &id.as_str()[5..])
        .await
        .unwrap()
}

async fn exists(m: &SessionManager, key: &str) -> bool {
    m.redis().client().exists::<i64, _>(key).await.unwrap() == 1
}

/// Waits until the server clock has moved past the current millisecond, so
/// the next write gets a later score.
async fn next_ms(m: &SessionManager) {
    let start = m.redis().server_time().await.unwrap().as_millis();
    while m.redis().server_time().await.unwrap().as_millis() <= start + 1 {}
}

async fn eventually<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + DEADLINE;
    while !check().await {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: not true after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn should_create_and_get_a_session(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let u = user("alice:{1}");
    let before = SystemTime::now() - Duration::from_secs(1);
    let s = m.create(&u, meta()).await?;
    assert_eq!(s.user, u);
    assert_eq!(s.metadata, meta());
    assert_eq!(s.character, None);
    assert!(s.created_at >= before);
    assert_eq!(s.created_at, s.last_seen);
    assert_eq!(
        s.expires_at.duration_since(s.created_at)?,
        Duration::from_secs(1800)
    );
    assert_eq!(
        s.absolute_expires_at.duration_since(s.created_at)?,
        Duration::from_secs(24 * 3600)
    );
    let got = m.get(&s.id).await?.expect("the session exists");
    assert_eq!(
        (&got.id, &got.user, &got.metadata),
        (&s.id, &s.user, &s.metadata)
    );
    assert!(got.last_seen >= s.last_seen);
    let by_token = m.get_by_token(s.id.as_str()).await?.expect("by token");
    assert_eq!(by_token.id, s.id);
    // a well-formed token that was never issued
    assert!(m.get(&SessionId::generate(&u)).await?.is_none());
    Ok(())
}

async fn should_slide_idle_expiry_on_activity(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_idle_ttl(Duration::from_secs(10))).await?;
    let s = m.create(&user("bob"), meta()).await?;
    let key = session_key(&ctx, &s.id);
    let _: () = m.redis().client().pexpire(&key, 2_000, None).await?;
    assert!(pttl(&m, &key).await <= 2_000);
    let got = m.get(&s.id).await?.unwrap();
    let after = pttl(&m, &key).await;
    assert!(after > 9_000, "PTTL grew to the idle TTL, got {after}");
    assert!(got.expires_at > s.created_at + Duration::from_secs(9));
    // the user's index lives at least as long as the session
    assert!(pttl(&m, &index_key(&ctx, &s.user)).await >= after);
    Ok(())
}

async fn should_slide_but_throttle_last_seen_writes(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(
        &ctx,
        SessionConfig::default()
            .with_idle_ttl(Duration::from_secs(10))
            .with_touch_interval(Duration::from_secs(5)),
    )
    .await?;
    let s = m.create(&user("carol"), meta()).await?;
    let key = session_key(&ctx, &s.id);
    let index = index_key(&ctx, &s.user);
    let score = index_score(&m, &index, &s.id).await;
    let _: () = m.redis().client().pexpire(&key, 2_000, None).await?;
    next_ms(&m).await;
    // within the touch interval: the fast path (GETEX PX)
    let got = m.get(&s.id).await?.unwrap();
    assert_eq!(
        got.last_seen, s.created_at,
        "a recent touch is not rewritten"
    );
    let after = pttl(&m, &key).await;
    assert!(after > 9_000, "but the expiry still slides, got {after}");
    assert!(got.expires_at >= s.created_at + Duration::from_secs(10));
    assert_eq!(
        index_score(&m, &index, &s.id).await,
        score,
        "nor is the LRU order"
    );
    assert!(
        pttl(&m, &index).await >= after,
        "the index still outlives the session"
    );
    // once the recorded touch is older than the interval, the script records it
    let _: () = m.redis().client().pexpire(&key, 2_000, None).await?;
    let stale = s.created_at - Duration::from_secs(6);
    let mut patched: Vec<u8> = m.redis().client().get(&key).await?;
    patched[9..17].copy_from_slice(&u64::try_from(ms(stale))?.to_be_bytes());
    let _: () = m
        .redis()
        .client()
        .set(&key, patched, None, Some(SetOptions::XX), false)
        .await?;
    let _: () = m.redis().client().pexpire(&key, 2_000, None).await?;
    let touched = m.get(&s.id).await?.unwrap();
    assert!(touched.last_seen > s.created_at, "last seen recorded");
    assert!(pttl(&m, &key).await > 9_000, "and slid");
    let new_score = index_score(&m, &index, &s.id).await.unwrap();
    assert!(
        new_score > score.unwrap(),
        "LRU order recorded: {new_score} vs {score:?}"
    );
    Ok(())
}

async fn should_extend_up_to_the_absolute_expiry(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(
        &ctx,
        eager()
            .with_idle_ttl(Duration::from_secs(10))
            .with_absolute_ttl(Duration::from_secs(30)),
    )
    .await?;
    let s = m.create(&user("dave"), meta()).await?;
    let key = session_key(&ctx, &s.id);
    let e = m.extend(&s.id, Duration::from_secs(5)).await?.unwrap();
    let p = pttl(&m, &key).await;
    assert!((14_000..=15_000).contains(&p), "extended to ~15 s, got {p}");
    assert!(e.expires_at >= s.expires_at + Duration::from_secs(4));
    m.extend(&s.id, Duration::from_secs(3600)).await?.unwrap();
    let p = pttl(&m, &key).await;
    assert!(
        (28_000..=30_000).contains(&p),
        "capped at the absolute expiry, got {p}"
    );
    assert!(matches!(
        m.extend(&s.id, Duration::ZERO).await,
        Err(Error::ZeroDuration { .. })
    ));
    m.revoke(&s.id).await?;
    assert!(m.extend(&s.id, Duration::from_secs(5)).await?.is_none());
    assert!(
        !exists(&m, &key).await,
        "extend never writes a revoked session"
    );
    Ok(())
}

async fn should_bind_characters_and_update_metadata(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let s = m.create(&user("erin"), meta()).await?;
    let key = session_key(&ctx, &s.id);
    let hero = CharacterId::new("hero-7")?;
    let b = m.bind_character(&s.id, &hero).await?.unwrap();
    assert_eq!(b.character.as_ref(), Some(&hero));
    assert_eq!(b.metadata, meta());
    let _: () = m.redis().client().pexpire(&key, 5_000, None).await?;
    let new_meta = SessionMetadata::new()
        .with_ip_address("2001:db8::7".parse()?)
        .with_device("phone");
    let u = m.update_metadata(&s.id, new_meta.clone()).await?.unwrap();
    assert_eq!(u.metadata, new_meta);
    assert_eq!(u.character.as_ref(), Some(&hero), "other fields are kept");
    assert!(pttl(&m, &key).await <= 5_000, "an update keeps the TTL");
    let g = m.get(&s.id).await?.unwrap();
    assert_eq!((g.metadata, g.character), (new_meta, Some(hero)));
    let n = m.unbind_character(&s.id).await?.unwrap();
    assert_eq!(n.character, None);
    assert_eq!(m.get(&s.id).await?.unwrap().character, None);
    Ok(())
}

async fn should_evict_the_least_recently_used_session(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_max_per_user(NonZeroU32::new(3).unwrap())).await?;
    let u = user("frank");
    let a = m.create(&u, meta()).await?;
    next_ms(&m).await;
    let b = m.create(&u, meta()).await?;
    next_ms(&m).await;
    let c = m.create(&u, meta()).await?;
    next_ms(&m).await;
    m.get(&a.id).await?.unwrap(); // a is now the most recently used
    next_ms(&m).await;
    let d = m.create(&u, meta()).await?;
    assert!(m.get(&b.id).await?.is_none(), "b was least recently used");
    assert!(!exists(&m, &session_key(&ctx, &b.id)).await);
    next_ms(&m).await;
    let e = m.create(&u, meta()).await?;
    assert!(m.get(&c.id).await?.is_none(), "then c");
    let listed: Vec<SessionId> = m.list(&u).await?.into_iter().map(|s| s.id).collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed.iter().collect::<HashSet<_>>(),
        [&a.id, &d.id, &e.id].into_iter().collect()
    );
    Ok(())
}

async fn should_drop_stale_index_entries_before_evicting(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_max_per_user(NonZeroU32::new(2).unwrap())).await?;
    let u = user("fiona");
    let a = m.create(&u, meta()).await?;
    next_ms(&m).await;
    let b = m.create(&u, meta()).await?;
    // a ends without a script (as by expiry): its index entry goes stale
    let _: () = m.redis().client().del(session_key(&ctx, &a.id)).await?;
    next_ms(&m).await;
    let c = m.create(&u, meta()).await?;
    assert!(m.get(&b.id).await?.is_some(), "the stale entry made room");
    let members: HashSet<String> = m
        .redis()
        .client()
        .zrange(index_key(&ctx, &u), 0, -1, None, false, None, false)
        .await?;
    assert_eq!(
        members,
        [&b.id, &c.id]
            .into_iter()
            .map(|id| id.as_str()[5..].to_owned())
            .collect()
    );
    Ok(())
}

async fn should_keep_an_index_ttl_when_eviction_empties_it(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_max_per_user(NonZeroU32::MIN)).await?;
    let u = user("fritz");
    let a = m.create(&u, meta()).await?;
    let b = m.create(&u, meta()).await?;
    assert!(m.get(&a.id).await?.is_none());
    let index = pttl(&m, &index_key(&ctx, &u)).await;
    assert!(
        index >= pttl(&m, &session_key(&ctx, &b.id)).await,
        "index PTTL {index}"
    );
    Ok(())
}

async fn should_keep_max_sessions_under_concurrent_creates(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let u = user("grace");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (m, u) = (m.clone(), u.clone());
        tasks.push(tokio::spawn(async move { m.create(&u, meta()).await }));
    }
    for t in tasks {
        t.await??;
    }
    let listed = m.list(&u).await?;
    assert_eq!(listed.len(), 5);
    let members: Vec<String> = m
        .redis()
        .client()
        .zrange(index_key(&ctx, &u), 0, -1, None, false, None, false)
        .await?;
    assert_eq!(members.len(), 5, "index holds exactly the live sessions");
    for s in &listed {
        assert!(members.contains(&s.id.as_str()[5..].to_owned()));
    }
    let census = m.recount().await?;
    assert_eq!(
        (census.sessions, census.users),
        (5, 1),
        "no orphan session keys"
    );
    Ok(())
}

async fn should_end_idle_sessions(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_idle_ttl(Duration::from_millis(300))).await?;
    let u = user("heidi");
    let s = m.create(&u, meta()).await?;
    let key = session_key(&ctx, &s.id);
    eventually("the idle session expires", || async {
        !exists(&m, &key).await
    })
    .await?;
    assert!(m.get(&s.id).await?.is_none());
    assert!(m.list(&u).await?.is_empty());
    // the index outlives its last session by at most the touch interval
    eventually("the index expires", || async {
        !exists(&m, &index_key(&ctx, &u)).await
    })
    .await?;
    Ok(())
}

/// A session read every 25 ms still ends at its absolute expiry, and no
/// read ever leaves its key's expiry past it.
async fn ends_at_the_absolute_lifetime(ctx: &TestCtx, config: SessionConfig) -> anyhow::Result<()> {
    let m = manager(
        ctx,
        config
            .with_idle_ttl(Duration::from_secs(10))
            .with_absolute_ttl(Duration::from_millis(600)),
    )
    .await?;
    let s = m.create(&user("ivan"), meta()).await?;
    let key = session_key(ctx, &s.id);
    assert!(pttl(&m, &key).await <= 600);
    let absolute = ms(s.absolute_expires_at);
    let deadline = Instant::now() + DEADLINE;
    let mut reads = 0;
    // keep it busy: activity does not save it
    while let Some(got) = m.get(&s.id).await? {
        reads += 1;
        assert_eq!(got.absolute_expires_at, s.absolute_expires_at);
        assert!(got.expires_at <= got.absolute_expires_at);
        let expiry = pexpire_time(&m, &key).await;
        assert!(
            expiry <= absolute,
            "a read left the key expiring {} ms past the absolute expiry",
            expiry - absolute
        );
        assert!(
            Instant::now() < deadline,
            "the session outlived its absolute lifetime"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reads > 5, "only {reads} reads");
    let ended = m.redis().server_time().await?;
    let created = s.created_at.duration_since(SystemTime::UNIX_EPOCH)?;
    assert!(
        ended >= created + Duration::from_millis(590),
        "ended after {:?}",
        ended - created
    );
    assert!(!exists(&m, &key).await, "and its key is gone");
    Ok(())
}

async fn should_end_sessions_at_the_absolute_lifetime(ctx: TestCtx) -> anyhow::Result<()> {
    ends_at_the_absolute_lifetime(&ctx, eager()).await
}

/// The same on the fast path: every read is `GETEX PX` and then the script,
/// which caps the expiry (the session is always within the last idle TTL
/// of its life).
async fn should_cap_fast_path_reads_at_the_absolute_lifetime(ctx: TestCtx) -> anyhow::Result<()> {
    ends_at_the_absolute_lifetime(&ctx, fast()).await?;
    // a key that lingers past the absolute expiry (a read's GETEX slid
    // it and the read died before the script capped it, or fred replayed
    // the GETEX late) is gone for every call, and the first read or list
    // that meets it deletes it
    let m = manager(
        &ctx,
        fast()
            .with_idle_ttl(Duration::from_secs(10))
            .with_absolute_ttl(Duration::from_millis(200)),
    )
    .await?;
    let u = user("ivy");
    let (s, t) = (m.create(&u, meta()).await?, m.create(&u, meta()).await?);
    let (key, other) = (session_key(&ctx, &s.id), session_key(&ctx, &t.id));
    for k in [&key, &other] {
        let _: () = m.redis().client().pexpire(k, 10_000, None).await?;
    }
    let absolute = s.absolute_expires_at.max(t.absolute_expires_at);
    let absolute = absolute.duration_since(SystemTime::UNIX_EPOCH)?;
    while m.redis().server_time().await? <= absolute {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(exists(&m, &key).await && exists(&m, &other).await);
    let hero = CharacterId::new("late")?;
    assert!(m.bind_character(&s.id, &hero).await?.is_none());
    assert!(m.extend(&s.id, Duration::from_secs(5)).await?.is_none());
    assert!(m.rotate(&s.id).await?.is_none());
    assert!(m.get(&s.id).await?.is_none(), "past the absolute expiry");
    assert!(!exists(&m, &key).await, "deleted by the read");
    assert!(m.list(&u).await?.is_empty());
    assert_eq!(
        index_score(&m, &index_key(&ctx, &u), &s.id).await,
        None,
        "the list dropped the index entries"
    );
    assert!(!exists(&m, &other).await, "deleted by the list");
    Ok(())
}

async fn should_rotate_to_a_new_id_and_kill_the_old_one(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let u = user("judy");
    let s = m.create(&u, meta()).await?;
    let hero = CharacterId::new("mage")?;
    m.bind_character(&s.id, &hero).await?;
    let r = m.rotate(&s.id).await?.unwrap();
    assert_ne!(r.id, s.id);
    assert!(m.get(&s.id).await?.is_none(), "the old id is dead");
    assert!(!exists(&m, &session_key(&ctx, &s.id)).await);
    let got = m.get(&r.id).await?.unwrap();
    assert_eq!(
        (got.user, got.character, got.metadata),
        (u.clone(), Some(hero), meta())
    );
    assert_eq!(got.created_at, s.created_at);
    let listed: Vec<SessionId> = m.list(&u).await?.into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![r.id.clone()]);
    assert!(
        m.rotate(&s.id).await?.is_none(),
        "a dead id cannot be rotated"
    );
    Ok(())
}

async fn should_revoke_one_all_and_others(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let u = user("mallory");
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(m.create(&u, meta()).await?.id);
    }
    assert!(m.revoke(&ids[0]).await?);
    assert!(!m.revoke(&ids[0]).await?, "revoke is idempotent");
    assert!(m.get(&ids[0]).await?.is_none());
    assert_eq!(m.revoke_others(&u, &ids[1]).await?, 2);
    let listed: Vec<SessionId> = m.list(&u).await?.into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![ids[1].clone()]);
    assert!(m.get(&ids[2]).await?.is_none() && m.get(&ids[3]).await?.is_none());
    // the "current" session must be a live session of this user
    let other = m.create(&user("oscar"), meta()).await?;
    assert!(matches!(
        m.revoke_others(&u, &other.id).await,
        Err(Error::UnknownSession { .. })
    ));
    assert!(matches!(
        m.revoke_others(&u, &ids[0]).await,
        Err(Error::UnknownSession { .. })
    ));
    assert!(
        m.get(&ids[1]).await?.is_some(),
        "a refused revoke_others revokes nothing"
    );
    assert_eq!(m.revoke_all(&u).await?, 1);
    assert!(m.list(&u).await?.is_empty());
    assert!(!exists(&m, &index_key(&ctx, &u)).await);
    assert_eq!(
        m.revoke_all(&u).await?,
        0,
        "revoking an unknown user's sessions is a no-op"
    );
    assert!(
        m.get(&other.id).await?.is_some(),
        "other users are untouched"
    );
    Ok(())
}

/// 1,000 races of revoke against get, bind and extend: 0 resurrections,
/// 0 index leftovers.
async fn never_resurrects(ctx: &TestCtx, config: SessionConfig) -> anyhow::Result<()> {
    let m = manager(ctx, config.with_max_per_user(NonZeroU32::new(100).unwrap())).await?;
    let hero = CharacterId::new("ghost")?;
    let mut resurrections = 0;
    for batch in 0..20 {
        let u = user(&format!("racer-{batch}"));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let s = m.create(&u, meta()).await?;
            let (m1, m2, m3, m4) = (m.clone(), m.clone(), m.clone(), m.clone());
            let (id1, id2, id3, id4) = (s.id.clone(), s.id.clone(), s.id.clone(), s.id.clone());
            let hero = hero.clone();
            tasks.push(tokio::spawn(async move {
                let (revoked, _, _, _) = tokio::join!(
                    m1.revoke(&id1),
                    m2.get(&id2),
                    m3.bind_character(&id3, &hero),
                    m4.extend(&id4, Duration::from_secs(60)),
                );
                revoked.map(|_| s.id)
            }));
        }
        for t in tasks {
            let id = t.await??;
            if m.get(&id).await?.is_some() || exists(&m, &session_key(ctx, &id)).await {
                resurrections += 1;
            }
        }
        assert!(m.list(&u).await?.is_empty());
        let members: i64 = m.redis().client().zcard(index_key(ctx, &u)).await?;
        assert_eq!(members, 0, "no index entry survives a revoke");
    }
    assert_eq!(resurrections, 0, "1,000 logout-vs-touch races");
    Ok(())
}

async fn should_never_resurrect_a_revoked_session(ctx: TestCtx) -> anyhow::Result<()> {
    never_resurrects(&ctx, eager()).await
}

/// The same races with every get on the fast path (`GETEX` on a revoked
/// key writes nothing).
async fn should_never_resurrect_a_revoked_session_on_the_fast_path(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    never_resurrects(&ctx, fast()).await
}

/// The fast path's `GETEX PX`, sent again late as fred would after a
/// dropped connection: it pushes the expiry at most one idle TTL further,
/// which near the end of a session's life is past its absolute expiry;
/// the next read caps it again, no read returns the session after its
/// absolute expiry (the next one deletes it), and a replay on a revoked
/// session writes nothing.
async fn should_replay_the_fast_path_getex_safely(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(
        &ctx,
        fast()
            .with_idle_ttl(Duration::from_secs(10))
            .with_absolute_ttl(Duration::from_millis(800)),
    )
    .await?;
    let c = m.redis().client().clone();
    let u = user("replayer");
    let s = m.create(&u, meta()).await?;
    let key = session_key(&ctx, &s.id);
    let absolute = ms(s.absolute_expires_at);
    let getex = CustomCommand::new_static("GETEX", ClusterHash::FirstKey, false);
    let replay = |key: String| {
        let (c, getex) = (c.clone(), getex.clone());
        async move {
            c.custom::<Option<Vec<u8>>, _>(getex, vec![key.as_str(), "PX", "10000"])
                .await
                .unwrap()
        }
    };
    // a get near the end of life, then its GETEX replayed late
    m.get(&s.id).await?.unwrap();
    assert!(pexpire_time(&m, &key).await <= absolute);
    assert!(replay(key.clone()).await.is_some());
    assert!(
        pexpire_time(&m, &key).await > absolute,
        "a late replay slides past the absolute expiry"
    );
    // the next read caps it again
    m.get(&s.id).await?.unwrap();
    assert!(pexpire_time(&m, &key).await <= absolute);
    // the same get sent twice at once
    let (a, b) = tokio::join!(m.get(&s.id), m.get(&s.id));
    assert_eq!(a?.unwrap().id, b?.unwrap().id);
    assert!(pexpire_time(&m, &key).await <= absolute);
    // replayed once more, then the absolute expiry passes with the key
    // lingering: no read returns it, and the read deletes it
    assert!(replay(key.clone()).await.is_some());
    let end = s
        .absolute_expires_at
        .duration_since(SystemTime::UNIX_EPOCH)?;
    while m.redis().server_time().await? <= end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(exists(&m, &key).await, "the key lingers");
    assert!(m.get(&s.id).await?.is_none(), "past the absolute expiry");
    assert!(!exists(&m, &key).await, "deleted by the read");
    // after a revoke, a replayed GETEX finds nothing and writes nothing
    let t = m.create(&u, meta()).await?;
    let other = session_key(&ctx, &t.id);
    assert!(m.revoke(&t.id).await?);
    assert_eq!(replay(other.clone()).await, None);
    assert!(!exists(&m, &other).await, "no resurrection by replay");
    assert!(m.get(&t.id).await?.is_none());
    assert!(!exists(&m, &other).await);
    Ok(())
}

/// Reads every 10 ms through the end of a session's life (idle 400 ms,
/// absolute 1 s, touch 350 ms): the early reads are native, the last ones
/// (the last idle TTL) go through the script; after every read the key's
/// `PEXPIRETIME` is at most the absolute expiry, and the session ends
/// there.
async fn should_never_leave_the_expiry_past_the_absolute_one_near_the_end(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let m = manager(
        &ctx,
        SessionConfig::default()
            .with_idle_ttl(Duration::from_millis(400))
            .with_absolute_ttl(Duration::from_secs(1))
            .with_touch_interval(Duration::from_millis(350)),
    )
    .await?;
    let s = m.create(&user("closer"), meta()).await?;
    let key = session_key(&ctx, &s.id);
    let absolute = ms(s.absolute_expires_at);
    let deadline = Instant::now() + DEADLINE;
    let (mut slid, mut capped) = (0, 0);
    while let Some(got) = m.get(&s.id).await? {
        assert!(got.expires_at <= got.absolute_expires_at);
        let expiry = pexpire_time(&m, &key).await;
        assert!(
            expiry <= absolute,
            "a read left the key expiring {} ms past the absolute expiry",
            expiry - absolute
        );
        if expiry == absolute {
            capped += 1;
        } else {
            slid += 1;
        }
        assert!(
            Instant::now() < deadline,
            "the session outlived its absolute lifetime"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(slid > 5 && capped > 5, "{slid} slid, {capped} capped");
    let ended = ms(SystemTime::UNIX_EPOCH + m.redis().server_time().await?);
    assert!(
        ended >= absolute - 10,
        "ended {} ms early",
        absolute - ended
    );
    assert!(!exists(&m, &key).await, "and its key is gone");
    Ok(())
}

/// A manager whose clock estimate is 800 ms behind the server (beyond its
/// uncertainty; idle 1 s, absolute 2 s, touch 900 ms) slides the key's
/// expiry past the absolute one with its native reads (here by 300 ms or
/// more), but cannot keep the session alive past it: no read returns it once the server's clock has
/// passed the absolute expiry, no other call sees it, and the next read
/// deletes it.
async fn should_not_keep_a_session_past_its_absolute_expiry_with_a_wrong_clock(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let config = SessionConfig::default()
        .with_idle_ttl(Duration::from_secs(1))
        .with_absolute_ttl(Duration::from_secs(2))
        .with_touch_interval(Duration::from_millis(900));
    let m = manager(&ctx, config.clone()).await?;
    let wrong = SessionManager::new(m.redis().clone(), config)?.with_clock_skew_ms_for_tests(-800);
    let u = user("late-clock");
    let s = m.create(&u, meta()).await?;
    let key = session_key(&ctx, &s.id);
    let absolute = ms(s.absolute_expires_at);
    let end = s
        .absolute_expires_at
        .duration_since(SystemTime::UNIX_EPOCH)?;
    let deadline = Instant::now() + DEADLINE;
    let mut past = false;
    loop {
        let before = m.redis().server_time().await?;
        let Some(got) = wrong.get(&s.id).await? else {
            break;
        };
        assert!(before < end, "read back after its absolute expiry");
        assert_eq!(got.absolute_expires_at, s.absolute_expires_at);
        if pexpire_time(&m, &key).await > absolute + 300 {
            past = true;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the session outlived its lifetime"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        past,
        "the wrong clock's reads slid the key past the absolute expiry"
    );
    while m.redis().server_time().await? <= end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(exists(&m, &key).await, "the key lingers");
    let hero = CharacterId::new("late")?;
    assert!(m.bind_character(&s.id, &hero).await?.is_none());
    assert!(m.extend(&s.id, Duration::from_secs(5)).await?.is_none());
    assert!(m.rotate(&s.id).await?.is_none());
    assert!(
        wrong.get(&s.id).await?.is_none(),
        "past the absolute expiry"
    );
    assert!(!exists(&m, &key).await, "deleted by the read");
    assert!(m.list(&u).await?.is_empty());
    Ok(())
}

async fn should_treat_a_replayed_create_or_rotate_as_a_no_op(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_max_per_user(NonZeroU32::new(2).unwrap())).await?;
    let u = user("peggy");
    let a = m.create(&u, meta()).await?;
    next_ms(&m).await;
    let b = m.create(&u, meta()).await?;
    next_ms(&m).await;
    let id = SessionId::generate(&u);
    let first = m.create_with_id(id.clone(), &u, meta()).await?;
    let again = m.create_with_id(id.clone(), &u, meta()).await?;
    assert_eq!(again.id, first.id);
    assert_eq!(
        again.created_at, first.created_at,
        "the replay finds its own session"
    );
    assert!(m.get(&a.id).await?.is_none(), "the first run evicted a");
    assert!(
        m.get(&b.id).await?.is_some(),
        "the replay evicted nothing more"
    );
    assert_eq!(m.list(&u).await?.len(), 2);
    // an id must carry its user's slot tag, and cannot be taken twice
    let stranger = (0..)
        .map(|i| user(&format!("stranger-{i}")))
        .find(|s| s.slot_tag() != u.slot_tag())
        .unwrap();
    assert!(matches!(
        m.create_with_id(SessionId::generate(&stranger), &u, meta())
            .await,
        Err(Error::IdConflict { .. })
    ));
    // rotate replayed with the same new id
    let new_id = SessionId::generate(&u);
    let r1 = m.rotate_to(&b.id, new_id.clone()).await?.unwrap();
    let r2 = m.rotate_to(&b.id, new_id.clone()).await?.unwrap();
    assert_eq!((r1.id.clone(), r1.created_at), (r2.id, r2.created_at));
    assert!(m.get(&b.id).await?.is_none());
    assert_eq!(m.list(&u).await?.len(), 2);
    Ok(())
}

async fn should_reject_bad_input_without_a_round_trip(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let u = user("trent");
    // once shut down, any round trip would fail with Error::Shutdown
    m.redis().shutdown().await?;
    // a well-formed token does make the call: the fast read path fails at
    // once with the typed error, like a script call, not after a timeout
    let err = m
        .get(&SessionId::generate(&u))
        .await
        .expect_err("a read after shutdown must fail");
    assert!(
        matches!(
            err,
            aeturnis_session::Error::Redis(aeturnis_redis_core::Error::Shutdown)
        ),
        "{err:?}"
    );
    let long = "a".repeat(100_000);
    let good = SessionId::generate(&u).to_string();
    for token in [
        "",
        "abc",
        long.as_str(),
        &good[..good.len() - 1],
        &good.replace('.', "!"),
    ] {
        assert!(m.get_by_token(token).await?.is_none(), "{token:.30}");
    }
    assert!(matches!(SessionId::parse(""), Err(TokenError::Empty)));
    assert!(matches!(
        UserId::new(""),
        Err(Error::InvalidId {
            what: "user id",
            ..
        })
    ));
    assert!(matches!(
        CharacterId::new("x".repeat(200)),
        Err(Error::InvalidId { .. })
    ));
    let fat = SessionMetadata::new().with_user_agent("u".repeat(MAX_USER_AGENT_LEN + 1));
    let e = m.create(&u, fat.clone()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::MetadataTooLong {
                field: "user_agent",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_invalid_input() && !e.is_retryable());
    let id = SessionId::parse(&good)?;
    assert!(matches!(
        m.update_metadata(&id, fat).await,
        Err(Error::MetadataTooLong { .. })
    ));
    assert!(matches!(
        m.extend(&id, Duration::from_micros(1)).await,
        Err(Error::ZeroDuration { .. })
    ));
    assert!(matches!(
        SessionManager::new(
            m.redis().clone(),
            SessionConfig::default().with_idle_ttl(Duration::ZERO)
        ),
        Err(Error::ZeroDuration { .. })
    ));
    // a real round trip after shutdown is a typed error, not a panic,
    // on the script path and on the fast path alike
    assert!(m.get(&id).await.is_err());
    let fast = SessionManager::new(m.redis().clone(), fast())?;
    let started = Instant::now();
    assert!(fast.get(&id).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}

async fn should_give_every_key_a_ttl(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let (u, v) = (user("victor"), user("walter"));
    let s = m.create(&u, meta()).await?;
    let t = m.create(&v, meta()).await?;
    m.get(&s.id).await?;
    m.bind_character(&t.id, &CharacterId::new("x")?).await?;
    let r = m.rotate(&t.id).await?.unwrap();
    m.extend(&s.id, Duration::from_secs(10)).await?;
    let stats_key = format!("{}session-stats:{{all}}:counters", ctx.prefix);
    let users_key = format!("{}session-stats:{{all}}:users", ctx.prefix);
    eventually("stats are written", || async {
        exists(&m, &users_key).await
    })
    .await?;
    for key in [
        session_key(&ctx, &s.id),
        session_key(&ctx, &r.id),
        index_key(&ctx, &u),
        index_key(&ctx, &v),
        stats_key,
        users_key,
    ] {
        let p = pttl(&m, &key).await;
        assert!(p > 0, "{key} has PTTL {p}");
    }
    for (id, user) in [(&s.id, &u), (&r.id, &v)] {
        assert!(pttl(&m, &index_key(&ctx, user)).await >= pttl(&m, &session_key(&ctx, id)).await);
    }
    let census = m.recount().await?;
    assert_eq!((census.sessions, census.users), (2, 2));
    Ok(())
}

async fn should_count_sessions_without_scanning(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_max_per_user(NonZeroU32::new(2).unwrap())).await?;
    let (u, v) = (user("xavier"), user("yvonne"));
    let a = m.create(&u, meta()).await?;
    next_ms(&m).await; // a distinct LRU score, so a is the one evicted
    m.create(&u, meta()).await?;
    m.create(&u, meta()).await?; // evicts a
    m.create(&v, meta()).await?;
    m.revoke(&a.id).await?; // already evicted: not counted twice
    let b = m.list(&v).await?.remove(0);
    m.revoke(&b.id).await?;
    let deadline = Instant::now() + DEADLINE;
    let s = loop {
        let s = m.stats().await?;
        if s.created == 4 && s.ended == 2 {
            break s;
        }
        anyhow::ensure!(Instant::now() < deadline, "counters did not settle: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(s.active, 2);
    assert_eq!(s.unique_users, 2);
    assert!(s.average_duration.is_some());
    // expiry runs no script: recount makes `active` exact again
    let _: () = m.redis().client().del(index_key(&ctx, &u)).await?;
    let census = m.recount().await?;
    assert_eq!((census.sessions, census.users), (2, 0));
    let s = m.stats().await?;
    assert_eq!(s.active, 2);
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_create_and_get_a_session,
    should_slide_idle_expiry_on_activity,
    should_slide_but_throttle_last_seen_writes,
    should_extend_up_to_the_absolute_expiry,
    should_bind_characters_and_update_metadata,
    should_evict_the_least_recently_used_session,
    should_drop_stale_index_entries_before_evicting,
    should_keep_an_index_ttl_when_eviction_empties_it,
    should_keep_max_sessions_under_concurrent_creates,
    should_end_idle_sessions,
    should_end_sessions_at_the_absolute_lifetime,
    should_cap_fast_path_reads_at_the_absolute_lifetime,
    should_rotate_to_a_new_id_and_kill_the_old_one,
    should_revoke_one_all_and_others,
    should_never_resurrect_a_revoked_session,
    should_never_resurrect_a_revoked_session_on_the_fast_path,
    should_replay_the_fast_path_getex_safely,
    should_never_leave_the_expiry_past_the_absolute_one_near_the_end,
    should_not_keep_a_session_past_its_absolute_expiry_with_a_wrong_clock,
    should_treat_a_replayed_create_or_rotate_as_a_no_op,
    should_reject_bad_input_without_a_round_trip,
    should_give_every_key_a_ttl,
    should_count_sessions_without_scanning,
);
