//! Coherence between two processes, on the shared standalone server and the
//! shared cluster: A (a plain cache) writes, B (a near cache) must drop its
//! local copy.

use std::time::{Duration, Instant};

use aeturnis_cache::core::fred::bytes::Bytes;
use aeturnis_cache::core::fred::interfaces::TrackingInterface;
use aeturnis_cache::near::{NearConfig, TrackingMode};
use aeturnis_cache::{RedisKey, Ttl};
use aeturnis_testkit::{eventually, TestCtx};
use anyhow::{ensure, Context, Result};

use crate::support::{pair, pair_with, until, NS, WAIT};

const ROUNDS: usize = 20;

async fn should_never_return_the_old_value_once_the_write_returned_and_its_invalidation_arrived(
    ctx: TestCtx,
) -> Result<()> {
    let (a, b) = pair(&ctx.url, &ctx.prefix).await?;
    let key = a.key(NS).id("1").build()?;
    let mut arrivals = b.tracking_client().invalidation_rx();
    let mut windows_us = Vec::with_capacity(ROUNDS);
    a.set(&key, &0u32, Ttl::Default).await?;
    for round in 1..=ROUNDS as u32 {
        // B reads the current value and holds it
        ensure!(b.get::<u32>(&key).await? == Some(round - 1));
        ensure!(b.is_held(&key), "round {round}: not held after a read");
        ensure!(b.get::<u32>(&key).await? == Some(round - 1));
        let seen = b.stats().invalidations;

        a.set(&key, &round, Ttl::Default).await?;
        let returned = Instant::now();
        let arrival = tokio::time::timeout(WAIT, arrivals.recv())
            .await
            .context("no invalidation")??;
        ensure!(arrival
            .keys
            .iter()
            .any(|k| k.as_str() == Some(key.as_str())));
        let arrived = Instant::now();
        windows_us.push(signed_us(returned, arrived));

        // once B has applied it, the old value is never returned
        until(&b, "B to apply the invalidation", |s| {
            s.invalidations > seen
        })
        .await?;
        ensure!(!b.is_held(&key), "round {round}: still held");
        for _ in 0..3 {
            ensure!(
                b.get::<u32>(&key).await? == Some(round),
                "round {round}: old value"
            );
        }
    }
    windows_us.sort_unstable();
    println!(
        "{:?}: write returned -> invalidation arrived, µs: min {} median {} max {}",
        ctx.topology,
        windows_us[0],
        windows_us[ROUNDS / 2],
        windows_us[ROUNDS - 1]
    );
    Ok(())
}

/// Microseconds from `from` to `to`, negative when `to` came first.
fn signed_us(from: Instant, to: Instant) -> i128 {
    match to.checked_duration_since(from) {
        Some(d) => d.as_micros() as i128,
        None => -(from.duration_since(to).as_micros() as i128),
    }
}

async fn should_not_keep_a_value_read_before_its_invalidation(ctx: TestCtx) -> Result<()> {
    let (a, b) = pair(&ctx.url, &ctx.prefix).await?;
    let key = a.key(NS).id("race").build()?;
    a.set(&key, "old", Ttl::Default).await?;

    // B's read gets its reply, then is held before it may fill the tier
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let read = {
        let (b, key) = (b.clone(), key.clone());
        tokio::spawn(async move {
            b.get_bytes_holding_reply(&key, async move {
                let _ = reached_tx.send(());
                let _ = release_rx.await;
            })
            .await
        })
    };
    tokio::time::timeout(WAIT, reached_rx).await??;
    let before = b.stats();

    // A writes; B's invalidation is applied while the reply is held
    a.set(&key, "new", Ttl::Default).await?;
    until(&b, "the invalidation", |s| {
        s.invalidations > before.invalidations
    })
    .await?;
    release_tx.send(()).ok().context("the read is gone")?;
    let old: Option<Bytes> = read.await??;
    ensure!(old.is_some(), "the held read found nothing");

    let after = b.stats();
    ensure!(!b.is_held(&key), "the old value was kept: {after:?}");
    ensure!(after.fills_refused == before.fills_refused + 1, "{after:?}");
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("new"));
    ensure!(b.is_held(&key));
    Ok(())
}

async fn should_hold_only_the_opted_in_namespaces(ctx: TestCtx) -> Result<()> {
    let (a, b) = pair(&ctx.url, &ctx.prefix).await?;
    let session = a.key("session").id("s1").build()?;
    let zone = a.key(NS).id("z1").build()?;
    a.set(&session, "token", Ttl::Default).await?;
    a.set(&zone, "map", Ttl::Default).await?;
    for _ in 0..3 {
        ensure!(b.get::<String>(&session).await?.as_deref() == Some("token"));
        ensure!(b.get::<String>(&zone).await?.as_deref() == Some("map"));
    }
    ensure!(!b.is_near(&session) && b.is_near(&zone));
    ensure!(!b.is_held(&session) && b.is_held(&zone));
    let s = b.stats();
    // the session reads never touched the tier
    ensure!((s.hits, s.misses, s.entries) == (2, 1, 1), "{s:?}");
    Ok(())
}

async fn should_drop_the_local_copy_when_writing_through_it(ctx: TestCtx) -> Result<()> {
    let (_a, b) = pair(&ctx.url, &ctx.prefix).await?;
    let key = b.cache().key(NS).id("own").build()?;
    b.set(&key, "v1", Ttl::Default).await?;
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("v1"));
    ensure!(b.is_held(&key));
    b.set(&key, "v2", Ttl::Default).await?;
    ensure!(!b.is_held(&key), "held after our own write");
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("v2"));
    b.delete(&key).await?;
    ensure!(!b.is_held(&key), "held after our own delete");
    ensure!(b.get::<String>(&key).await?.is_none());
    Ok(())
}

async fn should_share_one_decoded_value_between_hits_until_invalidated(ctx: TestCtx) -> Result<()> {
    let (a, b) = pair(&ctx.url, &ctx.prefix).await?;
    let key = a.key(NS).id("shared").build()?;
    a.set(&key, "v1", Ttl::Default).await?;
    let first = b.get_shared::<String>(&key).await?.context("missing")?;
    let second = b.get_shared::<String>(&key).await?.context("missing")?;
    ensure!(*first == "v1" && std::sync::Arc::ptr_eq(&first, &second));
    // `get` clones out of the same decoded value
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("v1"));
    ensure!(b.stats().hits == 2, "{:?}", b.stats());

    let seen = b.stats().invalidations;
    a.set(&key, "v2", Ttl::Default).await?;
    until(&b, "the invalidation", |s| s.invalidations > seen).await?;
    let third = b.get_shared::<String>(&key).await?.context("missing")?;
    ensure!(*third == "v2", "old value {third}");
    // a key outside the opted-in namespaces is read from Redis each time
    let session = a.key("session").id("s").build()?;
    a.set(&session, "token", Ttl::Default).await?;
    let s1 = b.get_shared::<String>(&session).await?.context("missing")?;
    let s2 = b.get_shared::<String>(&session).await?.context("missing")?;
    ensure!(*s1 == "token" && !std::sync::Arc::ptr_eq(&s1, &s2));
    Ok(())
}

/// Keys without a hash tag, so that on a cluster they spread over every
/// primary (the test prefix carries one).
fn untagged(prefix: &str) -> String {
    prefix.replace(['{', '}'], "")
}

async fn coherent_on_every_node(ctx: &TestCtx, mode: TrackingMode) -> Result<()> {
    let prefix = untagged(&ctx.prefix);
    let config = NearConfig::for_namespaces([NS]).with_mode(mode);
    let (a, b) = pair_with(&ctx.url, &prefix, config).await?;
    let keys: Vec<RedisKey> = (0..32)
        .map(|i| a.key(NS).id(i.to_string()).build())
        .collect::<Result<_, _>>()?;
    for key in &keys {
        a.set(key, "before", Ttl::Default).await?;
    }
    for key in &keys {
        // in broadcast mode the invalidation of A's write may still be on
        // its way and refuse the first fill: read until held
        eventually("B to hold the key", WAIT, || async {
            let v = b.get::<String>(key).await?;
            if v.as_deref() == Some("before") && b.is_held(key) {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{key}: {v:?}, held {}", b.is_held(key)))
            }
        })
        .await?;
    }
    for key in &keys {
        a.set(key, "after", Ttl::Default).await?;
    }
    until(&b, "every key invalidated", |s| s.entries == 0).await?;
    for key in &keys {
        ensure!(
            b.get::<String>(key).await?.as_deref() == Some("after"),
            "{key}"
        );
    }
    Ok(())
}

async fn should_be_coherent_for_keys_on_every_node(ctx: TestCtx) -> Result<()> {
    coherent_on_every_node(&ctx, TrackingMode::Default).await
}

async fn should_be_coherent_in_broadcast_mode_on_every_node(ctx: TestCtx) -> Result<()> {
    coherent_on_every_node(&ctx, TrackingMode::Broadcast).await
}

async fn should_invalidate_when_the_key_expires_in_redis(ctx: TestCtx) -> Result<()> {
    let config = NearConfig::for_namespaces([NS]).with_max_ttl(Duration::from_secs(600));
    let (a, b) = pair_with(&ctx.url, &ctx.prefix, config).await?;
    let key = a.key(NS).id("short").build()?;
    // 2 s: B's read comes before the expiry even on a stalled CI host
    a.set(&key, "brief", Duration::from_secs(2)).await?;
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("brief"));
    ensure!(b.is_held(&key));
    // Redis expires the key and says so (the local TTL would also end it)
    until(&b, "the expiry invalidation", |s| s.invalidations >= 1).await?;
    ensure!(!b.is_held(&key));
    ensure!(b.get::<String>(&key).await?.is_none());
    Ok(())
}

async fn should_never_keep_a_value_longer_than_its_redis_ttl(ctx: TestCtx) -> Result<()> {
    let config = NearConfig::for_namespaces([NS]).with_max_ttl(Duration::from_secs(600));
    let (a, b) = pair_with(&ctx.url, &ctx.prefix, config).await?;
    let key = a.key(NS).id("ttl").build()?;
    // 2 s: B's read comes before the expiry even on a stalled CI host
    a.set(&key, "brief", Duration::from_secs(2)).await?;
    let read = Instant::now();
    ensure!(b.get::<String>(&key).await?.as_deref() == Some("brief"));
    // stop the server's invalidations: only the local TTL can end the copy
    b.tracking_client().stop_tracking().await?;
    // the key's Redis TTL ends at most 2 s after `read` (plus a poll)
    let within = Duration::from_millis(2_050).saturating_sub(read.elapsed());
    eventually("the local copy to expire", within, || async {
        if b.is_held(&key) {
            Err("held")
        } else {
            Ok(())
        }
    })
    .await?;
    Ok(())
}

aeturnis_testkit::topology_tests!(
    sentinel: should_never_return_the_old_value_once_the_write_returned_and_its_invalidation_arrived,
    should_not_keep_a_value_read_before_its_invalidation,
);

aeturnis_testkit::topology_tests!(
    should_hold_only_the_opted_in_namespaces,
    should_drop_the_local_copy_when_writing_through_it,
    should_share_one_decoded_value_between_hits_until_invalidated,
    should_be_coherent_for_keys_on_every_node,
    should_be_coherent_in_broadcast_mode_on_every_node,
    should_invalidate_when_the_key_expires_in_redis,
    should_never_keep_a_value_longer_than_its_redis_ttl,
);
