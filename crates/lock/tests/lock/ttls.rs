//! Every key the lock writes carries a TTL (DESIGN rule 5): the lock, its
//! fencing state, the fenced value, the wait queue and the waiters'
//! liveness hash, the forced-release marker. On a server of the test's
//! own, so `KEYS` lists this test's keys only; each is read with `PTTL`.

use std::collections::BTreeMap;
use std::time::Duration;

use aeturnis_lock::{LockConfig, LockManager};
use aeturnis_redis_core::Redis;
use aeturnis_testkit::{eventually, RedisServer};
use anyhow::{ensure, Context, Result};

use crate::support::config;

const PREFIX: &str = "ttl:";

/// `PTTL` of every key on `server`.
fn pttls(server: &RedisServer) -> Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for key in server
        .cli(&["KEYS", "*"])?
        .lines()
        .filter(|k| !k.is_empty())
    {
        let pttl = server.cli(&["PTTL", key])?;
        let pttl: i64 = pttl.trim().parse().context(pttl)?;
        out.insert(key.to_owned(), pttl);
    }
    Ok(out)
}

/// Every key has a TTL (`PTTL` is -1 for a key without one); returns them.
fn all_expiring(server: &RedisServer) -> Result<BTreeMap<String, i64>> {
    let keys = pttls(server)?;
    for (key, pttl) in &keys {
        ensure!(*pttl > 0, "{key} has no TTL (PTTL {pttl}): {keys:?}");
    }
    Ok(keys)
}

fn ttl_of(keys: &BTreeMap<String, i64>, suffix: &str) -> Result<i64> {
    let key = format!("{PREFIX}lock:{{res}}{suffix}");
    keys.get(&key)
        .copied()
        .with_context(|| format!("{key} was not written: {keys:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_put_a_ttl_on_every_key_the_lock_writes() -> Result<()> {
    let server = RedisServer::start_standalone()?;
    // a waiter's lease is backoff_max × 4 = 4 s: the queue and the
    // liveness hash live for twice that after the waiter's last poll (long
    // enough that a stalled CI host cannot lose one between `KEYS` and its
    // `PTTL`; the waiter is woken by message, so nothing waits for it)
    let waiting = LockConfig::default()
        .with_backoff(Duration::from_millis(10), Duration::from_secs(1))
        .with_fence_ttl(Duration::from_secs(3_600));
    let lease_ms = 4_000;
    let holder = LockManager::new(
        Redis::connect(config(&server.url(), PREFIX)?).await?,
        waiting.clone(),
    )?;
    let waiter = LockManager::new(
        Redis::connect(config(&server.url(), PREFIX)?).await?,
        waiting,
    )?;
    let ttl = Duration::from_secs(30);
    let held = holder.try_acquire("res", ttl).await?;
    holder
        .fenced_write("res", held.fence().await?, "value")
        .await?
        .map_err(|stale| anyhow::anyhow!("{stale:?}"))?;
    let task = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.acquire("res", ttl).await })
    };
    let queue = format!("{PREFIX}lock:{{res}}:queue");
    eventually("the waiter to queue", Duration::from_secs(5), || async {
        match server.cli(&["EXISTS", &queue]) {
            Ok(n) if n.trim() == "1" => Ok(()),
            other => Err(format!("no queue yet: {other:?}")),
        }
    })
    .await?;
    let keys = all_expiring(&server)?;
    let lock = ttl_of(&keys, "")?;
    ensure!(lock <= 30_000, "lock PTTL {lock}");
    for suffix in [":state", ":fenced"] {
        let t = ttl_of(&keys, suffix)?;
        ensure!(t <= 3_600_000, "{suffix} PTTL {t}");
    }
    for suffix in [":queue", ":alive"] {
        let t = ttl_of(&keys, suffix)?;
        ensure!(t <= 2 * lease_ms, "{suffix} PTTL {t}");
    }

    // an admin takes the lock: the forced-release marker outlives the
    // holder's lease by a second, no more; the waiter is handed the lock
    assert!(holder.force_release("res").await?);
    let keys = all_expiring(&server)?;
    let forced = ttl_of(&keys, ":forced")?;
    ensure!(forced <= 30_000 + 1_000, ":forced PTTL {forced}");
    let handed = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .context("the waiter was never handed the lock")???;
    let e = held.release().await.unwrap_err();
    assert!(e.is_lock_lost(), "{e:?}");
    handed.release().await?;
    let left = all_expiring(&server)?;
    ensure!(
        !left.contains_key(&format!("{PREFIX}lock:{{res}}")),
        "released: {left:?}"
    );
    Ok(())
}
