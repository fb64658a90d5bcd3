//! What the scripts store: exact microsecond timestamps, GCRA's arrival
//! time in the key's expiry.

use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_ratelimit::core::prelude::*;
use aeturnis_ratelimit::{Algorithm, LimitKey, RequestId};
use aeturnis_testkit::{topology_tests, TestCtx};
use anyhow::{ensure, Context};

use crate::support::*;

/// Timestamps reach Redis as exact integer microseconds: the scripts hand
/// numbers to `redis.call` (which formats them with `%.17g`) instead of
/// text made by Lua (`%.14g`, exponent form for 16 digits), so GCRA's
/// arrival time, the sliding log's scores and both block markers read back
/// as plain integers within a second of the server's clock.
async fn should_store_exact_microsecond_timestamps(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let client = redis.client();
    let now_us = || async {
        let t = redis.server_time().await?;
        anyhow::Ok(i64::try_from(t.as_micros())?)
    };
    let near_now = |text: &str, what: &str, lo: i64, hi: i64| -> anyhow::Result<i64> {
        let digits = text.strip_prefix('-').unwrap_or(text);
        ensure!(
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            "{what}: {text:?} is not a plain integer"
        );
        let v: i64 = text.parse()?;
        ensure!(
            v.abs() >= lo && v.abs() <= hi,
            "{what}: {v} not in {lo}..={hi}"
        );
        Ok(v)
    };
    let window = Duration::from_secs(60);
    let block = Duration::from_secs(30);
    let block_us = 30_000_000;

    // GCRA at 3 per 10 s: an emission interval of 3,333,334 µs, not a
    // whole number of milliseconds, so the µs script; one check stores now
    // + one interval (seconds ahead: a stalled CI host still finds it)
    let gcra = blocking(
        &redis,
        "exact-gcra",
        Algorithm::gcra(),
        3,
        Duration::from_secs(10),
        block,
    )?;
    let emission_us = 3_333_334;
    let key = LimitKey::user("exact")?;
    let before = now_us().await?;
    ensure!(gcra.check(&key).await?.allowed);
    let after = now_us().await?;
    let stored: String = client.get(gcra.redis_key(&key)?).await?;
    near_now(
        &stored,
        "GCRA arrival time",
        before + emission_us,
        after + emission_us,
    )?;
    // exhaust, then the fourth check blocks: `-<block end µs>`
    ensure!(gcra.check(&key).await?.allowed);
    ensure!(gcra.check(&key).await?.allowed);
    ensure!(!gcra.check(&key).await?.allowed);
    let after = now_us().await?;
    let marker: String = client.get(gcra.redis_key(&key)?).await?;
    ensure!(marker.starts_with('-'), "GCRA block marker {marker:?}");
    near_now(
        &marker,
        "GCRA block end",
        before + block_us,
        after + block_us,
    )?;

    // sliding log: the admitted entry's score is its admission time
    let log = blocking(&redis, "exact-log", Algorithm::SlidingLog, 1, window, block)?;
    let before = now_us().await?;
    ensure!(log.check(&key).await?.allowed);
    ensure!(!log.check(&key).await?.allowed);
    let after = now_us().await?;
    let entries: Vec<(String, String)> = client
        .zrange(log.redis_key(&key)?, 0, -1, None, false, None, true)
        .await?;
    ensure!(entries.len() == 2, "{entries:?}");
    for (member, score) in &entries {
        // ZRANGE WITHSCORES prints the double; an integer score has no '.'
        if member == "#b" {
            near_now(
                score,
                "sliding log block end",
                before + block_us,
                after + block_us,
            )?;
        } else {
            near_now(score, "sliding log entry", before, after)?;
        }
    }

    // sliding window: `start:count:previous` and the block marker
    let counter = blocking(
        &redis,
        "exact-window",
        Algorithm::SlidingWindow,
        1,
        window,
        block,
    )?;
    let before = now_us().await?;
    ensure!(counter.check(&key).await?.allowed);
    let after = now_us().await?;
    let state: String = client.get(counter.redis_key(&key)?).await?;
    let parts: Vec<&str> = state.split(':').collect();
    ensure!(
        parts.len() == 3 && parts[1] == "1" && parts[2] == "0",
        "{state:?}"
    );
    near_now(parts[0], "sliding window start", before, after)?;
    ensure!(!counter.check(&key).await?.allowed);
    let after = now_us().await?;
    let marker: String = client.get(counter.redis_key(&key)?).await?;
    near_now(
        &marker,
        "sliding window block end",
        before + block_us,
        after + block_us,
    )?;
    assert_all_keys_expire(&redis).await?;
    Ok(())
}

/// GCRA whose emission interval is a whole number of milliseconds keeps
/// its arrival time as the key's expiry (value `0`, `PTTL` = arrival time
/// − now): two checks at 2 per minute leave 60 s of TTL, the third is
/// denied and blocks (`-1`, TTL = the block), and a check during the block
/// that would fit the quota again neither ends nor extends the block.
async fn should_keep_gcra_arrival_time_in_the_expiry(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx).await?;
    let client = redis.client();
    let block = Duration::from_secs(30);
    let gcra = blocking(
        &redis,
        "gcra-ms",
        Algorithm::gcra(),
        2,
        Duration::from_secs(60),
        block,
    )?;
    let key = LimitKey::user("expiry")?;
    let rkey = gcra.redis_key(&key)?;
    let d = gcra.check(&key).await?;
    ensure!(d.allowed && d.remaining == 1, "{d:?}");
    let value: String = client.get(&rkey).await?;
    let ttl: i64 = client.pttl(&rkey).await?;
    ensure!(
        value == "0" && (29_000..=30_000).contains(&ttl),
        "{value:?} {ttl}"
    );
    let d = gcra.check(&key).await?;
    ensure!(d.allowed && d.remaining == 0, "{d:?}");
    let ttl: i64 = client.pttl(&rkey).await?;
    ensure!((59_000..=60_000).contains(&ttl), "ttl {ttl}");
    // over the burst: denied and blocked for 30 s
    let d = gcra.check(&key).await?;
    ensure!(!d.allowed, "{d:?}");
    let value: String = client.get(&rkey).await?;
    let ttl: i64 = client.pttl(&rkey).await?;
    ensure!(
        value == "-1" && (29_000..=30_000).contains(&ttl),
        "{value:?} {ttl}"
    );
    // 30 s of block + one 30 s interval fits the 60 s burst: still denied,
    // and the block is neither ended nor extended
    let d = gcra.check(&key).await?;
    let retry = d.retry_after.context("retry_after")?;
    ensure!(!d.allowed && retry <= block, "{d:?}");
    let value: String = client.get(&rkey).await?;
    let after: i64 = client.pttl(&rkey).await?;
    ensure!(
        value == "-1" && after <= ttl && after > 28_000,
        "{value:?} {after}"
    );
    // a peek and a refund leave the block alone too
    ensure!(!gcra.peek(&key, NonZeroU32::MIN).await?.allowed);
    gcra.refund(&key, NonZeroU32::MIN, RequestId::new()).await?;
    let value: String = client.get(&rkey).await?;
    ensure!(value == "-1", "{value:?}");
    assert_all_keys_expire(&redis).await?;
    Ok(())
}

topology_tests!(
    should_store_exact_microsecond_timestamps,
    should_keep_gcra_arrival_time_in_the_expiry,
);
