//! `WriteBehind` against real Redis: coalescing, retries, dead letters,
//! claiming a dead consumer's entries, flush, typed config errors, no
//! replay of a dropped write (standalone, and the two-command path on a
//! cluster), per-entry dead letters, and a worker process killed mid-batch 20
//! times without losing an acknowledged write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aeturnis_patterns::cache::{Cache, CacheConfig};
use aeturnis_patterns::core::fred::error::ErrorKind;
use aeturnis_patterns::core::fred::interfaces::ClientLike;
use aeturnis_patterns::core::fred::interfaces::{HashesInterface, KeysInterface, StreamsInterface};
use aeturnis_patterns::core::fred::types::Value;
use aeturnis_patterns::{Error, Pending, Redis, RedisConfig, RedisKey, StreamId};
use aeturnis_patterns::{WriteBehind, WriteBehindConfig, Writer};
use aeturnis_testkit::{eventually, Cluster, Fault, FaultProxy, RedisServer, TestCtx};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, thiserror::Error)]
#[error("sink failed: {0}")]
struct SinkError(&'static str);

/// The `(key, value)` pairs of one batch.
type Batch = Vec<(String, String)>;

/// An in-memory sink: the rows, every batch, and scripted failures.
#[derive(Clone, Default)]
struct MemSink {
    rows: Arc<Mutex<HashMap<String, (StreamId, String)>>>,
    batches: Arc<Mutex<Vec<Batch>>>,
    fail_next: Arc<AtomicU32>,
    always_fail: bool,
    /// A value the sink refuses: any batch holding it fails.
    poison: Option<&'static str>,
}

impl Writer for MemSink {
    type Value = String;
    type Error = SinkError;

    async fn write_batch(&self, batch: &[Pending<String>]) -> Result<(), SinkError> {
        if self.always_fail {
            return Err(SinkError("db down"));
        }
        if batch.iter().any(|p| Some(p.value.as_str()) == self.poison) {
            return Err(SinkError("poison value"));
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SinkError("transient"));
        }
        let mut rows = self.rows.lock().unwrap();
        for p in batch {
            let newer = rows.get(&p.key).map_or(true, |(id, _)| *id < p.id);
            if newer {
                rows.insert(p.key.clone(), (p.id, p.value.clone()));
            }
        }
        self.batches.lock().unwrap().push(
            batch
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
        );
        Ok(())
    }
}

impl MemSink {
    fn value(&self, key: &RedisKey) -> Option<String> {
        self.rows
            .lock()
            .unwrap()
            .get(key.as_str())
            .map(|(_, v)| v.clone())
    }
}

struct Setup {
    redis: Redis,
    cache: Cache,
}

async fn setup(ctx: &TestCtx) -> anyhow::Result<Setup> {
    let redis =
        Redis::connect(RedisConfig::from_url(&ctx.url)?.with_key_prefix(&ctx.prefix)).await?;
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    Ok(Setup { redis, cache })
}

fn config(streams: u16) -> WriteBehindConfig {
    WriteBehindConfig::new("t")
        .with_streams(streams)
        .with_block(Duration::from_millis(100))
        .with_first_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(4))
}

fn key(s: &Setup, id: &str) -> RedisKey {
    s.cache.key("player").id(id).build().unwrap()
}

/// The dead letters of `wb`'s first shard, each as its text fields.
async fn dead_letters<W: Writer>(
    redis: &Redis,
    wb: &WriteBehind<W>,
) -> anyhow::Result<Vec<HashMap<String, String>>> {
    let dead: Vec<(String, HashMap<String, Value>)> = redis
        .client()
        .xrange_values(&wb.dead_letter_keys()[0], "-", "+", None)
        .await?;
    Ok(dead
        .into_iter()
        .map(|(_, fields)| {
            fields
                .into_iter()
                .map(|(f, v)| (f, v.as_string().unwrap_or_default()))
                .collect()
        })
        .collect())
}

async fn flush<W: Writer>(wb: &WriteBehind<W>) {
    tokio::time::timeout(Duration::from_secs(10), wb.flush())
        .await
        .expect("flush within 10 s")
        .unwrap();
}

async fn should_coalesce_writes_of_one_key_within_a_batch(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let sink = MemSink::default();
    let wb = WriteBehind::new(&s.cache, config(1), sink.clone())?;
    let (a, b) = (key(&s, "a"), key(&s, "b"));
    for v in ["a1", "a2", "a3"] {
        wb.write(&a, &v.to_owned()).await?;
    }
    wb.write(&b, &"b1".to_owned()).await?;
    wb.start().await?;
    flush(&wb).await;
    let batches = sink.batches.lock().unwrap().clone();
    assert_eq!(
        batches,
        vec![vec![
            (a.to_string(), "a3".to_owned()),
            (b.to_string(), "b1".to_owned())
        ]],
        "one batch, the last write of each key, in stream order"
    );
    let stats = wb.stats().await?;
    assert_eq!(
        (stats.writes, stats.coalesced, stats.written),
        (4, 2, 2),
        "{stats:?}"
    );
    assert_eq!(
        (stats.lag, stats.pending),
        (0, 0),
        "written entries leave the stream"
    );
    wb.shutdown().await;
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_retry_a_failing_batch_then_write_it(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let sink = MemSink::default();
    sink.fail_next.store(2, Ordering::SeqCst);
    let wb = WriteBehind::new(&s.cache, config(2), sink.clone())?;
    let k = key(&s, "r");
    wb.write(&k, &"v".to_owned()).await?;
    wb.start().await?;
    flush(&wb).await;
    assert_eq!(sink.value(&k).as_deref(), Some("v"));
    let stats = wb.stats().await?;
    assert_eq!(
        (stats.retries, stats.dead_letters, stats.batches),
        (2, 0, 1),
        "{stats:?}"
    );
    wb.shutdown().await;
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_dead_letter_a_batch_after_max_attempts(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let sink = MemSink {
        always_fail: true,
        ..MemSink::default()
    };
    let wb = WriteBehind::new(&s.cache, config(1).with_max_attempts(3), sink.clone())?;
    let k = key(&s, "d");
    let id = wb.write(&k, &"lost?".to_owned()).await?;
    wb.start().await?;
    flush(&wb).await;
    let stats = wb.stats().await?;
    assert_eq!(
        (stats.retries, stats.dead_letters, stats.lag),
        (2, 1, 0),
        "{stats:?}"
    );
    let dead = dead_letters(&s.redis, &wb).await?;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["id"], id.to_string());
    assert_eq!(dead[0]["k"], k.to_string());
    assert_eq!(dead[0]["error"], "sink failed: db down");
    wb.shutdown().await;
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_dead_letter_only_the_failing_entries_of_a_failing_batch(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let sink = MemSink {
        poison: Some("poison"),
        ..MemSink::default()
    };
    let wb = WriteBehind::new(&s.cache, config(1).with_max_attempts(2), sink.clone())?;
    let (a, b, c) = (key(&s, "a"), key(&s, "b"), key(&s, "c"));
    // written before the worker starts: one read hands it all three
    wb.write(&a, &"good a".to_owned()).await?;
    let bad = wb.write(&b, &"poison".to_owned()).await?;
    wb.write(&c, &"good c".to_owned()).await?;
    wb.start().await?;
    flush(&wb).await;
    assert_eq!(sink.value(&a).as_deref(), Some("good a"));
    assert_eq!(sink.value(&c).as_deref(), Some("good c"));
    assert_eq!(sink.value(&b), None);
    let stats = wb.stats().await?;
    assert_eq!(
        (
            stats.retries,
            stats.split_batches,
            stats.written,
            stats.dead_letters,
            stats.lag
        ),
        (1, 1, 2, 1, 0),
        "{stats:?}"
    );
    let dead = dead_letters(&s.redis, &wb).await?;
    assert_eq!(dead.len(), 1, "only the poison entry: {dead:?}");
    assert_eq!(dead[0]["id"], bad.to_string());
    assert_eq!(dead[0]["k"], b.to_string());
    assert_eq!(dead[0]["error"], "sink failed: poison value");
    wb.shutdown().await;
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_dead_letter_an_entry_delivered_more_than_max_deliveries(
    ctx: TestCtx,
) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let sink = MemSink::default();
    let cfg = config(1)
        .with_max_deliveries(2)
        .with_claim_idle(Duration::from_millis(50));
    let wb = WriteBehind::new(&s.cache, cfg, sink.clone())?;
    let stream = wb.stream_keys()[0].clone();
    let (k, fine) = (key(&s, "kills-workers"), key(&s, "fine"));
    let id = wb.write(&k, &"kills its worker".to_owned()).await?;
    // a consumer that died handling it twice: read once, then its delivery
    // count set to 2 and its idle time to 100 s (XCLAIM RETRYCOUNT, IDLE)
    let client = s.redis.client();
    let _: Value = client.xgroup_create(&stream, "t", "0", true).await?;
    let _: Value = client
        .xreadgroup("t", "ghost", None, None, false, &stream, ">")
        .await?;
    let _: Value = client
        .xclaim(
            &stream,
            "t",
            "ghost",
            0,
            id.to_string(),
            Some(100_000),
            None,
            Some(2),
            false,
            false,
        )
        .await?;
    wb.write(&fine, &"fine".to_owned()).await?;
    wb.start().await?;
    flush(&wb).await;
    // the claim raised it to 3 deliveries: dead-lettered, not written
    assert_eq!(sink.value(&k), None);
    assert_eq!(sink.value(&fine).as_deref(), Some("fine"));
    let stats = wb.stats().await?;
    assert_eq!(
        (stats.claimed, stats.dead_letters, stats.lag, stats.pending),
        (1, 1, 0, 0),
        "{stats:?}"
    );
    let dead = dead_letters(&s.redis, &wb).await?;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["id"], id.to_string());
    assert_eq!(
        dead[0]["error"],
        "delivered 3 times without being written (a worker died or stalled handling it)"
    );
    wb.shutdown().await;
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_claim_entries_left_pending_by_a_dead_consumer(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let sink = MemSink::default();
    let cfg = config(1).with_claim_idle(Duration::from_millis(100));
    let wb = WriteBehind::new(&s.cache, cfg, sink.clone())?;
    let stream = wb.stream_keys()[0].clone();
    let client = s.redis.client();
    let _: Value = client.xgroup_create(&stream, "t", "0", true).await?;
    let keys: Vec<RedisKey> = (0..5).map(|i| key(&s, &format!("c{i}"))).collect();
    for k in &keys {
        wb.write(k, &format!("{k}!")).await?;
    }
    // a consumer takes the entries and dies without acknowledging them
    let taken: Value = client
        .xreadgroup("t", "crashed", None, None, false, &stream, ">")
        .await?;
    assert!(!matches!(taken, Value::Null));
    assert_eq!(wb.stats().await?.pending, 5);
    wb.start().await?;
    flush(&wb).await;
    for k in &keys {
        assert_eq!(sink.value(k), Some(format!("{k}!")));
    }
    let stats = wb.stats().await?;
    assert_eq!(
        (stats.claimed, stats.pending, stats.lag),
        (5, 0, 0),
        "{stats:?}"
    );
    wb.shutdown().await;
    s.redis.shutdown().await?;
    Ok(())
}

/// A sink slow enough that `flush` has something to wait for.
#[derive(Clone, Default)]
struct SlowSink(MemSink);

impl Writer for SlowSink {
    type Value = String;
    type Error = SinkError;
    async fn write_batch(&self, batch: &[Pending<String>]) -> Result<(), SinkError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.0.write_batch(batch).await
    }
}

async fn should_wait_in_flush_for_every_earlier_write(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let sink = SlowSink::default();
    let wb = WriteBehind::new(&s.cache, config(3).with_batch(8), sink.clone())?;
    wb.start().await?;
    let keys: Vec<RedisKey> = (0..200).map(|i| key(&s, &format!("f{i}"))).collect();
    for k in &keys {
        wb.write(k, &format!("{k}=1")).await?;
    }
    flush(&wb).await;
    // no waiting here: flush returned, so every write is in the sink
    for k in &keys {
        assert_eq!(sink.0.value(k), Some(format!("{k}=1")), "{k}");
    }
    assert_eq!(wb.stats().await?.lag, 0);
    wb.shutdown().await;
    s.redis.shutdown().await?;
    Ok(())
}

async fn should_drain_on_shutdown(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let sink = MemSink::default();
    let wb = WriteBehind::new(&s.cache, config(2), sink.clone())?;
    let keys: Vec<RedisKey> = (0..50).map(|i| key(&s, &format!("s{i}"))).collect();
    for k in &keys {
        wb.write(k, &"x".to_owned()).await?;
    }
    wb.start().await?;
    tokio::time::timeout(Duration::from_secs(10), wb.shutdown()).await?;
    for k in &keys {
        assert_eq!(sink.value(k).as_deref(), Some("x"), "{k}");
    }
    s.redis.shutdown().await?;
    Ok(())
}

/// A server that lost its data (restart without persistence, failover to
/// an empty replica) loses the streams and their group: the workers make
/// the group again and write what was written since.
async fn should_make_the_group_again_when_the_stream_was_lost(ctx: TestCtx) -> anyhow::Result<()> {
    let s = setup(&ctx).await?;
    let sink = MemSink::default();
    let wb = WriteBehind::new(&s.cache, config(1), sink.clone())?;
    wb.start().await?;
    let (a, b) = (key(&s, "lost-a"), key(&s, "lost-b"));
    wb.write(&a, &"a1".to_owned()).await?;
    flush(&wb).await;
    // the stream and its group vanish, as on a restarted empty server
    let stream = wb.stream_keys()[0].clone();
    let _: () = s.redis.client().del(stream.as_str()).await?;
    wb.write(&b, &"b1".to_owned()).await?;
    flush(&wb).await;
    assert_eq!(sink.value(&b).as_deref(), Some("b1"));
    wb.shutdown().await;
    s.redis.shutdown().await?;
    Ok(())
}

aeturnis_testkit::topology_tests!(
    should_make_the_group_again_when_the_stream_was_lost,
    should_coalesce_writes_of_one_key_within_a_batch,
    should_retry_a_failing_batch_then_write_it,
    should_dead_letter_a_batch_after_max_attempts,
    should_dead_letter_only_the_failing_entries_of_a_failing_batch,
    should_dead_letter_an_entry_delivered_more_than_max_deliveries,
    should_claim_entries_left_pending_by_a_dead_consumer,
    should_wait_in_flush_for_every_earlier_write,
    should_drain_on_shutdown,
);

/// A worker's dedicated connection that stops answering (a black hole, a
/// middlebox that dropped its state) is replaced: its blocked read times
/// out, and writes made after the fault still reach the sink (found by
/// `cargo xtask chaos`: the worker kept timing out on the dead connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_replace_a_worker_connection_that_stopped_answering() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let proxy = FaultProxy::start(server.addr()).await?;
    let bound = Duration::from_millis(500);
    let redis = Redis::connect(
        RedisConfig::from_url(&proxy.url())?
            .with_command_timeout(bound)
            .with_unresponsive_timeout(Some(bound)),
    )
    .await?;
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    let sink = MemSink::default();
    let wb = WriteBehind::new(&cache, config(1), sink.clone())?;
    wb.start().await?;
    let k = cache.key("player").id("hole").build()?;
    wb.write(&k, &"v1".to_owned()).await?;
    flush(&wb).await;
    // every open connection stops answering; once a PING on the shared one
    // has timed out, the worker's reads (every 100 ms) were swallowed too
    proxy.set(Fault::BlackHole);
    eventually("a PING to time out", Duration::from_secs(5), || async {
        match redis.client().ping::<()>(None).await {
            Err(e) if *e.kind() == ErrorKind::Timeout => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    proxy.set(Fault::Pass);
    eventually(
        "a write after the fault",
        Duration::from_secs(5),
        || async { wb.write(&k, &"v2".to_owned()).await.map(drop) },
    )
    .await?;
    flush(&wb).await;
    assert_eq!(sink.value(&k).as_deref(), Some("v2"));
    wb.shutdown().await;
    redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_refuse_zero_settings_naming_them() -> anyhow::Result<()> {
    let ctx = TestCtx::standalone("wb_config").await;
    let s = setup(&ctx).await?;
    let cases = [
        ("streams", config(0)),
        ("batch", config(1).with_batch(0)),
        ("max_attempts", config(1).with_max_attempts(0)),
        ("max_deliveries", config(1).with_max_deliveries(0)),
        ("block", config(1).with_block(Duration::ZERO)),
        ("claim_idle", config(1).with_claim_idle(Duration::ZERO)),
        ("cache_ttl", config(1).with_cache_ttl(Duration::ZERO)),
    ];
    for (name, cfg) in cases {
        match WriteBehind::new(&s.cache, cfg, MemSink::default()) {
            Err(Error::Config(c)) => assert_eq!(c.variable(), name),
            other => panic!("{name}: expected a config error, got {other:?}"),
        }
    }
    s.redis.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_a_dropped_write_instead_of_resending_it() -> anyhow::Result<()> {
    let server = RedisServer::start_standalone()?;
    let redis = Redis::connect(RedisConfig::from_url(&server.url())?).await?;
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    let wb = WriteBehind::new(&cache, config(1), MemSink::default())?;
    let k = cache.key("player").id("replay").build()?;
    wb.write(&k, &"v1".to_owned()).await?;
    // make `exists` the connection's last command, so `cmd=evalsha` below
    // can only be the held write
    let _: u64 = redis.client().exists(&k).await?;
    server.pause_writes()?;
    let task = {
        let (wb, k) = (wb.clone(), k.clone());
        tokio::spawn(async move { wb.write(&k, &"v2".to_owned()).await })
    };
    // the write, held on the server, loses its connection
    server
        .kill_held(|c| c.cmd == "evalsha" || c.cmd == "eval")
        .await?;
    let dropped = tokio::time::timeout(Duration::from_secs(10), task).await??;
    match dropped {
        Err(Error::Redis(e)) => assert!(e.is_connection() || e.is_timeout(), "{e}"),
        other => panic!("expected a connection error, got {other:?}"),
    }
    // a later write goes out after anything fred would have re-sent
    let v3 = wb.write(&k, &"v3".to_owned()).await?;
    let entries: Vec<(String, HashMap<String, Value>)> = redis
        .client()
        .xrange_values(&wb.stream_keys()[0], "-", "+", None)
        .await?;
    assert_eq!(
        entries.len(),
        2,
        "v1 and v3 only, v2 was not re-sent: {entries:?}"
    );
    assert_eq!(entries[1].0, v3.to_string());
    redis.shutdown().await?;
    Ok(())
}

/// The primary that owns `slot`, by its own `CLUSTER NODES` line.
fn owner(cluster: &Cluster, slot: u16) -> &RedisServer {
    cluster
        .nodes()
        .iter()
        .find(|node| {
            let view = node.cli(&["CLUSTER", "NODES"]).unwrap();
            view.lines()
                .find(|l| l.contains("myself"))
                .is_some_and(|me| {
                    me.contains("master")
                        && me.split_whitespace().skip(8).any(|range| {
                            let mut ends = range.split('-').map(|n| n.parse::<u16>());
                            match (ends.next(), ends.next()) {
                                (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
                                (Some(Ok(a)), None) => a == slot,
                                _ => false,
                            }
                        })
                })
        })
        .expect("a primary owns every slot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_a_dropped_cluster_write_on_two_slots_instead_of_resending_it(
) -> anyhow::Result<()> {
    let cluster = tokio::task::spawn_blocking(Cluster::start).await??;
    let redis = Redis::connect(RedisConfig::from_url(&cluster.url())?).await?;
    assert!(redis.is_cluster());
    let cache = Cache::new(redis.clone(), CacheConfig::default())?;
    let wb = WriteBehind::new(&cache, config(1), MemSink::default())?;
    let stream = wb.stream_keys()[0].clone();
    let stream_node = owner(&cluster, stream.slot());
    // a key on another primary than its stream: the two-command path
    let k = (0..)
        .map(|i| {
            cache
                .key("player")
                .id(format!("replay-{i}"))
                .build()
                .unwrap()
        })
        .find(|k| owner(&cluster, k.slot()).port() != stream_node.port())
        .unwrap();
    wb.write(&k, &"v1".to_owned()).await?;
    // make `xlen` the stream node's connection's last command, so
    // `cmd=xadd` below can only be the held write
    let _: u64 = redis.client().xlen(&stream).await?;
    stream_node.pause_writes()?;
    let task = {
        let (wb, k) = (wb.clone(), k.clone());
        tokio::spawn(async move { wb.write(&k, &"v2".to_owned()).await })
    };
    // the XADD, held on the stream's node, loses its connection
    stream_node.kill_held(|c| c.cmd == "xadd").await?;
    let dropped = tokio::time::timeout(Duration::from_secs(10), task).await??;
    match dropped {
        Err(Error::Redis(e)) => assert!(e.is_connection() || e.is_timeout(), "{e}"),
        other => panic!("expected a connection error, got {other:?}"),
    }
    // a later write goes out after anything fred would have re-sent
    let v3 = wb.write(&k, &"v3".to_owned()).await?;
    let entries: Vec<(String, HashMap<String, Value>)> = redis
        .client()
        .xrange_values(&stream, "-", "+", None)
        .await?;
    assert_eq!(
        entries.len(),
        2,
        "v1 and v3 only, v2 was not re-sent: {entries:?}"
    );
    assert_eq!(entries[1].0, v3.to_string());
    redis.shutdown().await?;
    Ok(())
}

/// The test process only writes: its writer is never called.
struct NoWrites;

impl Writer for NoWrites {
    type Value = String;
    type Error = SinkError;
    async fn write_batch(&self, _: &[Pending<String>]) -> Result<(), SinkError> {
        Err(SinkError("the writing process has no workers"))
    }
}

fn worker_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/write_behind-<hash> -> target/<profile>/examples/
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples")
        .join(format!(
            "write_behind_worker{}",
            std::env::consts::EXE_SUFFIX
        ));
    assert!(
        path.exists(),
        "{} is missing: run `cargo test -p aeturnis-patterns` (it builds the examples)",
        path.display()
    );
    path
}

fn spawn_worker(ctx: &TestCtx) -> anyhow::Result<tokio::process::Child> {
    Ok(tokio::process::Command::new(worker_binary())
        .env("WB_URL", &ctx.url)
        .env("WB_PREFIX", &ctx.prefix)
        .env("WB_NAME", "crash")
        .env("WB_STREAMS", "4")
        .env("WB_CLAIM_MS", "300")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?)
}

/// Waits for `line` on the worker's stdout.
async fn wait_for(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    line: &str,
) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(l) = lines.next_line().await? {
            if l == line {
                return Ok(());
            }
        }
        anyhow::bail!("the worker exited before printing {line}")
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_lose_no_acknowledged_write_when_a_worker_is_killed_mid_batch() -> anyhow::Result<()>
{
    const KEYS: usize = 500;
    const WRITES: u64 = 10_000;
    const KILLS: u32 = 20;
    let ctx = TestCtx::standalone("wb_crash").await;
    let s = setup(&ctx).await?;
    let wb = WriteBehind::new(
        &s.cache,
        WriteBehindConfig::new("crash").with_streams(4),
        NoWrites,
    )?;
    let keys: Vec<RedisKey> = (0..KEYS).map(|i| key(&s, &format!("k{i}"))).collect();
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let written = Arc::new(AtomicU64::new(0));
    let kills_done = Arc::new(AtomicBool::new(false));
    // 50 writers, 10 keys each, writing each key's versions in order
    let writers: Vec<_> = keys
        .chunks(KEYS / 50)
        .map(|chunk| {
            let (wb, chunk, acked, written, kills_done) = (
                wb.clone(),
                chunk.to_vec(),
                acked.clone(),
                written.clone(),
                kills_done.clone(),
            );
            tokio::spawn(async move {
                let mut version = 0u64;
                while written.load(Ordering::SeqCst) < WRITES || !kills_done.load(Ordering::SeqCst)
                {
                    version += 1;
                    for k in &chunk {
                        let v = format!("{k}@{version}");
                        wb.write(k, &v).await?;
                        acked.lock().unwrap().insert(k.to_string(), v);
                        written.fetch_add(1, Ordering::SeqCst);
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for _ in 0..KILLS {
        let mut child = spawn_worker(&ctx)?;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        wait_for(&mut lines, "batch").await?;
        child.kill().await?; // SIGKILL, half-way through a batch
    }
    kills_done.store(true, Ordering::SeqCst);
    let mut last = spawn_worker(&ctx)?;
    let mut lines = BufReader::new(last.stdout.take().unwrap()).lines();
    wait_for(&mut lines, "ready").await?;
    for w in writers {
        w.await??;
    }
    let total = written.load(Ordering::SeqCst);
    assert!(total >= WRITES, "{total} writes");
    if tokio::time::timeout(Duration::from_secs(30), wb.flush())
        .await
        .is_err()
    {
        let groups: Value = s.redis.client().xinfo_groups(&wb.stream_keys()[0]).await?;
        panic!("flush timed out: {:?} {groups:?}", wb.stats().await?);
    }
    let sink: HashMap<String, String> = s
        .redis
        .client()
        .hgetall(s.redis.keys().key("sink").build()?)
        .await?;
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), KEYS);
    let lost: Vec<(&String, &String, Option<&String>)> = acked
        .iter()
        .filter_map(|(k, v)| {
            let stored = sink.get(k);
            let value = stored.and_then(|s| s.split_once('|')).map(|(_, v)| v);
            (value != Some(v.as_str())).then_some((k, v, stored))
        })
        .collect();
    assert_eq!(
        lost.len(),
        0,
        "{} of {total} acknowledged writes lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    drop(last.stdin.take()); // graceful stop
    tokio::time::timeout(Duration::from_secs(20), last.wait()).await??;
    s.redis.shutdown().await?;
    Ok(())
}
