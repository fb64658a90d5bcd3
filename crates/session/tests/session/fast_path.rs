//! The fast read path, on a server the test owns, so that `INFO
//! commandstats` counts only this test's commands: reads within the touch
//! interval are one `GETEX key PX idle` each and run no script (and no
//! `GET`, `PEXPIRE` or `PEXPIRETIME`); a due touch runs the script once;
//! revoke-vs-read races on the fast path resurrect nothing; a clock
//! estimate that is provably wrong sends reads to the script.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_redis_core::{Redis, RedisConfig};
use aeturnis_session::{SessionConfig, SessionId, SessionManager, SessionMetadata, UserId};
use aeturnis_testkit::RedisServer;

const PREFIX: &str = "fast:";

async fn manager(server: &RedisServer, config: SessionConfig) -> anyhow::Result<SessionManager> {
    let redis =
        Redis::connect(RedisConfig::from_url(&server.url())?.with_key_prefix(PREFIX)).await?;
    Ok(SessionManager::new(redis, config)?)
}

fn session_key(id: &SessionId) -> String {
    let s = id.as_str();
    format!("{PREFIX}s:{{{}}}:{}", &s[..4], &s[5..])
}

/// Calls per command since the last `CONFIG RESETSTAT`, e.g. `"getex"`.
fn calls(server: &RedisServer) -> anyhow::Result<HashMap<String, u64>> {
    let info = server.cli(&["INFO", "commandstats"])?;
    let mut out = HashMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, stats)) = rest.split_once(':') else {
            continue;
        };
        let n = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        out.insert(name.to_owned(), n);
    }
    Ok(out)
}

fn count(calls: &HashMap<String, u64>, command: &str) -> u64 {
    calls.get(command).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_read_with_native_commands_until_a_touch_is_due() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    // the default 60 s touch interval: no touch falls due during the reads
    let m = manager(&server, SessionConfig::default()).await?;
    let c = m.redis().client().clone();
    m.redis().load_scripts().await?;
    let mut sessions = Vec::new();
    for i in 0..10 {
        sessions.push(
            m.create(&UserId::new(format!("u{i}"))?, SessionMetadata::new())
                .await?,
        );
    }
    // the creates' stat deltas written now, not by the background task in
    // the middle of the reads (reads add no deltas: nothing else is sent)
    m.flush_stats().await?;
    server.cli(&["CONFIG", "RESETSTAT"])?;
    for s in &sessions {
        let key = session_key(&s.id);
        let _: () = c.pexpire(&key, 2_000, None).await?;
        for _ in 0..100 {
            let got = m.get(&s.id).await?.unwrap();
            assert_eq!(got.last_seen, s.created_at, "no touch recorded");
        }
        let p: i64 = c.pttl(&key).await?;
        assert!(p > 1_790_000, "the expiry slid: PTTL {p}");
    }
    let stats = calls(&server)?;
    assert_eq!(count(&stats, "getex"), 1_000, "{stats:?}");
    assert_eq!(count(&stats, "get"), 0, "{stats:?}");
    assert_eq!(count(&stats, "pexpiretime"), 0, "{stats:?}");
    // the test's own 10, none from the reads
    assert_eq!(count(&stats, "pexpire"), 10, "{stats:?}");
    // no script at all: not even a stats flush, nothing was pending
    assert_eq!(count(&stats, "evalsha"), 0, "no script: {stats:?}");
    assert_eq!(count(&stats, "hmget"), 0, "no script: {stats:?}");
    assert_eq!(
        count(&stats, "pexpireat"),
        0,
        "far from the absolute expiry"
    );

    // with a 1 s interval, once the recorded touch is older, one read per
    // session runs the script, which records it; the next is native again
    let m = SessionManager::new(
        m.redis().clone(),
        SessionConfig::default().with_touch_interval(Duration::from_secs(1)),
    )?;
    let created = sessions.iter().map(|s| s.created_at).max().unwrap();
    let due = created.duration_since(std::time::UNIX_EPOCH)? + Duration::from_millis(1_050);
    aeturnis_testkit::eventually("the touch falls due", Duration::from_secs(10), || async {
        let now = m.redis().server_time().await.map_err(|e| e.to_string())?;
        if now >= due {
            Ok(())
        } else {
            Err(format!("server time {now:?}, due {due:?}"))
        }
    })
    .await?;
    server.cli(&["CONFIG", "RESETSTAT"])?;
    for s in &sessions {
        let got = m.get(&s.id).await?.unwrap();
        assert!(got.last_seen > s.created_at, "touch recorded");
        m.get(&s.id).await?.unwrap();
    }
    let stats = calls(&server)?;
    assert_eq!(count(&stats, "getex"), 20, "{stats:?}");
    assert_eq!(count(&stats, "pexpiretime"), 0, "{stats:?}");
    // one get-and-slide per session, and no stats flush (nothing pending)
    assert_eq!(count(&stats, "evalsha"), 10, "{stats:?}");
    assert_eq!(count(&stats, "hmget"), 0, "{stats:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_never_resurrect_in_fast_path_races() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let m = manager(
        &server,
        SessionConfig::default().with_max_per_user(NonZeroU32::new(100).unwrap()),
    )
    .await?;
    let c = m.redis().client().clone();
    let user = UserId::new("racer")?;
    m.redis().load_scripts().await?; // no NOSCRIPT round in the counts
    server.cli(&["CONFIG", "RESETSTAT"])?;
    let mut resurrections = 0;
    for _ in 0..20 {
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let s = m.create(&user, SessionMetadata::new()).await?;
            let (m1, m2, m3) = (m.clone(), m.clone(), m.clone());
            tasks.push(tokio::spawn(async move {
                let (revoked, _, _) = tokio::join!(m1.revoke(&s.id), m2.get(&s.id), m3.get(&s.id));
                revoked.map(|_| s.id)
            }));
        }
        for t in tasks {
            let id = t.await??;
            let exists: i64 = c.exists(session_key(&id)).await?;
            if exists == 1 || m.get(&id).await?.is_some() {
                resurrections += 1;
            }
        }
        assert!(m.list(&user).await?.is_empty());
    }
    assert_eq!(resurrections, 0, "1,000 logout-vs-read races");
    let stats = calls(&server)?;
    // 2,000 racing reads and 1,000 checks, all on the fast path (one
    // GETEX each; a read that finds the key revoked ends there)
    assert_eq!(count(&stats, "getex"), 3_000, "{stats:?}");
    assert_eq!(count(&stats, "pexpiretime"), 0, "{stats:?}");
    // the scripts are the 1,000 creates, 1,000 revokes, 20 lists and the
    // background stats flushes (one HMGET each) only
    assert_eq!(
        count(&stats, "evalsha"),
        2_020 + count(&stats, "hmget"),
        "{stats:?}"
    );
    Ok(())
}

/// A clock estimate behind the server's `last_seen` (which the server wrote
/// with its own clock) is provably wrong: every read goes to the script,
/// which decides with `TIME`. One ahead of the server makes every touch
/// look due: the script again. Neither slides past the absolute expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_take_the_script_when_the_clock_is_provably_wrong() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let config = SessionConfig::default()
        .with_idle_ttl(Duration::from_secs(120))
        .with_absolute_ttl(Duration::from_secs(600));
    let m = manager(&server, config.clone()).await?;
    let c = m.redis().client().clone();
    m.redis().load_scripts().await?;
    let s = m
        .create(&UserId::new("skewed")?, SessionMetadata::new())
        .await?;
    let key = session_key(&s.id);
    let absolute = s
        .absolute_expires_at
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    for skew in [-120_000, 3_600_000] {
        let wrong = SessionManager::new(m.redis().clone(), config.clone())?
            .with_clock_skew_ms_for_tests(skew);
        server.cli(&["CONFIG", "RESETSTAT"])?;
        for _ in 0..20 {
            let got = wrong.get(&s.id).await?.unwrap();
            assert!(got.expires_at <= got.absolute_expires_at);
            let at: i64 = c.pexpire_time(&key).await?;
            assert!(u128::try_from(at)? <= absolute, "skew {skew}");
        }
        let stats = calls(&server)?;
        assert_eq!(count(&stats, "getex"), 20, "skew {skew}: {stats:?}");
        assert_eq!(
            count(&stats, "evalsha"),
            20 + count(&stats, "hmget"),
            "skew {skew}: every read ran the script: {stats:?}"
        );
    }
    // the same reads with a right clock are native
    server.cli(&["CONFIG", "RESETSTAT"])?;
    for _ in 0..20 {
        m.get(&s.id).await?.unwrap();
    }
    let stats = calls(&server)?;
    assert_eq!(count(&stats, "getex"), 20, "{stats:?}");
    assert_eq!(
        count(&stats, "evalsha"),
        count(&stats, "hmget"),
        "{stats:?}"
    );
    Ok(())
}
