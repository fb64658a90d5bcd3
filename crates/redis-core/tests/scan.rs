//! `Redis::scan_primaries` / `scan_keys`: every primary walked, each key
//! reported once, also across a table resize in the middle of the walk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_redis_core::prelude::*;
use aeturnis_testkit::{eventually, RedisServer, TestCtx};

fn batch(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("batch > 0")
}

async fn connect(url: &str, prefix: &str) -> anyhow::Result<Redis> {
    let config = RedisConfig::from_url(url)?.with_key_prefix(prefix);
    Ok(Redis::connect(config).await?)
}

/// `MSET`s `names` in commands of 1,000, all sent together.
async fn mset(redis: &Redis, names: &[String]) -> anyhow::Result<()> {
    let sends = names.chunks(1000).map(|chunk| {
        let pairs: Vec<(String, &str)> = chunk.iter().map(|k| (k.clone(), "v")).collect();
        redis.client().mset(pairs)
    });
    futures::future::try_join_all(sends).await?;
    Ok(())
}

/// The main hash table's overhead on db 0 (`MEMORY STATS`), which follows
/// its bucket count.
async fn table_bytes(redis: &Redis) -> anyhow::Result<u64> {
    let stats: Value = redis
        .client()
        .custom(
            aeturnis_redis_core::fred::types::CustomCommand::new_static(
                "MEMORY",
                aeturnis_redis_core::fred::types::ClusterHash::FirstKey,
                false,
            ),
            vec!["STATS"],
        )
        .await?;
    let flat = format!("{stats:?}");
    let at = flat
        .find("overhead.hashtable.main")
        .ok_or_else(|| anyhow::anyhow!("no db.0 table stats in {flat}"))?;
    let digits: String = flat[at..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    Ok(digits.parse()?)
}

/// Redis shrinks its key table in its cron after most keys are deleted, and
/// a `SCAN` cursor that was in the middle of the large table then revisits
/// buckets: raw `SCAN` returns some keys twice. The walk must report every
/// key exactly once. Each round shrinks the table after a few pages; a
/// round where the walk saw no repeat (its cursor happened to sit on a
/// group boundary) proves nothing, so the test runs until one did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_report_each_key_once_across_a_table_resize_mid_scan() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = connect(&server.url(), "resize:").await?;
    let keep: Vec<String> = (0..20_000).map(|i| format!("resize:keep:{i}")).collect();
    let fill: Vec<String> = (0..300_000).map(|i| format!("resize:fill:{i}")).collect();
    let expected: HashSet<&str> = keep.iter().map(String::as_str).collect();
    for round in 1..=6 {
        redis.client().flushall::<()>(false).await?;
        mset(&redis, &keep).await?;
        mset(&redis, &fill).await?;
        let large = table_bytes(&redis).await?;
        let mut scans = redis.scan_primaries("resize:keep:*", batch(500))?;
        assert_eq!(scans.len(), 1);
        let mut scan = scans.remove(0);
        let mut seen = Vec::new();
        for _ in 0..40 {
            seen.extend(scan.next_page().await?.expect("the walk has just begun"));
        }
        assert!(
            !scan.is_done(),
            "round {round}: the walk ended before the resize"
        );
        for chunk in fill.chunks(5000) {
            redis.client().unlink::<u64, _>(chunk.to_vec()).await?;
        }
        eventually("the key table shrinks", Duration::from_secs(20), || async {
            match table_bytes(&redis).await {
                Ok(now) if now * 8 < large => Ok(()),
                Ok(now) => Err(format!("{now} of {large} bytes")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await?;
        seen.extend(scan.collect().await?);
        let names: Vec<&str> = seen.iter().filter_map(|k| k.as_str()).collect();
        assert_eq!(names.len(), seen.len(), "every key is text");
        let distinct: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            names.len(),
            "round {round}: a key was reported twice"
        );
        assert_eq!(distinct, expected, "round {round}: keys missing");
        if scan.duplicates() > 0 {
            println!(
                "round {round}: SCAN repeated {} keys; each reported once",
                scan.duplicates()
            );
            return Ok(());
        }
        println!("round {round}: the resize caused no repeat; again");
    }
    panic!("no round made SCAN repeat a key: the test did not exercise the resize");
}

async fn should_scan_every_primary_once(ctx: TestCtx) -> anyhow::Result<()> {
    let redis = connect(&ctx.url, &ctx.prefix).await?;
    let names: Vec<String> = (0..600)
        .map(|i| format!("{}scan:{i}", ctx.prefix))
        .collect();
    for name in &names {
        redis
            .client()
            .set::<(), _, _>(name, 1, Some(Expiration::EX(600)), None, false)
            .await?;
    }
    let pattern = redis.keys().pattern("scan").any().build()?;
    let keys = redis.scan_keys(&pattern, batch(50)).await?;
    let found: HashSet<String> = keys
        .iter()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    assert_eq!(keys.len(), names.len(), "each key once");
    assert_eq!(found, names.iter().cloned().collect::<HashSet<_>>());
    let scans = redis.scan_primaries(&pattern, batch(50))?;
    assert_eq!(scans.len(), if redis.is_cluster() { 3 } else { 1 });
    redis.shutdown().await?;
    assert!(matches!(
        redis.scan_primaries(&pattern, batch(50)),
        Err(aeturnis_redis_core::Error::Shutdown)
    ));
    Ok(())
}

aeturnis_testkit::topology_tests!(should_scan_every_primary_once);
