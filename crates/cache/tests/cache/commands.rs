//! What the cache sends, counted by the server: each test owns its
//! `redis-server`, so `INFO commandstats` and `SLOWLOG` (every command
//! logged, `slowlog-log-slower-than 0`) see this test's commands only.
//! `mget` is one `MGET`, `mset` one pipeline, pattern deletes `SCAN` and
//! `UNLINK` in batches, never `KEYS`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use aeturnis_cache::core::fred::prelude::*;
use aeturnis_cache::core::fred::types::{ClusterHash, CustomCommand};
use aeturnis_cache::{Cache, CacheConfig, MatchPattern, Redis, RedisConfig, RedisKey, Ttl};
use aeturnis_testkit::RedisServer;
use anyhow::{ensure, Context, Result};

async fn cache_on(server: &RedisServer, config: CacheConfig) -> Result<Cache> {
    let redis =
        Redis::connect(RedisConfig::from_url(&server.url())?.with_key_prefix("cmd:")).await?;
    Ok(Cache::new(
        redis,
        config.with_default_ttl(Duration::from_secs(600)),
    )?)
}

/// Calls per command since the last `CONFIG RESETSTAT`, e.g. `"mget"`.
fn calls(server: &RedisServer) -> Result<HashMap<String, u64>> {
    let info = server.cli(&["INFO", "commandstats"])?;
    let mut out = HashMap::new();
    for line in info.lines() {
        let Some((name, stats)) = line
            .strip_prefix("cmdstat_")
            .and_then(|rest| rest.split_once(':'))
        else {
            continue;
        };
        let n = stats
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|n| n.trim().parse().ok())
            .context(line.to_owned())?;
        out.insert(name.to_owned(), n);
    }
    Ok(out)
}

fn count(calls: &HashMap<String, u64>, command: &str) -> u64 {
    calls.get(command).copied().unwrap_or(0)
}

/// Forgets every command counted so far.
fn reset(server: &RedisServer) -> Result<()> {
    server.cli(&["CONFIG", "RESETSTAT"])?;
    server.cli(&["SLOWLOG", "RESET"])?;
    Ok(())
}

/// The argument lists of every logged command named `command` (upper
/// case), read with `SLOWLOG GET -1` (Redis keeps up to 32 arguments of
/// each: the tests keep their commands shorter than that).
async fn logged(cache: &Cache, command: &str) -> Result<Vec<Vec<String>>> {
    let get = CustomCommand::new_static("SLOWLOG", ClusterHash::Random, false);
    let entries: Vec<Value> = cache
        .redis()
        .client()
        .custom(get, vec!["GET", "-1"])
        .await?;
    let mut out = Vec::new();
    for entry in entries {
        let fields = entry.into_array();
        let argv: Vec<String> = fields
            .get(3)
            .cloned()
            .context("a SLOWLOG entry without arguments")?
            .into_array()
            .into_iter()
            .map(|v| v.as_string().unwrap_or_default())
            .collect();
        if argv
            .first()
            .is_some_and(|c| c.eq_ignore_ascii_case(command))
        {
            ensure!(
                !argv.iter().any(|a| a.contains("more arguments")),
                "a logged {command} was cut: {argv:?}"
            );
            out.push(argv);
        }
    }
    Ok(out)
}

fn log_everything(server: &RedisServer) -> Result<()> {
    server.cli(&["CONFIG", "SET", "slowlog-log-slower-than", "0"])?;
    server.cli(&["CONFIG", "SET", "slowlog-max-len", "100000"])?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_read_many_keys_with_one_mget_and_undecoded_bytes_alike() -> Result<()> {
    let server = RedisServer::start_standalone()?;
    let cache = cache_on(&server, CacheConfig::default()).await?;
    let keys: Vec<RedisKey> = (0..30)
        .map(|i| Ok(cache.key("m").id(i.to_string()).build()?))
        .collect::<Result<_>>()?;
    let entries: Vec<(RedisKey, u32)> = keys.iter().step_by(3).map(|k| (k.clone(), 7)).collect();
    cache.mset(&entries, Ttl::Default).await?;
    log_everything(&server)?;
    reset(&server)?;

    let values = cache.mget::<u32>(&keys).await?;
    let bytes = cache.mget_bytes(&keys).await?;
    let stats = calls(&server)?;
    assert_eq!(count(&stats, "mget"), 2, "{stats:?}");
    for single in ["get", "exists", "evalsha", "eval"] {
        assert_eq!(count(&stats, single), 0, "{single}: {stats:?}");
    }
    let mgets = logged(&cache, "MGET").await?;
    assert!(
        mgets.iter().all(|argv| argv.len() == keys.len() + 1),
        "{mgets:?}"
    );

    // the bytes are what `get_bytes` reads, missing keys `None`, in order
    assert_eq!(bytes.len(), keys.len());
    for (i, (key, raw)) in keys.iter().zip(&bytes).enumerate() {
        assert_eq!(raw, &cache.get_bytes(key).await?, "index {i}");
        assert_eq!(raw.is_some(), i % 3 == 0, "index {i}");
        assert_eq!(values[i], (i % 3 == 0).then_some(7), "index {i}");
    }
    assert!(cache.mget_bytes(&[]).await?.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_send_mset_as_one_pipeline() -> Result<()> {
    const N: usize = 40;
    let server = RedisServer::start_standalone()?;
    let cache = cache_on(&server, CacheConfig::default()).await?;
    let value = "v".repeat(200);
    let entries: Vec<(RedisKey, String)> = (0..N)
        .map(|i| Ok((cache.key("p").id(i.to_string()).build()?, value.clone())))
        .collect::<Result<_>>()?;
    cache.exists(&entries[0].0).await?;
    reset(&server)?;

    // the server holds the first `SET`; a pipeline has sent the other
    // N - 1 already (they wait in the connection's query buffer), where
    // one await per key would have sent nothing more
    server.pause_writes()?;
    let task = {
        let (cache, entries) = (cache.clone(), entries.clone());
        tokio::spawn(async move { cache.mset(&entries, Ttl::Default).await })
    };
    let min_pending = ((N - 1) * value.len()) as u64;
    let held = server
        .held_client(|c| c.cmd == "set" && c.queued >= min_pending)
        .await;
    server.unpause()?;
    let pending = held?.queued;
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .context("mset never finished")???;
    let stats = calls(&server)?;
    assert_eq!(count(&stats, "set"), N as u64, "{stats:?}");
    for other in ["multi", "exec", "evalsha", "eval", "mset"] {
        assert_eq!(count(&stats, other), 0, "{other}: {stats:?}");
    }
    let keys: Vec<RedisKey> = entries.iter().map(|(k, _)| k.clone()).collect();
    assert!(cache
        .mget::<String>(&keys)
        .await?
        .iter()
        .all(|v| v.as_deref() == Some(value.as_str())));
    println!("{pending} bytes queued behind the held SET");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_delete_by_pattern_with_scan_and_batched_unlink_never_keys() -> Result<()> {
    const BATCH: u32 = 20;
    let server = RedisServer::start_standalone()?;
    let batch = NonZeroU32::new(BATCH).context("batch")?;
    let cache = cache_on(&server, CacheConfig::default().with_scan_batch(batch)).await?;
    let doomed: Vec<(RedisKey, u8)> = (0..1_000)
        .map(|i| Ok((cache.key("gone").id(i.to_string()).build()?, 1)))
        .collect::<Result<_>>()?;
    let kept: Vec<(RedisKey, u8)> = (0..200)
        .map(|i| Ok((cache.key("kept").id(i.to_string()).build()?, 1)))
        .collect::<Result<_>>()?;
    cache.mset(&doomed, Ttl::Default).await?;
    cache.mset(&kept, Ttl::Default).await?;
    log_everything(&server)?;
    reset(&server)?;

    assert_eq!(
        cache.count_matching(cache.pattern("gone").any()).await?,
        1_000
    );
    let stats = calls(&server)?;
    assert_eq!(count(&stats, "keys"), 0, "{stats:?}");
    assert_eq!(count(&stats, "unlink"), 0, "a count deletes nothing");
    let scans = count(&stats, "scan");
    // 1 200 keys at COUNT 20: dozens of pages, not one sweep
    assert!(scans >= 1_200 / u64::from(BATCH) / 2, "{scans} SCANs");

    reset(&server)?;
    assert_eq!(
        cache.delete_matching(cache.pattern("gone").any()).await?,
        1_000
    );
    let stats = calls(&server)?;
    assert_eq!(count(&stats, "keys"), 0, "{stats:?}");
    assert_eq!(count(&stats, "del"), 0, "{stats:?}");
    let unlinks = logged(&cache, "UNLINK").await?;
    let sizes: Vec<usize> = unlinks.iter().map(|argv| argv.len() - 1).collect();
    assert_eq!(count(&stats, "unlink"), sizes.len() as u64, "{stats:?}");
    assert!(
        sizes.iter().all(|&n| (1..=BATCH as usize).contains(&n)),
        "UNLINK sizes {sizes:?}"
    );
    assert_eq!(sizes.iter().sum::<usize>(), 1_000);
    // every logged SCAN asked for the batch size and matched the pattern
    for argv in logged(&cache, "SCAN").await? {
        ensure!(
            argv.windows(2)
                .any(|w| w[0].eq_ignore_ascii_case("COUNT") && w[1] == BATCH.to_string()),
            "{argv:?}"
        );
        ensure!(
            argv.windows(2)
                .any(|w| w[0].eq_ignore_ascii_case("MATCH") && w[1] == "cmd:gone:*"),
            "{argv:?}"
        );
    }
    assert_eq!(cache.count_matching(MatchPattern::all()).await?, 200);
    Ok(())
}
