//! Statistics, the recount and key TTLs.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_session::{CharacterId, STATS_FLUSH_INTERVAL};
use aeturnis_testkit::{eventually, TestCtx};

use crate::support::*;

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
    eventually("stats are written", DEADLINE, || async {
        if exists(&m, &users_key).await {
            Ok(())
        } else {
            Err("no unique-user key yet")
        }
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
    next_ms(&m).await?; // a distinct LRU score, so a is the one evicted
    m.create(&u, meta()).await?;
    m.create(&u, meta()).await?; // evicts a
    m.create(&v, meta()).await?;
    m.revoke(&a.id).await?; // already evicted: not counted twice
    let b = m.list(&v).await?.remove(0);
    m.revoke(&b.id).await?;
    let s = eventually("the counters settle", DEADLINE, || async {
        let s = m.stats().await.map_err(|e| e.to_string())?;
        if s.created == 4 && s.ended == 2 {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await?;
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

/// `flush_stats` writes the pending deltas at once: within one flush
/// interval of the first create (before the background task's first
/// write), the counters hold exactly what was created; a second flush has
/// nothing to add.
async fn should_write_pending_stats_on_flush(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager()).await?;
    let counters = format!("{}session-stats:{{all}}:counters", ctx.prefix);
    let started = std::time::Instant::now();
    for i in 0..3 {
        m.create(&user(&format!("flusher-{i}")), meta()).await?;
    }
    m.flush_stats().await?;
    assert!(
        started.elapsed() < STATS_FLUSH_INTERVAL,
        "too slow to tell the flush from the background task's"
    );
    let read = || async {
        let raw: HashMap<String, i64> = m.redis().client().hgetall(&counters).await.unwrap();
        (raw.get("created").copied(), raw.get("active").copied())
    };
    assert_eq!(read().await, (Some(3), Some(3)));
    m.flush_stats().await?;
    assert_eq!(read().await, (Some(3), Some(3)), "written once");
    Ok(())
}

/// `recount` finds every live session and user index exactly once, over
/// several `SCAN` pages on every primary: 1,600 creates by 400 users with a
/// limit of 3 (400 evicted), one revoke for every fourth user and a
/// revoke-all for every fortieth leave 1,070 sessions of 390 users; the
/// recount says exactly that, and so does `active` after it.
async fn should_recount_sessions_and_users_exactly(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_max_per_user(NonZeroU32::new(3).unwrap())).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let m = m.clone();
        tasks.spawn(async move {
            let u = user(&format!("census-{i}"));
            let mut ids = Vec::new();
            for _ in 0..4 {
                ids.push(m.create(&u, meta()).await?.id);
            }
            if i % 4 == 0 {
                // the newest, never evicted
                anyhow::ensure!(m.revoke(&ids[3]).await?, "revoked");
            }
            if i % 40 == 1 {
                anyhow::ensure!(m.revoke_all(&u).await? == 3, "three were live");
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let census = m.recount().await?;
    assert_eq!(
        (census.sessions, census.users),
        (1_070, 390),
        "each live session and user index counted once"
    );
    let s = m.stats().await?;
    assert_eq!(s.active, 1_070, "recount resets active to the count");
    assert!(
        s.unique_users.abs_diff(390) <= 8,
        "unique users rebuilt from the users found: {}",
        s.unique_users
    );
    // a second recount finds the same
    let again = m.recount().await?;
    assert_eq!((again.sessions, again.users), (1_070, 390));
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_give_every_key_a_ttl,
    should_count_sessions_without_scanning,
    should_write_pending_stats_on_flush,
    should_recount_sessions_and_users_exactly,
);
