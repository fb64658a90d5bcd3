//! The per-user limit: least-recently-used eviction, stale index entries, concurrent creates.

use std::collections::HashSet;
use std::num::NonZeroU32;

use aeturnis_redis_core::fred::prelude::*;
use aeturnis_session::SessionId;
use aeturnis_testkit::TestCtx;

use crate::support::*;

async fn should_evict_the_least_recently_used_session(ctx: TestCtx) -> anyhow::Result<()> {
    let m = manager(&ctx, eager().with_max_per_user(NonZeroU32::new(3).unwrap())).await?;
    let u = user("frank");
    let a = m.create(&u, meta()).await?;
    next_ms(&m).await?;
    let b = m.create(&u, meta()).await?;
    next_ms(&m).await?;
    let c = m.create(&u, meta()).await?;
    next_ms(&m).await?;
    m.get(&a.id).await?.unwrap(); // a is now the most recently used
    next_ms(&m).await?;
    let d = m.create(&u, meta()).await?;
    assert!(m.get(&b.id).await?.is_none(), "b was least recently used");
    assert!(!exists(&m, &session_key(&ctx, &b.id)).await);
    next_ms(&m).await?;
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
    next_ms(&m).await?;
    let b = m.create(&u, meta()).await?;
    // a ends without a script (as by expiry): its index entry goes stale
    let _: () = m.redis().client().del(session_key(&ctx, &a.id)).await?;
    next_ms(&m).await?;
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

aeturnis_testkit::topology_tests!(
    should_evict_the_least_recently_used_session,
    should_drop_stale_index_entries_before_evicting,
    should_keep_an_index_ttl_when_eviction_empties_it,
    should_keep_max_sessions_under_concurrent_creates,
);
