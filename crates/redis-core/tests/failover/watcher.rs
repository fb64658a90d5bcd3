//! The watcher's own lifecycle (subscriptions, shutdown) and the `READONLY`
//! backstop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aeturnis_redis_core::fred::interfaces::EventInterface;
use aeturnis_redis_core::fred::prelude::KeysInterface;
use aeturnis_redis_core::{Error, Redis, RedisConfig};
use aeturnis_testkit::{eventually, RedisServer, Sentinel};

use super::support::*;

/// `CLIENT LIST TYPE pubsub` lines on each sentinel.
fn pubsub_clients(set: &Sentinel) -> anyhow::Result<Vec<usize>> {
    set.sentinels()
        .iter()
        .map(|s| {
            Ok(s.cli(&["CLIENT", "LIST", "TYPE", "pubsub"])?
                .lines()
                .count())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_subscribes_on_every_sentinel_and_shutdown_closes_it() -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    let set = Arc::new(tokio::task::spawn_blocking(Sentinel::start).await??);
    let redis = Redis::connect(sentinel_config(&set)?).await?;
    let probe = |want: usize| {
        let set = set.clone();
        move || {
            let set = set.clone();
            async move {
                let counts = tokio::task::spawn_blocking(move || pubsub_clients(&set))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                if counts.iter().all(|&n| n == want) {
                    Ok(())
                } else {
                    Err(format!(
                        "pubsub clients per sentinel: {counts:?}, want {want}"
                    ))
                }
            }
        }
    };
    eventually(
        "one subscriber on every sentinel",
        Duration::from_secs(5),
        probe(1),
    )
    .await?;
    let started = Instant::now();
    redis.shutdown().await?;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    eventually("no subscriber left", Duration::from_secs(5), probe(0)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_sentinel_neither_blocks_connect_nor_shutdown() -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    let mut set = tokio::task::spawn_blocking(Sentinel::start).await??;
    set.sentinel_mut(0).kill()?;
    let redis = Redis::connect(sentinel_config(&set)?).await?;
    let () = redis.client().set("fo:alive", 1, None, None, false).await?;
    let started = Instant::now();
    redis.shutdown().await?;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readonly_reply_drops_the_connection_and_reconnects() -> anyhow::Result<()> {
    let _one_at_a_time = aeturnis_testkit::one_failover_at_a_time().await;
    let (a, b) = tokio::task::spawn_blocking(|| {
        anyhow::Ok((
            RedisServer::start_standalone()?,
            RedisServer::start_standalone()?,
        ))
    })
    .await??;
    let redis = Redis::connect(RedisConfig::from_url(&a.url())?).await?;
    let mut reconnects = redis.client().reconnect_rx();
    a.cli(&["REPLICAOF", "127.0.0.1", &b.port().to_string()])?;
    let result: Result<(), _> = redis
        .client()
        .set("fo:readonly", 1, None, None, false)
        .await;
    let error = result.expect_err("a replica refuses the write");
    assert!(error.to_string().contains("READONLY"), "{error}");
    // the reply dropped the connection: fred reconnected (through the
    // sentinels, for a sentinel topology) instead of keeping the demoted server
    let server = tokio::time::timeout(Duration::from_secs(5), reconnects.recv()).await??;
    assert_eq!(server.port, a.port());
    // the demoted server may still be loading the primary's data, so QUIT
    // can time out; the handle is closed either way
    let _ = redis.shutdown().await;
    assert!(matches!(redis.ensure_open(), Err(Error::Shutdown)));
    Ok(())
}
