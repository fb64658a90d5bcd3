//! Fault and replay tests, each on its own `redis-server` (they kill
//! servers and connections, which the shared servers must not see).

use std::time::{Duration, Instant};

use aeturnis_cache::{Cache, CacheConfig, Classify, Error, OpKind, Redis, RedisConfig, Ttl};
use aeturnis_testkit::{eventually, RedisServer};
use anyhow::{bail, ensure, Context, Result};

const COMMAND_TIMEOUT: Duration = Duration::from_millis(800);
/// Scheduling room on a loaded 2-core CI host, on top of the command timeout.
const SLACK: Duration = Duration::from_secs(2);

async fn cache_on(server: &RedisServer) -> Result<Cache> {
    let redis = Redis::connect(
        RedisConfig::from_url(&server.url())?
            .with_key_prefix("fault:")
            .with_command_timeout(COMMAND_TIMEOUT),
    )
    .await?;
    Ok(Cache::new(redis, CacheConfig::default())?)
}

/// A connection or timeout error from the Redis layer.
fn is_connection_or_timeout(e: &Error) -> bool {
    matches!(e, Error::Redis(r) if r.is_connection() || r.is_timeout())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_give_typed_errors_while_redis_is_down_and_recover_after_restart() -> Result<()> {
    let mut server = RedisServer::start_standalone()?;
    let cache = cache_on(&server).await?;
    let key = cache.key("hero").id("1").build()?;
    cache.set(&key, "before", Ttl::Default).await?;

    // a task hammering the cache when Redis dies
    let worker = {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = cache.get::<String>(&key).await {
                    return (e, Instant::now());
                }
                tokio::task::yield_now().await;
            }
        })
    };
    eventually("the worker to run", Duration::from_secs(5), || async {
        match cache.stats().op(OpKind::Get).map(|g| g.count) {
            Some(n) if n > 100 => Ok(()),
            other => Err(format!("{other:?} gets so far")),
        }
    })
    .await?;
    let killed = Instant::now();
    server.kill()?;
    let (err, failed_at) = tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .context("the in-flight operation never failed")??;
    ensure!(
        err.is_retryable() && err.is_unavailable() && is_connection_or_timeout(&err),
        "{err:?}"
    );
    ensure!(
        failed_at.duration_since(killed) <= COMMAND_TIMEOUT + SLACK,
        "failed after {:?}",
        failed_at.duration_since(killed)
    );

    // calls made while it is down fail within the command timeout too
    for _ in 0..3 {
        let started = Instant::now();
        let result = cache.set(&key, "during", Ttl::Default).await;
        let took = started.elapsed();
        match result {
            Err(e) if e.is_retryable() => {}
            other => bail!("expected a retryable error, got {other:?}"),
        }
        ensure!(took <= COMMAND_TIMEOUT + SLACK, "took {took:?}");
    }
    let errors = cache.stats().total_errors();
    ensure!(errors >= 4, "errors counted: {errors}");

    // the same Cache works again once Redis is back
    server.restart()?;
    eventually(
        "the cache to write again",
        Duration::from_secs(20),
        || async { cache.set(&key, "after", Ttl::Default).await },
    )
    .await?;
    assert_eq!(cache.get::<String>(&key).await?.as_deref(), Some("after"));
    assert_eq!(
        cache
            .incr(&cache.key("c").build()?, 2, Ttl::Default)
            .await?,
        2
    );
    Ok(())
}

/// Holds the next write command of the cache's connection on the server
/// (`CLIENT PAUSE WRITE`), waits until `CLIENT LIST` shows it held there
/// (`cmd=<command>`, lower case), kills that connection while the command is
/// in flight, and lets the server go.
async fn drop_connection_mid_call<T: Send + 'static>(
    server: &RedisServer,
    command: &str,
    call: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T> {
    server.pause_writes()?;
    let task = tokio::spawn(call);
    server.kill_held(|c| c.cmd == command).await?;
    Ok(tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .context("the call never finished")??)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_a_dropped_counter_call_instead_of_counting_twice() -> Result<()> {
    let server = RedisServer::start_standalone()?;
    let cache = cache_on(&server).await?;
    let counter = cache.key("kills").id("7").build()?;
    assert_eq!(cache.incr(&counter, 1, Ttl::Default).await?, 1);
    // make `exists` the connection's last command, so `cmd=evalsha` below
    // can only be the held call
    cache.exists(&counter).await?;

    let call = {
        let (cache, counter) = (cache.clone(), counter.clone());
        async move { cache.incr(&counter, 1, Ttl::Default).await }
    };
    let result: Result<i64, Error> = drop_connection_mid_call(&server, "evalsha", call).await?;
    match result {
        Err(e) => ensure!(is_connection_or_timeout(&e) || e.is_retryable(), "{e:?}"),
        Ok(v) => bail!("the dropped increment was replayed and returned {v}"),
    }
    // nothing ran twice (here: the held call never ran at all)
    eventually("the reconnect", Duration::from_secs(10), || async {
        cache.exists(&counter).await
    })
    .await?;
    assert_eq!(cache.counter(&counter).await?, Some(1));

    // by contrast an idempotent write is replayed transparently
    let key = cache.key("replayed").build()?;
    let call = {
        let (cache, key) = (cache.clone(), key.clone());
        async move { cache.set(&key, &5u32, Ttl::Default).await }
    };
    drop_connection_mid_call(&server, "set", call).await??;
    assert_eq!(cache.get::<u32>(&key).await?, Some(5));
    Ok(())
}

/// Drops the connection while `call` is held on the server (see
/// [`drop_connection_mid_call`]) and requires the call to fail: a call
/// sent with replay enabled is re-sent after the reconnect and succeeds
/// (as the `set` above does), so an `Ok` here means it was replayed.
/// Returns once the cache answers again.
async fn assert_fails_unreplayed<T: std::fmt::Debug + Send + 'static>(
    server: &RedisServer,
    cache: &Cache,
    command: &str,
    what: &str,
    call: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<()> {
    // the connection's last command becomes `exists`, so `cmd=<command>`
    // in `CLIENT LIST` can only be the held call
    let probe = cache.key("probe").build()?;
    cache.exists(&probe).await?;
    match drop_connection_mid_call(server, command, call).await? {
        Err(e) => ensure!(is_connection_or_timeout(&e), "{what}: {e:?}"),
        Ok(v) => bail!("the dropped {what} was replayed and returned {v:?}"),
    }
    eventually("the reconnect", Duration::from_secs(10), || async {
        cache.exists(&probe).await
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_a_dropped_list_push_or_pop_instead_of_repeating_it() -> Result<()> {
    let server = RedisServer::start_standalone()?;
    let cache = cache_on(&server).await?;
    let list = cache.key("queue").build()?;
    cache
        .list_push_back(&list, &[1u32, 2, 3, 4], Ttl::Default)
        .await?;
    let c = cache.clone();
    let l = list.clone();
    assert_fails_unreplayed(
        &server,
        &cache,
        "evalsha",
        "push_back",
        Box::pin(async move { c.list_push_back(&l, &[9u32], Ttl::Default).await }),
    )
    .await?;
    let (c, l) = (cache.clone(), list.clone());
    assert_fails_unreplayed(
        &server,
        &cache,
        "evalsha",
        "push_front",
        Box::pin(async move { c.list_push_front(&l, &[9u32], Ttl::Default).await }),
    )
    .await?;
    let (c, l) = (cache.clone(), list.clone());
    assert_fails_unreplayed(
        &server,
        &cache,
        "lpop",
        "pop_front",
        Box::pin(async move { c.list_pop_front::<u32>(&l).await }),
    )
    .await?;
    let (c, l) = (cache.clone(), list.clone());
    assert_fails_unreplayed(
        &server,
        &cache,
        "rpop",
        "pop_back",
        Box::pin(async move { c.list_pop_back::<u32>(&l).await }),
    )
    .await?;
    // nothing was pushed or popped, not even once
    assert_eq!(cache.list_range::<u32>(&list, 0, -1).await?, [1, 2, 3, 4]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_a_dropped_score_increment_instead_of_adding_twice() -> Result<()> {
    let server = RedisServer::start_standalone()?;
    let cache = cache_on(&server).await?;
    let board = cache.schema().leaderboard("pvp")?;
    assert_eq!(
        cache.zset_incr(&board, "ada", 10.0, Ttl::Default).await?,
        10.0
    );
    let (c, b) = (cache.clone(), board.clone());
    assert_fails_unreplayed(
        &server,
        &cache,
        "evalsha",
        "zset_incr",
        Box::pin(async move { c.zset_incr(&b, "ada", 5.0, Ttl::Default).await }),
    )
    .await?;
    let (c, b) = (cache.clone(), board.clone());
    assert_fails_unreplayed(
        &server,
        &cache,
        "evalsha",
        "leaderboard_incr",
        Box::pin(async move { c.leaderboard_incr(&b, "ada", 5.0, Ttl::Default).await }),
    )
    .await?;
    assert_eq!(cache.zset_score(&board, "ada").await?, Some(10.0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_fail_a_dropped_set_if_absent_instead_of_reporting_its_own_write() -> Result<()> {
    let server = RedisServer::start_standalone()?;
    let cache = cache_on(&server).await?;
    let key = cache.key("claim").build()?;
    let (c, k) = (cache.clone(), key.clone());
    assert_fails_unreplayed(
        &server,
        &cache,
        "set",
        "set_if_absent",
        Box::pin(async move { c.set_if_absent(&k, "mine", Ttl::Default).await }),
    )
    .await?;
    // the held write never ran: the key is still free
    assert!(!cache.exists(&key).await?);
    assert!(cache.set_if_absent(&key, "mine", Ttl::Default).await?);
    Ok(())
}
