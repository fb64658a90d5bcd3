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

/// How many of a shrunken table's bucket group the walk has already
/// passed. `SCAN` walks buckets in reverse-binary order, so the 16 buckets
/// of a 2^19-bucket table that fold into one bucket of a 2^15-bucket table
/// (the same low 15 bits) are visited one after the other, in the order of
/// their reversed top 4 bits. When the table shrinks, the walk re-reads the
/// whole folded bucket: the keys of the group's buckets it had passed come
/// back a second time.
fn passed_in_group(cursor: &str) -> u32 {
    let v: u64 = cursor.parse().unwrap_or(0);
    let top = u32::try_from((v >> 15) & 0xF).unwrap_or(0);
    top.reverse_bits() >> 28
}

/// Redis shrinks its key table in its cron after most keys are deleted, and
/// a `SCAN` cursor in the middle of a bucket group of the large table then
/// re-reads the group's keys: raw `SCAN` returns them twice. The walk must
/// report every key exactly once. 30,000 kept keys among 280,000 fill a
/// table of 2^19 buckets; deleting the filler shrinks it to 2^15. Each
/// round stops the walk where it has passed at least 13 of the 16 buckets
/// of its group (the cursor says where), shrinks the table and finishes the
/// walk. Whether the re-read group holds a kept key depends on the keys'
/// hashes (about 0.74 are expected there), so each round uses new key names
/// (the server's hash seed is fixed) and rounds repeat until one shows a
/// repeat: all 25 missing has a chance below 10^-7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_report_each_key_once_across_a_table_resize_mid_scan() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = connect(&server.url(), "resize:").await?;
    let fill: Vec<String> = (0..250_000).map(|i| format!("resize:fill:{i}")).collect();
    for round in 1..=25 {
        let keep: Vec<String> = (0..30_000)
            .map(|i| format!("resize:keep:{round}:{i}"))
            .collect();
        let expected: HashSet<&str> = keep.iter().map(String::as_str).collect();
        redis.client().flushall::<()>(false).await?;
        mset(&redis, &keep).await?;
        mset(&redis, &fill).await?;
        let large = table_bytes(&redis).await?;
        let mut scans = redis.scan_primaries(&format!("resize:keep:{round}:*"), batch(100))?;
        assert_eq!(scans.len(), 1);
        let mut scan = scans.remove(0);
        let mut seen = Vec::new();
        while scan
            .cursor()
            .is_some_and(|c| c == "0" || passed_in_group(c) < 13)
        {
            seen.extend(scan.next_page().await?.unwrap_or_default());
        }
        if scan.is_done() {
            continue; // walked to the end before a good stop: try again
        }
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
        println!("round {round}: the re-read group held no kept key; again");
    }
    panic!("no round made SCAN repeat a key: the test did not exercise the resize");
}

#[test]
fn should_count_the_passed_buckets_of_a_group() {
    // top 4 bits 0b1000 reversed = 0b0001: one bucket of the group passed
    assert_eq!(passed_in_group(&(0b1000u64 << 15).to_string()), 1);
    assert_eq!(passed_in_group(&(0b0001u64 << 15).to_string()), 8);
    assert_eq!(passed_in_group(&(0b1111u64 << 15 | 7).to_string()), 15);
    assert_eq!(passed_in_group("0"), 0);
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
